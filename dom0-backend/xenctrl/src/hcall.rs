//! [`HypercallBuf`]: memory the hypervisor may read and write during a
//! hypercall.
//!
//! The hypervisor translates the user addresses it is given through Dom0's
//! page tables and fails with EFAULT on a non-resident page, so argument
//! buffers must be pinned: they come from `/dev/xen/hypercall` (locked kernel
//! pages, Linux `drivers/xen/privcmd-buf.c`) or, when that device is absent,
//! from anonymous memory locked with `mlock`. Sizes are rounded up to whole
//! pages; every access is bounds-checked and fails with an error, never a
//! panic.

use std::fs::File;
use std::os::fd::AsFd;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::abi::XEN_PAGE_SIZE;
use crate::error::{Error, Result};
use crate::sys::Mapping;

/// A pinned buffer for hypercall arguments; unmapped on drop.
#[derive(Debug)]
pub struct HypercallBuf {
    map: Mapping,
}

impl HypercallBuf {
    /// At least `len` bytes (≥ 1 page) from `dev` (`/dev/xen/hypercall`) or
    /// locked anonymous memory if `dev` is `None`. Zero-filled.
    pub(crate) fn new(dev: Option<&File>, len: usize) -> Result<Self> {
        let pages = len.div_ceil(XEN_PAGE_SIZE).max(1);
        let bytes = pages
            .checked_mul(XEN_PAGE_SIZE)
            .ok_or_else(|| Error::invalid("hypercall buffer", format!("{len} bytes")))?;
        // The device's pages are pinned by the kernel; if it is missing or
        // refuses, locked anonymous memory is the fallback.
        let map = match dev.map(|f| Mapping::shared(f.as_fd(), bytes, 0)) {
            Some(Ok(m)) => m,
            _ => Mapping::anonymous_locked(bytes)
                .map_err(|e| Error::os("mlock hypercall buffer", e))?,
        };
        let mut b = Self { map };
        b.bytes_mut().fill(0);
        Ok(b)
    }

    /// The user address to hand to the hypervisor.
    pub fn addr(&self) -> u64 {
        self.map.addr()
    }

    /// The user address of byte `offset` (no bounds check beyond overflow).
    pub fn addr_at(&self, offset: usize) -> u64 {
        self.addr().wrapping_add(offset as u64)
    }

    /// Size in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Never true; present for clippy.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_slice()
    }

    /// The bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.as_mut_slice()
    }

    fn range(&self, offset: usize, n: usize) -> Result<std::ops::Range<usize>> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len() => Ok(offset..end),
            _ => Err(Error::invalid(
                "hypercall buffer",
                format!(
                    "{n} bytes at offset {offset} exceed the {}-byte buffer",
                    self.len()
                ),
            )),
        }
    }

    /// Copy `v` to `offset`.
    pub fn write<T: IntoBytes + Immutable>(&mut self, offset: usize, v: &T) -> Result<()> {
        self.write_slice(offset, core::slice::from_ref(v))
    }

    /// Copy `v` (an array) to `offset`.
    pub fn write_slice<T: IntoBytes + Immutable>(&mut self, offset: usize, v: &[T]) -> Result<()> {
        let src = v.as_bytes();
        let r = self.range(offset, src.len())?;
        self.bytes_mut()[r].copy_from_slice(src);
        Ok(())
    }

    /// Read a `T` at `offset`.
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T> {
        let r = self.range(offset, size_of::<T>())?;
        T::read_from_bytes(&self.bytes()[r])
            .map_err(|_| Error::invalid("hypercall buffer", "short read"))
    }

    /// Read `n` consecutive `T`s at `offset`.
    pub fn read_slice<T: FromBytes>(&self, offset: usize, n: usize) -> Result<Vec<T>> {
        let sz = size_of::<T>();
        let total = n
            .checked_mul(sz)
            .ok_or_else(|| Error::invalid("hypercall buffer", "array too large"))?;
        let r = self.range(offset, total)?;
        let bytes = &self.bytes()[r];
        let mut out = Vec::with_capacity(n);
        for chunk in bytes.chunks_exact(sz.max(1)).take(n) {
            out.push(
                T::read_from_bytes(chunk)
                    .map_err(|_| Error::invalid("hypercall buffer", "short read"))?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_buffer_rounds_up_and_checks_bounds() {
        let Ok(mut b) = HypercallBuf::new(None, 10) else {
            return; // mlock refused (RLIMIT_MEMLOCK): nothing to test here.
        };
        assert_eq!(b.len(), 4096);
        assert!(b.bytes().iter().all(|&x| x == 0));
        b.write(8, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(b.read::<u64>(8).unwrap(), 0x1122_3344_5566_7788);
        b.write_slice(16, &[1u64, 2, 3]).unwrap();
        assert_eq!(b.read_slice::<u64>(16, 3).unwrap(), vec![1, 2, 3]);
        assert!(b.write(4092, &0u64).is_err());
        assert!(b.read::<u64>(usize::MAX - 2).is_err());
        assert!(b.read_slice::<u64>(0, usize::MAX).is_err());
        assert_eq!(b.addr_at(8), b.addr() + 8);
    }
}
