//! The only `unsafe` of the Dom0 tools (besides ptys): the `/dev/xen/*`
//! ioctls and `mmap`/`munmap`, each in a small function with its `SAFETY:`.
//!
//! Invariants:
//! - A [`Mapping`] owns `len` bytes of address space starting at `ptr`, from
//!   one successful `mmap`, and unmaps exactly that on drop. `len` is a
//!   non-zero multiple of the page size.
//! - [`hypercall`] passes its arguments to the hypervisor unchanged. The
//!   hypervisor reads and writes user memory at every address given (directly
//!   or embedded in a struct). Inside this crate every such address is the
//!   `addr()` of a [`Mapping`] (a hypercall buffer) that the caller keeps
//!   alive across the call; the public raw entry point is an `unsafe fn`.
//! - The batch/resource mapping ioctls are wrapped so that the pointers they
//!   carry come from slices and a [`Mapping`] of the right length.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use nix::sys::mman::{MapFlags, ProtFlags, mlock, mmap, mmap_anonymous, munmap};

use crate::abi::{
    EvtchnBindInterdomainArg, EvtchnBindUnboundArg, EvtchnBindVirqArg, EvtchnPortArg,
    IOCTL_EVTCHN_BIND_INTERDOMAIN, IOCTL_EVTCHN_BIND_UNBOUND_PORT, IOCTL_EVTCHN_BIND_VIRQ,
    IOCTL_EVTCHN_NOTIFY, IOCTL_EVTCHN_RESET, IOCTL_EVTCHN_UNBIND, IOCTL_PRIVCMD_HYPERCALL,
    IOCTL_PRIVCMD_MMAP_RESOURCE, IOCTL_PRIVCMD_MMAPBATCH_V2, IOCTL_XENBUS_BACKEND_EVTCHN,
    PrivcmdHypercall, PrivcmdMmapBatchV2, PrivcmdMmapResource, XEN_PAGE_SIZE,
};

nix::ioctl_readwrite_bad!(
    ioctl_privcmd_hypercall,
    IOCTL_PRIVCMD_HYPERCALL,
    PrivcmdHypercall
);
nix::ioctl_readwrite_bad!(
    ioctl_privcmd_mmapbatch_v2,
    IOCTL_PRIVCMD_MMAPBATCH_V2,
    PrivcmdMmapBatchV2
);
nix::ioctl_readwrite_bad!(
    ioctl_privcmd_mmap_resource,
    IOCTL_PRIVCMD_MMAP_RESOURCE,
    PrivcmdMmapResource
);
nix::ioctl_readwrite_bad!(
    ioctl_evtchn_bind_virq,
    IOCTL_EVTCHN_BIND_VIRQ,
    EvtchnBindVirqArg
);
nix::ioctl_readwrite_bad!(
    ioctl_evtchn_bind_interdomain,
    IOCTL_EVTCHN_BIND_INTERDOMAIN,
    EvtchnBindInterdomainArg
);
nix::ioctl_readwrite_bad!(
    ioctl_evtchn_bind_unbound,
    IOCTL_EVTCHN_BIND_UNBOUND_PORT,
    EvtchnBindUnboundArg
);
nix::ioctl_write_ptr_bad!(ioctl_evtchn_unbind, IOCTL_EVTCHN_UNBIND, EvtchnPortArg);
nix::ioctl_write_ptr_bad!(ioctl_evtchn_notify, IOCTL_EVTCHN_NOTIFY, EvtchnPortArg);
nix::ioctl_none_bad!(ioctl_evtchn_reset, IOCTL_EVTCHN_RESET);
nix::ioctl_none_bad!(ioctl_xenbus_backend_evtchn, IOCTL_XENBUS_BACKEND_EVTCHN);

/// An owned `mmap`ed region, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is plain memory owned by this value; nothing in it is
// tied to the creating thread, so moving it to another thread is sound.
unsafe impl Send for Mapping {}
// SAFETY: shared references only give `&[u8]`/`&AtomicU32` views of the
// memory; concurrent readers are fine.
unsafe impl Sync for Mapping {}

fn nonzero_len(len: usize) -> io::Result<NonZeroUsize> {
    NonZeroUsize::new(len).ok_or_else(|| io::Error::from_raw_os_error(nix::libc::EINVAL))
}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset)`.
    pub fn shared(fd: BorrowedFd<'_>, len: usize, offset: i64) -> io::Result<Self> {
        let length = nonzero_len(len)?;
        // SAFETY: a fresh mapping at an address the kernel picks (addr NULL)
        // cannot alias any Rust object; the fd is borrowed for the call.
        let p = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                offset,
            )
        }?;
        Ok(Self { ptr: p.cast(), len })
    }

    /// Anonymous private memory, populated and locked in RAM (`mlock`), so
    /// the hypervisor can access it without faults.
    pub fn anonymous_locked(len: usize) -> io::Result<Self> {
        let length = nonzero_len(len)?;
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address cannot
        // alias any Rust object.
        let p = unsafe {
            mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE,
            )
        }?;
        let m = Self { ptr: p.cast(), len };
        // SAFETY: [ptr, ptr+len) is exactly the mapping just created and
        // owned by `m`; on error `m` is dropped and unmapped.
        unsafe { mlock(p, len) }?;
        Ok(m)
    }

    /// Start address as the hypervisor/kernel sees it (user VA).
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (mappings are never empty); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory as bytes. Another domain may change it concurrently
    /// (shared rings): read indexes with [`Mapping::atomic_u32`].
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes for the lifetime of self
        // (invariant); u8 has no invalid values.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The memory as mutable bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only Rust
        // view of the memory for the borrow's duration.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The aligned u32 at `offset` as an atomic (ring indexes shared with
    /// another domain); `None` if out of range or misaligned.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: offset+4 ≤ len so the 4 bytes are inside the mapping, the
        // mapping is page aligned so ptr+offset is 4-aligned, AtomicU32 has
        // the layout of u32, and the reference lives no longer than self.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast::<u32>()) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe exactly the mapping this value owns
        // (invariant), and no reference into it outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// `IOCTL_PRIVCMD_HYPERCALL`: the hypercall's return value, or the positive
/// errno of a negative return.
///
/// Every address among `args` (or inside the structs they point to) must be
/// a live hypercall buffer of the caller (module invariant).
pub fn hypercall(privcmd: &File, op: u64, args: [u64; 5]) -> Result<i64, i32> {
    let mut h = PrivcmdHypercall { op, arg: args };
    // SAFETY: `h` is a live privcmd_hypercall the kernel reads; the memory
    // the hypervisor touches is the caller's hypercall buffers (invariant).
    match unsafe { ioctl_privcmd_hypercall(privcmd.as_raw_fd(), &mut h) } {
        Ok(v) => Ok(i64::from(v)),
        Err(e) => Err(e as i32),
    }
}

/// `IOCTL_PRIVCMD_MMAPBATCH_V2` over the whole of `map` (a privcmd mapping
/// of `gfns.len()` pages). Per-page errors land in `errs`.
pub fn mmapbatch_v2(
    privcmd: &File,
    map: &Mapping,
    dom: u16,
    gfns: &[u64],
    errs: &mut [i32],
) -> io::Result<()> {
    let num = u32::try_from(gfns.len()).map_err(|_| io::Error::other("too many pages"))?;
    if errs.len() != gfns.len() || map.len() != gfns.len() * XEN_PAGE_SIZE {
        return Err(io::Error::from_raw_os_error(nix::libc::EINVAL));
    }
    let mut m = PrivcmdMmapBatchV2 {
        num,
        dom,
        _pad: 0,
        addr: map.addr(),
        arr: gfns.as_ptr() as u64,
        err: errs.as_mut_ptr() as u64,
    };
    // SAFETY: `arr` points to `num` readable u64s, `err` to `num` writable
    // i32s (lengths checked above), `addr` is the start of a privcmd VMA of
    // `num` pages owned by `map`; all outlive the call.
    unsafe { ioctl_privcmd_mmapbatch_v2(privcmd.as_raw_fd(), &mut m) }?;
    Ok(())
}

/// `IOCTL_PRIVCMD_MMAP_RESOURCE`. With `map` `None` it is a size query and
/// returns the resource's frame count.
pub fn mmap_resource(
    privcmd: &File,
    map: Option<&Mapping>,
    dom: u16,
    r#type: u32,
    id: u32,
    idx: u32,
) -> io::Result<u64> {
    let (num, addr) = match map {
        Some(m) => ((m.len() / XEN_PAGE_SIZE) as u64, m.addr()),
        None => (0, 0),
    };
    let mut r = PrivcmdMmapResource {
        dom,
        _pad: 0,
        r#type,
        id,
        idx,
        num,
        addr,
    };
    // SAFETY: `r` is a live privcmd_mmap_resource; `addr` is 0 (query) or the
    // start of a privcmd VMA of `num` pages owned by `map`.
    unsafe { ioctl_privcmd_mmap_resource(privcmd.as_raw_fd(), &mut r) }?;
    Ok(r.num)
}

fn port(ret: i32) -> io::Result<u32> {
    u32::try_from(ret).map_err(|_| io::Error::other(format!("ioctl returned port {ret}")))
}

/// `IOCTL_EVTCHN_BIND_VIRQ`: the local port.
pub fn evtchn_bind_virq(fd: BorrowedFd<'_>, virq: u32) -> io::Result<u32> {
    let mut a = EvtchnBindVirqArg { virq };
    // SAFETY: `a` is a live ioctl_evtchn_bind_virq the kernel only reads.
    port(unsafe { ioctl_evtchn_bind_virq(fd.as_raw_fd(), &mut a) }?)
}

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: the local port.
pub fn evtchn_bind_interdomain(fd: BorrowedFd<'_>, dom: u32, remote: u32) -> io::Result<u32> {
    let mut a = EvtchnBindInterdomainArg {
        remote_domain: dom,
        remote_port: remote,
    };
    // SAFETY: `a` is a live ioctl_evtchn_bind_interdomain the kernel reads.
    port(unsafe { ioctl_evtchn_bind_interdomain(fd.as_raw_fd(), &mut a) }?)
}

/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: the local port.
pub fn evtchn_bind_unbound(fd: BorrowedFd<'_>, dom: u32) -> io::Result<u32> {
    let mut a = EvtchnBindUnboundArg { remote_domain: dom };
    // SAFETY: `a` is a live ioctl_evtchn_bind_unbound_port the kernel reads.
    port(unsafe { ioctl_evtchn_bind_unbound(fd.as_raw_fd(), &mut a) }?)
}

/// `IOCTL_EVTCHN_UNBIND`.
pub fn evtchn_unbind(fd: BorrowedFd<'_>, p: u32) -> io::Result<()> {
    let a = EvtchnPortArg { port: p };
    // SAFETY: `a` is a live ioctl_evtchn_unbind the kernel only reads.
    unsafe { ioctl_evtchn_unbind(fd.as_raw_fd(), &a) }?;
    Ok(())
}

/// `IOCTL_EVTCHN_NOTIFY`.
pub fn evtchn_notify(fd: BorrowedFd<'_>, p: u32) -> io::Result<()> {
    let a = EvtchnPortArg { port: p };
    // SAFETY: `a` is a live ioctl_evtchn_notify the kernel only reads.
    unsafe { ioctl_evtchn_notify(fd.as_raw_fd(), &a) }?;
    Ok(())
}

/// `IOCTL_EVTCHN_RESET`.
pub fn evtchn_reset(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the ioctl takes no argument.
    unsafe { ioctl_evtchn_reset(fd.as_raw_fd()) }?;
    Ok(())
}

/// `IOCTL_XENBUS_BACKEND_EVTCHN`: Dom0's xenstore port.
pub fn xenbus_backend_evtchn(f: &File) -> io::Result<u32> {
    // SAFETY: the ioctl takes no argument.
    port(unsafe { ioctl_xenbus_backend_evtchn(f.as_fd().as_raw_fd()) }?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn anonymous_locked_mapping_is_usable_and_bounded() {
        let Ok(mut m) = Mapping::anonymous_locked(4096) else {
            // mlock may be refused by RLIMIT_MEMLOCK in a sandbox: nothing to test.
            return;
        };
        assert_eq!(m.len(), 4096);
        m.as_mut_slice()[8..12].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(m.atomic_u32(8).unwrap().load(Ordering::Relaxed), 7);
        assert!(m.atomic_u32(4094).is_none());
        assert!(m.atomic_u32(4096).is_none());
        assert!(m.atomic_u32(2).is_none());
        assert!(m.atomic_u32(usize::MAX).is_none());
    }

    #[test]
    fn hypercall_on_a_non_privcmd_fd_is_an_os_error() {
        let f = File::open("/dev/null").unwrap();
        assert_eq!(hypercall(&f, 17, [0; 5]), Err(nix::libc::ENOTTY));
    }

    #[test]
    fn zero_length_mapping_is_refused() {
        assert!(Mapping::anonymous_locked(0).is_err());
    }
}
