//! The xenstore client library (libxenstore's role): one connection to the
//! daemon, either its Unix socket or the kernel's `/dev/xen/xenbus` relay,
//! with request/reply matching and a queue of watch events.
//!
//! Invariants: one request is in flight at a time (calls take `&mut self`);
//! watch events that arrive while a reply is awaited are queued in order and
//! returned by [`Client::read_watch`] before any new one is read; a reply
//! that cannot be matched (wrong req_id/type) is a protocol error, not a
//! panic. Every call takes a transaction id (0 = none).
//!
//! Where it connects (as Xen's `xs_open`): `$XENSTORED_PATH` if set (socket,
//! else device); else `$XENSTORED_RUNDIR/socket` (default
//! `/var/run/xenstored/socket`) if it accepts a connection; else
//! `/dev/xen/xenbus`, else `/proc/xen/xenbus`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use xen_abi::xenstore::{
    XS_DIRECTORY, XS_DIRECTORY_PART, XS_GET_DOMAIN_PATH, XS_GET_PERMS, XS_INTRODUCE,
    XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ, XS_RELEASE, XS_RESET_WATCHES, XS_RM, XS_SET_PERMS,
    XS_SET_TARGET, XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT,
    XS_WRITE, XsError,
};

use crate::perms::{self, Perm};
use crate::wire::{self, Decoder, Msg};

/// Default directory of the daemon's socket (`XEN_RUN_STORED`).
pub const DEFAULT_RUNDIR: &str = "/var/run/xenstored";
/// The kernel's relay device.
pub const XENBUS_DEV: &str = "/dev/xen/xenbus";
/// Older location of the relay device.
pub const XENBUS_PROC: &str = "/proc/xen/xenbus";

/// A client error.
#[derive(Debug)]
pub enum Error {
    /// The daemon answered `EAGAIN`: a transaction conflicted, retry it.
    Again,
    /// The daemon answered another error.
    Xs(XsError),
    /// The connection failed.
    Io(io::Error),
    /// The daemon's answer made no sense.
    Protocol(String),
}

impl Error {
    /// The errno value this stands for (as libxenstore sets `errno`).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Again => XsError::EAGAIN.errno(),
            Error::Xs(e) => e.errno(),
            Error::Io(e) => e.raw_os_error().unwrap_or(XsError::EIO.errno()),
            Error::Protocol(_) => XsError::EIO.errno(),
        }
    }

    /// The daemon's error, if that is what this is.
    pub fn xs(&self) -> Option<XsError> {
        match self {
            Error::Again => Some(XsError::EAGAIN),
            Error::Xs(e) => Some(*e),
            _ => None,
        }
    }

    fn from_xs(e: XsError) -> Error {
        if e == XsError::EAGAIN {
            Error::Again
        } else {
            Error::Xs(e)
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Protocol(s) => write!(f, "xenstore protocol error: {s}"),
            e => f.write_str(nix::errno::Errno::from_raw(e.errno()).desc()),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Result of client calls.
pub type Result<T> = core::result::Result<T, Error>;

enum Transport {
    Socket(UnixStream),
    Device(File),
}

impl Transport {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Transport::Socket(s) => s.as_fd(),
            Transport::Device(f) => f.as_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Socket(s) => s.read(buf),
            Transport::Device(f) => f.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Socket(s) => s.write_all(buf),
            Transport::Device(f) => f.write_all(buf),
        }
    }
}

/// The connection's fd, to poll for watch events (see [`Client::has_queued_watch`]).
impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.fd()
    }
}

/// A connection to xenstored.
pub struct Client {
    io: Transport,
    decoder: Decoder,
    watches: VecDeque<(String, String)>,
    next_req: u32,
}

fn socket_path() -> String {
    if let Ok(p) = std::env::var("XENSTORED_PATH") {
        return p;
    }
    let dir = std::env::var("XENSTORED_RUNDIR").unwrap_or_else(|_| DEFAULT_RUNDIR.to_string());
    format!("{dir}/socket")
}

fn device_path() -> String {
    if let Ok(p) = std::env::var("XENSTORED_PATH") {
        return p;
    }
    if std::path::Path::new(XENBUS_DEV).exists() {
        XENBUS_DEV.to_string()
    } else {
        XENBUS_PROC.to_string()
    }
}

impl Client {
    /// Connects as Xen's `xs_open(0)`: the daemon's socket, else the
    /// kernel's xenbus device.
    pub fn open() -> Result<Client> {
        match Client::open_socket(&socket_path()) {
            Ok(c) => Ok(c),
            Err(_) => Client::open_device(&device_path()),
        }
    }

    /// Connects to a daemon socket.
    pub fn open_socket(path: &str) -> Result<Client> {
        Ok(Client::from_transport(Transport::Socket(
            UnixStream::connect(path)?,
        )))
    }

    /// Opens a xenbus relay device (`/dev/xen/xenbus`).
    pub fn open_device(path: &str) -> Result<Client> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Client::from_transport(Transport::Device(f)))
    }

    /// Uses an already connected stream (tests, socket pairs).
    pub fn from_stream(s: UnixStream) -> Client {
        Client::from_transport(Transport::Socket(s))
    }

    fn from_transport(io: Transport) -> Client {
        Client {
            io,
            decoder: Decoder::new(),
            watches: VecDeque::new(),
            next_req: 1,
        }
    }

    /// The connection's fd, to poll for watch events. Check
    /// [`Client::has_queued_watch`] first: queued events do not make it
    /// readable.
    pub fn as_raw_fd(&self) -> RawFd {
        self.io.fd().as_raw_fd()
    }

    /// Whether watch events are already queued.
    pub fn has_queued_watch(&self) -> bool {
        !self.watches.is_empty()
    }

    /// Reads one message, waiting at most until `deadline`.
    fn read_msg(&mut self, deadline: Option<Instant>) -> Result<Option<Msg>> {
        loop {
            match self.decoder.next_msg() {
                Ok(Some(m)) => return Ok(Some(m)),
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(e.to_string())),
            }
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(self.io.fd(), PollFlags::POLLIN)];
                let n = match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(n) => n,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(Error::Io(e.into())),
                };
                if n == 0 {
                    if Instant::now() >= d {
                        return Ok(None);
                    }
                    continue;
                }
            }
            let mut buf = [0u8; 4096 + 16];
            let n = match self.io.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "xenstored closed the connection",
                )));
            }
            self.decoder.push(&buf[..n]);
        }
    }

    fn queue_event(&mut self, m: &Msg) {
        let parts = wire::strings(&m.payload);
        if parts.len() >= 2 {
            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            self.watches.push_back((s(parts[0]), s(parts[1])));
        }
    }

    /// Sends a request and waits for its reply payload.
    fn request(&mut self, ty: u32, tx: u32, payload: Vec<u8>) -> Result<Vec<u8>> {
        if payload.len() > xen_abi::xenstore::XENSTORE_PAYLOAD_MAX {
            return Err(Error::Xs(XsError::E2BIG));
        }
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        self.io
            .write_all(&Msg::new(ty, req_id, tx, payload).encode())?;
        loop {
            let Some(m) = self.read_msg(None)? else {
                continue;
            };
            if m.ty == XS_WATCH_EVENT {
                self.queue_event(&m);
                continue;
            }
            if m.req_id != req_id {
                return Err(Error::Protocol(format!(
                    "reply to request {} while waiting for {req_id}",
                    m.req_id
                )));
            }
            if let Some(e) = m.as_error() {
                return Err(Error::from_xs(e));
            }
            if m.ty != ty {
                return Err(Error::Protocol(format!(
                    "reply type {} to request type {ty}",
                    m.ty
                )));
            }
            return Ok(m.payload);
        }
    }

    fn path_arg(p: &str) -> Vec<u8> {
        wire::join(&[p])
    }

    fn ack(&mut self, ty: u32, tx: u32, payload: Vec<u8>) -> Result<()> {
        self.request(ty, tx, payload).map(|_| ())
    }

    /// `XS_READ`.
    pub fn read(&mut self, tx: u32, path: &str) -> Result<Vec<u8>> {
        self.request(XS_READ, tx, Client::path_arg(path))
    }

    /// `XS_READ` as a (lossy) UTF-8 string.
    pub fn read_string(&mut self, tx: u32, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read(tx, path)?).into_owned())
    }

    /// `XS_WRITE` (creates missing parents).
    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<()> {
        let mut p = Client::path_arg(path);
        p.extend_from_slice(value);
        self.ack(XS_WRITE, tx, p)
    }

    /// `XS_MKDIR`.
    pub fn mkdir(&mut self, tx: u32, path: &str) -> Result<()> {
        self.ack(XS_MKDIR, tx, Client::path_arg(path))
    }

    /// `XS_RM` (recursive).
    pub fn rm(&mut self, tx: u32, path: &str) -> Result<()> {
        self.ack(XS_RM, tx, Client::path_arg(path))
    }

    /// `XS_DIRECTORY`, falling back to `XS_DIRECTORY_PART` when the list
    /// does not fit a message (as libxenstore).
    pub fn directory(&mut self, tx: u32, path: &str) -> Result<Vec<String>> {
        let bytes = match self.request(XS_DIRECTORY, tx, Client::path_arg(path)) {
            Ok(b) => b,
            Err(Error::Xs(XsError::E2BIG)) => self.directory_part(tx, path)?,
            Err(e) => return Err(e),
        };
        Ok(wire::strings(&bytes)
            .into_iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    fn directory_part(&mut self, tx: u32, path: &str) -> Result<Vec<u8>> {
        'restart: loop {
            let mut all = Vec::new();
            let mut generation: Option<Vec<u8>> = None;
            loop {
                let payload = wire::join(&[path.as_bytes(), all.len().to_string().as_bytes()]);
                let part = self.request(XS_DIRECTORY_PART, tx, payload)?;
                let nul = part
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| Error::Protocol("DIRECTORY_PART without generation".into()))?;
                let g = part[..nul].to_vec();
                if *generation.get_or_insert_with(|| g.clone()) != g {
                    continue 'restart;
                }
                let body = &part[nul + 1..];
                // The list ends with an extra NUL (an empty string).
                let ended = body == [0] || body.ends_with(&[0, 0]);
                if ended {
                    all.extend_from_slice(&body[..body.len() - 1]);
                    return Ok(all);
                }
                if body.is_empty() {
                    return Err(Error::Protocol("empty DIRECTORY_PART".into()));
                }
                all.extend_from_slice(body);
            }
        }
    }

    /// `XS_GET_PERMS`.
    pub fn get_perms(&mut self, tx: u32, path: &str) -> Result<Vec<Perm>> {
        let bytes = self.request(XS_GET_PERMS, tx, Client::path_arg(path))?;
        perms::from_wire(&wire::strings(&bytes))
            .map_err(|_| Error::Protocol(format!("bad permissions for {path}")))
    }

    /// `XS_SET_PERMS`; the first entry is the owner.
    pub fn set_perms(&mut self, tx: u32, path: &str, acl: &[Perm]) -> Result<()> {
        let mut p = Client::path_arg(path);
        p.extend(perms::to_wire(acl));
        self.ack(XS_SET_PERMS, tx, p)
    }

    /// `XS_TRANSACTION_START`: a new transaction id.
    pub fn transaction_start(&mut self) -> Result<u32> {
        let r = self.request(XS_TRANSACTION_START, 0, vec![0])?;
        let s = wire::strings(&r)
            .first()
            .copied()
            .unwrap_or(&r[..])
            .to_vec();
        std::str::from_utf8(&s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Protocol("bad transaction id".into()))
    }

    /// `XS_TRANSACTION_END`: commit (`true`) or abort. [`Error::Again`]
    /// means the transaction conflicted and should be retried.
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<()> {
        self.ack(
            XS_TRANSACTION_END,
            tx,
            if commit {
                b"T\0".to_vec()
            } else {
                b"F\0".to_vec()
            },
        )
    }

    /// `XS_WATCH`. The daemon fires the watch once right away.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<()> {
        self.ack(XS_WATCH, 0, wire::join(&[path, token]))
    }

    /// `XS_UNWATCH`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<()> {
        self.ack(XS_UNWATCH, 0, wire::join(&[path, token]))
    }

    /// The next watch event `(path, token)`, blocking.
    pub fn read_watch(&mut self) -> Result<(String, String)> {
        loop {
            if let Some(e) = self.read_watch_timeout(None)? {
                return Ok(e);
            }
        }
    }

    /// The next watch event, waiting at most `timeout` (`None`: forever).
    pub fn read_watch_timeout(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<(String, String)>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.watches.pop_front() {
                return Ok(Some(e));
            }
            let Some(m) = self.read_msg(deadline)? else {
                return Ok(None);
            };
            if m.ty == XS_WATCH_EVENT {
                self.queue_event(&m);
            } else {
                return Err(Error::Protocol(format!(
                    "unexpected message type {} with no request pending",
                    m.ty
                )));
            }
        }
    }

    /// `XS_INTRODUCE`: tell the daemon about a domain's store ring.
    pub fn introduce(&mut self, domid: u32, gfn: u64, port: u32) -> Result<()> {
        let p = wire::join(&[domid.to_string(), gfn.to_string(), port.to_string()]);
        self.ack(XS_INTRODUCE, 0, p)
    }

    /// `XS_RELEASE`.
    pub fn release(&mut self, domid: u32) -> Result<()> {
        self.ack(XS_RELEASE, 0, wire::join(&[domid.to_string()]))
    }

    /// `XS_SET_TARGET`.
    pub fn set_target(&mut self, domid: u32, target: u32) -> Result<()> {
        self.ack(
            XS_SET_TARGET,
            0,
            wire::join(&[domid.to_string(), target.to_string()]),
        )
    }

    /// `XS_RESET_WATCHES`.
    pub fn reset_watches(&mut self) -> Result<()> {
        self.ack(XS_RESET_WATCHES, 0, vec![0])
    }

    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    pub fn get_domain_path(&mut self, domid: u32) -> Result<String> {
        let r = self.request(XS_GET_DOMAIN_PATH, 0, wire::join(&[domid.to_string()]))?;
        let s = wire::strings(&r)
            .first()
            .copied()
            .unwrap_or(&r[..])
            .to_vec();
        Ok(String::from_utf8_lossy(&s).into_owned())
    }

    /// `XS_IS_DOMAIN_INTRODUCED`.
    pub fn is_domain_introduced(&mut self, domid: u32) -> Result<bool> {
        let r = self.request(XS_IS_DOMAIN_INTRODUCED, 0, wire::join(&[domid.to_string()]))?;
        Ok(r.first() == Some(&b'T'))
    }

    /// Sends any request and returns the reply payload (for tools that
    /// need a message the typed calls do not cover, e.g. `XS_CONTROL`).
    pub fn raw(&mut self, ty: u32, tx: u32, payload: Vec<u8>) -> Result<Vec<u8>> {
        self.request(ty, tx, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// A scripted daemon: for each request, the messages to send back.
    fn scripted(replies: Vec<Vec<Msg>>) -> (Client, thread::JoinHandle<(Vec<Msg>, UnixStream)>) {
        let (a, b) = UnixStream::pair().unwrap();
        let h = thread::spawn(move || {
            let mut b = b;
            let mut d = Decoder::new();
            let mut seen = Vec::new();
            for batch in replies {
                let req = loop {
                    if let Some(m) = d.next_msg().unwrap() {
                        break m;
                    }
                    let mut buf = [0u8; 8192];
                    let n = b.read(&mut buf).unwrap();
                    assert!(n > 0);
                    d.push(&buf[..n]);
                };
                for mut r in batch {
                    if r.ty != XS_WATCH_EVENT {
                        r.req_id = req.req_id;
                    }
                    b.write_all(&r.encode()).unwrap();
                }
                seen.push(req);
            }
            (seen, b)
        });
        (Client::from_stream(a), h)
    }

    fn ev(path: &str, token: &str) -> Msg {
        Msg::new(XS_WATCH_EVENT, 0, 0, wire::join(&[path, token]))
    }

    #[test]
    fn read_with_interleaved_watch_events() {
        let (mut c, h) = scripted(vec![
            vec![Msg::new(XS_WATCH, 0, 0, b"OK\0".to_vec()), ev("/a", "tok")],
            vec![
                ev("/a/b", "tok"),
                Msg::new(XS_READ, 0, 0, b"value".to_vec()),
            ],
        ]);
        c.watch("/a", "tok").unwrap();
        assert_eq!(c.read(0, "/a/b").unwrap(), b"value");
        assert!(c.has_queued_watch());
        assert_eq!(c.read_watch().unwrap(), ("/a".into(), "tok".into()));
        assert_eq!(c.read_watch().unwrap(), ("/a/b".into(), "tok".into()));
        assert_eq!(
            c.read_watch_timeout(Some(Duration::from_millis(10)))
                .unwrap(),
            None
        );
        let (seen, _) = h.join().unwrap();
        assert_eq!(seen[0].payload, b"/a\0tok\0");
        assert_eq!(seen[1].payload, b"/a/b\0");
        assert_ne!(seen[0].req_id, seen[1].req_id);
    }

    #[test]
    fn errors_and_again() {
        let (mut c, h) = scripted(vec![
            vec![Msg::new(
                xen_abi::xenstore::XS_ERROR,
                0,
                5,
                b"ENOENT\0".to_vec(),
            )],
            vec![Msg::new(
                xen_abi::xenstore::XS_ERROR,
                0,
                5,
                b"EAGAIN\0".to_vec(),
            )],
            vec![Msg::new(XS_TRANSACTION_START, 0, 0, b"17\0".to_vec())],
        ]);
        let e = c.read(5, "/x").unwrap_err();
        assert_eq!(e.xs(), Some(XsError::ENOENT));
        assert_eq!(e.errno(), 2);
        assert!(matches!(c.transaction_end(5, true), Err(Error::Again)));
        assert_eq!(c.transaction_start().unwrap(), 17);
        let (seen, _) = h.join().unwrap();
        assert_eq!(seen[0].tx_id, 5);
        assert_eq!(seen[1].payload, b"T\0");
    }

    #[test]
    fn directory_falls_back_to_parts() {
        let (mut c, h) = scripted(vec![
            vec![Msg::new(
                xen_abi::xenstore::XS_ERROR,
                0,
                0,
                b"E2BIG\0".to_vec(),
            )],
            vec![Msg::new(XS_DIRECTORY_PART, 0, 0, b"7\0a\0b\0".to_vec())],
            vec![Msg::new(XS_DIRECTORY_PART, 0, 0, b"7\0c\0\0".to_vec())],
        ]);
        assert_eq!(c.directory(0, "/big").unwrap(), vec!["a", "b", "c"]);
        let (seen, _) = h.join().unwrap();
        assert_eq!(seen[1].payload, b"/big\x000\0");
        assert_eq!(seen[2].payload, b"/big\x004\0");
    }

    #[test]
    fn hostile_replies_are_errors() {
        let mut long = Msg::new(XS_READ, 0, 0, vec![]).encode();
        long[12..16].copy_from_slice(&5000u32.to_le_bytes());
        let (a, b) = UnixStream::pair().unwrap();
        let mut c = Client::from_stream(a);
        let mut b2 = b.try_clone().unwrap();
        b2.write_all(&long).unwrap();
        assert!(matches!(c.read(0, "/x"), Err(Error::Protocol(_))));
        drop(b);
        drop(b2);
        let (a, b) = UnixStream::pair().unwrap();
        let mut c = Client::from_stream(a);
        drop(b);
        assert!(matches!(c.read(0, "/x"), Err(Error::Io(_))));
    }

    #[test]
    fn perms_and_domain_calls() {
        let (mut c, h) = scripted(vec![
            vec![Msg::new(XS_GET_PERMS, 0, 0, b"n0\0r1\0".to_vec())],
            vec![Msg::new(XS_SET_PERMS, 0, 0, b"OK\0".to_vec())],
            vec![Msg::new(
                XS_GET_DOMAIN_PATH,
                0,
                0,
                b"/local/domain/3\0".to_vec(),
            )],
            vec![Msg::new(XS_IS_DOMAIN_INTRODUCED, 0, 0, b"T\0".to_vec())],
            vec![Msg::new(XS_INTRODUCE, 0, 0, b"OK\0".to_vec())],
        ]);
        assert_eq!(
            c.get_perms(0, "/p").unwrap(),
            vec![Perm::parse("n0").unwrap(), Perm::parse("r1").unwrap()]
        );
        c.set_perms(0, "/p", &[Perm::parse("b2").unwrap()]).unwrap();
        assert_eq!(c.get_domain_path(3).unwrap(), "/local/domain/3");
        assert!(c.is_domain_introduced(3).unwrap());
        c.introduce(1, 0x39001, 1).unwrap();
        let (seen, _) = h.join().unwrap();
        assert_eq!(seen[1].payload, b"/p\0b2\0");
        assert_eq!(seen[4].payload, b"1\x00233473\x001\0");
    }
}
