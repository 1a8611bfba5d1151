//! What the blkif and netif sides share: taking a xenbus device over from
//! the DomU kernel's driver (sysfs unbind), the frontend's half of the
//! xenbus state machine against the backend's `state` node, and the ring
//! pages and event channel a connection attempt gives the backend (good
//! ones, or the bad kinds the attack cases need).
//!
//! Invariant: a [`Dev`] only writes under its frontend directory; it reads
//! the backend's nodes.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use xenctrl::Evtchn;
use xenstore::Client;

use crate::sys::{Gntalloc, GrantedPage};

/// A reference no grant table has (oxen's and Xen's limit is far below).
pub const BOGUS_REF: u32 = 0x00ff_fff0;

/// `XenbusStateInitWait`.
pub const INIT_WAIT: u32 = 2;
/// `XenbusStateConnected`.
pub const CONNECTED: u32 = 4;
/// `XenbusStateClosing`.
pub const CLOSING: u32 = 5;
/// `XenbusStateClosed`.
pub const CLOSED: u32 = 6;

/// Unbind the xenbus device `dev` (e.g. `vbd-51712`) from its driver, if any.
pub fn unbind(dev: &str) -> Result<bool, String> {
    let link = format!("/sys/bus/xen/devices/{dev}/driver");
    let Ok(driver) = std::fs::read_link(&link) else {
        return Ok(false);
    };
    let unbind = Path::new("/sys/bus/xen/devices")
        .join(dev)
        .join(&driver)
        .join("unbind");
    std::fs::write(&unbind, dev).map_err(|e| format!("{}: {e}", unbind.display()))?;
    Ok(true)
}

/// This domain's id and home path.
pub fn me(xs: &mut Client) -> Result<(u16, String), String> {
    let me: u16 = xs
        .read_string(0, "domid")
        .map_err(|e| format!("read domid: {e}"))?
        .parse()
        .map_err(|e| format!("domid: {e}"))?;
    Ok((me, format!("/local/domain/{me}")))
}

/// The ids of this domain's devices of `kind` (`vbd`, `vif`), numerically sorted.
pub fn device_ids(xs: &mut Client, home: &str, kind: &str) -> Vec<String> {
    let mut ids = xs
        .directory(0, &format!("{home}/device/{kind}"))
        .unwrap_or_default();
    ids.sort_by_key(|i| i.parse::<u64>().unwrap_or(u64::MAX));
    ids
}

/// One frontend device and its backend, seen through xenstore.
pub struct Dev {
    pub xs: Client,
    /// The backend's domain.
    pub be_id: u16,
    /// The frontend directory (`/local/domain/<me>/device/<kind>/<id>`).
    pub fe: String,
    /// The backend directory.
    pub be: String,
    /// How long to wait for a backend state change.
    pub timeout: Duration,
}

impl Dev {
    /// The device `<home>/device/<kind>/<id>`.
    pub fn open(
        mut xs: Client,
        home: &str,
        kind: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let fe = format!("{home}/device/{kind}/{id}");
        let be = xs
            .read_string(0, &format!("{fe}/backend"))
            .map_err(|e| format!("{fe}/backend: {e}"))?;
        let be_id: u16 = xs
            .read_string(0, &format!("{fe}/backend-id"))
            .map_err(|e| format!("{fe}/backend-id: {e}"))?
            .parse()
            .map_err(|e| format!("backend-id: {e}"))?;
        Ok(Self {
            xs,
            be_id,
            fe,
            be,
            timeout,
        })
    }

    pub fn read(&mut self, path: &str) -> Option<String> {
        self.xs.read_string(0, path).ok()
    }

    /// Write `key` in the frontend directory.
    pub fn write(&mut self, key: &str, val: &str) -> Result<(), String> {
        let p = format!("{}/{key}", self.fe);
        self.xs
            .write(0, &p, val.as_bytes())
            .map_err(|e| format!("write {p}: {e}"))
    }

    /// Remove `key` from the frontend directory (absent is fine).
    pub fn rm(&mut self, key: &str) {
        let _ = self.xs.rm(0, &format!("{}/{key}", self.fe));
    }

    pub fn backend_state(&mut self) -> Option<u32> {
        let p = format!("{}/state", self.be);
        self.read(&p)?.parse().ok()
    }

    /// Wait until the backend's state is one of `want`.
    pub fn wait_backend(&mut self, want: &[u32]) -> Result<u32, Option<u32>> {
        let end = Instant::now() + self.timeout;
        loop {
            let s = self.backend_state();
            if let Some(s) = s.filter(|s| want.contains(s)) {
                return Ok(s);
            }
            if Instant::now() > end {
                return Err(s);
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Frontend Closed; wait for the backend to close too.
    pub fn close(&mut self) -> Result<(), String> {
        self.write("state", "6")?;
        self.wait_backend(&[CLOSED])
            .map(drop)
            .map_err(|s| format!("backend did not close (state {s:?})"))
    }

    /// Bring the backend to InitWait from whatever state it is in (through
    /// Closed unless it is there already and `fresh` is false).
    pub fn reset(&mut self, fresh: bool) -> Result<(), String> {
        if self.backend_state() != Some(INIT_WAIT) || fresh {
            self.close()?;
            self.write("state", "1")?;
            self.wait_backend(&[INIT_WAIT])
                .map_err(|s| format!("backend did not return to InitWait (state {s:?})"))?;
        }
        Ok(())
    }
}

/// What ring page a connection attempt gives the backend.
#[derive(Clone, Copy)]
pub enum Ring {
    Good,
    Ref(u32),
    Revoked,
    OtherDomain,
    ReadOnly,
}

/// What event channel a connection attempt gives the backend.
#[derive(Clone, Copy)]
pub enum Port {
    Good,
    Closed,
    OtherDomain,
}

/// A fresh ring page (header zeroed, both event indices 1) granted as
/// `ring` says, and the reference to write in xenstore.
pub fn ring_page(
    gnt: &Gntalloc,
    ring: Ring,
    be: u16,
    other: u16,
) -> Result<(GrantedPage, u32), String> {
    let page = match ring {
        Ring::OtherDomain => gnt.page(other, true),
        Ring::ReadOnly => gnt.page(be, false),
        _ => gnt.page(be, true),
    }
    .map_err(|e| format!("gntalloc: {e}"))?;
    page.store(front_hostile::REQ_PROD, 0);
    page.store(front_hostile::REQ_EVENT, 1);
    page.store(front_hostile::RSP_PROD, 0);
    page.store(front_hostile::RSP_EVENT, 1);
    let gref = match ring {
        Ring::Ref(r) => r,
        Ring::Revoked => gnt.revoked_ref(be).map_err(|e| format!("gntalloc: {e}"))?,
        _ => page.gref,
    };
    Ok((page, gref))
}

/// An event channel port offered as `port` says: (the number to write in
/// xenstore, the port still bound here).
pub fn event_port(
    ev: &Evtchn,
    port: Port,
    be: u16,
    other: u16,
) -> Result<(u32, Option<u32>), String> {
    Ok(match port {
        Port::Good => {
            let p = ev.bind_unbound(be).map_err(|e| e.to_string())?;
            (p, Some(p))
        }
        Port::OtherDomain => {
            let p = ev.bind_unbound(other).map_err(|e| e.to_string())?;
            (p, Some(p))
        }
        Port::Closed => {
            let p = ev.bind_unbound(be).map_err(|e| e.to_string())?;
            ev.unbind(p).map_err(|e| e.to_string())?;
            (p, None)
        }
    })
}

/// Notifications of the flood cases.
pub const FLOOD: u32 = 20_000;

/// Notify `port` (none: the connection has no port) [`FLOOD`] times as
/// fast as possible; returns how many notifications went through.
pub fn flood(ev: &Evtchn, port: Option<u32>) -> u32 {
    let Some(port) = port else { return 0 };
    (0..FLOOD).map(|_| u32::from(ev.notify(port).is_ok())).sum()
}

/// Drain the pending ports of `ev` and unmask them (answers are read from
/// the rings; the events only have to be re-enabled).
pub fn drain(ev: &Evtchn) {
    for p in ev.pending_all().unwrap_or_default() {
        let _ = ev.unmask(p);
    }
}
