//! Typed addresses and identifiers used across oxen's module boundaries.
//!
//! A bare `u64` never crosses a module boundary: physical addresses, guest
//! physical addresses (IPAs) and virtual addresses are distinct types so that
//! a guest-supplied IPA can never be used as a host physical address by
//! accident. The types are plain `Copy` wrappers with no invariants beyond
//! their meaning, so constructing one is always safe.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

/// log2 of the page size oxen works in (Xen pages are always 4 KiB).
pub const PAGE_SHIFT: u32 = 12;
/// The page size oxen works in.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Round `v` down to a multiple of `align` (a power of two).
pub const fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}

/// Round `v` up to a multiple of `align` (a power of two); `None` on overflow.
pub const fn align_up(v: u64, align: u64) -> Option<u64> {
    match v.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

macro_rules! addr_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// Wrap a raw address.
            pub const fn new(v: u64) -> Self {
                Self(v)
            }
            /// The raw address.
            pub const fn as_u64(self) -> u64 {
                self.0
            }
            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
            /// Round down to `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                Self(align_down(self.0, align))
            }
            /// Round up to `align` (a power of two); `None` on overflow.
            pub const fn align_up(self, align: u64) -> Option<Self> {
                match align_up(self.0, align) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
            /// `self + off`, `None` on overflow.
            pub const fn checked_add(self, off: u64) -> Option<Self> {
                match self.0.checked_add(off) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
            /// `self + off`; panics on overflow (only for hypervisor-computed values).
            pub const fn add(self, off: u64) -> Self {
                Self(self.0 + off)
            }
            /// Offset within the 4 KiB page.
            pub const fn page_offset(self) -> u64 {
                self.0 & (PAGE_SIZE - 1)
            }
            /// The 4 KiB frame number (address >> 12).
            pub const fn frame(self) -> u64 {
                self.0 >> PAGE_SHIFT
            }
            /// The address of 4 KiB frame number `frame`.
            pub const fn from_frame(frame: u64) -> Self {
                Self(frame << PAGE_SHIFT)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

addr_type!(
    /// A host physical address.
    PhysAddr
);
addr_type!(
    /// An intermediate physical address: what a guest believes is physical
    /// (Xen's "guest physical", GFN << 12). Translated by stage 2.
    Ipa
);
addr_type!(
    /// A virtual address (the hypervisor's own, or a guest's stage-1 VA).
    VirtAddr
);

/// A half-open range `[start, start + size)` of some address type.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Range<A> {
    /// First address in the range.
    pub start: A,
    /// Size in bytes.
    pub size: u64,
}

/// A range of host physical memory.
pub type PhysRange = Range<PhysAddr>;
/// A range of guest physical memory.
pub type IpaRange = Range<Ipa>;

macro_rules! range_impl {
    ($a:ident) => {
        impl Range<$a> {
            /// A range of `size` bytes starting at `start`.
            pub const fn new(start: $a, size: u64) -> Self {
                Self { start, size }
            }
            /// One past the last byte (saturating at `u64::MAX`).
            pub const fn end(&self) -> u64 {
                self.start.0.saturating_add(self.size)
            }
            /// Whether `a` lies inside.
            pub const fn contains(&self, a: $a) -> bool {
                a.0 >= self.start.0 && a.0 < self.end()
            }
            /// Whether `[a, a + len)` lies entirely inside (false on overflow).
            pub const fn contains_range(&self, a: $a, len: u64) -> bool {
                match a.0.checked_add(len) {
                    Some(e) => a.0 >= self.start.0 && e <= self.end(),
                    None => false,
                }
            }
            /// Whether the two ranges share at least one byte.
            pub const fn overlaps(&self, other: &Self) -> bool {
                self.size != 0
                    && other.size != 0
                    && self.start.0 < other.end()
                    && other.start.0 < self.end()
            }
        }

        impl fmt::Display for Range<$a> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "[{:#x}-{:#x})", self.start.0, self.end())
            }
        }
    };
}
range_impl!(PhysAddr);
range_impl!(Ipa);
range_impl!(VirtAddr);

/// A domain identifier, as in Xen (`domid_t`): Dom0 is 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[repr(transparent)]
pub struct DomId(pub u16);

impl DomId {
    /// The privileged control domain.
    pub const DOM0: DomId = DomId(0);
    /// Xen's `DOMID_SELF`: "the calling domain" in hypercall arguments.
    pub const SELF: DomId = DomId(0x7FF0);
    /// Xen's `DOMID_IO`.
    pub const IO: DomId = DomId(0x7FF1);
    /// Xen's `DOMID_XEN`.
    pub const XEN: DomId = DomId(0x7FF2);
    /// Xen's `DOMID_INVALID`.
    pub const INVALID: DomId = DomId(0x7FF4);
    /// Highest id a real domain can have (Xen's `DOMID_FIRST_RESERVED - 1`).
    pub const MAX_REAL: u16 = 0x7FEF;
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}

/// A virtual CPU index within its domain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[repr(transparent)]
pub struct VcpuId(pub u32);

impl fmt::Display for VcpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A physical CPU index (position in the boot CPU list, 0 = boot CPU).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[repr(transparent)]
pub struct CpuId(pub u32);

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CPU{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment() {
        assert_eq!(align_down(0x1234, 0x1000), 0x1000);
        assert_eq!(align_up(0x1234, 0x1000), Some(0x2000));
        assert_eq!(align_up(u64::MAX, 0x1000), None);
        assert!(PhysAddr(0x4000_0000).is_aligned(0x20_0000));
        assert_eq!(Ipa(0x4000_1234).frame(), 0x40001);
        assert_eq!(Ipa::from_frame(0x40001), Ipa(0x4000_1000));
    }

    #[test]
    fn ranges() {
        let r = PhysRange::new(PhysAddr(0x1000), 0x2000);
        assert!(r.contains(PhysAddr(0x1000)));
        assert!(r.contains(PhysAddr(0x2fff)));
        assert!(!r.contains(PhysAddr(0x3000)));
        assert!(r.contains_range(PhysAddr(0x2000), 0x1000));
        assert!(!r.contains_range(PhysAddr(0x2000), 0x1001));
        assert!(!r.contains_range(PhysAddr(u64::MAX), 2));
        assert!(r.overlaps(&PhysRange::new(PhysAddr(0x2fff), 1)));
        assert!(!r.overlaps(&PhysRange::new(PhysAddr(0x3000), 1)));
        assert!(!r.overlaps(&PhysRange::new(PhysAddr(0x1000), 0)));
        assert_eq!(format!("{r}"), "[0x1000-0x3000)");
        assert_eq!(format!("{}", DomId(3)), "d3");
    }
}
