//! The xenstored core, free of I/O: connections (Unix-socket clients, the
//! Dom0 kernel's ring, DomU rings), message dispatch, watches, special
//! watches, domain introduction and release, per-connection quotas, and
//! output queues. The binary owns the sockets, the event channel and the
//! poll loop; the hypervisor is reached only through [`Hypervisor`].
//!
//! Invariants:
//! - a connection's output is a queue of whole encoded messages; replies
//!   are queued in request order, watch events between them as they fire;
//! - an unprivileged connection's requests stop being read while it has
//!   `quota.outstanding` unread replies; its queued output is bounded
//!   (watch events beyond the bound are dropped, as C's memory quota does);
//! - a peer that breaks framing (payload > 4096) or ring indexes is
//!   ignored from then on (C's `ignore_connection`), with one log line;
//! - a domain connection, its watches, transactions, event channel binding
//!   and ring mapping live and die together.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;

use xen_abi::xenstore::{
    XENSTORE_CONNECTED, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XENSTORE_PAYLOAD_MAX,
    XENSTORE_RECONNECT, XENSTORE_REL_PATH_MAX, XS_CONTROL, XS_DIRECTORY, XS_DIRECTORY_PART,
    XS_GET_DOMAIN_PATH, XS_GET_PERMS, XS_INTRODUCE, XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ,
    XS_RELEASE, XS_RESET_WATCHES, XS_RESUME, XS_RM, XS_SET_PERMS, XS_SET_TARGET,
    XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
    XsError, type_name,
};

use crate::path::{self, canonicalize, is_valid_nodename};
use crate::perms::{self, Access, Caller, Perm, PermKind};
use crate::ring::RingPage;
use crate::store::{Change, Store, Tx};
use crate::wire::{self, Decoder, Msg};

/// `DOMID_SELF`.
const DOMID_SELF: i64 = 0x7FF0;
/// Largest queued output for an unprivileged connection (C's hard memory
/// quota, 2.5 MiB).
pub const DOMAIN_OUTPUT_MAX: usize = 2 * 1024 * 1024 + 512 * 1024;
/// Requests taken from one domain ring per [`Server::service_rings`] call.
pub const RING_BATCH: usize = 64;
/// Largest queued output for a socket client before it is dropped.
pub const SOCKET_OUTPUT_MAX: usize = 16 * 1024 * 1024;
/// Name of the domain-introduction special watch.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// Name of the domain-release special watch.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// Memory holding a mapped ring page (a foreign mapping, the
/// xenbus_backend page, or a test buffer).
pub trait RingMem {
    /// The page bytes (at least 4096).
    fn page(&mut self) -> &mut [u8];
}

impl RingMem for Vec<u32> {
    fn page(&mut self) -> &mut [u8] {
        zerocopy::IntoBytes::as_mut_bytes(self.as_mut_slice())
    }
}

/// What `getdomaininfo` says about a domain that still exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomState {
    /// Shut down or crashed.
    pub shutdown: bool,
    /// Being destroyed.
    pub dying: bool,
}

/// The daemon's access to the hypervisor (`xenctrl` in Dom0, fakes in
/// tests).
pub trait Hypervisor {
    /// Maps a domain's store ring page (foreign map of `gfn`).
    fn map_ring(&mut self, domid: u16, gfn: u64) -> io::Result<Box<dyn RingMem>>;
    /// Binds a local port to `(domid, remote_port)`; returns the local port.
    fn bind_interdomain(&mut self, domid: u16, remote_port: u32) -> io::Result<u32>;
    /// Unbinds a local port.
    fn unbind(&mut self, port: u32);
    /// Notifies a local port.
    fn notify(&mut self, port: u32);
    /// The domain's state, `None` if it no longer exists.
    fn domain_state(&mut self, domid: u16) -> Option<DomState>;
}

/// Identifies a connection.
pub type ConnId = u64;

struct Watch {
    path: String,
    token: Vec<u8>,
    /// Home prefix for a watch registered with a relative path.
    relative: Option<String>,
}

struct OutMsg {
    bytes: Vec<u8>,
    reply: bool,
    event: bool,
}

struct Conn {
    caller: Caller,
    home: String,
    domid: Option<u16>,
    watches: Vec<Watch>,
    txs: HashMap<u32, Tx>,
    next_tx: u32,
    out: VecDeque<OutMsg>,
    out_off: usize,
    out_bytes: usize,
    decoder: Decoder,
    ignored: bool,
    dropped_events_logged: bool,
}

impl Conn {
    fn new(caller: Caller, domid: Option<u16>) -> Conn {
        Conn {
            home: path::domain_path(u32::from(caller.domid)),
            caller,
            domid,
            watches: Vec::new(),
            txs: HashMap::new(),
            next_tx: 1,
            out: VecDeque::new(),
            out_off: 0,
            out_bytes: 0,
            decoder: Decoder::new(),
            ignored: false,
            dropped_events_logged: false,
        }
    }

    fn replies_queued(&self) -> usize {
        self.out.iter().filter(|m| m.reply).count()
    }
}

struct Domain {
    conn: ConnId,
    ring: Box<dyn RingMem>,
    port: u32,
    shutdown: bool,
}

/// The daemon state.
pub struct Server<H: Hypervisor> {
    /// The database.
    pub store: Store,
    /// Hypervisor access.
    pub hv: H,
    conns: BTreeMap<ConnId, Conn>,
    domains: BTreeMap<u16, Domain>,
    special: HashMap<&'static str, Vec<Perm>>,
    next_conn: ConnId,
    logs: Vec<String>,
    /// When set, one line per message in and out is collected for the
    /// trace file (`-T`).
    pub tracing: bool,
    traces: Vec<String>,
    /// Requests taken from one ring per [`Server::service_rings`] call
    /// ([`RING_BATCH`]).
    pub ring_batch: usize,
}

type Reply = Result<Vec<u8>, XsError>;

fn ok() -> Reply {
    Ok(b"OK\0".to_vec())
}

fn escape(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            0 => " ".to_string(),
            0x20..=0x7e => (c as char).to_string(),
            _ => format!("\\x{c:02x}"),
        })
        .collect()
}

impl<H: Hypervisor> Server<H> {
    /// A daemon with C xenstored's initial tree.
    pub fn new(hv: H) -> Server<H> {
        let n0 = vec![Perm::new(0, PermKind::None)];
        Server {
            store: Store::new(),
            hv,
            conns: BTreeMap::new(),
            domains: BTreeMap::new(),
            special: HashMap::from([(INTRODUCE_DOMAIN, n0.clone()), (RELEASE_DOMAIN, n0)]),
            next_conn: 1,
            logs: Vec::new(),
            tracing: false,
            traces: Vec::new(),
            ring_batch: RING_BATCH,
        }
    }

    fn log(&mut self, s: String) {
        self.logs.push(s);
    }

    /// Log lines produced since the last call.
    pub fn take_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.logs)
    }

    /// Trace lines produced since the last call.
    pub fn take_traces(&mut self) -> Vec<String> {
        std::mem::take(&mut self.traces)
    }

    fn conn_label(&self, id: ConnId) -> String {
        match self.conns.get(&id).and_then(|c| c.domid) {
            Some(d) => format!("D{d}"),
            None => format!("A{id}"),
        }
    }

    fn new_conn(&mut self, caller: Caller, domid: Option<u16>) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, Conn::new(caller, domid));
        id
    }

    /// A new privileged Unix-socket client.
    pub fn add_socket_conn(&mut self) -> ConnId {
        self.new_conn(Caller::dom0(), None)
    }

    /// Connections currently open.
    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    /// Whether a connection is still open.
    pub fn has_conn(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    /// Attaches the Dom0 kernel's own ring (XS_LOCAL: the page of
    /// `/dev/xen/xenbus_backend` and its unbound port): binds the port,
    /// then notifies so the kernel's xenbus probes.
    pub fn attach_dom0(&mut self, mut ring: Box<dyn RingMem>, port: u32) -> io::Result<()> {
        let local = self.hv.bind_interdomain(0, port)?;
        if let Some(r) = RingPage::new(ring.page())
            && r.connection() == XENSTORE_RECONNECT
        {
            r.set_connection(XENSTORE_CONNECTED);
        }
        let conn = self.new_conn(Caller::dom0(), Some(0));
        self.domains.insert(
            0,
            Domain {
                conn,
                ring,
                port: local,
                shutdown: false,
            },
        );
        self.hv.notify(local);
        Ok(())
    }

    /// Domains with a ring connection (Dom0's included).
    pub fn domain_ids(&self) -> Vec<u16> {
        self.domains.keys().copied().collect()
    }

    /// The local event-channel port of a domain's ring.
    pub fn domain_port(&self, domid: u16) -> Option<u32> {
        self.domains.get(&domid).map(|d| d.port)
    }

    /// The ring page of a domain (diagnostics and tests: a test plays the
    /// guest through it).
    pub fn ring_page(&mut self, domid: u16) -> Option<&mut [u8]> {
        self.domains.get_mut(&domid).map(|d| d.ring.page())
    }

    /// Whether a domain's connection is being ignored (protocol error).
    pub fn is_ignored(&self, domid: u16) -> bool {
        self.domains
            .get(&domid)
            .and_then(|d| self.conns.get(&d.conn))
            .is_some_and(|c| c.ignored)
    }

    /// Closes a socket connection (the client went away).
    pub fn close_conn(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get(&id)
            && c.domid.is_some()
        {
            return;
        }
        self.conns.remove(&id);
    }

    /// Bytes from a socket client. Returns false if the connection was
    /// dropped (framing error); the caller closes the socket.
    pub fn socket_input(&mut self, id: ConnId, bytes: &[u8]) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        c.decoder.push(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return false;
            };
            match c.decoder.next_msg() {
                Ok(Some(m)) => self.process(id, m),
                Ok(None) => return true,
                Err(e) => {
                    let l = self.conn_label(id);
                    self.log(format!("{l}: dropping connection: {e}"));
                    self.conns.remove(&id);
                    return false;
                }
            }
        }
    }

    /// The unsent bytes of the first queued message of a connection.
    pub fn pending_output(&self, id: ConnId) -> Option<&[u8]> {
        let c = self.conns.get(&id)?;
        c.out.front().map(|m| &m.bytes[c.out_off..])
    }

    /// Marks `n` bytes of [`pending_output`](Self::pending_output) as sent.
    pub fn output_sent(&mut self, id: ConnId, n: usize) {
        if let Some(c) = self.conns.get_mut(&id) {
            advance(c, n);
        }
    }

    /// Whether a socket connection exceeded its output bound (the caller
    /// should close it).
    pub fn output_overflow(&self, id: ConnId) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| c.domid.is_none() && c.out_bytes > SOCKET_OUTPUT_MAX)
    }

    fn queue(&mut self, id: ConnId, m: Msg, reply: bool) {
        let tracing = self.tracing;
        let label = self.conn_label(id);
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.ignored {
            return;
        }
        let bytes = m.encode();
        let event = m.ty == XS_WATCH_EVENT;
        if event {
            // Drop an identical event still waiting (not special ones).
            if m.payload.first() != Some(&b'@') {
                let skip = usize::from(c.out_off > 0);
                if c.out.iter().skip(skip).any(|o| o.event && o.bytes == bytes) {
                    return;
                }
            }
            if !c.caller.privileged && c.out_bytes + bytes.len() > DOMAIN_OUTPUT_MAX {
                if !c.dropped_events_logged {
                    c.dropped_events_logged = true;
                    self.logs.push(format!(
                        "{label}: output quota reached, dropping watch events"
                    ));
                }
                return;
            }
        }
        if tracing {
            let name = type_name(m.ty).unwrap_or("?");
            self.traces
                .push(format!("OUT {label} {name} ({})", escape(&m.payload)));
        }
        c.out_bytes += bytes.len();
        c.out.push_back(OutMsg {
            bytes,
            reply,
            event,
        });
    }

    /// Stops serving a connection that broke the protocol.
    fn ignore(&mut self, id: ConnId, err: u32, why: String) {
        let label = self.conn_label(id);
        self.log(format!("{label}: ignoring connection: {why}"));
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.ignored = true;
        c.watches.clear();
        c.txs.clear();
        c.out.clear();
        c.out_off = 0;
        c.out_bytes = 0;
        if let Some(d) = c.domid
            && let Some(dom) = self.domains.get_mut(&d)
            && let Some(r) = RingPage::new(dom.ring.page())
        {
            r.set_error(err);
        }
    }

    /// Moves requests in and replies out of every domain ring, notifying
    /// each domain whose ring moved. Call after any event-channel
    /// notification and after socket input (which may fire watches).
    /// At most [`RING_BATCH`] requests are taken from each domain per call,
    /// so a flooding domain cannot starve the others; returns true if some
    /// domain still has requests waiting (call again without sleeping).
    pub fn service_rings(&mut self) -> bool {
        let ids: Vec<u16> = self.domains.keys().copied().collect();
        let mut more = false;
        for &d in &ids {
            more |= self.ring_input(d);
        }
        for &d in &ids {
            self.ring_output(d);
        }
        more
    }

    /// Takes requests from a domain's ring; true if it stopped at the batch
    /// limit.
    fn ring_input(&mut self, domid: u16) -> bool {
        let mut moved = false;
        let mut done = 0;
        let mut more = false;
        let quota = self.store.quota.outstanding;
        loop {
            if done >= self.ring_batch {
                more = true;
                break;
            }
            let Some(id) = self.domains.get(&domid).map(|d| d.conn) else {
                return false;
            };
            let Some(c) = self.conns.get_mut(&id) else {
                return false;
            };
            if c.ignored || (!c.caller.privileged && c.replies_queued() >= quota) {
                break;
            }
            match c.decoder.next_msg() {
                Ok(Some(m)) => {
                    self.process(id, m);
                    done += 1;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.ignore(id, XENSTORE_ERROR_PROTO, e.to_string());
                    break;
                }
            }
            let mut buf = vec![0u8; c.decoder.wanted()];
            let Some(dom) = self.domains.get_mut(&domid) else {
                return false;
            };
            let res = RingPage::new(dom.ring.page()).map(|r| r.read_requests(&mut buf));
            match res {
                None | Some(Ok(0)) => break,
                Some(Ok(n)) => {
                    moved = true;
                    c.decoder.push(&buf[..n]);
                }
                Some(Err(e)) => {
                    self.ignore(id, XENSTORE_ERROR_RINGIDX, e.to_string());
                    break;
                }
            }
        }
        if moved && let Some(p) = self.domains.get(&domid).map(|d| d.port) {
            self.hv.notify(p);
        }
        more
    }

    fn ring_output(&mut self, domid: u16) {
        let Some(dom) = self.domains.get_mut(&domid) else {
            return;
        };
        let id = dom.conn;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.ignored {
            return;
        }
        let mut moved = false;
        let mut bad = None;
        {
            let Some(r) = RingPage::new(dom.ring.page()) else {
                return;
            };
            while let Some(front) = c.out.front() {
                match r.write_responses(&front.bytes[c.out_off..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        moved = true;
                        advance(c, n);
                    }
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
        }
        let port = dom.port;
        if moved {
            self.hv.notify(port);
        }
        if let Some(e) = bad {
            self.ignore(id, XENSTORE_ERROR_RINGIDX, e.to_string());
        }
    }

    /// Handles one request from a connection and queues its reply.
    fn process(&mut self, id: ConnId, m: Msg) {
        if self.tracing {
            let name = type_name(m.ty).unwrap_or("?");
            let l = self.conn_label(id);
            self.traces
                .push(format!("IN  {l} {name} ({})", escape(&m.payload)));
        }
        let Some(c) = self.conns.get(&id) else { return };
        let caller = c.caller.clone();
        let known = matches!(
            m.ty,
            XS_CONTROL
                | XS_DIRECTORY
                | XS_READ
                | XS_GET_PERMS
                | XS_WATCH
                | XS_UNWATCH
                | XS_TRANSACTION_START
                | XS_TRANSACTION_END
                | XS_INTRODUCE
                | XS_RELEASE
                | XS_GET_DOMAIN_PATH
                | XS_WRITE
                | XS_MKDIR
                | XS_RM
                | XS_SET_PERMS
                | XS_IS_DOMAIN_INTRODUCED
                | XS_RESUME
                | XS_SET_TARGET
                | XS_RESET_WATCHES
                | XS_DIRECTORY_PART
        );
        if !known {
            let l = self.conn_label(id);
            self.log(format!("{l}: unknown operation {}", m.ty));
            self.queue(id, Msg::error_reply(&m, XsError::ENOSYS), true);
            return;
        }
        let privileged_only = matches!(
            m.ty,
            XS_CONTROL
                | XS_INTRODUCE
                | XS_RELEASE
                | XS_IS_DOMAIN_INTRODUCED
                | XS_RESUME
                | XS_SET_TARGET
        );
        if privileged_only && !caller.privileged {
            let l = self.conn_label(id);
            self.log(format!(
                "{l}: {} refused: not privileged",
                type_name(m.ty).unwrap_or("?")
            ));
            self.queue(id, Msg::error_reply(&m, XsError::EACCES), true);
            return;
        }
        // Transaction lookup (WATCH/UNWATCH ignore the id).
        let mut tx = None;
        if m.tx_id != 0 && !matches!(m.ty, XS_WATCH | XS_UNWATCH) {
            match self.conns.get_mut(&id).and_then(|c| c.txs.remove(&m.tx_id)) {
                Some(t) => tx = Some(t),
                None => {
                    self.queue(id, Msg::error_reply(&m, XsError::ENOENT), true);
                    return;
                }
            }
        }
        let mut after: Vec<Msg> = Vec::new();
        let result = self.dispatch(id, &caller, &m, &mut tx, &mut after);
        if let Some(t) = tx
            && let Some(c) = self.conns.get_mut(&id)
        {
            c.txs.insert(t.id, t);
        }
        let reply = match result {
            Ok(p) if p.len() > XENSTORE_PAYLOAD_MAX => Msg::error_reply(&m, XsError::E2BIG),
            Ok(p) => Msg::reply(&m, p),
            Err(e) => Msg::error_reply(&m, e),
        };
        self.queue(id, reply, true);
        for a in after {
            self.queue(id, a, false);
        }
    }

    fn home(&self, id: ConnId) -> String {
        self.conns
            .get(&id)
            .map(|c| c.home.clone())
            .unwrap_or_default()
    }

    fn dispatch(
        &mut self,
        id: ConnId,
        who: &Caller,
        m: &Msg,
        tx: &mut Option<Tx>,
        after: &mut Vec<Msg>,
    ) -> Reply {
        let home = self.home(id);
        let canon = |p: &str| canonicalize(&home, p);
        let arg = || wire::one_arg(&m.payload).ok_or(XsError::EINVAL);
        match m.ty {
            XS_READ => self.store.read(who, tx.as_mut(), &canon(arg()?)),
            XS_DIRECTORY => self.store.directory(who, tx.as_mut(), &canon(arg()?)),
            XS_GET_PERMS => Ok(perms::to_wire(&self.store.get_perms(
                who,
                tx.as_mut(),
                &canon(arg()?),
            )?)),
            XS_DIRECTORY_PART => {
                let parts = wire::strings(&m.payload);
                if parts.len() != 2 || m.payload.last() != Some(&0) {
                    return Err(XsError::EINVAL);
                }
                let p = std::str::from_utf8(parts[0]).map_err(|_| XsError::EINVAL)?;
                let off = usize::try_from(wire::atoi(parts[1]) as i32 as u32).unwrap_or(usize::MAX);
                self.store.directory_part(who, tx.as_mut(), &canon(p), off)
            }
            XS_WRITE => {
                let nul = m
                    .payload
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(XsError::EINVAL)?;
                let p = std::str::from_utf8(&m.payload[..nul]).map_err(|_| XsError::EINVAL)?;
                let changes =
                    self.store
                        .write(who, tx.as_mut(), &canon(p), &m.payload[nul + 1..])?;
                self.fire(&changes);
                ok()
            }
            XS_MKDIR => {
                let changes = self.store.mkdir(who, tx.as_mut(), &canon(arg()?))?;
                self.fire(&changes);
                ok()
            }
            XS_RM => {
                let changes = self.store.rm(who, tx.as_mut(), &canon(arg()?))?;
                self.fire(&changes);
                ok()
            }
            XS_SET_PERMS => {
                let parts = wire::strings(&m.payload);
                if parts.len() < 2 {
                    return Err(XsError::EINVAL);
                }
                if !who.privileged && parts.len() - 1 > self.store.quota.perms {
                    return Err(XsError::ENOSPC);
                }
                let p = std::str::from_utf8(parts[0]).map_err(|_| XsError::EINVAL)?;
                let acl = perms::from_wire(&parts[1..])?;
                if path::is_special(p) {
                    let key = match p {
                        INTRODUCE_DOMAIN => INTRODUCE_DOMAIN,
                        RELEASE_DOMAIN => RELEASE_DOMAIN,
                        _ => return Err(XsError::EINVAL),
                    };
                    let cur = self.special.get(key).cloned().unwrap_or_default();
                    if !who.access(&cur).covers(Access::ALL) {
                        return Err(XsError::EACCES);
                    }
                    self.special.insert(key, acl);
                    return ok();
                }
                let changes = self.store.set_perms(who, tx.as_mut(), &canon(p), acl)?;
                self.fire(&changes);
                ok()
            }
            XS_WATCH => self.do_watch(id, who, m, after),
            XS_UNWATCH => {
                let parts = wire::strings(&m.payload);
                if parts.len() != 2 {
                    return Err(XsError::EINVAL);
                }
                let p = canon(std::str::from_utf8(parts[0]).map_err(|_| XsError::EINVAL)?);
                let c = self.conns.get_mut(&id).ok_or(XsError::EINVAL)?;
                let i = c
                    .watches
                    .iter()
                    .position(|w| w.path == p && w.token == parts[1])
                    .ok_or(XsError::ENOENT)?;
                c.watches.remove(i);
                ok()
            }
            XS_TRANSACTION_START => {
                if tx.is_some() {
                    return Err(XsError::EBUSY);
                }
                let limit = self.store.quota.transactions;
                let c = self.conns.get_mut(&id).ok_or(XsError::EINVAL)?;
                if !who.privileged && c.txs.len() > limit {
                    return Err(XsError::ENOSPC);
                }
                let mut tid = c.next_tx;
                while tid == 0 || c.txs.contains_key(&tid) {
                    tid = tid.wrapping_add(1);
                }
                c.next_tx = tid.wrapping_add(1);
                let t = self.store.tx_start(tid);
                self.conns
                    .get_mut(&id)
                    .ok_or(XsError::EINVAL)?
                    .txs
                    .insert(tid, t);
                Ok(wire::join(&[tid.to_string()]))
            }
            XS_TRANSACTION_END => {
                let a = arg()?;
                if a != "T" && a != "F" {
                    return Err(XsError::EINVAL);
                }
                let t = tx.take().ok_or(XsError::ENOENT)?;
                if a == "T" {
                    let changes = self.store.tx_commit(who, t)?;
                    self.fire(&changes);
                }
                ok()
            }
            XS_GET_DOMAIN_PATH => {
                let d = wire::atoi(arg()?.as_bytes()) as i32 as u32;
                Ok(wire::join(&[path::domain_path(d)]))
            }
            XS_IS_DOMAIN_INTRODUCED => {
                let d = wire::atoi(arg()?.as_bytes());
                let yes = d == DOMID_SELF
                    || u16::try_from(d).is_ok_and(|d| self.domains.contains_key(&d));
                Ok(if yes {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                })
            }
            XS_INTRODUCE => self.do_introduce(m),
            XS_RELEASE => {
                let d = self.onearg_domain(m)?;
                self.destroy_domain(d);
                ok()
            }
            XS_RESUME => {
                let d = self.onearg_domain(m)?;
                if let Some(dom) = self.domains.get_mut(&d) {
                    dom.shutdown = false;
                }
                ok()
            }
            XS_SET_TARGET => {
                let parts = wire::strings(&m.payload);
                if parts.len() < 2 {
                    return Err(XsError::EINVAL);
                }
                let d = self.connected_domain(wire::atoi(parts[0]))?;
                let t = self.connected_domain(wire::atoi(parts[1]))?;
                let conn = self
                    .domains
                    .get(&d)
                    .map(|x| x.conn)
                    .ok_or(XsError::ENOENT)?;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.caller.target = Some(t);
                }
                ok()
            }
            XS_RESET_WATCHES => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.watches.clear();
                    c.txs.clear();
                }
                *tx = None;
                ok()
            }
            XS_CONTROL => self.do_control(m),
            _ => Err(XsError::ENOSYS),
        }
    }

    fn do_watch(&mut self, id: ConnId, who: &Caller, m: &Msg, after: &mut Vec<Msg>) -> Reply {
        let parts = wire::strings(&m.payload);
        if parts.len() != 2 {
            return Err(XsError::EINVAL);
        }
        let raw = std::str::from_utf8(parts[0]).map_err(|_| XsError::EINVAL)?;
        let home = self.home(id);
        let (p, relative) = if path::is_special(raw) {
            if raw.len() > XENSTORE_REL_PATH_MAX {
                return Err(XsError::EINVAL);
            }
            (raw.to_string(), None)
        } else {
            let p = canonicalize(&home, raw);
            if !is_valid_nodename(&p) {
                return Err(XsError::EINVAL);
            }
            (p, (!raw.starts_with('/')).then(|| home.clone()))
        };
        let limit = self.store.quota.watches;
        let c = self.conns.get_mut(&id).ok_or(XsError::EINVAL)?;
        if c.watches.iter().any(|w| w.path == p && w.token == parts[1]) {
            return Err(XsError::EEXIST);
        }
        if !who.privileged && c.watches.len() > limit {
            return Err(XsError::E2BIG);
        }
        let w = Watch {
            path: p,
            token: parts[1].to_vec(),
            relative,
        };
        let ev = event_payload(&w, &w.path);
        c.watches.push(w);
        if let Some(payload) = ev {
            after.push(Msg::new(XS_WATCH_EVENT, 0, 0, payload));
        }
        ok()
    }

    fn connected_domain(&self, d: i64) -> Result<u16, XsError> {
        let d = u16::try_from(d).map_err(|_| XsError::ENOENT)?;
        if self.domains.contains_key(&d) {
            Ok(d)
        } else {
            Err(XsError::ENOENT)
        }
    }

    fn onearg_domain(&self, m: &Msg) -> Result<u16, XsError> {
        let a = wire::one_arg(&m.payload).ok_or(XsError::EINVAL)?;
        let d = wire::atoi(a.as_bytes());
        if d == 0 {
            return Err(XsError::EINVAL);
        }
        self.connected_domain(d)
    }

    fn do_introduce(&mut self, m: &Msg) -> Reply {
        let parts = wire::strings(&m.payload);
        if parts.len() < 3 {
            return Err(XsError::EINVAL);
        }
        let domid = u16::try_from(wire::atoi(parts[0])).map_err(|_| XsError::EINVAL)?;
        let gfn = std::str::from_utf8(parts[1])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(XsError::EINVAL)?;
        let port = u32::try_from(wire::atoi(parts[2]))
            .ok()
            .filter(|&p| p > 0)
            .ok_or(XsError::EINVAL)?;
        if domid == 0 || domid >= 0x7FF0 {
            return Err(XsError::EINVAL);
        }
        let io_err = |e: io::Error| {
            e.raw_os_error()
                .and_then(XsError::from_errno)
                .unwrap_or(XsError::EINVAL)
        };
        if let Some(dom) = self.domains.get_mut(&domid) {
            // Re-introduction: rebind the port and reset the connection.
            let old = dom.port;
            self.hv.unbind(old);
            let new = self.hv.bind_interdomain(domid, port).map_err(io_err)?;
            let dom = self.domains.get_mut(&domid).ok_or(XsError::EINVAL)?;
            dom.port = new;
            let conn = dom.conn;
            if let Some(r) = RingPage::new(dom.ring.page()) {
                r.reset();
            }
            if let Some(c) = self.conns.get_mut(&conn) {
                *c = Conn::new(c.caller.clone(), Some(domid));
            }
            return ok();
        }
        let mut ring = self.hv.map_ring(domid, gfn).map_err(|e| {
            self.logs.push(format!(
                "introduce {domid}: cannot map ring gfn {gfn:#x}: {e}"
            ));
            io_err(e)
        })?;
        if ring.page().len() < 4096 {
            return Err(XsError::EINVAL);
        }
        let local = match self.hv.bind_interdomain(domid, port) {
            Ok(p) => p,
            Err(e) => {
                self.log(format!("introduce {domid}: cannot bind port {port}: {e}"));
                return Err(io_err(e));
            }
        };
        let mut notify = false;
        if let Some(r) = RingPage::new(ring.page()) {
            r.reset();
            if r.connection() == XENSTORE_RECONNECT {
                r.set_connection(XENSTORE_CONNECTED);
                notify = true;
            }
        }
        let conn = self.new_conn(Caller::domu(domid), Some(domid));
        self.domains.insert(
            domid,
            Domain {
                conn,
                ring,
                port: local,
                shutdown: false,
            },
        );
        if notify {
            self.hv.notify(local);
        }
        self.fire_special(INTRODUCE_DOMAIN);
        ok()
    }

    fn do_control(&mut self, m: &Msg) -> Reply {
        let parts = wire::strings(&m.payload);
        let cmd = parts.first().copied().unwrap_or(b"");
        match cmd {
            b"check" | b"log" | b"logfile" => ok(),
            b"print" => {
                let s = parts
                    .get(1)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default();
                self.log(format!("control: {s}"));
                ok()
            }
            b"quota" => {
                let q = &self.store.quota;
                let text = format!(
                    "Nodes per domain      : {}\nWatches per domain    : {}\nTransactions per domain: {}\n\
                     Max. message size     : {}\nOutstanding requests  : {}\nTransaction-nodes     : {}\n\
                     Max. node size        : {}\nPermissions per node  : {}\n",
                    q.nodes,
                    q.watches,
                    q.transactions,
                    XENSTORE_PAYLOAD_MAX,
                    q.outstanding,
                    q.tx_nodes,
                    q.node_size,
                    q.perms
                );
                Ok(wire::join(&[text]))
            }
            b"help" => Ok(wire::join(&[
                "Valid commands:\ncheck\nhelp\nlog\nlogfile\nprint\nquota\n",
            ])),
            _ => Err(XsError::EINVAL),
        }
    }

    /// Fires watches for store changes.
    fn fire(&mut self, changes: &[Change]) {
        for ch in changes {
            let ids: Vec<ConnId> = self.conns.keys().copied().collect();
            for id in ids {
                let Some(c) = self.conns.get(&id) else {
                    continue;
                };
                if c.ignored || c.watches.is_empty() || !ch.visible_to(&c.caller) {
                    continue;
                }
                let evs: Vec<Vec<u8>> = c
                    .watches
                    .iter()
                    .filter(|w| {
                        if ch.exact {
                            w.path == ch.path
                        } else {
                            path::is_child(&ch.path, &w.path)
                        }
                    })
                    .filter_map(|w| event_payload(w, &ch.path))
                    .collect();
                for e in evs {
                    self.queue(id, Msg::new(XS_WATCH_EVENT, 0, 0, e), false);
                }
            }
        }
    }

    /// Fires a special watch (`@introduceDomain`, `@releaseDomain`) for
    /// every connection allowed to read it.
    fn fire_special(&mut self, name: &str) {
        let acl = self.special.get(name).cloned().unwrap_or_default();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            if c.ignored || !c.caller.access(&acl).read {
                continue;
            }
            let evs: Vec<Vec<u8>> = c
                .watches
                .iter()
                .filter(|w| w.path == name)
                .filter_map(|w| event_payload(w, name))
                .collect();
            for e in evs {
                self.queue(id, Msg::new(XS_WATCH_EVENT, 0, 0, e), false);
            }
        }
    }

    /// Drops a domain: its connection, watches, transactions, port binding
    /// and ring mapping; deletes the nodes it owns; fires `@releaseDomain`.
    fn destroy_domain(&mut self, domid: u16) {
        let Some(dom) = self.domains.remove(&domid) else {
            return;
        };
        self.conns.remove(&dom.conn);
        self.hv.unbind(dom.port);
        drop(dom.ring);
        let changes = self.store.remove_domain(domid);
        self.fire(&changes);
        for acl in self.special.values_mut() {
            if acl.len() > 1 {
                let mut kept = vec![acl[0]];
                kept.extend(acl[1..].iter().copied().filter(|p| p.id != domid));
                *acl = kept;
            }
        }
        self.log(format!("domain {domid} released"));
        self.fire_special(RELEASE_DOMAIN);
    }

    /// `VIRQ_DOM_EXC`: checks every introduced domain; a newly shut-down
    /// one fires `@releaseDomain`; a dying or vanished one is dropped (which
    /// fires it too).
    pub fn check_domains(&mut self) {
        let mut notify = false;
        let ids: Vec<u16> = self.domains.keys().copied().filter(|&d| d != 0).collect();
        for d in ids {
            match self.hv.domain_state(d) {
                Some(s) if !s.dying => {
                    if let Some(dom) = self.domains.get_mut(&d)
                        && s.shutdown
                        && !dom.shutdown
                    {
                        dom.shutdown = true;
                        notify = true;
                    }
                }
                _ => {
                    self.destroy_domain(d);
                    notify = false;
                }
            }
        }
        if notify {
            self.fire_special(RELEASE_DOMAIN);
        }
    }
}

/// The event payload for a watch and a changed path (relative watches see
/// relative paths); `None` if too long to send.
fn event_payload(w: &Watch, changed: &str) -> Option<Vec<u8>> {
    let mut p = changed;
    if let Some(prefix) = &w.relative {
        p = p.strip_prefix(prefix.as_str()).unwrap_or(p);
        p = p.strip_prefix('/').unwrap_or(p);
    }
    let mut out = Vec::with_capacity(p.len() + w.token.len() + 2);
    out.extend_from_slice(p.as_bytes());
    out.push(0);
    out.extend_from_slice(&w.token);
    out.push(0);
    (out.len() <= XENSTORE_PAYLOAD_MAX).then_some(out)
}

fn advance(c: &mut Conn, mut n: usize) {
    while n > 0 {
        let Some(front) = c.out.front() else { return };
        let left = front.bytes.len() - c.out_off;
        if n < left {
            c.out_off += n;
            return;
        }
        n -= left;
        c.out_bytes -= front.bytes.len();
        c.out.pop_front();
        c.out_off = 0;
    }
}

#[cfg(test)]
mod tests;
