//! [`ForeignMap`]: pages of another domain mapped into this process
//! (libxenforeignmemory's role) through `/dev/xen/privcmd`.
//!
//! A map is one contiguous privcmd VMA filled by one `IOCTL_PRIVCMD_MMAPBATCH_V2`
//! (by GFN) or `IOCTL_PRIVCMD_MMAP_RESOURCE` (e.g. grant table frames).
//! Invariant: a `ForeignMap` only exists when every page was mapped; any
//! per-page failure unmaps the whole VMA and reports the first failing GFN.
//! The foreign domain may change the memory at any time: treat contents as
//! hostile input and use [`ForeignMap::atomic_u32`] for shared ring indexes.

use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::sync::atomic::AtomicU32;

use xen_abi::Errno;

use crate::abi::XEN_PAGE_SIZE;
use crate::error::{Error, Result};
use crate::sys::{self, Mapping};
use crate::xc::Xc;

/// Largest number of pages one map may have (1 GiB).
pub const MAX_PAGES: usize = 1 << 18;

/// A contiguous mapping of foreign pages; unmapped (and the foreign pages
/// released) on drop.
#[derive(Debug)]
pub struct ForeignMap {
    map: Mapping,
    domid: u16,
}

fn check_count(op: &'static str, n: usize) -> Result<usize> {
    if n == 0 || n > MAX_PAGES {
        return Err(Error::invalid(
            op,
            format!("{n} pages (must be 1..={MAX_PAGES})"),
        ));
    }
    Ok(n * XEN_PAGE_SIZE)
}

/// The first page error of an MMAPBATCH_V2 `err` array, as (index, errno).
pub(crate) fn first_page_error(errs: &[i32]) -> Option<(usize, Errno)> {
    errs.iter()
        .enumerate()
        .find(|(_, e)| **e != 0)
        .map(|(i, &e)| (i, Errno::from_ret(i64::from(e)).unwrap_or(Errno::EINVAL)))
}

impl ForeignMap {
    /// Map the pages at `gfns` of `domid`, in order, read-write.
    pub fn map(xc: &Xc, domid: u16, gfns: &[u64]) -> Result<Self> {
        const OP: &str = "privcmd mmapbatch";
        let len = check_count(OP, gfns.len())?;
        let privcmd = xc.privcmd();
        let map = Mapping::shared(privcmd.as_fd(), len, 0)
            .map_err(|e| Error::os("mmap /dev/xen/privcmd", e))?;
        let mut errs = vec![0i32; gfns.len()];
        let r = sys::mmapbatch_v2(privcmd, &map, domid, gfns, &mut errs);
        if let Some((i, errno)) = first_page_error(&errs) {
            return Err(Error::ForeignPage {
                domid,
                gfn: gfns[i],
                errno,
            });
        }
        if let Err(e) = r {
            return Err(match e.raw_os_error() {
                Some(raw) => match Errno::from_ret(-i64::from(raw)) {
                    Some(errno) => Error::Xen { op: OP, errno },
                    None => Error::os(OP, e),
                },
                None => Error::os(OP, e),
            });
        }
        Ok(Self { map, domid })
    }

    /// Map `n` frames of resource `type`/`id` of `domid` starting at frame
    /// `idx` (`XENMEM_resource_grant_table`, id 0 = shared frames).
    pub fn map_resource(
        xc: &Xc,
        domid: u16,
        r#type: u32,
        id: u32,
        idx: u32,
        n: usize,
    ) -> Result<Self> {
        const OP: &str = "privcmd mmap_resource";
        let len = check_count(OP, n)?;
        let privcmd = xc.privcmd();
        let map = Mapping::shared(privcmd.as_fd(), len, 0)
            .map_err(|e| Error::os("mmap /dev/xen/privcmd", e))?;
        sys::mmap_resource(privcmd, Some(&map), domid, r#type, id, idx).map_err(|e| {
            match e
                .raw_os_error()
                .and_then(|raw| Errno::from_ret(-i64::from(raw)))
            {
                Some(errno) => Error::Xen { op: OP, errno },
                None => Error::os(OP, e),
            }
        })?;
        Ok(Self { map, domid })
    }

    /// Number of frames of a resource (size query).
    pub fn resource_size(xc: &Xc, domid: u16, r#type: u32, id: u32) -> Result<u64> {
        const OP: &str = "privcmd mmap_resource";
        sys::mmap_resource(xc.privcmd(), None, domid, r#type, id, 0).map_err(|e| {
            match e
                .raw_os_error()
                .and_then(|raw| Errno::from_ret(-i64::from(raw)))
            {
                Some(errno) => Error::Xen { op: OP, errno },
                None => Error::os(OP, e),
            }
        })
    }

    /// The foreign domain.
    pub fn domid(&self) -> u16 {
        self.domid
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.map.len() / XEN_PAGE_SIZE
    }

    /// The aligned u32 at `offset` as an atomic (ring indexes); `None` if out
    /// of range or misaligned.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        self.map.atomic_u32(offset)
    }
}

impl Deref for ForeignMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_slice()
    }
}

impl DerefMut for ForeignMap {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.map.as_mut_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_errors_are_found_and_decoded() {
        assert_eq!(first_page_error(&[0, 0, 0]), None);
        assert_eq!(first_page_error(&[0, -22, -2]), Some((1, Errno::EINVAL)));
        assert_eq!(first_page_error(&[-2]), Some((0, Errno::ENOENT)));
        // A value that is not an errno still reports the page.
        assert_eq!(first_page_error(&[0, 0, -9999]), Some((2, Errno::EINVAL)));
    }

    #[test]
    fn page_counts_are_bounded() {
        assert!(check_count("x", 0).is_err());
        assert!(check_count("x", MAX_PAGES + 1).is_err());
        assert_eq!(check_count("x", 2).unwrap(), 8192);
    }
}
