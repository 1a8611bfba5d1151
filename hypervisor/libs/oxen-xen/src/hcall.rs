//! Argument rules of the small hypercalls, as pure functions.
//!
//! The hypervisor's hypercall glue reads guest structs and touches stage 2
//! and guest memory; the decisions it makes on the values (which feature
//! bits a domain sees, whether a `vcpu_info` area is acceptable, which
//! domain an HVM param op acts on, how a batch is split for a
//! continuation, ...) live here so they can be tested on the host. Every
//! function follows Xen 4.17 on ARM and returns Xen's errno.

use core::mem::{offset_of, size_of};
use core::ops::Range;

use oxen_types::DomId;
use xen_abi::Errno;
use xen_abi::features::{
    XENFEAT_ARM_SMCCC_SUPPORTED, XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENFEAT_DIRECT_MAPPED,
    XENFEAT_DOM0, XENFEAT_MEMORY_OP_VNODE_SUPPORTED, XENFEAT_NOT_DIRECT_MAPPED,
    XENFEAT_WRITABLE_PAGE_TABLES,
};
use xen_abi::hvm::HVM_NR_PARAMS;
use xen_abi::shared_info::VcpuInfo;

/// The `zerocopy` traits the ABI structs implement, re-exported so the
/// hypervisor can read and write them as guest bytes without a dependency
/// of its own.
pub use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `struct sched_poll` (24 bytes): the argument of `SCHEDOP_poll`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedPoll {
    /// Guest handle of an `evtchn_port_t` array.
    pub ports: u64,
    /// Number of ports.
    pub nr_ports: u32,
    /// Implicit C padding.
    pub _pad: u32,
    /// Absolute timeout (system time, ns); 0 = none.
    pub timeout: u64,
}

/// The head of `struct xen_platform_op` with the `xenpf_settime64` member
/// of its union (32 of its 136 bytes; nothing else is read).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PlatformOpSettime64 {
    /// `XENPF_*`.
    pub cmd: u32,
    /// Must be [`XENPF_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// Wall-clock seconds.
    pub secs: u64,
    /// Nanoseconds.
    pub nsecs: u32,
    /// Must be zero.
    pub mbz: u32,
    /// System time the wall clock corresponds to (ns).
    pub system_time: u64,
}

const _: () = assert!(size_of::<SchedPoll>() == 24);
const _: () = assert!(offset_of!(SchedPoll, timeout) == 16);
const _: () = assert!(size_of::<PlatformOpSettime64>() == 32);
const _: () = assert!(offset_of!(PlatformOpSettime64, mbz) == 20);
const _: () = assert!(offset_of!(PlatformOpSettime64, system_time) == 24);

/// Page size of the Xen ABI.
pub const XEN_PAGE_SIZE: u64 = 4096;

/// `XENVER_get_features` submap 0 as Xen 4.17 computes it for an ARM
/// guest (`xen/common/kernel.c`): every ARM guest is auto-translated
/// (`writable_page_tables`, `auto_translated_physmap`), SMCCC is always
/// there, vnode memory ops are advertised; the hardware domain gets
/// `XENFEAT_dom0`; a 1:1 domain gets `direct_mapped`, any other
/// `not_direct_mapped`.
pub const fn features_submap0(hardware_domain: bool, direct_mapped: bool) -> u32 {
    let mut m = (1 << XENFEAT_MEMORY_OP_VNODE_SUPPORTED)
        | (1 << XENFEAT_WRITABLE_PAGE_TABLES)
        | (1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP)
        | (1 << XENFEAT_ARM_SMCCC_SUPPORTED);
    if hardware_domain {
        m |= 1 << XENFEAT_DOM0;
    }
    if direct_mapped {
        m |= 1 << XENFEAT_DIRECT_MAPPED;
    } else {
        m |= 1 << XENFEAT_NOT_DIRECT_MAPPED;
    }
    m
}

/// Size of `struct vcpu_info` on arm64.
pub const VCPU_INFO_SIZE: u64 = core::mem::size_of::<VcpuInfo>() as u64;

/// `VCPUOP_register_vcpu_info`: the area must lie inside one page (Xen:
/// `offset > PAGE_SIZE - sizeof(vcpu_info)` is `-EINVAL`) and be 8-byte
/// aligned (the selector is a 64-bit word the hypervisor updates
/// atomically; Xen checks the type's alignment too). `rsvd` is ignored like
/// Xen does.
pub fn check_vcpu_info_offset(offset: u32) -> Result<(), Errno> {
    let off = u64::from(offset);
    if off > XEN_PAGE_SIZE - VCPU_INFO_SIZE || off % 8 != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The domain an operation with `XSM_TARGET` semantics acts on (HVM params,
/// grant table queries, memory reservations of another domain):
/// `DOMID_SELF` or the caller's own id is the caller; another domain needs
/// the privileged (control) domain, else `-EPERM`. Ids that cannot name a
/// domain (`DOMID_IO`, `DOMID_XEN`, ...) are `-ESRCH`. The caller still
/// checks the domain exists (`-ESRCH`).
pub fn target_domain(caller: DomId, privileged: bool, dom: DomId) -> Result<DomId, Errno> {
    if dom == DomId::SELF || dom == caller {
        Ok(caller)
    } else if dom.0 > DomId::MAX_REAL {
        Err(Errno::ESRCH)
    } else if privileged {
        Ok(dom)
    } else {
        Err(Errno::EPERM)
    }
}

/// `HVMOP_get_param`/`set_param`: the index must be below `HVM_NR_PARAMS`
/// (`-EINVAL`). Returns it as a table index.
pub fn check_hvm_param(index: u32) -> Result<usize, Errno> {
    if index >= HVM_NR_PARAMS {
        return Err(Errno::EINVAL);
    }
    Ok(index as usize)
}

/// `XENPF_INTERFACE_VERSION`.
pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;
/// `XENPF_settime32`.
pub const XENPF_SETTIME32: u32 = 17;
/// `XENPF_settime64`.
pub const XENPF_SETTIME64: u32 = 62;

/// What Xen/ARM's `platform_op` answers (`xen/arch/arm/platform_hypercall.c`):
/// a wrong interface version is `-EACCES`, a non-control domain `-EPERM`,
/// `XENPF_settime64` with a non-zero `mbz` `-EINVAL`, else 0; every other
/// command `-ENOSYS`. `mbz` is the settime64 field (ignored for others).
pub fn platform_op_result(
    interface_version: u32,
    privileged: bool,
    cmd: u32,
    mbz: u32,
) -> Result<(), Errno> {
    if interface_version != XENPF_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    if !privileged {
        return Err(Errno::EPERM);
    }
    match cmd {
        XENPF_SETTIME64 if mbz == 0 => Ok(()),
        XENPF_SETTIME64 => Err(Errno::EINVAL),
        _ => Err(Errno::ENOSYS),
    }
}

/// Largest `extent_order` oxen accepts in a guest's own reservations
/// (single pages: Linux's balloon and unpopulated-page allocator use order
/// 0 on 4 KiB kernels).
pub const MAX_EXTENT_ORDER: u32 = 0;

/// Largest `extent_order` of the control domain's `populate_physmap` for
/// another domain (Xen's `CONFIG_CTLDOM_MAX_ORDER`): libxc asks 1 GiB
/// (order 18) first and falls back to 2 MiB (9), then 4 KiB (0).
pub const CTLDOM_MAX_ORDER: u32 = 12;

/// Extents handled per `memory_op` call before a continuation.
pub const MEMOP_BATCH: u64 = 512;

/// The extents a reservation call handles now: `start..end` of
/// `nr_extents`, at most [`MEMOP_BATCH`] of them. `None` means "nothing to
/// do, return `start`" (Xen: a start at or beyond the end, or an order
/// above `max_order`, returns the start extent unchanged).
pub fn reservation_window(
    start: u64,
    nr_extents: u64,
    extent_order: u32,
    max_order: u32,
) -> Option<Range<u64>> {
    if extent_order > max_order || start >= nr_extents {
        return None;
    }
    let end = nr_extents.min(start.saturating_add(MEMOP_BATCH));
    Some(start..end)
}

/// Elements of a batched op (grant table) handled per call before a
/// continuation.
pub const BATCH_CHUNK: u32 = 128;

/// How a batch of `count` elements of `elem_size` bytes at guest address
/// `ptr` proceeds: the number handled now, and, if more remain, the
/// `(ptr, count)` of the continuation (the guest re-issues the hypercall
/// with these). `-EINVAL` for a count Xen rejects (`(int)count < 0`) and
/// `-EFAULT` if the array wraps the address space.
pub fn batch_split(
    ptr: u64,
    count: u64,
    elem_size: u64,
) -> Result<(u32, Option<(u64, u64)>), Errno> {
    let count = u32::try_from(count).map_err(|_| Errno::EINVAL)?;
    if count > i32::MAX as u32 {
        return Err(Errno::EINVAL);
    }
    ptr.checked_add(u64::from(count) * elem_size)
        .ok_or(Errno::EFAULT)?;
    let now = count.min(BATCH_CHUNK);
    let rest = count - now;
    if rest == 0 {
        Ok((now, None))
    } else {
        Ok((
            now,
            Some((ptr + u64::from(now) * elem_size, u64::from(rest))),
        ))
    }
}

/// `SCHEDOP_poll`: how many ports are read from the guest (Xen: more than
/// 128 is `-EINVAL`; each port is then checked against the domain's limit).
pub fn check_poll_ports(nr_ports: u32) -> Result<usize, Errno> {
    if nr_ports > 128 {
        return Err(Errno::EINVAL);
    }
    Ok(nr_ports as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features() {
        let dom0 = features_submap0(true, true);
        assert_ne!(dom0 & (1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP), 0);
        assert_ne!(dom0 & (1 << XENFEAT_DOM0), 0);
        assert_ne!(dom0 & (1 << XENFEAT_DIRECT_MAPPED), 0);
        assert_eq!(dom0 & (1 << XENFEAT_NOT_DIRECT_MAPPED), 0);
        // Xen 4.17 on ARM: bits 0, 2, 11, 13, 14, 17 for a 1:1 Dom0.
        assert_eq!(dom0, 0x0002_6805);
        let domu = features_submap0(false, false);
        assert_eq!(domu & (1 << XENFEAT_DOM0), 0);
        assert_eq!(domu, 0x0001_6005);
    }

    #[test]
    fn vcpu_info_offsets() {
        assert_eq!(check_vcpu_info_offset(0), Ok(()));
        assert_eq!(check_vcpu_info_offset(4096 - 48), Ok(()));
        assert_eq!(check_vcpu_info_offset(4096 - 40), Err(Errno::EINVAL));
        assert_eq!(check_vcpu_info_offset(4), Err(Errno::EINVAL));
        assert_eq!(check_vcpu_info_offset(u32::MAX), Err(Errno::EINVAL));
    }

    #[test]
    fn targets() {
        let d1 = DomId(1);
        assert_eq!(target_domain(d1, false, DomId::SELF), Ok(d1));
        assert_eq!(target_domain(d1, false, d1), Ok(d1));
        assert_eq!(target_domain(d1, false, DomId(2)), Err(Errno::EPERM));
        assert_eq!(target_domain(DomId(0), true, DomId(2)), Ok(DomId(2)));
        assert_eq!(target_domain(DomId(0), true, DomId::XEN), Err(Errno::ESRCH));
    }

    #[test]
    fn hvm_params() {
        assert_eq!(check_hvm_param(2), Ok(2));
        assert_eq!(check_hvm_param(HVM_NR_PARAMS), Err(Errno::EINVAL));
    }

    #[test]
    fn platform_op() {
        let v = XENPF_INTERFACE_VERSION;
        assert_eq!(platform_op_result(v, true, XENPF_SETTIME64, 0), Ok(()));
        assert_eq!(
            platform_op_result(v, true, XENPF_SETTIME64, 1),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            platform_op_result(v, false, XENPF_SETTIME64, 0),
            Err(Errno::EPERM)
        );
        assert_eq!(
            platform_op_result(v - 1, true, XENPF_SETTIME64, 0),
            Err(Errno::EACCES)
        );
        assert_eq!(
            platform_op_result(v, true, XENPF_SETTIME32, 0),
            Err(Errno::ENOSYS)
        );
    }

    #[test]
    fn reservations() {
        assert_eq!(reservation_window(0, 10, 0, MAX_EXTENT_ORDER), Some(0..10));
        assert_eq!(reservation_window(3, 10, 0, MAX_EXTENT_ORDER), Some(3..10));
        assert_eq!(reservation_window(10, 10, 0, MAX_EXTENT_ORDER), None);
        assert_eq!(reservation_window(0, 10, 1, MAX_EXTENT_ORDER), None);
        assert_eq!(
            reservation_window(0, 128, 9, CTLDOM_MAX_ORDER),
            Some(0..128)
        );
        assert_eq!(reservation_window(0, 1, 18, CTLDOM_MAX_ORDER), None);
        assert_eq!(
            reservation_window(0, u64::MAX, 0, MAX_EXTENT_ORDER),
            Some(0..MEMOP_BATCH)
        );
        assert_eq!(
            reservation_window(u64::MAX - 1, u64::MAX, 0, MAX_EXTENT_ORDER),
            Some(u64::MAX - 1..u64::MAX)
        );
    }

    #[test]
    fn batches() {
        assert_eq!(batch_split(0x1000, 3, 32), Ok((3, None)));
        assert_eq!(
            batch_split(0x1000, 300, 32),
            Ok((BATCH_CHUNK, Some((0x1000 + 128 * 32, 172))))
        );
        assert_eq!(batch_split(0x1000, 0, 32), Ok((0, None)));
        assert_eq!(batch_split(0, 1 << 31, 32), Err(Errno::EINVAL));
        assert_eq!(batch_split(0, u64::MAX, 32), Err(Errno::EINVAL));
        assert_eq!(batch_split(u64::MAX - 8, 1, 32), Err(Errno::EFAULT));
    }

    #[test]
    fn structs_from_guest_bytes() {
        let mut raw = [0u8; 32];
        raw[0..4].copy_from_slice(&XENPF_SETTIME64.to_le_bytes());
        raw[4..8].copy_from_slice(&XENPF_INTERFACE_VERSION.to_le_bytes());
        raw[8..16].copy_from_slice(&1_700_000_000u64.to_le_bytes());
        raw[20..24].copy_from_slice(&7u32.to_le_bytes());
        let op = PlatformOpSettime64::read_from_bytes(&raw).unwrap();
        assert_eq!(op.secs, 1_700_000_000);
        assert_eq!(
            platform_op_result(op.interface_version, true, op.cmd, op.mbz),
            Err(Errno::EINVAL)
        );
        let mut p = [0u8; 24];
        p[8..12].copy_from_slice(&3u32.to_le_bytes());
        p[16..24].copy_from_slice(&5u64.to_le_bytes());
        let sp = SchedPoll::read_from_bytes(&p).unwrap();
        assert_eq!((sp.nr_ports, sp.timeout), (3, 5));
    }

    #[test]
    fn poll_ports() {
        assert_eq!(check_poll_ports(3), Ok(3));
        assert_eq!(check_poll_ports(128), Ok(128));
        assert_eq!(check_poll_ports(129), Err(Errno::EINVAL));
    }
}
