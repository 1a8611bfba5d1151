//! In-memory event-channel "hypervisor + Linux driver" for host tests.
//!
//! Models what the ping-pong relies on: ports owned by handles, interdomain binding rules
//! (the unbound port must name the caller's domain, as a number or `DOMID_SELF`), delivery
//! that masks the port until it is unmasked, and pending events re-delivered on unmask.
//! A read with nothing queued fails with `TimedOut` instead of blocking. Faults can be
//! injected to exercise every error path.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::abi::DOMID_SELF;
use crate::device::{Clock, EvtchnDevice};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    Unbound { remote_domain: u32 },
    Connected { peer: u32 },
}

#[derive(Debug)]
pub struct Port {
    pub owner: usize,
    pub state: PortState,
    pub enabled: bool,
    pub pending: bool,
}

/// Faults to inject.
#[derive(Debug, Default)]
pub struct Faults {
    pub bind_unbound: Option<io::ErrorKind>,
    pub bind_interdomain: Option<io::ErrorKind>,
    /// Drop the notification with this global index (0-based).
    pub drop_send: Option<usize>,
    /// Deliver this port number instead of the real one at this send index.
    pub wrong_port_at: Option<(usize, u32)>,
    /// Raise an event on the port `bind_interdomain` makes, as Xen does.
    pub event_on_bind: bool,
}

#[derive(Debug, Default)]
pub struct FakeHv {
    pub my_domid: u32,
    pub ports: BTreeMap<u32, Port>,
    pub next_port: u32,
    pub rings: Vec<VecDeque<u32>>,
    pub sends: usize,
    pub unmasks: usize,
    pub faults: Faults,
}

impl FakeHv {
    fn deliver(&mut self, port: u32) {
        let Some(p) = self.ports.get_mut(&port) else {
            return;
        };
        if p.enabled {
            p.enabled = false;
            self.rings[p.owner].push_back(port);
        } else {
            p.pending = true;
        }
    }

    fn alloc(&mut self, owner: usize, state: PortState) -> u32 {
        self.next_port += 1;
        let port = self.next_port;
        self.ports.insert(
            port,
            Port {
                owner,
                state,
                enabled: true,
                pending: false,
            },
        );
        port
    }

    fn is_me(&self, domid: u32) -> bool {
        domid == self.my_domid || domid == DOMID_SELF
    }
}

/// One handle of the fake device.
#[derive(Debug)]
pub struct FakeHandle {
    pub hv: Rc<RefCell<FakeHv>>,
    pub id: usize,
}

/// A fake device for domain `my_domid` with two handles.
pub fn pair(my_domid: u32, faults: Faults) -> (FakeHandle, FakeHandle, Rc<RefCell<FakeHv>>) {
    let hv = Rc::new(RefCell::new(FakeHv {
        my_domid,
        next_port: 4,
        rings: vec![VecDeque::new(), VecDeque::new()],
        faults,
        ..FakeHv::default()
    }));
    (
        FakeHandle {
            hv: hv.clone(),
            id: 0,
        },
        FakeHandle {
            hv: hv.clone(),
            id: 1,
        },
        hv,
    )
}

fn err(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, "injected")
}

impl FakeHandle {
    fn owned(&self, hv: &FakeHv, port: u32) -> io::Result<()> {
        match hv.ports.get(&port) {
            Some(p) if p.owner == self.id => Ok(()),
            _ => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl EvtchnDevice for FakeHandle {
    fn bind_unbound_port(&mut self, remote_domain: u32) -> io::Result<u32> {
        let mut hv = self.hv.borrow_mut();
        if let Some(k) = hv.faults.bind_unbound {
            return Err(err(k));
        }
        let remote_domain = if remote_domain == DOMID_SELF {
            hv.my_domid
        } else {
            remote_domain
        };
        Ok(hv.alloc(self.id, PortState::Unbound { remote_domain }))
    }

    fn bind_interdomain(&mut self, remote_domain: u32, remote_port: u32) -> io::Result<u32> {
        let mut hv = self.hv.borrow_mut();
        if let Some(k) = hv.faults.bind_interdomain {
            return Err(err(k));
        }
        // Loopback only: the remote must be us, and its port must accept us.
        if !hv.is_me(remote_domain) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let me = hv.my_domid;
        match hv.ports.get(&remote_port).map(|p| &p.state) {
            Some(PortState::Unbound { remote_domain }) if *remote_domain == me => {}
            _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
        let local = hv.alloc(self.id, PortState::Connected { peer: remote_port });
        if let Some(p) = hv.ports.get_mut(&remote_port) {
            p.state = PortState::Connected { peer: local };
        }
        if hv.faults.event_on_bind {
            hv.deliver(local);
        }
        Ok(local)
    }

    fn notify(&mut self, port: u32) -> io::Result<()> {
        let mut hv = self.hv.borrow_mut();
        self.owned(&hv, port)?;
        let PortState::Connected { peer } = hv.ports[&port].state else {
            return Ok(()); // Xen ignores sends on unbound ports
        };
        let idx = hv.sends;
        hv.sends += 1;
        if hv.faults.drop_send == Some(idx) {
            return Ok(());
        }
        if let Some((at, wrong)) = hv.faults.wrong_port_at
            && at == idx
        {
            let owner = hv.ports[&peer].owner;
            hv.rings[owner].push_back(wrong);
            return Ok(());
        }
        hv.deliver(peer);
        Ok(())
    }

    fn unbind(&mut self, port: u32) -> io::Result<()> {
        let mut hv = self.hv.borrow_mut();
        self.owned(&hv, port)?;
        let me = hv.my_domid;
        if let Some(Port {
            state: PortState::Connected { peer },
            ..
        }) = hv.ports.remove(&port)
            && let Some(p) = hv.ports.get_mut(&peer)
        {
            p.state = PortState::Unbound { remote_domain: me };
        }
        Ok(())
    }

    fn read_ports(&mut self, buf: &mut [u32], _timeout: Duration) -> io::Result<usize> {
        let mut hv = self.hv.borrow_mut();
        let ring = &mut hv.rings[self.id];
        if ring.is_empty() {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        let mut n = 0;
        while n < buf.len() {
            let Some(p) = ring.pop_front() else { break };
            buf[n] = p;
            n += 1;
        }
        Ok(n)
    }

    fn unmask(&mut self, ports: &[u32]) -> io::Result<()> {
        let mut hv = self.hv.borrow_mut();
        for &port in ports {
            self.owned(&hv, port)?;
            hv.unmasks += 1;
            let p = hv.ports.get_mut(&port).ok_or(io::ErrorKind::NotConnected)?;
            if !p.enabled {
                p.enabled = true;
                if p.pending {
                    p.pending = false;
                    hv.deliver(port);
                }
            }
        }
        Ok(())
    }
}

/// A clock that advances by the next step of a repeating script on every read.
#[derive(Debug)]
pub struct ScriptClock {
    pub now: u64,
    pub steps: Vec<u64>,
    pub i: usize,
}

impl Clock for ScriptClock {
    fn now_ns(&mut self) -> u64 {
        let step = self.steps[self.i % self.steps.len()];
        self.i += 1;
        self.now += step;
        self.now
    }
}
