//! [`Evtchn`]: event channels of this process through `/dev/xen/evtchn`
//! (libxenevtchn's role).
//!
//! The handle is opened non-blocking: [`Evtchn::pending`] returns `None` when
//! no port has fired, and the fd can be polled ([`AsFd`]). A fired port stays
//! masked until [`Evtchn::unmask`]. Ports bound through a handle are closed
//! when it is dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::error::{Error, Result};
use crate::sys;

/// Path of the event channel device.
pub const EVTCHN_PATH: &str = "/dev/xen/evtchn";

/// An open `/dev/xen/evtchn` handle.
#[derive(Debug)]
pub struct Evtchn {
    file: File,
}

fn os(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::os(op, e)
}

impl Evtchn {
    /// Open `/dev/xen/evtchn` (non-blocking, close-on-exec).
    pub fn open() -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(EVTCHN_PATH)
            .map_err(os("open /dev/xen/evtchn"))?;
        Ok(Self { file })
    }

    /// Bind to `remote_port` of `dom`; returns the local port.
    pub fn bind_interdomain(&self, dom: u16, remote_port: u32) -> Result<u32> {
        sys::evtchn_bind_interdomain(self.file.as_fd(), u32::from(dom), remote_port)
            .map_err(os("evtchn bind_interdomain"))
    }

    /// Allocate a local port that `dom` may bind; returns it.
    pub fn bind_unbound(&self, dom: u16) -> Result<u32> {
        sys::evtchn_bind_unbound(self.file.as_fd(), u32::from(dom))
            .map_err(os("evtchn bind_unbound_port"))
    }

    /// Bind a global VIRQ (e.g. `VIRQ_DOM_EXC`); returns the local port.
    pub fn bind_virq(&self, virq: u32) -> Result<u32> {
        sys::evtchn_bind_virq(self.file.as_fd(), virq).map_err(os("evtchn bind_virq"))
    }

    /// Close a port bound through this handle.
    pub fn unbind(&self, port: u32) -> Result<()> {
        sys::evtchn_unbind(self.file.as_fd(), port).map_err(os("evtchn unbind"))
    }

    /// Signal the remote end of `port`.
    pub fn notify(&self, port: u32) -> Result<()> {
        sys::evtchn_notify(self.file.as_fd(), port).map_err(os("evtchn notify"))
    }

    /// Unbind every port of this handle.
    pub fn reset(&self) -> Result<()> {
        sys::evtchn_reset(self.file.as_fd()).map_err(os("evtchn reset"))
    }

    /// One fired port, or `None` if none is pending (never blocks). If the
    /// kernel's queue overflowed this fails (EFBIG) until [`Evtchn::reset`].
    pub fn pending(&self) -> Result<Option<u32>> {
        let mut b = [0u8; 4];
        match (&self.file).read(&mut b) {
            Ok(4) => Ok(Some(u32::from_ne_bytes(b))),
            Ok(n) => Err(Error::invalid(
                "evtchn read",
                format!("short read of {n} bytes"),
            )),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::os("evtchn read", e)),
        }
    }

    /// Every fired port currently queued (never blocks).
    pub fn pending_all(&self) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut b = [0u8; 4 * 64];
        loop {
            match (&self.file).read(&mut b) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend(
                        b[..n - n % 4]
                            .chunks_exact(4)
                            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
                    );
                    if n < b.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::os("evtchn read", e)),
            }
        }
        Ok(out)
    }

    /// Re-enable delivery of a fired port.
    pub fn unmask(&self, port: u32) -> Result<()> {
        (&self.file)
            .write_all(&port.to_ne_bytes())
            .map_err(os("evtchn unmask"))
    }
}

impl AsFd for Evtchn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_without_xen_is_one_line() {
        if std::path::Path::new(EVTCHN_PATH).exists() {
            return; // In Dom0: nothing to check.
        }
        let e = Evtchn::open().unwrap_err();
        assert_eq!(e.errno(), Some(nix::libc::ENOENT));
        let s = e.to_string();
        assert!(s.starts_with("open /dev/xen/evtchn: "), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn calls_on_a_non_evtchn_file_are_errors() {
        // /dev/null opens read-write but knows none of the ioctls.
        let ev = Evtchn {
            file: OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .unwrap(),
        };
        for r in [
            ev.bind_virq(3),
            ev.bind_unbound(0),
            ev.bind_interdomain(0, 1),
        ] {
            assert_eq!(r.unwrap_err().errno(), Some(nix::libc::ENOTTY));
        }
        assert!(ev.notify(1).is_err());
        assert!(ev.unbind(1).is_err());
        // /dev/null reads as end-of-file: a short read is reported, not a port.
        assert!(ev.pending().is_err());
        assert_eq!(ev.pending_all().unwrap(), Vec::<u32>::new());
        ev.unmask(5).unwrap(); // writes are swallowed
    }
}
