//! The [`Hyp`] and [`Store`] traits over the real thing: `xenctrl` (getdomaininfo, foreign
//! maps through `/dev/xen/privcmd`, `/dev/xen/evtchn`) and a `xenstore::Client`.
//!
//! Invariants: a [`XenRing`] holds its foreign mapping for its whole life, and reads ring
//! indexes through atomics (the guest writes them concurrently); a [`XenPort`] owns its
//! own `/dev/xen/evtchn` handle (as Xen's xenconsoled: one per console), so a pending
//! event read from it is always this console's, and unbinds its port on drop.

use crate::ring::RingMem;
use crate::sys::{DomState, EventPort, Hyp, Store, SysError, SysResult};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use xenctrl::{Evtchn, ForeignMap, Xc};
use xenstore::{Client, XsError};

fn err(e: impl std::fmt::Display) -> SysError {
    SysError(e.to_string())
}

/// The hypervisor through `xenctrl`.
pub struct XenHyp {
    xc: Xc,
}

impl XenHyp {
    /// Open `/dev/xen/privcmd`.
    pub fn open() -> SysResult<Self> {
        Ok(Self {
            xc: Xc::open().map_err(err)?,
        })
    }
}

/// A console page mapped from a DomU.
pub struct XenRing(ForeignMap);

impl RingMem for XenRing {
    fn load_u32(&self, off: usize) -> u32 {
        // Ring offsets are fixed, aligned and inside the page: never None.
        self.0
            .atomic_u32(off)
            .map_or(0, |a| a.load(Ordering::Acquire))
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        if let Some(a) = self.0.atomic_u32(off) {
            a.store(v, Ordering::Release);
        }
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[off..off + buf.len()]);
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self.0[off..off + data.len()].copy_from_slice(data);
    }
}

/// One console's event channel: its own evtchn handle and bound local port.
pub struct XenPort {
    ev: Evtchn,
    local: u32,
}

impl AsFd for XenPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ev.as_fd()
    }
}

impl EventPort for XenPort {
    fn pending(&mut self) -> SysResult<bool> {
        let fired = self.ev.pending_all().map_err(err)?;
        Ok(fired.contains(&self.local))
    }
    fn unmask(&mut self) -> SysResult<()> {
        self.ev.unmask(self.local).map_err(err)
    }
    fn notify(&mut self) -> SysResult<()> {
        self.ev.notify(self.local).map_err(err)
    }
}

impl Drop for XenPort {
    fn drop(&mut self) {
        let _ = self.ev.unbind(self.local);
    }
}

impl Hyp for XenHyp {
    type Ring = XenRing;
    type Port = XenPort;

    fn domains(&mut self) -> SysResult<Vec<DomState>> {
        let mut out = Vec::new();
        let mut next: u32 = 0;
        // "first id >= next", as Xen's enum_domains walks them
        while next < u32::from(xen_abi::domctl::DOMID_FIRST_RESERVED) {
            let Some(d) = self.xc.domain_getinfo(next as u16).map_err(err)? else {
                break;
            };
            if u32::from(d.domid) < next {
                break; // a confused answer must not loop forever
            }
            out.push(DomState {
                domid: d.domid,
                dying: d.dying,
            });
            next = u32::from(d.domid) + 1;
        }
        Ok(out)
    }

    fn map_ring(&mut self, domid: u16, gfn: u64) -> SysResult<XenRing> {
        ForeignMap::map(&self.xc, domid, &[gfn])
            .map(XenRing)
            .map_err(err)
    }

    fn bind(&mut self, domid: u16, remote_port: u32) -> SysResult<XenPort> {
        let ev = Evtchn::open().map_err(err)?;
        let local = ev.bind_interdomain(domid, remote_port).map_err(err)?;
        Ok(XenPort { ev, local })
    }

    fn bind_con_ring(&mut self) -> SysResult<XenPort> {
        let ev = Evtchn::open().map_err(err)?;
        let local = ev
            .bind_virq(xen_abi::event_channel::VIRQ_CON_RING)
            .map_err(err)?;
        Ok(XenPort { ev, local })
    }

    fn read_hv_console(&mut self, index: &mut u32, max: u32) -> SysResult<Vec<u8>> {
        let (bytes, next) = self.xc.readconsole(false, true, *index, max).map_err(err)?;
        *index = next;
        Ok(bytes)
    }
}

/// xenstore through a privileged [`Client`].
pub struct XenStore(pub Client);

impl AsFd for XenStore {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Store for XenStore {
    fn read(&mut self, path: &str) -> SysResult<Option<String>> {
        match self.0.read(0, path) {
            Ok(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
            Err(e) if e.xs() == Some(XsError::ENOENT) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }
    fn write(&mut self, path: &str, value: &str) -> SysResult<()> {
        self.0.write(0, path, value.as_bytes()).map_err(err)
    }
    fn watch(&mut self, path: &str, token: &str) -> SysResult<()> {
        self.0.watch(path, token).map_err(err)
    }
    fn unwatch(&mut self, path: &str, token: &str) -> SysResult<()> {
        match self.0.unwatch(path, token) {
            Ok(()) => Ok(()),
            Err(e) if e.xs() == Some(XsError::ENOENT) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
    fn watch_event(&mut self) -> SysResult<Option<(String, String)>> {
        self.0
            .read_watch_timeout(Some(std::time::Duration::ZERO))
            .map_err(err)
    }
}
