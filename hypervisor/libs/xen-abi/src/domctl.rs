//! Toolstack domain control (`domctl.h`, Xen 4.17, interface version 0x15):
//! `XEN_DOMCTL_*` numbers and the arm64 layouts of `struct xen_domctl` and its
//! payloads (TSA §2.2–2.4), plus the reserved domain ids.
//!
//! Invariants: every struct is `#[repr(C)]`, has no implicit padding (pads
//! are named fields) and carries size and offset assertions computed from the
//! 4.17 headers for arm64. Guest handles (`XEN_GUEST_HANDLE_64`) are plain
//! `u64` addresses. The 128-byte union `u` of `xen_domctl` is raw bytes; the
//! typed accessors check at compile time that a payload fits.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17; a mismatch gives -EACCES.
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

/// First reserved domain id (`DOMID_FIRST_RESERVED`); also `DOMID_SELF`.
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;
/// `DOMID_SELF`: the calling domain.
pub const DOMID_SELF: u16 = 0x7FF0;
/// `DOMID_IO`: owner of I/O memory.
pub const DOMID_IO: u16 = 0x7FF1;
/// `DOMID_XEN`: the hypervisor itself.
pub const DOMID_XEN: u16 = 0x7FF2;
/// `DOMID_COW`: copy-on-write shared pages.
pub const DOMID_COW: u16 = 0x7FF3;
/// `DOMID_INVALID`.
pub const DOMID_INVALID: u16 = 0x7FF4;
/// `DOMID_IDLE`: the idle domain.
pub const DOMID_IDLE: u16 = 0x7FFF;

/// `XEN_DOMCTL_createdomain`: `domain` 0 or ≥ `DOMID_FIRST_RESERVED` asks
/// Xen to pick an id; the chosen id is written back into `domain`.
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// `XEN_DOMCTL_destroydomain`.
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// `XEN_DOMCTL_pausedomain`.
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// `XEN_DOMCTL_unpausedomain`.
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// `XEN_DOMCTL_getdomaininfo`: first domain with id ≥ `domain`.
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// `XEN_DOMCTL_setvcpuaffinity`.
pub const XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9;
/// `XEN_DOMCTL_shadow_op`.
pub const XEN_DOMCTL_SHADOW_OP: u32 = 10;
/// `XEN_DOMCTL_max_mem`.
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// `XEN_DOMCTL_setvcpucontext`.
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// `XEN_DOMCTL_getvcpucontext`.
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// `XEN_DOMCTL_getvcpuinfo`.
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
/// `XEN_DOMCTL_max_vcpus`.
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// `XEN_DOMCTL_scheduler_op`.
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;
/// `XEN_DOMCTL_setdomainhandle`.
pub const XEN_DOMCTL_SETDOMAINHANDLE: u32 = 17;
/// `XEN_DOMCTL_setdebugging`.
pub const XEN_DOMCTL_SETDEBUGGING: u32 = 18;
/// `XEN_DOMCTL_irq_permission`.
pub const XEN_DOMCTL_IRQ_PERMISSION: u32 = 19;
/// `XEN_DOMCTL_iomem_permission`.
pub const XEN_DOMCTL_IOMEM_PERMISSION: u32 = 20;
/// `XEN_DOMCTL_ioport_permission` (x86).
pub const XEN_DOMCTL_IOPORT_PERMISSION: u32 = 21;
/// `XEN_DOMCTL_hypercall_init` (x86).
pub const XEN_DOMCTL_HYPERCALL_INIT: u32 = 22;
/// `XEN_DOMCTL_settimeoffset`.
pub const XEN_DOMCTL_SETTIMEOFFSET: u32 = 24;
/// `XEN_DOMCTL_getvcpuaffinity`.
pub const XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25;
/// `XEN_DOMCTL_resumedomain`.
pub const XEN_DOMCTL_RESUMEDOMAIN: u32 = 27;
/// `XEN_DOMCTL_sendtrigger`.
pub const XEN_DOMCTL_SENDTRIGGER: u32 = 28;
/// `XEN_DOMCTL_subscribe`.
pub const XEN_DOMCTL_SUBSCRIBE: u32 = 29;
/// `XEN_DOMCTL_gethvmcontext`.
pub const XEN_DOMCTL_GETHVMCONTEXT: u32 = 33;
/// `XEN_DOMCTL_sethvmcontext`.
pub const XEN_DOMCTL_SETHVMCONTEXT: u32 = 34;
/// `XEN_DOMCTL_set_address_size`.
pub const XEN_DOMCTL_SET_ADDRESS_SIZE: u32 = 35;
/// `XEN_DOMCTL_get_address_size`.
pub const XEN_DOMCTL_GET_ADDRESS_SIZE: u32 = 36;
/// `XEN_DOMCTL_assign_device`.
pub const XEN_DOMCTL_ASSIGN_DEVICE: u32 = 37;
/// `XEN_DOMCTL_bind_pt_irq`.
pub const XEN_DOMCTL_BIND_PT_IRQ: u32 = 38;
/// `XEN_DOMCTL_memory_mapping`.
pub const XEN_DOMCTL_MEMORY_MAPPING: u32 = 39;
/// `XEN_DOMCTL_ioport_mapping` (x86).
pub const XEN_DOMCTL_IOPORT_MAPPING: u32 = 40;
/// `XEN_DOMCTL_set_ext_vcpucontext` (x86).
pub const XEN_DOMCTL_SET_EXT_VCPUCONTEXT: u32 = 42;
/// `XEN_DOMCTL_get_ext_vcpucontext` (x86).
pub const XEN_DOMCTL_GET_EXT_VCPUCONTEXT: u32 = 43;
/// `XEN_DOMCTL_test_assign_device`.
pub const XEN_DOMCTL_TEST_ASSIGN_DEVICE: u32 = 45;
/// `XEN_DOMCTL_set_target`.
pub const XEN_DOMCTL_SET_TARGET: u32 = 46;
/// `XEN_DOMCTL_deassign_device`.
pub const XEN_DOMCTL_DEASSIGN_DEVICE: u32 = 47;
/// `XEN_DOMCTL_unbind_pt_irq`.
pub const XEN_DOMCTL_UNBIND_PT_IRQ: u32 = 48;
/// `XEN_DOMCTL_get_device_group`.
pub const XEN_DOMCTL_GET_DEVICE_GROUP: u32 = 50;
/// `XEN_DOMCTL_debug_op`.
pub const XEN_DOMCTL_DEBUG_OP: u32 = 54;
/// `XEN_DOMCTL_gethvmcontext_partial`.
pub const XEN_DOMCTL_GETHVMCONTEXT_PARTIAL: u32 = 55;
/// `XEN_DOMCTL_vm_event_op`.
pub const XEN_DOMCTL_VM_EVENT_OP: u32 = 56;
/// `XEN_DOMCTL_mem_sharing_op`.
pub const XEN_DOMCTL_MEM_SHARING_OP: u32 = 57;
/// `XEN_DOMCTL_disable_migrate`.
pub const XEN_DOMCTL_DISABLE_MIGRATE: u32 = 58;
/// `XEN_DOMCTL_gettscinfo`.
pub const XEN_DOMCTL_GETTSCINFO: u32 = 59;
/// `XEN_DOMCTL_settscinfo`.
pub const XEN_DOMCTL_SETTSCINFO: u32 = 60;
/// `XEN_DOMCTL_getpageframeinfo3`.
pub const XEN_DOMCTL_GETPAGEFRAMEINFO3: u32 = 61;
/// `XEN_DOMCTL_setvcpuextstate`.
pub const XEN_DOMCTL_SETVCPUEXTSTATE: u32 = 62;
/// `XEN_DOMCTL_getvcpuextstate`.
pub const XEN_DOMCTL_GETVCPUEXTSTATE: u32 = 63;
/// `XEN_DOMCTL_set_access_required`.
pub const XEN_DOMCTL_SET_ACCESS_REQUIRED: u32 = 64;
/// `XEN_DOMCTL_audit_p2m`.
pub const XEN_DOMCTL_AUDIT_P2M: u32 = 65;
/// `XEN_DOMCTL_set_virq_handler`.
pub const XEN_DOMCTL_SET_VIRQ_HANDLER: u32 = 66;
/// `XEN_DOMCTL_set_broken_page_p2m`.
pub const XEN_DOMCTL_SET_BROKEN_PAGE_P2M: u32 = 67;
/// `XEN_DOMCTL_setnodeaffinity`.
pub const XEN_DOMCTL_SETNODEAFFINITY: u32 = 68;
/// `XEN_DOMCTL_getnodeaffinity`.
pub const XEN_DOMCTL_GETNODEAFFINITY: u32 = 69;
/// `XEN_DOMCTL_cacheflush`.
pub const XEN_DOMCTL_CACHEFLUSH: u32 = 71;
/// `XEN_DOMCTL_get_vcpu_msrs` (x86).
pub const XEN_DOMCTL_GET_VCPU_MSRS: u32 = 72;
/// `XEN_DOMCTL_set_vcpu_msrs` (x86).
pub const XEN_DOMCTL_SET_VCPU_MSRS: u32 = 73;
/// `XEN_DOMCTL_setvnumainfo`.
pub const XEN_DOMCTL_SETVNUMAINFO: u32 = 74;
/// `XEN_DOMCTL_psr_cmt_op`.
pub const XEN_DOMCTL_PSR_CMT_OP: u32 = 75;
/// `XEN_DOMCTL_monitor_op`.
pub const XEN_DOMCTL_MONITOR_OP: u32 = 77;
/// `XEN_DOMCTL_psr_alloc`.
pub const XEN_DOMCTL_PSR_ALLOC: u32 = 78;
/// `XEN_DOMCTL_soft_reset`.
pub const XEN_DOMCTL_SOFT_RESET: u32 = 79;
/// `XEN_DOMCTL_vuart_op`.
pub const XEN_DOMCTL_VUART_OP: u32 = 81;
/// `XEN_DOMCTL_get_cpu_policy`.
pub const XEN_DOMCTL_GET_CPU_POLICY: u32 = 82;
/// `XEN_DOMCTL_set_cpu_policy`.
pub const XEN_DOMCTL_SET_CPU_POLICY: u32 = 83;
/// `XEN_DOMCTL_vmtrace_op`.
pub const XEN_DOMCTL_VMTRACE_OP: u32 = 84;
/// `XEN_DOMCTL_get_paging_mempool_size`.
pub const XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE: u32 = 85;
/// `XEN_DOMCTL_set_paging_mempool_size`.
pub const XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE: u32 = 86;
/// `XEN_DOMCTL_gdbsx_guestmemio`.
pub const XEN_DOMCTL_GDBSX_GUESTMEMIO: u32 = 1000;
/// `XEN_DOMCTL_gdbsx_pausevcpu`.
pub const XEN_DOMCTL_GDBSX_PAUSEVCPU: u32 = 1001;
/// `XEN_DOMCTL_gdbsx_unpausevcpu`.
pub const XEN_DOMCTL_GDBSX_UNPAUSEVCPU: u32 = 1002;
/// `XEN_DOMCTL_gdbsx_domstatus`.
pub const XEN_DOMCTL_GDBSX_DOMSTATUS: u32 = 1003;

/// Name of a domctl command, for log lines and error messages; `None` if
/// unknown.
pub const fn cmd_name(cmd: u32) -> Option<&'static str> {
    Some(match cmd {
        XEN_DOMCTL_CREATEDOMAIN => "createdomain",
        XEN_DOMCTL_DESTROYDOMAIN => "destroydomain",
        XEN_DOMCTL_PAUSEDOMAIN => "pausedomain",
        XEN_DOMCTL_UNPAUSEDOMAIN => "unpausedomain",
        XEN_DOMCTL_GETDOMAININFO => "getdomaininfo",
        XEN_DOMCTL_SETVCPUAFFINITY => "setvcpuaffinity",
        XEN_DOMCTL_MAX_MEM => "max_mem",
        XEN_DOMCTL_SETVCPUCONTEXT => "setvcpucontext",
        XEN_DOMCTL_GETVCPUCONTEXT => "getvcpucontext",
        XEN_DOMCTL_GETVCPUINFO => "getvcpuinfo",
        XEN_DOMCTL_MAX_VCPUS => "max_vcpus",
        XEN_DOMCTL_SCHEDULER_OP => "scheduler_op",
        XEN_DOMCTL_SETDOMAINHANDLE => "setdomainhandle",
        XEN_DOMCTL_IRQ_PERMISSION => "irq_permission",
        XEN_DOMCTL_IOMEM_PERMISSION => "iomem_permission",
        XEN_DOMCTL_GETVCPUAFFINITY => "getvcpuaffinity",
        XEN_DOMCTL_SET_ADDRESS_SIZE => "set_address_size",
        XEN_DOMCTL_GET_ADDRESS_SIZE => "get_address_size",
        XEN_DOMCTL_MEMORY_MAPPING => "memory_mapping",
        XEN_DOMCTL_SET_VIRQ_HANDLER => "set_virq_handler",
        XEN_DOMCTL_SETNODEAFFINITY => "setnodeaffinity",
        XEN_DOMCTL_GETNODEAFFINITY => "getnodeaffinity",
        XEN_DOMCTL_CACHEFLUSH => "cacheflush",
        XEN_DOMCTL_SOFT_RESET => "soft_reset",
        XEN_DOMCTL_VUART_OP => "vuart_op",
        XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE => "get_paging_mempool_size",
        XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE => "set_paging_mempool_size",
        _ => return None,
    })
}

/// `XEN_DOMCTL_CDF_hvm`: an HVM/PVH guest (always set on Arm).
pub const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
/// `XEN_DOMCTL_CDF_hap`: hardware-assisted paging (always set on Arm).
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;
/// `XEN_DOMCTL_CDF_s3_integrity`.
pub const XEN_DOMCTL_CDF_S3_INTEGRITY: u32 = 1 << 2;
/// `XEN_DOMCTL_CDF_oos_off`.
pub const XEN_DOMCTL_CDF_OOS_OFF: u32 = 1 << 3;
/// `XEN_DOMCTL_CDF_xs_domain`: the domain runs xenstored.
pub const XEN_DOMCTL_CDF_XS_DOMAIN: u32 = 1 << 4;
/// `XEN_DOMCTL_CDF_iommu`.
pub const XEN_DOMCTL_CDF_IOMMU: u32 = 1 << 5;
/// `XEN_DOMCTL_CDF_nested_virt`.
pub const XEN_DOMCTL_CDF_NESTED_VIRT: u32 = 1 << 6;
/// `XEN_DOMCTL_CDF_vpmu`.
pub const XEN_DOMCTL_CDF_VPMU: u32 = 1 << 7;
/// Every `XEN_DOMCTL_CDF_*` flag 4.17 defines.
pub const XEN_DOMCTL_CDF_ALL: u32 = (1 << 8) - 1;

/// `XEN_DOMCTL_IOMMU_no_sharept` (`iommu_opts`).
pub const XEN_DOMCTL_IOMMU_NO_SHAREPT: u32 = 1 << 0;
/// Mask of the grant table version in `grant_opts` (`XEN_DOMCTL_GRANT_version`).
pub const XEN_DOMCTL_GRANT_VERSION_MASK: u32 = 0xF;

/// `XEN_DOMCTL_CONFIG_GIC_NATIVE`: use the host's GIC version.
pub const XEN_DOMCTL_CONFIG_GIC_NATIVE: u8 = 0;
/// `XEN_DOMCTL_CONFIG_GIC_V2`.
pub const XEN_DOMCTL_CONFIG_GIC_V2: u8 = 1;
/// `XEN_DOMCTL_CONFIG_GIC_V3`.
pub const XEN_DOMCTL_CONFIG_GIC_V3: u8 = 2;
/// `XEN_DOMCTL_CONFIG_TEE_NONE`.
pub const XEN_DOMCTL_CONFIG_TEE_NONE: u16 = 0;
/// `XEN_DOMCTL_CONFIG_TEE_OPTEE`.
pub const XEN_DOMCTL_CONFIG_TEE_OPTEE: u16 = 1;

/// `XEN_DOMINF_dying`: set only once the domain is dead (destroy finished).
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// `XEN_DOMINF_hvm_guest`.
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `XEN_DOMINF_shutdown`: the domain has shut down; the code is in bits 16–23.
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `XEN_DOMINF_paused`: the controller pause count is non-zero.
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// `XEN_DOMINF_blocked`: every online vCPU is blocked.
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// `XEN_DOMINF_running`: some vCPU is on a pCPU.
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// `XEN_DOMINF_debugged`.
pub const XEN_DOMINF_DEBUGGED: u32 = 1 << 6;
/// `XEN_DOMINF_xs_domain`.
pub const XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7;
/// `XEN_DOMINF_hap` (always set on Arm).
pub const XEN_DOMINF_HAP: u32 = 1 << 8;
/// `XEN_DOMINF_shutdownshift`: the shutdown code's position in `flags`.
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;
/// `XEN_DOMINF_shutdownmask`: the shutdown code's mask after shifting. Xen
/// starts the code as all-ones, so a live domain shows 0xff here.
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 0xFF;

/// `XEN_VCPUAFFINITY_HARD`.
pub const XEN_VCPUAFFINITY_HARD: u32 = 1 << 0;
/// `XEN_VCPUAFFINITY_SOFT`.
pub const XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1;
/// `XEN_VCPUAFFINITY_FORCE`.
pub const XEN_VCPUAFFINITY_FORCE: u32 = 1 << 2;

/// `XEN_SCHEDULER_SEDF` (removed, number kept).
pub const XEN_SCHEDULER_SEDF: u32 = 4;
/// `XEN_SCHEDULER_CREDIT`.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `XEN_SCHEDULER_CREDIT2` (the 4.17 default).
pub const XEN_SCHEDULER_CREDIT2: u32 = 6;
/// `XEN_SCHEDULER_ARINC653`.
pub const XEN_SCHEDULER_ARINC653: u32 = 7;
/// `XEN_SCHEDULER_RTDS`.
pub const XEN_SCHEDULER_RTDS: u32 = 8;
/// `XEN_SCHEDULER_NULL`.
pub const XEN_SCHEDULER_NULL: u32 = 9;

/// `XEN_DOMCTL_SCHEDOP_putinfo`.
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
/// `XEN_DOMCTL_SCHEDOP_getinfo`.
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;
/// `XEN_DOMCTL_SCHEDOP_putvcpuinfo`.
pub const XEN_DOMCTL_SCHEDOP_PUTVCPUINFO: u32 = 2;
/// `XEN_DOMCTL_SCHEDOP_getvcpuinfo`.
pub const XEN_DOMCTL_SCHEDOP_GETVCPUINFO: u32 = 3;
/// Credit scheduler default weight.
pub const CREDIT_DEFAULT_WEIGHT: u16 = 256;

/// `VGCF_online` in `vcpu_guest_context.flags`.
pub const VGCF_ONLINE: u32 = 1 << 0;
/// `PSR_GUEST64_INIT`: EL1h with D (no), A, I, F masked (0x1c5).
pub const PSR_GUEST64_INIT: u64 = 0x1C5;
/// `PSR_GUEST32_INIT`: AArch32 SVC mode with A, I, F masked (0x1d3).
pub const PSR_GUEST32_INIT: u64 = 0x1D3;
/// `SCTLR_GUEST_INIT`: the reset SCTLR_EL1 libxenguest passes (MMU off).
pub const SCTLR_GUEST_INIT: u64 = 0x00C5_0078;

/// Size of the `u` union of `struct xen_domctl`.
pub const DOMCTL_PAYLOAD_SIZE: usize = 128;

/// `struct xen_domctl` (144 bytes): the argument of `HYPERVISOR_domctl`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenDomctl {
    /// `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// Must be [`XEN_DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// Target domain (IN/OUT for createdomain and getdomaininfo).
    pub domain: u16,
    /// Explicit padding.
    pub _pad: [u16; 3],
    /// The per-command payload union.
    pub u: [u8; DOMCTL_PAYLOAD_SIZE],
}

impl XenDomctl {
    /// A zeroed domctl for `cmd` on `domain`, with the 4.17 interface version.
    pub fn new(cmd: u32, domain: u16) -> Self {
        let mut d = Self::new_zeroed();
        d.cmd = cmd;
        d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
        d.domain = domain;
        d
    }

    /// Read the payload as `T` (the first `size_of::<T>()` bytes of `u`).
    pub fn payload<T: FromBytes>(&self) -> T {
        const { assert!(size_of::<T>() <= DOMCTL_PAYLOAD_SIZE) };
        read_prefix(&self.u)
    }

    /// Write `v` over the first `size_of::<T>()` bytes of `u`; the rest of
    /// the union is left as it was.
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, v: &T) {
        const { assert!(size_of::<T>() <= DOMCTL_PAYLOAD_SIZE) };
        write_prefix(&mut self.u, v);
    }

    /// Builder form of [`Self::set_payload`].
    pub fn with_payload<T: IntoBytes + Immutable>(mut self, v: &T) -> Self {
        self.set_payload(v);
        self
    }
}

/// Copy the first `size_of::<T>()` bytes of `buf` into a `T` (zero if `buf`
/// is too short, which the callers' compile-time checks rule out).
pub(crate) fn read_prefix<T: FromBytes>(buf: &[u8]) -> T {
    match T::read_from_prefix(buf) {
        Ok((v, _)) => v,
        Err(_) => T::new_zeroed(),
    }
}

/// Copy `v`'s bytes to the start of `buf` (truncated if `buf` is shorter,
/// which the callers' compile-time checks rule out).
pub(crate) fn write_prefix<T: IntoBytes + Immutable>(buf: &mut [u8], v: &T) {
    let src = v.as_bytes();
    let n = src.len().min(buf.len());
    buf[..n].copy_from_slice(&src[..n]);
}

/// `struct xen_arch_domainconfig` for Arm (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ArchDomainConfig {
    /// IN/OUT: `XEN_DOMCTL_CONFIG_GIC_*`; NATIVE is replaced by the real one.
    pub gic_version: u8,
    /// Implicit C padding.
    pub _pad: u8,
    /// IN: `XEN_DOMCTL_CONFIG_TEE_*`.
    pub tee_type: u16,
    /// IN: number of SPIs the guest's vGIC needs.
    pub nr_spis: u32,
    /// OUT: the timer frequency (Hz) to put in the guest DT, 0 if the DT of
    /// the host had none.
    pub clock_frequency: u32,
}

/// `struct xen_domctl_createdomain` (68 bytes). Copied back on success.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CreateDomain {
    /// XSM security label.
    pub ssidref: u32,
    /// Domain UUID.
    pub handle: [u8; 16],
    /// `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    /// `XEN_DOMCTL_IOMMU_*`.
    pub iommu_opts: u32,
    /// Number of vCPUs (max_vcpus must later be given the same value).
    pub max_vcpus: u32,
    /// Highest event channel port + 1 the guest may use.
    pub max_evtchn_port: u32,
    /// Grant table frames (-1: Xen's default).
    pub max_grant_frames: i32,
    /// Maptrack frames (-1: Xen's default).
    pub max_maptrack_frames: i32,
    /// Grant options; low 4 bits = max grant table version.
    pub grant_opts: u32,
    /// Per-vCPU trace buffer size (0: none).
    pub vmtrace_size: u32,
    /// CPU pool to put the domain in.
    pub cpupool_id: u32,
    /// Arm configuration.
    pub arch: ArchDomainConfig,
}

/// `struct xen_domctl_getdomaininfo` (120 bytes); also the element of the
/// `XEN_SYSCTL_getdomaininfolist` buffer.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GetDomainInfo {
    /// Domain id.
    pub domain: u16,
    /// Explicit padding.
    pub _pad1: u16,
    /// `XEN_DOMINF_*` with the shutdown code in bits 16–23.
    pub flags: u32,
    /// Pages allocated to the domain.
    pub tot_pages: u64,
    /// Maximum pages (`max_mem`).
    pub max_pages: u64,
    /// Outstanding claimed pages.
    pub outstanding_pages: u64,
    /// Shared pages.
    pub shr_pages: u64,
    /// Paged-out pages.
    pub paged_pages: u64,
    /// GFN of the shared info page.
    pub shared_info_frame: u64,
    /// CPU time used by all vCPUs, ns.
    pub cpu_time: u64,
    /// Online vCPUs.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id (~0 when none).
    pub max_vcpu_id: u32,
    /// XSM label.
    pub ssidref: u32,
    /// Domain UUID.
    pub handle: [u8; 16],
    /// CPU pool.
    pub cpupool: u32,
    /// Guest physical address bits (Arm: the stage-2 IPA width; never 0).
    pub gpaddr_bits: u8,
    /// Explicit padding.
    pub _pad2: [u8; 7],
    /// Arch configuration (left zero on Arm).
    pub arch_config: ArchDomainConfig,
    /// Tail padding to 8-byte alignment.
    pub _pad3: u32,
}

/// `struct xenctl_bitmap` (16 bytes): bit j of byte i is CPU/node 8i+j.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenctlBitmap {
    /// Guest handle of the `u8` array.
    pub bitmap: u64,
    /// Number of valid bits.
    pub nr_bits: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// `struct xen_domctl_vcpuaffinity` (40 bytes), set/getvcpuaffinity.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuAffinity {
    /// vCPU index.
    pub vcpu: u32,
    /// `XEN_VCPUAFFINITY_*`.
    pub flags: u32,
    /// Hard affinity map (IN/OUT).
    pub cpumap_hard: XenctlBitmap,
    /// Soft affinity map (IN/OUT).
    pub cpumap_soft: XenctlBitmap,
}

/// `struct xen_domctl_nodeaffinity` (16 bytes), set/getnodeaffinity.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct NodeAffinity {
    /// NUMA node map.
    pub nodemap: XenctlBitmap,
}

/// `struct xen_domctl_max_mem` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MaxMem {
    /// Limit in KiB (max_pages = kb >> 2).
    pub max_memkb: u64,
}

/// `struct xen_domctl_vcpucontext` (16 bytes), set/getvcpucontext.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuContextArg {
    /// vCPU index.
    pub vcpu: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Guest handle of a [`VcpuGuestContext`] (0 on set: reset the vCPU).
    pub ctxt: u64,
}

/// `struct vcpu_guest_core_regs` for arm64 (312 bytes). AArch32 register
/// names alias the same slots (r0_usr = x0, pc32 = pc64, spsr_svc = spsr_el1).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuGuestCoreRegs {
    /// x0..x30.
    pub x: [u64; 31],
    /// PC (ELR_EL2 on entry).
    pub pc64: u64,
    /// PSTATE (SPSR_EL2), e.g. [`PSR_GUEST64_INIT`].
    pub cpsr: u64,
    /// SPSR_EL1 (AArch32: spsr_svc in the low half).
    pub spsr_el1: u64,
    /// AArch32 banked SPSR_fiq.
    pub spsr_fiq: u32,
    /// AArch32 banked SPSR_irq.
    pub spsr_irq: u32,
    /// AArch32 banked SPSR_und.
    pub spsr_und: u32,
    /// AArch32 banked SPSR_abt.
    pub spsr_abt: u32,
    /// SP_EL0.
    pub sp_el0: u64,
    /// SP_EL1.
    pub sp_el1: u64,
    /// ELR_EL1.
    pub elr_el1: u64,
}

impl Default for VcpuGuestCoreRegs {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

/// `struct vcpu_guest_context` for arm64 (352 bytes), tools-only.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuGuestContext {
    /// `VGCF_*`.
    pub flags: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Core registers.
    pub user_regs: VcpuGuestCoreRegs,
    /// SCTLR_EL1, e.g. [`SCTLR_GUEST_INIT`].
    pub sctlr: u64,
    /// TCR_EL1.
    pub ttbcr: u64,
    /// TTBR0_EL1.
    pub ttbr0: u64,
    /// TTBR1_EL1.
    pub ttbr1: u64,
}

/// `struct xen_domctl_getvcpuinfo` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GetVcpuInfo {
    /// IN: vCPU index.
    pub vcpu: u32,
    /// OUT: vCPU is up.
    pub online: u8,
    /// OUT: vCPU is blocked.
    pub blocked: u8,
    /// OUT: vCPU is on a pCPU.
    pub running: u8,
    /// Explicit padding.
    pub _pad: u8,
    /// OUT: CPU time used, ns.
    pub cpu_time: u64,
    /// OUT: pCPU it runs or last ran on.
    pub cpu: u32,
    /// Explicit padding.
    pub _pad2: u32,
}

/// `struct xen_domctl_max_vcpus` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MaxVcpus {
    /// Number of vCPUs (must equal the createdomain value).
    pub max: u32,
}

/// `struct xen_domctl_sched_credit` / `sched_credit2` (4 bytes), inside
/// [`DomctlSchedulerOp::u`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedCredit {
    /// Weight (putinfo: 0 = unchanged).
    pub weight: u16,
    /// Cap in percent of a pCPU (putinfo: 0xFFFF = unchanged; 0 = none).
    pub cap: u16,
}

/// `struct xen_domctl_sched_rtds` (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedRtds {
    /// Period, µs.
    pub period: u32,
    /// Budget, µs.
    pub budget: u32,
    /// `XEN_DOMCTL_SCHEDRT_*`.
    pub flags: u32,
}

/// The per-vCPU form of the scheduler_op union (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedVcpus {
    /// Guest handle of `xen_domctl_schedparam_vcpu[]`.
    pub vcpus: u64,
    /// IN/OUT: entries.
    pub nr_vcpus: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// `struct xen_domctl_scheduler_op` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DomctlSchedulerOp {
    /// `XEN_SCHEDULER_*` (must be the domain's scheduler, else -EINVAL).
    pub sched_id: u32,
    /// `XEN_DOMCTL_SCHEDOP_*`.
    pub cmd: u32,
    /// Union: [`SchedCredit`], [`SchedRtds`] or [`SchedVcpus`] at offset 0.
    pub u: [u8; 16],
}

impl DomctlSchedulerOp {
    /// Read the union as `T`.
    pub fn params<T: FromBytes>(&self) -> T {
        const { assert!(size_of::<T>() <= 16) };
        read_prefix(&self.u)
    }

    /// Write `v` at the start of the union.
    pub fn set_params<T: IntoBytes + Immutable>(&mut self, v: &T) {
        const { assert!(size_of::<T>() <= 16) };
        write_prefix(&mut self.u, v);
    }
}

/// `struct xen_domctl_irq_permission` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct IrqPermission {
    /// IRQ (Arm: the SPI number).
    pub pirq: u32,
    /// Non-zero to grant, zero to revoke.
    pub allow_access: u8,
    /// Explicit padding.
    pub _pad: [u8; 3],
}

/// `struct xen_domctl_iomem_permission` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct IomemPermission {
    /// First machine frame.
    pub first_mfn: u64,
    /// Number of frames.
    pub nr_mfns: u64,
    /// Non-zero to grant, zero to revoke.
    pub allow_access: u8,
    /// Explicit padding.
    pub _pad: [u8; 7],
}

/// `struct xen_domctl_address_size` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct AddressSize {
    /// 32 or 64.
    pub size: u32,
}

/// `struct xen_domctl_memory_mapping` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MemoryMapping {
    /// First guest frame.
    pub first_gfn: u64,
    /// First machine frame.
    pub first_mfn: u64,
    /// Number of frames (Arm: > 64 gives -E2BIG).
    pub nr_mfns: u64,
    /// 1 to add, 0 to remove.
    pub add_mapping: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// `struct xen_domctl_cacheflush` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CacheFlush {
    /// First GFN.
    pub start_pfn: u64,
    /// Number of GFNs (≤ 2^20).
    pub nr_pfns: u64,
}

/// `struct xen_domctl_setdomainhandle` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SetDomainHandle {
    /// The new UUID (`xen_domain_handle_t`).
    pub handle: [u8; 16],
}

/// `struct xen_domctl_set_virq_handler` (4 bytes): route a global VIRQ to
/// the target domain instead of the hardware domain.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SetVirqHandler {
    /// `VIRQ_*` (global VIRQs only).
    pub virq: u32,
}

/// `struct xen_domctl_paging_mempool` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PagingMempool {
    /// Size in bytes.
    pub size: u64,
}

const _: () = assert!(size_of::<XenDomctl>() == 144);
const _: () = assert!(offset_of!(XenDomctl, interface_version) == 4);
const _: () = assert!(offset_of!(XenDomctl, domain) == 8);
const _: () = assert!(offset_of!(XenDomctl, _pad) == 10);
const _: () = assert!(offset_of!(XenDomctl, u) == 16);
const _: () = assert!(size_of::<ArchDomainConfig>() == 12);
const _: () = assert!(offset_of!(ArchDomainConfig, tee_type) == 2);
const _: () = assert!(offset_of!(ArchDomainConfig, nr_spis) == 4);
const _: () = assert!(offset_of!(ArchDomainConfig, clock_frequency) == 8);
const _: () = assert!(size_of::<CreateDomain>() == 68);
const _: () = assert!(offset_of!(CreateDomain, handle) == 4);
const _: () = assert!(offset_of!(CreateDomain, flags) == 20);
const _: () = assert!(offset_of!(CreateDomain, iommu_opts) == 24);
const _: () = assert!(offset_of!(CreateDomain, max_vcpus) == 28);
const _: () = assert!(offset_of!(CreateDomain, max_evtchn_port) == 32);
const _: () = assert!(offset_of!(CreateDomain, max_grant_frames) == 36);
const _: () = assert!(offset_of!(CreateDomain, max_maptrack_frames) == 40);
const _: () = assert!(offset_of!(CreateDomain, grant_opts) == 44);
const _: () = assert!(offset_of!(CreateDomain, vmtrace_size) == 48);
const _: () = assert!(offset_of!(CreateDomain, cpupool_id) == 52);
const _: () = assert!(offset_of!(CreateDomain, arch) == 56);
const _: () = assert!(size_of::<GetDomainInfo>() == 120);
const _: () = assert!(offset_of!(GetDomainInfo, flags) == 4);
const _: () = assert!(offset_of!(GetDomainInfo, tot_pages) == 8);
const _: () = assert!(offset_of!(GetDomainInfo, max_pages) == 16);
const _: () = assert!(offset_of!(GetDomainInfo, outstanding_pages) == 24);
const _: () = assert!(offset_of!(GetDomainInfo, shr_pages) == 32);
const _: () = assert!(offset_of!(GetDomainInfo, paged_pages) == 40);
const _: () = assert!(offset_of!(GetDomainInfo, shared_info_frame) == 48);
const _: () = assert!(offset_of!(GetDomainInfo, cpu_time) == 56);
const _: () = assert!(offset_of!(GetDomainInfo, nr_online_vcpus) == 64);
const _: () = assert!(offset_of!(GetDomainInfo, max_vcpu_id) == 68);
const _: () = assert!(offset_of!(GetDomainInfo, ssidref) == 72);
const _: () = assert!(offset_of!(GetDomainInfo, handle) == 76);
const _: () = assert!(offset_of!(GetDomainInfo, cpupool) == 92);
const _: () = assert!(offset_of!(GetDomainInfo, gpaddr_bits) == 96);
const _: () = assert!(offset_of!(GetDomainInfo, _pad2) == 97);
const _: () = assert!(offset_of!(GetDomainInfo, arch_config) == 104);
const _: () = assert!(size_of::<XenctlBitmap>() == 16);
const _: () = assert!(offset_of!(XenctlBitmap, nr_bits) == 8);
const _: () = assert!(size_of::<VcpuAffinity>() == 40);
const _: () = assert!(offset_of!(VcpuAffinity, flags) == 4);
const _: () = assert!(offset_of!(VcpuAffinity, cpumap_hard) == 8);
const _: () = assert!(offset_of!(VcpuAffinity, cpumap_soft) == 24);
const _: () = assert!(size_of::<NodeAffinity>() == 16);
const _: () = assert!(size_of::<MaxMem>() == 8);
const _: () = assert!(size_of::<VcpuContextArg>() == 16);
const _: () = assert!(offset_of!(VcpuContextArg, ctxt) == 8);
const _: () = assert!(size_of::<VcpuGuestCoreRegs>() == 312);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, pc64) == 248);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, cpsr) == 256);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, spsr_el1) == 264);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, spsr_fiq) == 272);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, spsr_abt) == 284);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, sp_el0) == 288);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, sp_el1) == 296);
const _: () = assert!(offset_of!(VcpuGuestCoreRegs, elr_el1) == 304);
const _: () = assert!(size_of::<VcpuGuestContext>() == 352);
const _: () = assert!(offset_of!(VcpuGuestContext, user_regs) == 8);
const _: () = assert!(offset_of!(VcpuGuestContext, sctlr) == 320);
const _: () = assert!(offset_of!(VcpuGuestContext, ttbcr) == 328);
const _: () = assert!(offset_of!(VcpuGuestContext, ttbr0) == 336);
const _: () = assert!(offset_of!(VcpuGuestContext, ttbr1) == 344);
const _: () = assert!(size_of::<GetVcpuInfo>() == 24);
const _: () = assert!(offset_of!(GetVcpuInfo, online) == 4);
const _: () = assert!(offset_of!(GetVcpuInfo, blocked) == 5);
const _: () = assert!(offset_of!(GetVcpuInfo, running) == 6);
const _: () = assert!(offset_of!(GetVcpuInfo, cpu_time) == 8);
const _: () = assert!(offset_of!(GetVcpuInfo, cpu) == 16);
const _: () = assert!(size_of::<MaxVcpus>() == 4);
const _: () = assert!(size_of::<SchedCredit>() == 4);
const _: () = assert!(size_of::<SchedRtds>() == 12);
const _: () = assert!(size_of::<SchedVcpus>() == 16);
const _: () = assert!(size_of::<DomctlSchedulerOp>() == 24);
const _: () = assert!(offset_of!(DomctlSchedulerOp, u) == 8);
const _: () = assert!(size_of::<IrqPermission>() == 8);
const _: () = assert!(offset_of!(IrqPermission, allow_access) == 4);
const _: () = assert!(size_of::<IomemPermission>() == 24);
const _: () = assert!(offset_of!(IomemPermission, nr_mfns) == 8);
const _: () = assert!(offset_of!(IomemPermission, allow_access) == 16);
const _: () = assert!(size_of::<AddressSize>() == 4);
const _: () = assert!(size_of::<MemoryMapping>() == 32);
const _: () = assert!(offset_of!(MemoryMapping, add_mapping) == 24);
const _: () = assert!(size_of::<CacheFlush>() == 16);
const _: () = assert!(offset_of!(CacheFlush, nr_pfns) == 8);
const _: () = assert!(size_of::<PagingMempool>() == 8);
const _: () = assert!(size_of::<SetDomainHandle>() == 16);
const _: () = assert!(size_of::<SetVirqHandler>() == 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sets_version_and_zeroes_payload() {
        let d = XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, 3);
        let b = d.as_bytes();
        assert_eq!(&b[0..4], &5u32.to_le_bytes());
        assert_eq!(&b[4..8], &0x15u32.to_le_bytes());
        assert_eq!(&b[8..10], &3u16.to_le_bytes());
        assert!(b[10..].iter().all(|&x| x == 0));
    }

    #[test]
    fn payload_round_trip_at_offset_16() {
        let mut d = XenDomctl::new(XEN_DOMCTL_CACHEFLUSH, 1);
        d.set_payload(&CacheFlush {
            start_pfn: 0x40000,
            nr_pfns: 0x200,
        });
        let b = d.as_bytes();
        assert_eq!(&b[16..24], &0x40000u64.to_le_bytes());
        assert_eq!(&b[24..32], &0x200u64.to_le_bytes());
        let c: CacheFlush = d.payload();
        assert_eq!(c.nr_pfns, 0x200);
    }

    #[test]
    fn createdomain_from_raw_bytes() {
        // A createdomain as libxl builds it for a 1-vCPU GICv3 DomU.
        let mut raw = [0u8; 144];
        raw[0..4].copy_from_slice(&1u32.to_le_bytes());
        raw[4..8].copy_from_slice(&0x15u32.to_le_bytes());
        raw[16 + 20..16 + 24].copy_from_slice(&3u32.to_le_bytes());
        raw[16 + 28..16 + 32].copy_from_slice(&1u32.to_le_bytes());
        raw[16 + 32..16 + 36].copy_from_slice(&1023u32.to_le_bytes());
        raw[16 + 36..16 + 40].copy_from_slice(&(-1i32).to_le_bytes());
        raw[16 + 56] = XEN_DOMCTL_CONFIG_GIC_V3;
        raw[16 + 60..16 + 64].copy_from_slice(&64u32.to_le_bytes());
        let d = XenDomctl::read_from_bytes(&raw).unwrap();
        let c: CreateDomain = d.payload();
        assert_eq!(c.flags, XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP);
        assert_eq!(c.max_vcpus, 1);
        assert_eq!(c.max_evtchn_port, 1023);
        assert_eq!(c.max_grant_frames, -1);
        assert_eq!(c.arch.gic_version, XEN_DOMCTL_CONFIG_GIC_V3);
        assert_eq!(c.arch.nr_spis, 64);
    }

    #[test]
    fn vcpu_context_register_offsets() {
        let mut c = VcpuGuestContext {
            flags: VGCF_ONLINE,
            ..Default::default()
        };
        c.user_regs.x[0] = 0x4800_0000;
        c.user_regs.pc64 = 0x4020_0000;
        c.user_regs.cpsr = PSR_GUEST64_INIT;
        c.sctlr = SCTLR_GUEST_INIT;
        let b = c.as_bytes();
        assert_eq!(&b[8..16], &0x4800_0000u64.to_le_bytes());
        assert_eq!(&b[256..264], &0x4020_0000u64.to_le_bytes());
        assert_eq!(&b[264..272], &0x1c5u64.to_le_bytes());
        assert_eq!(&b[320..328], &0x00c5_0078u64.to_le_bytes());
    }

    #[test]
    fn scheduler_params_and_names() {
        let mut s = DomctlSchedulerOp {
            sched_id: XEN_SCHEDULER_CREDIT2,
            cmd: XEN_DOMCTL_SCHEDOP_GETINFO,
            ..Default::default()
        };
        s.set_params(&SchedCredit {
            weight: 256,
            cap: 0,
        });
        assert_eq!(&s.as_bytes()[8..10], &256u16.to_le_bytes());
        assert_eq!(s.params::<SchedCredit>().weight, 256);
        assert_eq!(cmd_name(XEN_DOMCTL_MAX_VCPUS), Some("max_vcpus"));
        assert_eq!(cmd_name(9999), None);
    }

    #[test]
    fn live_domain_flags_decode() {
        // Sample value of a running DomU: shutdown code still ~0.
        let f: u32 = 0xffff_0122;
        assert_eq!(f & XEN_DOMINF_SHUTDOWN, 0);
        assert_ne!(f & XEN_DOMINF_RUNNING, 0);
        assert_ne!(f & XEN_DOMINF_HAP, 0);
        assert_eq!(
            (f >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK,
            0xff
        );
    }
}
