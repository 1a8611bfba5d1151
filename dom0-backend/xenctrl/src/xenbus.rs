//! [`XenbusBackend`]: Dom0's own xenstore ring and event channel, for a
//! xenstored running in Dom0 (Linux `drivers/xen/xenbus/xenbus_dev_backend.c`).
//!
//! `IOCTL_XENBUS_BACKEND_EVTCHN` gives the port the Dom0 kernel's xenbus
//! uses; an `mmap` of one page at offset 0 gives the ring page
//! (`xenstore_domain_interface`). Invariant: the ring mapping is exactly one
//! page and lives as long as this value; the kernel writes requests into it
//! concurrently, so indexes are read with [`XenbusBackend::atomic_u32`].

use std::fs::{File, OpenOptions};
use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::sync::atomic::AtomicU32;

use crate::abi::XEN_PAGE_SIZE;
use crate::error::{Error, Result};
use crate::sys::{self, Mapping};

/// Path of the xenbus backend device.
pub const XENBUS_BACKEND_PATH: &str = "/dev/xen/xenbus_backend";

/// Dom0's xenstore ring page and store event channel.
#[derive(Debug)]
pub struct XenbusBackend {
    _file: File,
    ring: Mapping,
    port: u32,
}

impl XenbusBackend {
    /// Open the device, read the port and map the ring.
    pub fn open() -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(XENBUS_BACKEND_PATH)
            .map_err(|e| Error::os("open /dev/xen/xenbus_backend", e))?;
        let port =
            sys::xenbus_backend_evtchn(&file).map_err(|e| Error::os("xenbus_backend evtchn", e))?;
        let ring = Mapping::shared(file.as_fd(), XEN_PAGE_SIZE, 0)
            .map_err(|e| Error::os("mmap /dev/xen/xenbus_backend", e))?;
        Ok(Self {
            _file: file,
            ring,
            port,
        })
    }

    /// Dom0's xenstore event channel (a local port: bind it with
    /// `Evtchn::bind_interdomain(0, port)`).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The aligned u32 at `offset` of the ring page as an atomic.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        self.ring.atomic_u32(offset)
    }
}

impl Deref for XenbusBackend {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.ring.as_slice()
    }
}

impl DerefMut for XenbusBackend {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.ring.as_mut_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_without_xen_is_one_line() {
        if std::path::Path::new(XENBUS_BACKEND_PATH).exists() {
            return; // In Dom0: nothing to check.
        }
        let s = XenbusBackend::open().unwrap_err().to_string();
        assert!(s.starts_with("open /dev/xen/xenbus_backend: "), "{s}");
        assert!(!s.contains('\n'));
    }
}
