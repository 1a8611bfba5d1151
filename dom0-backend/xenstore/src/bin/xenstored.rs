//! `xenstored`: the xenstore daemon for oxen's Dom0 (C xenstored 4.17's
//! options and behaviour). This file is the I/O glue: the Unix socket, the
//! Dom0 kernel ring (`/dev/xen/xenbus_backend`), DomU rings (foreign maps
//! through `xenctrl`), the event channel (`VIRQ_DOM_EXC` and ring ports),
//! one non-blocking poll loop, logging and daemonizing. All protocol logic
//! is in `xenstore::server`.
//!
//! Without `/dev/xen/privcmd` (or with `-D`) it serves the socket only,
//! which is how it runs in host tests.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, ExitCode, Stdio};

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use xenctrl::evtchn::Evtchn;
use xenctrl::foreign::ForeignMap;
use xenctrl::xc::Xc;
use xenctrl::xenbus::XenbusBackend;
use xenstore::server::{ConnId, DomState, Hypervisor, RingMem, Server};

/// `VIRQ_DOM_EXC`.
const VIRQ_DOM_EXC: u32 = 3;
/// Log file when daemonized.
const LOG_FILE: &str = "/var/log/xen/xenstored.log";

#[derive(Parser, Debug)]
#[command(
    name = "xenstored",
    about = "Xen store daemon (oxen)",
    disable_version_flag = true
)]
struct Opts {
    /// Do not initialise Dom0 and the hypervisor connection (socket only).
    #[arg(short = 'D', long = "no-domain-init")]
    no_domain_init: bool,
    /// Write the daemon's pid to this file.
    #[arg(short = 'F', long = "pid-file")]
    pid_file: Option<String>,
    /// Stay in the foreground.
    #[arg(short = 'N', long = "no-fork")]
    no_fork: bool,
    /// Print the daemon's pid.
    #[arg(short = 'P', long = "output-pid")]
    output_pid: bool,
    /// Log every message in and out to this file.
    #[arg(short = 'T', long = "trace-file")]
    trace_file: Option<String>,
    /// Nodes per domain.
    #[arg(short = 'E', long = "entry-nb")]
    entry_nb: Option<usize>,
    /// Node size limit.
    #[arg(short = 'S', long = "entry-size")]
    entry_size: Option<usize>,
    /// Watches per domain.
    #[arg(short = 'W', long = "watch-nb")]
    watch_nb: Option<usize>,
    /// Transactions per domain.
    #[arg(short = 't', long = "transaction")]
    transaction: Option<usize>,
    /// ACL entries per node.
    #[arg(short = 'A', long = "perm-nb")]
    perm_nb: Option<usize>,
    /// Quota `transaction-nodes=N` or `outstanding=N` (`memory` accepted).
    #[arg(short = 'Q', long = "quota")]
    quota: Vec<String>,
    /// Keep nodes of dead domains (accepted; nodes are always removed).
    #[arg(short = 'K', long = "keep-orphans")]
    keep_orphans: bool,
    /// Database in memory (always).
    #[arg(short = 'I', long = "internal-db", num_args = 0..=1, default_missing_value = "on")]
    internal_db: Option<String>,
    /// No recovery (accepted).
    #[arg(short = 'R', long = "no-recovery")]
    no_recovery: bool,
    /// Log every message (to the log).
    #[arg(short = 'V', long = "verbose")]
    verbose: bool,
    /// Socket path (default: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket,
    /// else /var/run/xenstored/socket).
    #[arg(long = "socket")]
    socket: Option<String>,
    /// Internal: run as the daemonized child, report readiness on stdout.
    #[arg(long = "daemon-child", hide = true)]
    daemon_child: bool,
}

fn os_err(e: xenctrl::error::Error) -> io::Error {
    match e.errno() {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::other(e.to_string()),
    }
}

struct ForeignRing(ForeignMap);

impl RingMem for ForeignRing {
    fn page(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

struct BackendRing(XenbusBackend);

impl RingMem for BackendRing {
    fn page(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// The hypervisor through xenctrl, or nothing (socket-only mode).
enum Hv {
    Xen { xc: Xc, ev: Evtchn },
    None,
}

impl Hypervisor for Hv {
    fn map_ring(&mut self, domid: u16, gfn: u64) -> io::Result<Box<dyn RingMem>> {
        match self {
            Hv::Xen { xc, .. } => Ok(Box::new(ForeignRing(
                ForeignMap::map(xc, domid, &[gfn]).map_err(os_err)?,
            ))),
            Hv::None => Err(io::Error::from_raw_os_error(nix::libc::ENODEV)),
        }
    }
    fn bind_interdomain(&mut self, domid: u16, remote_port: u32) -> io::Result<u32> {
        match self {
            Hv::Xen { ev, .. } => ev.bind_interdomain(domid, remote_port).map_err(os_err),
            Hv::None => Err(io::Error::from_raw_os_error(nix::libc::ENODEV)),
        }
    }
    fn unbind(&mut self, port: u32) {
        if let Hv::Xen { ev, .. } = self {
            let _ = ev.unbind(port);
        }
    }
    fn notify(&mut self, port: u32) {
        if let Hv::Xen { ev, .. } = self {
            let _ = ev.notify(port);
        }
    }
    fn domain_state(&mut self, domid: u16) -> Option<DomState> {
        match self {
            // As C xenstored: an error reading the domain counts as gone.
            Hv::Xen { xc, .. } => xc.domain_info(domid).ok().flatten().map(|i| DomState {
                shutdown: i.shutdown,
                dying: i.dying,
            }),
            Hv::None => None,
        }
    }
}

/// Where log lines go.
enum Log {
    Stderr,
    File(File),
}

impl Log {
    fn line(&mut self, s: &str) {
        match self {
            Log::Stderr => eprintln!("xenstored: {s}"),
            Log::File(f) => {
                let _ = writeln!(f, "xenstored: {s}");
            }
        }
    }
}

fn socket_path(o: &Opts) -> String {
    if let Some(s) = &o.socket {
        return s.clone();
    }
    if let Ok(p) = std::env::var("XENSTORED_PATH") {
        return p;
    }
    let dir = std::env::var("XENSTORED_RUNDIR")
        .unwrap_or_else(|_| xenstore::client::DEFAULT_RUNDIR.to_string());
    format!("{dir}/socket")
}

/// Everything the loop owns.
struct Daemon {
    server: Server<Hv>,
    listener: UnixListener,
    socks: HashMap<ConnId, UnixStream>,
    virq_port: Option<u32>,
    log: Log,
    trace: Option<File>,
    verbose: bool,
}

fn setup(o: &Opts) -> Result<Daemon, String> {
    let mut log_lines = Vec::new();
    let hv = if o.no_domain_init {
        Hv::None
    } else if !std::path::Path::new("/dev/xen/privcmd").exists() {
        log_lines.push("no /dev/xen/privcmd: serving the socket only (no domains)".to_string());
        Hv::None
    } else {
        let xc = Xc::open().map_err(|e| format!("{e}"))?;
        let ev = Evtchn::open().map_err(|e| format!("{e} (is xen-evtchn loaded?)"))?;
        Hv::Xen { xc, ev }
    };
    let mut server = Server::new(hv);
    let q = &mut server.store.quota;
    if let Some(n) = o.entry_nb {
        q.nodes = n;
    }
    if let Some(n) = o.entry_size {
        q.node_size = n;
    }
    if let Some(n) = o.watch_nb {
        q.watches = n;
    }
    if let Some(n) = o.transaction {
        q.transactions = n;
    }
    if let Some(n) = o.perm_nb {
        q.perms = n;
    }
    for spec in &o.quota {
        let (what, val) = spec
            .split_once('=')
            .ok_or(format!("bad quota {spec:?}: use what=N"))?;
        let n: usize = val
            .parse()
            .map_err(|_| format!("bad quota value in {spec:?}"))?;
        match what {
            "transaction-nodes" => q.tx_nodes = n,
            "outstanding" => q.outstanding = n,
            "memory" => {}
            _ => {
                return Err(format!(
                    "unknown quota {what:?} (transaction-nodes, outstanding, memory)"
                ));
            }
        }
    }
    server.tracing = o.trace_file.is_some() || o.verbose;

    // Socket first, so tools can connect as soon as we report ready.
    let path = socket_path(o);
    if let Some(dir) = std::path::Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|e| format!("cannot listen on {path}: {e}"))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{path}: {e}"))?;

    let mut virq_port = None;
    if let Hv::Xen { ev, .. } = &server.hv {
        virq_port = Some(
            ev.bind_virq(VIRQ_DOM_EXC)
                .map_err(|e| format!("{e} (is another xenstored running?)"))?,
        );
        let be = XenbusBackend::open().map_err(|e| format!("{e} (is xen-gntdev/xenfs set up?)"))?;
        let port = be.port();
        server
            .attach_dom0(Box::new(BackendRing(be)), port)
            .map_err(|e| format!("cannot bind Dom0's store port {port}: {e}"))?;
        log_lines.push(format!("Dom0 store ring attached (port {port})"));
    }
    let trace = match &o.trace_file {
        Some(t) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(t)
                .map_err(|e| format!("trace file {t}: {e}"))?,
        ),
        None => None,
    };
    if let Some(p) = &o.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pid file {p}: {e}"))?;
    }
    if o.keep_orphans {
        log_lines.push("--keep-orphans is not supported: nodes of dead domains are deleted".into());
    }
    let mut d = Daemon {
        server,
        listener,
        socks: HashMap::new(),
        virq_port,
        log: Log::Stderr,
        trace,
        verbose: o.verbose,
    };
    for l in log_lines {
        d.log.line(&l);
    }
    Ok(d)
}

impl Daemon {
    fn flush_logs(&mut self) {
        for l in self.server.take_logs() {
            self.log.line(&l);
        }
        let traces = self.server.take_traces();
        if let Some(t) = &mut self.trace {
            for l in &traces {
                let _ = writeln!(t, "{l}");
            }
        }
        if self.verbose {
            for l in &traces {
                self.log.line(l);
            }
        }
    }

    fn close(&mut self, id: ConnId) {
        self.socks.remove(&id);
        self.server.close_conn(id);
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.server.add_socket_conn();
                    self.socks.insert(id, s);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.log.line(&format!("accept: {e}"));
                    return;
                }
            }
        }
    }

    /// One read per poll round (poll is level-triggered: more data is seen
    /// next round), so one busy client cannot hold the loop.
    fn read_sock(&mut self, id: ConnId) {
        let mut buf = [0u8; 16384];
        loop {
            let Some(s) = self.socks.get_mut(&id) else {
                return;
            };
            match s.read(&mut buf) {
                Ok(0) => return self.close(id),
                Ok(n) => {
                    if !self.server.socket_input(id, &buf[..n]) {
                        self.close(id);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(id),
            }
        }
    }

    fn write_socks(&mut self) {
        let ids: Vec<ConnId> = self.socks.keys().copied().collect();
        for id in ids {
            while let Some(bytes) = self.server.pending_output(id) {
                let Some(s) = self.socks.get_mut(&id) else {
                    break;
                };
                match s.write(bytes) {
                    Ok(0) => {
                        self.close(id);
                        break;
                    }
                    Ok(n) => self.server.output_sent(id, n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.close(id);
                        break;
                    }
                }
            }
            if self.server.output_overflow(id) {
                self.log.line(&format!(
                    "A{id}: client does not read its replies, dropping it"
                ));
                self.close(id);
            }
        }
    }

    fn events(&mut self) {
        let Hv::Xen { ev, .. } = &self.server.hv else {
            return;
        };
        let ports = ev.pending_all().unwrap_or_default();
        let mut dom_exc = false;
        for p in &ports {
            if Some(*p) == self.virq_port {
                dom_exc = true;
            }
            let _ = ev.unmask(*p);
        }
        if dom_exc {
            self.server.check_domains();
        }
    }

    fn run(&mut self) -> ! {
        // Serve whatever the Dom0 kernel queued before we attached.
        let mut busy = self.server.service_rings();
        loop {
            self.flush_logs();
            let ids: Vec<ConnId> = self.socks.keys().copied().collect();
            let (ready_listener, ready_ev, ready_socks) = {
                let mut fds: Vec<PollFd> = Vec::with_capacity(ids.len() + 2);
                fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
                let ev_fd: Option<BorrowedFd> = match &self.server.hv {
                    Hv::Xen { ev, .. } => Some(ev.as_fd()),
                    Hv::None => None,
                };
                if let Some(f) = ev_fd {
                    fds.push(PollFd::new(f, PollFlags::POLLIN));
                }
                let base = fds.len();
                for id in &ids {
                    let mut fl = PollFlags::POLLIN;
                    if self.server.pending_output(*id).is_some() {
                        fl |= PollFlags::POLLOUT;
                    }
                    if let Some(s) = self.socks.get(id) {
                        fds.push(PollFd::new(s.as_fd(), fl));
                    }
                }
                let timeout = if busy {
                    PollTimeout::ZERO
                } else {
                    PollTimeout::from(500u16)
                };
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        self.log.line(&format!("poll: {e}"));
                    }
                }
                let r = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                let l = r(&fds[0]);
                let e = base == 2 && r(&fds[1]);
                let s: Vec<ConnId> = ids
                    .iter()
                    .zip(&fds[base..])
                    .filter(|(_, f)| r(f))
                    .map(|(id, _)| *id)
                    .collect();
                (l, e, s)
            };
            if ready_listener {
                self.accept();
            }
            if ready_ev {
                self.events();
            }
            for id in ready_socks {
                self.read_sock(id);
            }
            // Rings are cheap to scan: service them every round (a missed
            // notification costs at most one poll timeout).
            busy = self.server.service_rings();
            self.write_socks();
        }
    }
}

/// Re-executes this program as the daemon and waits for it to report
/// readiness (socket listening, Dom0 attached); exits with its status if
/// it fails first.
fn daemonize(o: &Opts) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("xenstored: cannot find my own executable to daemonize: {e} (use --no-fork)");
            return ExitCode::FAILURE;
        }
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.push("--daemon-child".into());
    let mut child = match Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xenstored: cannot start the daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if let Some(pid) = line.strip_prefix("ready ") {
        if o.output_pid {
            print!("{pid}");
        }
        return ExitCode::SUCCESS;
    }
    match child.wait() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    let o = Opts::parse();
    // Accepted for command-line compatibility with C xenstored: the database
    // is always in memory and there is nothing to recover.
    let _ = (&o.internal_db, o.no_recovery);
    if !o.no_fork && !o.daemon_child {
        return daemonize(&o);
    }
    let mut d = match setup(&o) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("xenstored: {e}");
            return ExitCode::FAILURE;
        }
    };
    if o.daemon_child {
        // Detach: own session, logs to the log file, stdio to /dev/null.
        let _ = nix::unistd::setsid();
        if let Some(dir) = std::path::Path::new(LOG_FILE).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(f) = OpenOptions::new().create(true).append(true).open(LOG_FILE) {
            d.log = Log::File(f);
        }
        println!("ready {}", std::process::id());
        let _ = io::stdout().flush();
        if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&null);
        }
    } else if o.output_pid {
        println!("{}", std::process::id());
    }
    d.run()
}
