//! The console daemon proper (Xen's `tools/console/daemon/io.c`), over the [`Hyp`] and
//! [`Store`] traits.
//!
//! Owns one [`Console`] per running DomU (domid ≥ 1) it has seen. Discovery: watches on
//! `@introduceDomain` and `@releaseDomain` (token `domlist`) re-list the domains; a new one
//! gets a watch on `/local/domain/N/console` (token `domN`), a dying or vanished one is
//! forgotten (final drain to the log, then unmap, unbind, close the pty). A console is set
//! up once `ring-ref` and `port` are present and `type` is absent or `xenconsoled`: the
//! ring page is foreign-mapped, the port bound, a raw pty opened and its slave path
//! written to `console/tty`, the log `<log-dir>/guest-<name>.log` opened (`--log=guest`).
//! With `--log=hv` the hypervisor's console ring goes to `<log-dir>/hypervisor.log`
//! (sysctl readconsole, on `VIRQ_CON_RING` and every second).
//!
//! Invariants: a [`Console`] with a ring has its page mapped and its port bound for as long
//! as the ring is held; every value read from xenstore or the ring page is validated
//! before use (a bad one leaves the console without a ring or the ring ignored, with one
//! message, never a panic); at most 30 events per console are
//! handled per period ([`crate::ratelimit`]).

use crate::buffer::{OutBuffer, Overflow};
use crate::pty::Pty;
use crate::ratelimit::RateLimit;
use crate::ring::{self, BadRing};
use crate::sys::{EventPort, Hyp, Store, SysError, SysResult};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Token of the domain-list watches.
pub const DOMLIST_TOKEN: &str = "domlist";

/// Buffer limit when `console/limit` is absent or unreadable (libxl writes 1 MiB).
pub const DEFAULT_LIMIT: usize = 1 << 20;

/// How the daemon logs and buffers.
#[derive(Clone, Debug)]
pub struct Options {
    /// Write each guest's output to `<log_dir>/guest-<name>.log`.
    pub log_guest: bool,
    /// Where the logs go.
    pub log_dir: PathBuf,
    /// What to do when a console's unread output outgrows its limit.
    pub overflow: Overflow,
    /// Write the hypervisor's console to `<log_dir>/hypervisor.log`.
    pub log_hv: bool,
}

/// How often the hypervisor console is read when no `VIRQ_CON_RING` event says so.
pub const HV_POLL: Duration = Duration::from_secs(1);

/// The hypervisor log (`--log=hv|all`): new console ring text appended to the file on each
/// `VIRQ_CON_RING` event, and every [`HV_POLL`] (oxen does not raise that VIRQ).
struct HvLog<H: Hyp> {
    file: File,
    path: PathBuf,
    index: u32,
    port: Option<H::Port>,
    next_poll: Instant,
}

/// A mapped, bound ring.
struct Ring<H: Hyp> {
    mem: H::Ring,
    port: H::Port,
    gfn: u64,
    remote_port: u32,
    limit: RateLimit,
    /// The guest's indexes were impossible once (reported once).
    reported: bool,
}

/// One DomU's console.
struct Console<H: Hyp> {
    domid: u16,
    ring: Option<Ring<H>>,
    pty: Option<Pty>,
    buf: OutBuffer,
    log: Option<File>,
    /// Where `log` was opened (reopened on SIGHUP).
    log_path: Option<PathBuf>,
}

/// The values of a domain's `console/` nodes the daemon uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleNodes {
    /// GFN of the ring page.
    pub gfn: u64,
    /// The guest's event channel port.
    pub port: u32,
    /// Buffer limit in bytes.
    pub limit: usize,
}

/// Parse a domain's `console/{ring-ref,port,type,limit}` values. `Ok(None)`: not (yet) a
/// console for this daemon (nodes missing, or another backend's type); `Err`: nodes with
/// values no toolstack writes.
pub fn parse_console_nodes(
    ring_ref: Option<&str>,
    port: Option<&str>,
    ty: Option<&str>,
    limit: Option<&str>,
) -> Result<Option<ConsoleNodes>, String> {
    if ty.is_some_and(|t| t != "xenconsoled") {
        return Ok(None);
    }
    let (Some(ring_ref), Some(port)) = (ring_ref, port) else {
        return Ok(None);
    };
    let gfn: u64 = ring_ref
        .trim()
        .parse()
        .map_err(|_| format!("console/ring-ref {ring_ref:?} is not a frame number"))?;
    let port: u32 = match port.trim().parse() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(format!(
                "console/port {port:?} is not an event channel port"
            ));
        }
    };
    let limit = limit
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_LIMIT);
    Ok(Some(ConsoleNodes { gfn, port, limit }))
}

/// The log file name for a domain called `name` (Xen's `guest-<name>.log`); a name that
/// could leave the log directory is replaced by `d<domid>`.
pub fn log_file_name(name: Option<&str>, domid: u16) -> String {
    match name {
        Some(n)
            if !n.is_empty()
                && n.len() <= 64
                && !n.starts_with('.')
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'/') =>
        {
            format!("guest-{n}.log")
        }
        _ => format!("guest-d{domid}.log"),
    }
}

/// Open a log file for appending (created 0644 if missing).
fn open_log(path: &std::path::Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// A message for the daemon's log (stderr; a log file once daemonized).
fn say(msg: std::fmt::Arguments<'_>) {
    eprintln!("xenconsoled: {msg}");
}

/// The daemon; see the module docs.
pub struct Daemon<H: Hyp, S: Store> {
    hyp: H,
    store: S,
    opts: Options,
    consoles: BTreeMap<u16, Console<H>>,
    hv: Option<HvLog<H>>,
}

impl<H: Hyp, S: Store> Daemon<H, S> {
    /// A daemon with no consoles yet; [`Daemon::start`] begins the discovery.
    pub fn new(hyp: H, store: S, opts: Options) -> Self {
        Self {
            hyp,
            store,
            opts,
            consoles: BTreeMap::new(),
            hv: None,
        }
    }

    /// Open the hypervisor log (with `log_hv`), copy what the console ring holds, and
    /// bind `VIRQ_CON_RING` if the hypervisor offers it; then watch the domain list and set
    /// up the consoles of the domains that exist.
    pub fn start(&mut self) -> SysResult<()> {
        if self.opts.log_hv {
            let path = self.opts.log_dir.join("hypervisor.log");
            let file = open_log(&path)
                .map_err(|e| SysError(format!("opening {}: {e}", path.display())))?;
            let port = self.hyp.bind_con_ring().ok();
            self.hv = Some(HvLog {
                file,
                path,
                index: 0,
                port,
                next_poll: Instant::now(),
            });
            self.hv_read();
        }
        self.store.watch("@introduceDomain", DOMLIST_TOKEN)?;
        self.store.watch("@releaseDomain", DOMLIST_TOKEN)?;
        self.enum_domains();
        Ok(())
    }

    /// The domids with a console entry (set up or waiting for its nodes).
    pub fn domains(&self) -> Vec<u16> {
        self.consoles.keys().copied().collect()
    }

    /// The slave path of `domid`'s pty, once its console is set up.
    pub fn tty(&self, domid: u16) -> Option<&str> {
        self.consoles.get(&domid)?.pty.as_ref().map(Pty::path)
    }

    /// The store connection (tests inspect the fake).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The hypervisor connection (tests inspect the fake).
    pub fn hyp_mut(&mut self) -> &mut H {
        &mut self.hyp
    }

    /// Re-list the domains: add new ones, forget dying and vanished ones (Xen's
    /// `enum_domains`).
    pub fn enum_domains(&mut self) {
        let list = match self.hyp.domains() {
            Ok(l) => l,
            Err(e) => {
                say(format_args!("listing domains failed: {e}"));
                return;
            }
        };
        let mut alive = Vec::new();
        for d in list.iter().filter(|d| d.domid != 0) {
            if d.dying {
                continue;
            }
            alive.push(d.domid);
            if !self.consoles.contains_key(&d.domid) {
                self.add_domain(d.domid);
            }
        }
        let gone: Vec<u16> = self
            .consoles
            .keys()
            .copied()
            .filter(|id| !alive.contains(id))
            .collect();
        for id in gone {
            self.remove_domain(id);
        }
    }

    fn console_path(domid: u16) -> String {
        format!("/local/domain/{domid}/console")
    }

    fn add_domain(&mut self, domid: u16) {
        let con = Console {
            domid,
            ring: None,
            pty: None,
            buf: OutBuffer::new(DEFAULT_LIMIT, self.opts.overflow),
            log: None,
            log_path: None,
        };
        self.consoles.insert(domid, con);
        // The watch fires once at once, which sets the console up if its nodes exist.
        if let Err(e) = self
            .store
            .watch(&Self::console_path(domid), &format!("dom{domid}"))
        {
            say(format_args!(
                "d{domid}: watching its console nodes failed: {e}"
            ));
        }
        self.setup(domid);
    }

    fn remove_domain(&mut self, domid: u16) {
        let _ = self
            .store
            .unwatch(&Self::console_path(domid), &format!("dom{domid}"));
        if let Some(mut con) = self.consoles.remove(&domid) {
            // What the guest wrote last still reaches the log.
            Self::drain(&mut con, false);
            say(format_args!("d{domid}: console closed"));
        }
    }

    /// (Re)read `domid`'s console nodes and set up what is missing or changed.
    fn setup(&mut self, domid: u16) {
        let base = Self::console_path(domid);
        let mut read = |leaf: &str| -> Option<String> {
            match self.store.read(&format!("{base}/{leaf}")) {
                Ok(v) => v,
                Err(e) => {
                    say(format_args!("d{domid}: reading {base}/{leaf} failed: {e}"));
                    None
                }
            }
        };
        let (ring_ref, port, ty, limit) =
            (read("ring-ref"), read("port"), read("type"), read("limit"));
        let nodes = match parse_console_nodes(
            ring_ref.as_deref(),
            port.as_deref(),
            ty.as_deref(),
            limit.as_deref(),
        ) {
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(e) => {
                say(format_args!("d{domid}: {e}: console not set up"));
                return;
            }
        };
        let name = if self.opts.log_guest {
            self.store
                .read(&format!("/local/domain/{domid}/name"))
                .ok()
                .flatten()
        } else {
            None
        };
        let Some(con) = self.consoles.get_mut(&domid) else {
            return;
        };
        con.buf.set_limit(nodes.limit);
        if con
            .ring
            .as_ref()
            .is_none_or(|r| r.gfn != nodes.gfn || r.remote_port != nodes.port)
        {
            con.ring = None; // unmap and unbind the old one first
            let mem = match self.hyp.map_ring(domid, nodes.gfn) {
                Ok(m) => m,
                Err(e) => {
                    say(format_args!(
                        "d{domid}: mapping console ring-ref {:#x} failed: {e}",
                        nodes.gfn
                    ));
                    return;
                }
            };
            let port = match self.hyp.bind(domid, nodes.port) {
                Ok(p) => p,
                Err(e) => {
                    say(format_args!(
                        "d{domid}: binding console port {} failed: {e}",
                        nodes.port
                    ));
                    return;
                }
            };
            con.ring = Some(Ring {
                mem,
                port,
                gfn: nodes.gfn,
                remote_port: nodes.port,
                limit: RateLimit::new(Instant::now()),
                reported: false,
            });
        }
        // The pty and console/tty are made once: writing tty fires our own watch on
        // console/, and that event must find nothing more to do.
        let mut new_tty = None;
        if con.pty.is_none() {
            match Pty::open() {
                Ok(p) => {
                    new_tty = Some(p.path().to_string());
                    con.pty = Some(p);
                }
                Err(e) => {
                    say(format_args!("d{domid}: opening a pty failed: {e}"));
                    con.ring = None;
                    return;
                }
            }
        }
        if self.opts.log_guest && con.log.is_none() {
            let path = self
                .opts
                .log_dir
                .join(log_file_name(name.as_deref(), domid));
            match open_log(&path) {
                Ok(f) => {
                    con.log = Some(f);
                    con.log_path = Some(path);
                }
                Err(e) => say(format_args!(
                    "d{domid}: opening {} failed: {e}",
                    path.display()
                )),
            }
        }
        if let Some(tty) = new_tty
            && let Err(e) = self.store.write(&format!("{base}/tty"), &tty)
        {
            say(format_args!("d{domid}: writing {base}/tty failed: {e}"));
        }
        // Output written before we were bound raised no event we could see.
        Self::drain(con, true);
    }

    /// Move the guest's output to the log and the pty buffer; notify the guest if
    /// anything moved and `notify`.
    fn drain(con: &mut Console<H>, notify: bool) {
        let Some(r) = con.ring.as_mut() else {
            return;
        };
        let start = con.buf.len();
        match ring::take_output(&mut r.mem, con.buf.data_mut()) {
            Ok(0) => {}
            Ok(_) => {
                if let Some(log) = con.log.as_mut()
                    && let Err(e) = log.write_all(&con.buf.data_mut()[start..])
                {
                    say(format_args!(
                        "d{}: writing its log failed: {e}: log closed",
                        con.domid
                    ));
                    con.log = None;
                }
                con.buf.trim();
                if notify {
                    let _ = r.port.notify();
                }
            }
            Err(bad) => Self::report(con.domid, r, bad),
        }
    }

    fn report(domid: u16, r: &mut Ring<H>, bad: BadRing) {
        if !r.reported {
            r.reported = true;
            say(format_args!("d{domid}: {bad}"));
        }
    }

    fn on_port(&mut self, domid: u16) {
        let Some(con) = self.consoles.get_mut(&domid) else {
            return;
        };
        let Some(r) = con.ring.as_mut() else {
            return;
        };
        match r.port.pending() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                say(format_args!(
                    "d{domid}: reading its event channel failed: {e}"
                ));
                return;
            }
        }
        let unmask = r.limit.event();
        Self::drain(con, true);
        if unmask && let Some(r) = con.ring.as_mut() {
            let _ = r.port.unmask();
        }
    }

    fn on_pty_in(&mut self, domid: u16) {
        let Some(con) = self.consoles.get_mut(&domid) else {
            return;
        };
        let (Some(r), Some(pty)) = (con.ring.as_mut(), con.pty.as_ref()) else {
            return;
        };
        let room = match ring::input_room(&r.mem) {
            Ok(n) => n,
            Err(bad) => return Self::report(domid, r, bad),
        };
        let mut buf = [0u8; xen_abi::console::XENCONS_IN_SIZE as usize];
        let want = room.min(buf.len());
        let n = match pty.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return,
            Err(e) => {
                say(format_args!("d{domid}: reading its pty failed: {e}"));
                return;
            }
        };
        match ring::put_input(&mut r.mem, &buf[..n]) {
            Ok(_) => {
                let _ = r.port.notify();
            }
            Err(bad) => Self::report(domid, r, bad),
        }
    }

    fn on_pty_out(&mut self, domid: u16) {
        let Some(con) = self.consoles.get_mut(&domid) else {
            return;
        };
        let Some(pty) = con.pty.as_ref() else {
            return;
        };
        match pty.write(con.buf.pending()) {
            Ok(n) => con.buf.advance(n),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => say(format_args!("d{domid}: writing its pty failed: {e}")),
        }
    }

    /// Reopen every log file by its path (SIGHUP, after a log rotation moved them).
    pub fn reopen_logs(&mut self) {
        for con in self.consoles.values_mut() {
            if let Some(path) = con.log_path.as_ref() {
                match open_log(path) {
                    Ok(f) => con.log = Some(f),
                    Err(e) => say(format_args!("reopening {} failed: {e}", path.display())),
                }
            }
        }
        if let Some(hv) = self.hv.as_mut() {
            match open_log(&hv.path) {
                Ok(f) => hv.file = f,
                Err(e) => say(format_args!("reopening {} failed: {e}", hv.path.display())),
            }
        }
    }

    /// Append the hypervisor console text not logged yet.
    fn hv_read(&mut self) {
        let Some(hv) = self.hv.as_mut() else {
            return;
        };
        hv.next_poll = Instant::now() + HV_POLL;
        loop {
            match self.hyp.read_hv_console(&mut hv.index, 16 * 1024) {
                Ok(b) if b.is_empty() => break,
                Ok(b) => {
                    if let Err(e) = hv.file.write_all(&b) {
                        say(format_args!(
                            "writing hypervisor.log failed: {e}: log closed"
                        ));
                        self.hv = None;
                        return;
                    }
                }
                Err(e) => {
                    say(format_args!(
                        "reading the hypervisor console failed: {e}: log closed"
                    ));
                    self.hv = None;
                    return;
                }
            }
        }
        if let Some(p) = hv.port.as_mut() {
            let _ = p.unmask();
        }
    }

    /// Handle every watch event available without blocking.
    fn watch_events(&mut self) -> SysResult<()> {
        while let Some((path, token)) = self.store.watch_event()? {
            if token == DOMLIST_TOKEN {
                self.enum_domains();
            } else if let Some(id) = token.strip_prefix("dom").and_then(|s| s.parse().ok()) {
                if self.consoles.contains_key(&id) {
                    self.setup(id);
                }
            } else {
                say(format_args!(
                    "unexpected watch event {path} (token {token})"
                ));
            }
        }
        Ok(())
    }

    /// One round: handle pending watch events, wait (up to the next rate-limit period end,
    /// and at most `max_wait` if given) for a ring event, pty traffic, a watch event or
    /// `extra` readable, and handle what came. Returns whether `extra` became readable. A
    /// failing store connection is an error (the daemon cannot go on without it).
    pub fn run_once(
        &mut self,
        extra: Option<BorrowedFd<'_>>,
        max_wait: Option<Duration>,
    ) -> SysResult<bool> {
        self.watch_events()?;
        let now = Instant::now();
        let mut deadline: Option<Instant> = max_wait.map(|w| now + w);
        if let Some(hv) = self.hv.as_ref() {
            deadline = Some(deadline.map_or(hv.next_poll, |d| d.min(hv.next_poll)));
        }
        for con in self.consoles.values_mut() {
            if let Some(r) = con.ring.as_mut() {
                if r.limit.tick(now) {
                    let _ = r.port.unmask();
                }
                if !r.limit.open() {
                    let d = r.limit.deadline();
                    deadline = Some(deadline.map_or(d, |x| x.min(d)));
                }
            }
        }

        #[derive(Clone, Copy)]
        enum Src {
            Store,
            Extra,
            Hv,
            Port(u16),
            Pty(u16),
        }
        let mut srcs = Vec::new();
        let mut fds = vec![PollFd::new(self.store.as_fd(), PollFlags::POLLIN)];
        srcs.push(Src::Store);
        if let Some(fd) = extra {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
            srcs.push(Src::Extra);
        }
        if let Some(p) = self.hv.as_ref().and_then(|h| h.port.as_ref()) {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            srcs.push(Src::Hv);
        }
        for con in self.consoles.values() {
            let ring = con.ring.as_ref();
            if let Some(r) = ring.filter(|r| r.limit.open()) {
                fds.push(PollFd::new(r.port.as_fd(), PollFlags::POLLIN));
                srcs.push(Src::Port(con.domid));
            }
            if let Some(pty) = con.pty.as_ref() {
                let mut ev = PollFlags::empty();
                if ring
                    .is_some_and(|r| !r.reported && ring::input_room(&r.mem).is_ok_and(|n| n > 0))
                {
                    ev |= PollFlags::POLLIN;
                }
                if !con.buf.is_empty() {
                    ev |= PollFlags::POLLOUT;
                }
                if !ev.is_empty() {
                    fds.push(PollFd::new(pty.as_fd(), ev));
                    srcs.push(Src::Pty(con.domid));
                }
            }
        }
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis() + 1;
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<(Src, PollFlags)> = fds
            .iter()
            .zip(srcs.iter())
            .filter_map(|(fd, src)| fd.revents().filter(|r| !r.is_empty()).map(|r| (*src, r)))
            .collect();
        drop(fds);
        let mut extra_ready = false;
        for (src, rev) in ready {
            match src {
                Src::Store => {} // handled by watch_events next round
                Src::Extra => extra_ready = true,
                Src::Hv => {
                    if let Some(p) = self.hv.as_mut().and_then(|h| h.port.as_mut()) {
                        let _ = p.pending();
                    }
                    self.hv_read();
                }
                Src::Port(id) => self.on_port(id),
                Src::Pty(id) => {
                    if rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.on_pty_in(id);
                    }
                    if rev.contains(PollFlags::POLLOUT) {
                        self.on_pty_out(id);
                    }
                }
            }
        }
        if self
            .hv
            .as_ref()
            .is_some_and(|h| Instant::now() >= h.next_poll)
        {
            self.hv_read();
        }
        self.watch_events()?;
        Ok(extra_ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_nodes_parse_like_xen() {
        assert_eq!(
            parse_console_nodes(
                Some("233472"),
                Some("2"),
                Some("xenconsoled"),
                Some("1048576")
            ),
            Ok(Some(ConsoleNodes {
                gfn: 0x39000,
                port: 2,
                limit: 1 << 20
            }))
        );
        // type absent is ours; limit absent is the default
        assert_eq!(
            parse_console_nodes(Some("5"), Some("3"), None, None),
            Ok(Some(ConsoleNodes {
                gfn: 5,
                port: 3,
                limit: DEFAULT_LIMIT
            }))
        );
        // another backend's console, or nodes not written yet: not ours (yet)
        assert_eq!(
            parse_console_nodes(Some("5"), Some("3"), Some("ioemu"), None),
            Ok(None)
        );
        assert_eq!(parse_console_nodes(None, Some("3"), None, None), Ok(None));
        assert_eq!(parse_console_nodes(Some("5"), None, None, None), Ok(None));
        // garbage
        assert!(parse_console_nodes(Some("0x10"), Some("3"), None, None).is_err());
        assert!(parse_console_nodes(Some("-1"), Some("3"), None, None).is_err());
        assert!(parse_console_nodes(Some("5"), Some("0"), None, None).is_err());
        assert!(parse_console_nodes(Some("5"), Some("99999999999"), None, None).is_err());
    }

    #[test]
    fn log_names_stay_in_the_log_directory() {
        assert_eq!(log_file_name(Some("domu"), 1), "guest-domu.log");
        assert_eq!(log_file_name(Some("../etc/passwd"), 3), "guest-d3.log");
        assert_eq!(log_file_name(Some("a/b"), 3), "guest-d3.log");
        assert_eq!(log_file_name(Some("with space"), 4), "guest-d4.log");
        assert_eq!(log_file_name(Some(""), 5), "guest-d5.log");
        assert_eq!(log_file_name(None, 6), "guest-d6.log");
    }

    use crate::fake::{FakeHyp, FakeStore};
    use crate::ring::tests::{guest_read, guest_write};
    use std::io::Read;

    struct World {
        d: Daemon<FakeHyp, FakeStore>,
        dir: PathBuf,
    }

    fn world(tag: &str) -> World {
        let dir = std::env::temp_dir().join(format!("xenconsoled-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let opts = Options {
            log_guest: true,
            log_dir: dir.clone(),
            overflow: Overflow::Discard,
            log_hv: true,
        };
        World {
            d: Daemon::new(FakeHyp::default(), FakeStore::new(), opts),
            dir,
        }
    }

    /// What xl writes for a DomU's console (TSA §5).
    fn console_nodes(s: &mut FakeStore, domid: u16, name: &str) {
        s.set(&format!("/local/domain/{domid}/name"), name);
        let c = format!("/local/domain/{domid}/console");
        s.set(&format!("{c}/type"), "xenconsoled");
        s.set(&format!("{c}/limit"), "1048576");
        s.set(&format!("{c}/port"), "2");
        s.set(&format!("{c}/ring-ref"), "233472");
    }

    /// Rounds until nothing is pending (bounded).
    fn settle(d: &mut Daemon<FakeHyp, FakeStore>) {
        for _ in 0..5 {
            d.run_once(None, Some(Duration::from_millis(10))).unwrap();
        }
    }

    #[test]
    fn a_domain_console_reaches_the_pty_and_the_log_and_typed_input_reaches_the_guest() {
        let mut w = world("flow");
        let page = w.d.hyp_mut().add(1);
        console_nodes(w.d.store_mut(), 1, "domu");
        // The guest printed before anyone was bound.
        guest_write(&mut page.borrow_mut(), b"early\n");
        w.d.start().unwrap();
        w.d.store_mut().fire("@introduceDomain");
        settle(&mut w.d);

        assert_eq!(w.d.domains(), vec![1]);
        let tty = w.d.tty(1).expect("console set up").to_string();
        assert_eq!(
            w.d.store_mut().nodes.get("/local/domain/1/console/tty"),
            Some(&tty)
        );
        assert_eq!(w.d.hyp_mut().doms[&1].maps, 1);
        let mut client = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tty)
            .unwrap();

        guest_write(&mut page.borrow_mut(), b"DOMU-INIT uptime=1.0\n");
        w.d.hyp_mut().kick(1);
        settle(&mut w.d);
        let log = std::fs::read_to_string(w.dir.join("guest-domu.log")).unwrap();
        assert_eq!(log, "early\nDOMU-INIT uptime=1.0\n");
        let mut got = vec![0u8; log.len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, log.as_bytes());
        assert!(w.d.hyp_mut().doms[&1].port.borrow().notified >= 1);

        // A log rotation: the old file is moved away, SIGHUP reopens by name.
        std::fs::rename(w.dir.join("guest-domu.log"), w.dir.join("guest-domu.log.1")).unwrap();
        w.d.reopen_logs();
        guest_write(&mut page.borrow_mut(), b"rotated\n");
        w.d.hyp_mut().kick(1);
        settle(&mut w.d);
        assert_eq!(
            std::fs::read_to_string(w.dir.join("guest-domu.log")).unwrap(),
            "rotated\n"
        );
        let mut got = vec![0u8; 8];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, b"rotated\n");

        std::io::Write::write_all(&mut client, b"xenstore-read name\r").unwrap();
        // The tty layer passes input on asynchronously: give it up to 5 s.
        let mut typed = Vec::new();
        let t0 = Instant::now();
        while typed.len() < 19 && t0.elapsed() < Duration::from_secs(5) {
            settle(&mut w.d);
            typed.extend(guest_read(&mut page.borrow_mut()));
        }
        assert_eq!(typed, b"xenstore-read name\r");

        // The domain dies: its console is forgotten, the port unbound, the log complete.
        guest_write(&mut page.borrow_mut(), b"last words\n");
        w.d.hyp_mut().doms.get_mut(&1).unwrap().dying = true;
        w.d.store_mut().fire("@releaseDomain");
        settle(&mut w.d);
        assert!(w.d.domains().is_empty());
        assert!(!w.d.hyp_mut().doms[&1].port.borrow().bound);
        assert!(
            w.d.store_mut()
                .watches
                .iter()
                .all(|(p, _)| !p.contains("/1/"))
        );
        let log = std::fs::read_to_string(w.dir.join("guest-domu.log")).unwrap();
        assert_eq!(log, "rotated\nlast words\n");
        let _ = std::fs::remove_dir_all(&w.dir);
    }

    #[test]
    fn a_console_waits_for_its_nodes_and_refuses_bad_ones() {
        let mut w = world("wait");
        w.d.hyp_mut().add(3);
        w.d.start().unwrap();
        settle(&mut w.d);
        assert_eq!(w.d.domains(), vec![3]);
        assert_eq!(w.d.tty(3), None, "no nodes yet");
        let c = "/local/domain/3/console";
        w.d.store_mut()
            .set(&format!("{c}/ring-ref"), "not-a-number");
        w.d.store_mut().set(&format!("{c}/port"), "2");
        settle(&mut w.d);
        assert_eq!(w.d.tty(3), None, "garbage ring-ref refused");
        w.d.store_mut().set(&format!("{c}/ring-ref"), "4096"); // the fake has no page there
        settle(&mut w.d);
        assert_eq!(w.d.tty(3), None, "map failure leaves no console");
        w.d.store_mut().set(&format!("{c}/ring-ref"), "233472");
        settle(&mut w.d);
        assert!(w.d.tty(3).is_some());
        // no name: the log is named after the domid
        assert!(w.dir.join("guest-d3.log").exists());
        let _ = std::fs::remove_dir_all(&w.dir);
    }

    #[test]
    fn hostile_ring_indexes_are_ignored_without_harm() {
        let mut w = world("hostile");
        let page = w.d.hyp_mut().add(2);
        console_nodes(w.d.store_mut(), 2, "evil");
        w.d.start().unwrap();
        settle(&mut w.d);
        assert!(w.d.tty(2).is_some());
        {
            let mut p = page.borrow_mut();
            crate::ring::RingMem::store_u32(
                &mut p[..],
                xen_abi::console::OFF_OUT_PROD,
                0xdead_beef,
            );
            crate::ring::RingMem::store_u32(&mut p[..], xen_abi::console::OFF_IN_CONS, 0x1234_5678);
        }
        for _ in 0..3 {
            w.d.hyp_mut().kick(2);
            settle(&mut w.d);
        }
        let log = std::fs::read(w.dir.join("guest-evil.log")).unwrap();
        assert!(log.is_empty(), "nothing logged from a bad ring");
        let out_cons =
            crate::ring::RingMem::load_u32(&page.borrow()[..], xen_abi::console::OFF_OUT_CONS);
        assert_eq!(out_cons, 0, "indexes untouched");
        let _ = std::fs::remove_dir_all(&w.dir);
    }

    #[test]
    fn a_notification_flood_is_rate_limited() {
        let mut w = world("flood");
        w.d.hyp_mut().add(4);
        console_nodes(w.d.store_mut(), 4, "flood");
        w.d.start().unwrap();
        settle(&mut w.d);
        let start = Instant::now();
        for _ in 0..100 {
            w.d.hyp_mut().kick(4);
            w.d.run_once(None, Some(Duration::ZERO)).unwrap();
        }
        let unmasked = w.d.hyp_mut().doms[&4].port.borrow().unmasked;
        let periods = (start.elapsed().as_millis() / 200 + 1) as u32;
        assert!(
            unmasked <= periods * (crate::ratelimit::ALLOWANCE + 1),
            "{unmasked} unmasks in {periods} periods"
        );
        let _ = std::fs::remove_dir_all(&w.dir);
    }

    #[test]
    fn the_hypervisor_console_goes_to_hypervisor_log_without_a_virq() {
        let mut w = world("hv");
        w.d.hyp_mut().hv_console = b"(oxen) booted\n".to_vec();
        w.d.start().unwrap();
        let log = w.dir.join("hypervisor.log");
        assert_eq!(std::fs::read(&log).unwrap(), b"(oxen) booted\n");
        w.d.hyp_mut()
            .hv_console
            .extend_from_slice(b"(oxen) d1: created\n");
        // No VIRQ on this hypervisor: the next poll (within HV_POLL) picks it up.
        let t0 = Instant::now();
        while std::fs::read(&log).unwrap().len() < 33 && t0.elapsed() < HV_POLL * 3 {
            w.d.run_once(None, Some(Duration::from_millis(100)))
                .unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "(oxen) booted\n(oxen) d1: created\n"
        );
        let _ = std::fs::remove_dir_all(&w.dir);
    }
}
