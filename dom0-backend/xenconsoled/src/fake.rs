//! Fakes of [`Hyp`] and [`Store`] for the daemon's host tests: an in-memory store with
//! queued watch events, ring pages in plain memory shared with the test (playing the
//! guest), event channels as socket pairs.

use crate::ring::RingMem;
use crate::sys::{DomState, EventPort, Hyp, Store, SysError, SysResult};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

/// A page shared by the daemon (through [`FakeRing`]) and the test.
pub type Page = Rc<RefCell<Vec<u8>>>;

/// The daemon's view of a [`Page`].
pub struct FakeRing(pub Page);

impl RingMem for FakeRing {
    fn load_u32(&self, off: usize) -> u32 {
        self.0.borrow().load_u32(off)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        self.0.borrow_mut().store_u32(off, v)
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        self.0.borrow().read(off, buf)
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        RingMem::write(&mut self.0.borrow_mut()[..], off, data)
    }
}

/// What the guest sees of one bound port.
#[derive(Default, Debug)]
pub struct PortLog {
    /// Notifications the daemon sent.
    pub notified: u32,
    /// Unmasks the daemon did.
    pub unmasked: u32,
    /// Still bound.
    pub bound: bool,
}

/// A bound port: the daemon end of a socket pair; the guest "sends" by writing a byte.
pub struct FakePort {
    sock: UnixStream,
    log: Rc<RefCell<PortLog>>,
}

impl AsFd for FakePort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl EventPort for FakePort {
    fn pending(&mut self) -> SysResult<bool> {
        let mut buf = [0u8; 64];
        let mut any = false;
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return Ok(any),
                Ok(_) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) => return Err(e.into()),
            }
        }
    }
    fn unmask(&mut self) -> SysResult<()> {
        self.log.borrow_mut().unmasked += 1;
        Ok(())
    }
    fn notify(&mut self) -> SysResult<()> {
        self.log.borrow_mut().notified += 1;
        Ok(())
    }
}

impl Drop for FakePort {
    fn drop(&mut self) {
        self.log.borrow_mut().bound = false;
    }
}

/// One fake domain: its page, its port's guest end and log.
pub struct FakeDomain {
    pub page: Page,
    pub guest: Option<UnixStream>,
    pub port: Rc<RefCell<PortLog>>,
    pub dying: bool,
    pub maps: u32,
}

/// The hypervisor fake.
#[derive(Default)]
pub struct FakeHyp {
    pub doms: BTreeMap<u16, FakeDomain>,
    /// The hypervisor's console ring (all text ever printed).
    pub hv_console: Vec<u8>,
    /// Whether binding VIRQ_CON_RING works (it does not on oxen today).
    pub con_ring_virq: bool,
}

impl FakeHyp {
    /// Add domain `domid` with a zeroed ring page.
    pub fn add(&mut self, domid: u16) -> Page {
        let page: Page = Rc::new(RefCell::new(vec![0u8; 4096]));
        self.doms.insert(
            domid,
            FakeDomain {
                page: page.clone(),
                guest: None,
                port: Rc::default(),
                dying: false,
                maps: 0,
            },
        );
        page
    }

    /// The guest of `domid` notifies the daemon.
    pub fn kick(&mut self, domid: u16) {
        let g = self.doms.get_mut(&domid).and_then(|d| d.guest.as_mut());
        g.expect("port bound").write_all(b"!").unwrap();
    }
}

impl Hyp for FakeHyp {
    type Ring = FakeRing;
    type Port = FakePort;
    fn domains(&mut self) -> SysResult<Vec<DomState>> {
        let mut v = vec![DomState {
            domid: 0,
            dying: false,
        }];
        v.extend(self.doms.iter().map(|(&domid, d)| DomState {
            domid,
            dying: d.dying,
        }));
        Ok(v)
    }
    fn map_ring(&mut self, domid: u16, gfn: u64) -> SysResult<FakeRing> {
        let d = self.doms.get_mut(&domid).ok_or(SysError("ESRCH".into()))?;
        if gfn != 0x39000 {
            return Err(SysError(format!("EINVAL: no page at gfn {gfn:#x}")));
        }
        d.maps += 1;
        Ok(FakeRing(d.page.clone()))
    }
    fn bind_con_ring(&mut self) -> SysResult<FakePort> {
        if !self.con_ring_virq {
            return Err(SysError("EINVAL".into()));
        }
        let (a, _b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        Ok(FakePort {
            sock: a,
            log: Rc::default(),
        })
    }
    fn read_hv_console(&mut self, index: &mut u32, max: u32) -> SysResult<Vec<u8>> {
        let from = (*index as usize).min(self.hv_console.len());
        let to = (from + max as usize).min(self.hv_console.len());
        *index = to as u32;
        Ok(self.hv_console[from..to].to_vec())
    }
    fn bind(&mut self, domid: u16, remote_port: u32) -> SysResult<FakePort> {
        let d = self.doms.get_mut(&domid).ok_or(SysError("ESRCH".into()))?;
        if remote_port != 2 {
            return Err(SysError("EINVAL".into()));
        }
        let (a, b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        d.guest = Some(b);
        d.port.borrow_mut().bound = true;
        Ok(FakePort {
            sock: a,
            log: d.port.clone(),
        })
    }
}

/// The xenstore fake.
pub struct FakeStore {
    pub nodes: BTreeMap<String, String>,
    pub watches: Vec<(String, String)>,
    queue: VecDeque<(String, String)>,
    /// Readable while events are queued (one byte per event).
    rx: UnixStream,
    tx: UnixStream,
}

impl FakeStore {
    pub fn new() -> Self {
        let (rx, tx) = UnixStream::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        Self {
            nodes: BTreeMap::new(),
            watches: Vec::new(),
            queue: VecDeque::new(),
            rx,
            tx,
        }
    }

    /// Fire the watches matching `path` (itself or a parent), as xenstored does.
    pub fn fire(&mut self, path: &str) {
        let hits: Vec<(String, String)> = self
            .watches
            .iter()
            .filter(|(w, _)| path == w || path.starts_with(&format!("{w}/")))
            .map(|(_, t)| (path.to_string(), t.clone()))
            .collect();
        for h in hits {
            self.queue.push_back(h);
            self.tx.write_all(b"w").unwrap();
        }
    }

    /// Set a node (as the toolstack) and fire watches.
    pub fn set(&mut self, path: &str, v: &str) {
        self.nodes.insert(path.into(), v.into());
        self.fire(path);
    }
}

impl AsFd for FakeStore {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}

impl Store for FakeStore {
    fn read(&mut self, path: &str) -> SysResult<Option<String>> {
        Ok(self.nodes.get(path).cloned())
    }
    fn write(&mut self, path: &str, value: &str) -> SysResult<()> {
        self.set(path, value);
        Ok(())
    }
    fn watch(&mut self, path: &str, token: &str) -> SysResult<()> {
        self.watches.push((path.into(), token.into()));
        // xenstored fires a new watch once at once
        self.queue.push_back((path.into(), token.into()));
        self.tx.write_all(b"w").unwrap();
        Ok(())
    }
    fn unwatch(&mut self, path: &str, token: &str) -> SysResult<()> {
        self.watches.retain(|(p, t)| !(p == path && t == token));
        Ok(())
    }
    fn watch_event(&mut self) -> SysResult<Option<(String, String)>> {
        let mut b = [0u8; 1];
        let _ = self.rx.read(&mut b);
        Ok(self.queue.pop_front())
    }
}
