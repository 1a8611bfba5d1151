//! Linux's grant allocation device `/dev/xen/gntalloc` (module
//! `xen-gntalloc`): grant pages of this process to another domain, and the
//! one-page shared mappings used as ring and data pages. Every `unsafe`
//! block of the program is here, each in a small function with its
//! `SAFETY:` line.
//!
//! Invariant: a [`GrantedPage`] owns its mapping and its gntalloc index;
//! dropping it unmaps the page, then asks the kernel to revoke the grant
//! (the kernel defers freeing a page another domain still maps).

use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::libc::c_ulong;
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// Path of the grant allocation device.
pub const GNTALLOC_PATH: &str = "/dev/xen/gntalloc";
const PAGE: usize = 4096;
/// `GNTALLOC_FLAG_WRITABLE`.
const FLAG_WRITABLE: u16 = 1;

/// `struct ioctl_gntalloc_alloc_gref` with room for one reference.
#[repr(C)]
struct AllocGref {
    domid: u16,
    flags: u16,
    count: u32,
    index: u64,
    gref_ids: [u32; 1],
    _pad: u32,
}

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
struct DeallocGref {
    index: u64,
    count: u32,
    _pad: u32,
}

/// `_IOC(_IOC_NONE, 'G', nr, size)` (arm64 and x86 share this encoding).
const fn ioc_none(nr: c_ulong, size: usize) -> c_ulong {
    ((size as c_ulong) << 16) | ((b'G' as c_ulong) << 8) | nr
}
const IOCTL_GNTALLOC_ALLOC_GREF: c_ulong = ioc_none(5, size_of::<AllocGref>());
const IOCTL_GNTALLOC_DEALLOC_GREF: c_ulong = ioc_none(6, size_of::<DeallocGref>());

nix::ioctl_readwrite_bad!(ioctl_alloc_gref, IOCTL_GNTALLOC_ALLOC_GREF, AllocGref);
nix::ioctl_write_ptr_bad!(ioctl_dealloc_gref, IOCTL_GNTALLOC_DEALLOC_GREF, DeallocGref);

/// An open `/dev/xen/gntalloc`.
#[derive(Clone)]
pub struct Gntalloc {
    file: Rc<File>,
}

impl Gntalloc {
    /// Open the device.
    pub fn open() -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(GNTALLOC_PATH)?;
        Ok(Self {
            file: Rc::new(file),
        })
    }

    /// Grant one fresh zeroed page to `domid`, writable or read-only;
    /// returns (reference, gntalloc index).
    fn alloc(&self, domid: u16, writable: bool) -> io::Result<(u32, u64)> {
        let mut op = AllocGref {
            domid,
            flags: if writable { FLAG_WRITABLE } else { 0 },
            count: 1,
            index: 0,
            gref_ids: [0],
            _pad: 0,
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*self.file);
        // SAFETY: `op` is a live, correctly laid out ioctl_gntalloc_alloc_gref
        // with room for the one reference the kernel writes back (count 1).
        unsafe { ioctl_alloc_gref(fd, &mut op) }?;
        Ok((op.gref_ids[0], op.index))
    }

    fn dealloc(&self, index: u64) -> io::Result<()> {
        let op = DeallocGref {
            index,
            count: 1,
            _pad: 0,
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*self.file);
        // SAFETY: `op` is a live ioctl_gntalloc_dealloc_gref the kernel only reads.
        unsafe { ioctl_dealloc_gref(fd, &op) }?;
        Ok(())
    }

    /// A page granted to `domid` and mapped here.
    pub fn page(&self, domid: u16, writable: bool) -> io::Result<GrantedPage> {
        let (gref, index) = self.alloc(domid, writable)?;
        match map_shared(&self.file, index) {
            Ok(ptr) => Ok(GrantedPage {
                dev: self.clone(),
                gref,
                index,
                ptr,
            }),
            Err(e) => {
                let _ = self.dealloc(index);
                Err(e)
            }
        }
    }

    /// A reference that was granted to `domid` and is revoked again: in
    /// range of the table, but its entry grants nothing.
    pub fn revoked_ref(&self, domid: u16) -> io::Result<u32> {
        let (gref, index) = self.alloc(domid, true)?;
        self.dealloc(index)?;
        Ok(gref)
    }
}

/// `mmap` one page of the gntalloc device at `index`, shared, read-write.
fn map_shared(file: &File, index: u64) -> io::Result<NonNull<u8>> {
    let off = i64::try_from(index).map_err(|_| io::Error::from_raw_os_error(nix::libc::EINVAL))?;
    let len = NonZeroUsize::new(PAGE).expect("page size is not zero");
    // SAFETY: a fresh mapping at an address the kernel picks (addr NULL)
    // cannot alias any Rust object; the fd is borrowed for the call.
    let p = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            file.as_fd(),
            off,
        )
    }?;
    Ok(p.cast())
}

/// A page of this process granted to another domain.
pub struct GrantedPage {
    dev: Gntalloc,
    /// The grant reference the other domain uses.
    pub gref: u32,
    index: u64,
    ptr: NonNull<u8>,
}

impl GrantedPage {
    /// The page's 4-byte word at `off` (4-aligned, in the page), as an atomic.
    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(
            off.is_multiple_of(4) && off + 4 <= PAGE,
            "bad ring word offset {off}"
        );
        // SAFETY: `off` is 4-aligned and inside the page-aligned mapping this
        // value owns for its lifetime; AtomicU32 has u32's layout, and the
        // other domain only accesses the word atomically-sized as well.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Load the word at `off` (acquire: what the other side wrote before it is visible).
    pub fn load(&self, off: usize) -> u32 {
        self.word(off).load(Ordering::Acquire)
    }

    /// Store the word at `off` (release: what we wrote before is visible first).
    pub fn store(&self, off: usize, v: u32) {
        self.word(off).store(v, Ordering::Release);
    }

    /// Copy `bytes` into the page at `off`.
    pub fn write(&mut self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= PAGE, "write past the page");
        // SAFETY: the destination range lies inside the mapping this value
        // owns exclusively on our side (checked above); source and
        // destination cannot overlap (the source is a Rust slice).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(off), bytes.len())
        };
    }

    /// Copy `len` bytes out of the page at `off`.
    pub fn read(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= PAGE, "read past the page");
        let mut v = vec![0u8; len];
        // SAFETY: the source range lies inside the mapping (checked above);
        // `v` is a fresh buffer of `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), v.as_mut_ptr(), len) };
        v
    }
}

impl Drop for GrantedPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the one-page mapping made by map_shared for this
        // value; no reference into it outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), PAGE) };
        let _ = self.dev.dealloc(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_linuxs() {
        // include/uapi/xen/gntalloc.h: _IOC(_IOC_NONE, 'G', 5, 24) and (.., 6, 16).
        assert_eq!(size_of::<AllocGref>(), 24);
        assert_eq!(size_of::<DeallocGref>(), 16);
        assert_eq!(IOCTL_GNTALLOC_ALLOC_GREF, 0x0018_4705);
        assert_eq!(IOCTL_GNTALLOC_DEALLOC_GREF, 0x0010_4706);
    }
}
