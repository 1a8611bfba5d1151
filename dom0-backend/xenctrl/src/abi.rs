//! The Linux `/dev/xen/*` ioctl ABI (Linux 6.1 `include/uapi/xen/privcmd.h`,
//! `evtchn.h`, `drivers/xen/xenbus/xenbus_dev_backend.c`), for arm64/LP64.
//!
//! Every ioctl number is `_IOC(_IOC_NONE, type, nr, sizeof(arg))`: direction
//! "none" with the argument size encoded (the kernel passes a user pointer).
//! Pointers inside the argument structs are carried as `u64` user addresses,
//! which is their layout on every 64-bit Linux. Invariant: each struct is
//! `#[repr(C)]` without implicit padding and its size is asserted.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bits of the generic Linux `_IOC` encoding (arm64 and x86 share it).
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_SIZEMASK: u32 = (1 << 14) - 1;

/// `_IOC(_IOC_NONE, ty, nr, size)` as the kernel computes it.
pub const fn ioc_none(ty: u8, nr: u8, size: usize) -> u32 {
    (((size as u32) & IOC_SIZEMASK) << IOC_SIZESHIFT) | ((ty as u32) << IOC_TYPESHIFT) | nr as u32
}

/// `struct privcmd_hypercall` (48 bytes): the hypercall number and 5 args.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PrivcmdHypercall {
    /// `__HYPERVISOR_*`.
    pub op: u64,
    /// x0..x4.
    pub arg: [u64; 5],
}

/// `struct privcmd_mmapbatch_v2` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PrivcmdMmapBatchV2 {
    /// Number of pages.
    pub num: u32,
    /// Foreign domain.
    pub dom: u16,
    /// Implicit C padding.
    pub _pad: u16,
    /// Start of the privcmd VMA (must cover the whole VMA).
    pub addr: u64,
    /// User pointer to `num` GFNs (`xen_pfn_t`, u64).
    pub arr: u64,
    /// User pointer to `num` `int` errors (out).
    pub err: u64,
}

/// `struct privcmd_mmap_resource` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PrivcmdMmapResource {
    /// Domain owning the resource.
    pub dom: u16,
    /// Implicit C padding.
    pub _pad: u16,
    /// `XENMEM_resource_*`.
    pub r#type: u32,
    /// Resource id.
    pub id: u32,
    /// First frame index.
    pub idx: u32,
    /// Number of frames (IN/OUT: 0 with addr 0 queries the size).
    pub num: u64,
    /// Start of the privcmd VMA (0 for a size query).
    pub addr: u64,
}

/// `IOCTL_PRIVCMD_HYPERCALL`: returns the hypercall's x0.
pub const IOCTL_PRIVCMD_HYPERCALL: u32 = ioc_none(b'P', 0, size_of::<PrivcmdHypercall>());
/// `IOCTL_PRIVCMD_MMAPBATCH_V2`.
pub const IOCTL_PRIVCMD_MMAPBATCH_V2: u32 = ioc_none(b'P', 4, size_of::<PrivcmdMmapBatchV2>());
/// `IOCTL_PRIVCMD_RESTRICT` (argument: a `domid_t`).
pub const IOCTL_PRIVCMD_RESTRICT: u32 = ioc_none(b'P', 6, size_of::<u16>());
/// `IOCTL_PRIVCMD_MMAP_RESOURCE`.
pub const IOCTL_PRIVCMD_MMAP_RESOURCE: u32 = ioc_none(b'P', 7, size_of::<PrivcmdMmapResource>());

/// `struct ioctl_evtchn_bind_virq`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindVirqArg {
    /// `VIRQ_*`.
    pub virq: u32,
}

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindInterdomainArg {
    /// Domain owning the unbound port.
    pub remote_domain: u32,
    /// The unbound port in `remote_domain`.
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindUnboundArg {
    /// Domain allowed to bind to the new port.
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_unbind` / `ioctl_evtchn_notify`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnPortArg {
    /// A local port bound through this handle.
    pub port: u32,
}

/// `IOCTL_EVTCHN_BIND_VIRQ`: returns the local port.
pub const IOCTL_EVTCHN_BIND_VIRQ: u32 = ioc_none(b'E', 0, size_of::<EvtchnBindVirqArg>());
/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: returns the local port.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 =
    ioc_none(b'E', 1, size_of::<EvtchnBindInterdomainArg>());
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: returns the local port.
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u32 =
    ioc_none(b'E', 2, size_of::<EvtchnBindUnboundArg>());
/// `IOCTL_EVTCHN_UNBIND`.
pub const IOCTL_EVTCHN_UNBIND: u32 = ioc_none(b'E', 3, size_of::<EvtchnPortArg>());
/// `IOCTL_EVTCHN_NOTIFY`.
pub const IOCTL_EVTCHN_NOTIFY: u32 = ioc_none(b'E', 4, size_of::<EvtchnPortArg>());
/// `IOCTL_EVTCHN_RESET`: unbind every port of the handle.
pub const IOCTL_EVTCHN_RESET: u32 = ioc_none(b'E', 5, 0);

/// `IOCTL_XENBUS_BACKEND_EVTCHN`: returns Dom0's xenstore event channel.
pub const IOCTL_XENBUS_BACKEND_EVTCHN: u32 = ioc_none(b'B', 0, 0);
/// `IOCTL_XENBUS_BACKEND_SETUP`: argument = stub domid, returns a new port.
pub const IOCTL_XENBUS_BACKEND_SETUP: u32 = ioc_none(b'B', 1, 0);

/// Xen page size (`XEN_PAGE_SIZE`); the privcmd ABI counts in these.
pub const XEN_PAGE_SIZE: usize = 4096;

const _: () = assert!(size_of::<PrivcmdHypercall>() == 48);
const _: () = assert!(size_of::<PrivcmdMmapBatchV2>() == 32);
const _: () = assert!(offset_of!(PrivcmdMmapBatchV2, dom) == 4);
const _: () = assert!(offset_of!(PrivcmdMmapBatchV2, addr) == 8);
const _: () = assert!(offset_of!(PrivcmdMmapBatchV2, arr) == 16);
const _: () = assert!(offset_of!(PrivcmdMmapBatchV2, err) == 24);
const _: () = assert!(size_of::<PrivcmdMmapResource>() == 32);
const _: () = assert!(offset_of!(PrivcmdMmapResource, r#type) == 4);
const _: () = assert!(offset_of!(PrivcmdMmapResource, id) == 8);
const _: () = assert!(offset_of!(PrivcmdMmapResource, idx) == 12);
const _: () = assert!(offset_of!(PrivcmdMmapResource, num) == 16);
const _: () = assert!(offset_of!(PrivcmdMmapResource, addr) == 24);
const _: () = assert!(size_of::<EvtchnBindInterdomainArg>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privcmd_ioctl_numbers_match_linux_uapi() {
        assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
        assert_eq!(IOCTL_PRIVCMD_MMAPBATCH_V2, 0x0020_5004);
        assert_eq!(IOCTL_PRIVCMD_RESTRICT, 0x0002_5006);
        assert_eq!(IOCTL_PRIVCMD_MMAP_RESOURCE, 0x0020_5007);
    }

    #[test]
    fn evtchn_and_xenbus_ioctl_numbers_match_linux_uapi() {
        assert_eq!(IOCTL_EVTCHN_BIND_VIRQ, 0x0004_4500);
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_BIND_UNBOUND_PORT, 0x0004_4502);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
        assert_eq!(IOCTL_EVTCHN_RESET, 0x0000_4505);
        assert_eq!(IOCTL_XENBUS_BACKEND_EVTCHN, 0x0000_4200);
        assert_eq!(IOCTL_XENBUS_BACKEND_SETUP, 0x0000_4201);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ioc_none_agrees_with_nix() {
        let n = nix::request_code_none!(b'B', 0);
        assert_eq!(i128::from(ioc_none(b'B', 0, 0)), i128::from(n));
    }

    #[test]
    fn mmapbatch_bytes() {
        let m = PrivcmdMmapBatchV2 {
            num: 2,
            dom: 5,
            _pad: 0,
            addr: 0x7f00_0000_0000,
            arr: 0x1000,
            err: 0x2000,
        };
        let b = m.as_bytes();
        assert_eq!(&b[0..4], &2u32.to_le_bytes());
        assert_eq!(&b[4..6], &5u16.to_le_bytes());
        assert_eq!(&b[24..32], &0x2000u64.to_le_bytes());
    }
}
