//! Toolstack system control (`sysctl.h`, Xen 4.17, interface version 0x15):
//! `XEN_SYSCTL_*` numbers and the arm64 layouts of `struct xen_sysctl` and its
//! payloads (TSA §2.5).
//!
//! Invariants: every struct is `#[repr(C)]` without implicit padding, with
//! size and offset assertions from the 4.17 headers for arm64. Guest handles
//! are plain `u64` addresses. The union `u` is raw bytes with typed accessors
//! that check at compile time that a payload fits.

use crate::domctl::{XenctlBitmap, read_prefix, write_prefix};
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

pub use crate::domctl::GetDomainInfo;

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17; a mismatch gives -EACCES.
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

/// `XEN_SYSCTL_readconsole`.
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// `XEN_SYSCTL_tbuf_op`.
pub const XEN_SYSCTL_TBUF_OP: u32 = 2;
/// `XEN_SYSCTL_physinfo`.
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// `XEN_SYSCTL_sched_id`.
pub const XEN_SYSCTL_SCHED_ID: u32 = 4;
/// `XEN_SYSCTL_perfc_op`.
pub const XEN_SYSCTL_PERFC_OP: u32 = 5;
/// `XEN_SYSCTL_getdomaininfolist`.
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;
/// `XEN_SYSCTL_debug_keys`.
pub const XEN_SYSCTL_DEBUG_KEYS: u32 = 7;
/// `XEN_SYSCTL_getcpuinfo`.
pub const XEN_SYSCTL_GETCPUINFO: u32 = 8;
/// `XEN_SYSCTL_availheap`.
pub const XEN_SYSCTL_AVAILHEAP: u32 = 9;
/// `XEN_SYSCTL_get_pmstat`.
pub const XEN_SYSCTL_GET_PMSTAT: u32 = 10;
/// `XEN_SYSCTL_cpu_hotplug`.
pub const XEN_SYSCTL_CPU_HOTPLUG: u32 = 11;
/// `XEN_SYSCTL_pm_op`.
pub const XEN_SYSCTL_PM_OP: u32 = 12;
/// `XEN_SYSCTL_page_offline_op`.
pub const XEN_SYSCTL_PAGE_OFFLINE_OP: u32 = 14;
/// `XEN_SYSCTL_lockprof_op`.
pub const XEN_SYSCTL_LOCKPROF_OP: u32 = 15;
/// `XEN_SYSCTL_cputopoinfo`.
pub const XEN_SYSCTL_CPUTOPOINFO: u32 = 16;
/// `XEN_SYSCTL_numainfo`.
pub const XEN_SYSCTL_NUMAINFO: u32 = 17;
/// `XEN_SYSCTL_cpupool_op`.
pub const XEN_SYSCTL_CPUPOOL_OP: u32 = 18;
/// `XEN_SYSCTL_scheduler_op`.
pub const XEN_SYSCTL_SCHEDULER_OP: u32 = 19;
/// `XEN_SYSCTL_coverage_op`.
pub const XEN_SYSCTL_COVERAGE_OP: u32 = 20;
/// `XEN_SYSCTL_psr_cmt_op`.
pub const XEN_SYSCTL_PSR_CMT_OP: u32 = 21;
/// `XEN_SYSCTL_pcitopoinfo`.
pub const XEN_SYSCTL_PCITOPOINFO: u32 = 22;
/// `XEN_SYSCTL_psr_alloc`.
pub const XEN_SYSCTL_PSR_ALLOC: u32 = 23;
/// `XEN_SYSCTL_get_cpu_levelling_caps`.
pub const XEN_SYSCTL_GET_CPU_LEVELLING_CAPS: u32 = 25;
/// `XEN_SYSCTL_get_cpu_featureset`.
pub const XEN_SYSCTL_GET_CPU_FEATURESET: u32 = 26;
/// `XEN_SYSCTL_livepatch_op`.
pub const XEN_SYSCTL_LIVEPATCH_OP: u32 = 27;
/// `XEN_SYSCTL_get_cpu_policy`.
pub const XEN_SYSCTL_GET_CPU_POLICY: u32 = 29;

/// Name of a sysctl command, for log lines and errors; `None` if unknown.
pub const fn cmd_name(cmd: u32) -> Option<&'static str> {
    Some(match cmd {
        XEN_SYSCTL_READCONSOLE => "readconsole",
        XEN_SYSCTL_PHYSINFO => "physinfo",
        XEN_SYSCTL_SCHED_ID => "sched_id",
        XEN_SYSCTL_GETDOMAININFOLIST => "getdomaininfolist",
        XEN_SYSCTL_DEBUG_KEYS => "debug_keys",
        XEN_SYSCTL_GETCPUINFO => "getcpuinfo",
        XEN_SYSCTL_CPUTOPOINFO => "cputopoinfo",
        XEN_SYSCTL_NUMAINFO => "numainfo",
        XEN_SYSCTL_CPUPOOL_OP => "cpupool_op",
        XEN_SYSCTL_SCHEDULER_OP => "scheduler_op",
        _ => return None,
    })
}

/// `XEN_SYSCTL_PHYSCAP_hvm`.
pub const XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0;
/// `XEN_SYSCTL_PHYSCAP_pv`.
pub const XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1;
/// `XEN_SYSCTL_PHYSCAP_directio`.
pub const XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// `XEN_SYSCTL_PHYSCAP_hap`.
pub const XEN_SYSCTL_PHYSCAP_HAP: u32 = 1 << 3;
/// `XEN_SYSCTL_PHYSCAP_shadow`.
pub const XEN_SYSCTL_PHYSCAP_SHADOW: u32 = 1 << 4;
/// `XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share`.
pub const XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
/// `XEN_SYSCTL_PHYSCAP_vmtrace`.
pub const XEN_SYSCTL_PHYSCAP_VMTRACE: u32 = 1 << 6;
/// `XEN_SYSCTL_PHYSCAP_vpmu`.
pub const XEN_SYSCTL_PHYSCAP_VPMU: u32 = 1 << 7;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v1`.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v2`.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V2: u32 = 1 << 9;

/// `XEN_SYSCTL_CPUPOOL_OP_CREATE`.
pub const XEN_SYSCTL_CPUPOOL_OP_CREATE: u32 = 1;
/// `XEN_SYSCTL_CPUPOOL_OP_DESTROY`.
pub const XEN_SYSCTL_CPUPOOL_OP_DESTROY: u32 = 2;
/// `XEN_SYSCTL_CPUPOOL_OP_INFO`: first pool with id ≥ `cpupool_id`.
pub const XEN_SYSCTL_CPUPOOL_OP_INFO: u32 = 3;
/// `XEN_SYSCTL_CPUPOOL_OP_ADDCPU`.
pub const XEN_SYSCTL_CPUPOOL_OP_ADDCPU: u32 = 4;
/// `XEN_SYSCTL_CPUPOOL_OP_RMCPU`.
pub const XEN_SYSCTL_CPUPOOL_OP_RMCPU: u32 = 5;
/// `XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN`.
pub const XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN: u32 = 6;
/// `XEN_SYSCTL_CPUPOOL_OP_FREEINFO`: map of CPUs in no pool.
pub const XEN_SYSCTL_CPUPOOL_OP_FREEINFO: u32 = 7;
/// `XEN_SYSCTL_CPUPOOL_PAR_ANY`: "any" pool id / CPU.
pub const XEN_SYSCTL_CPUPOOL_PAR_ANY: u32 = 0xFFFF_FFFF;

/// `XEN_SYSCTL_SCHEDOP_putinfo`.
pub const XEN_SYSCTL_SCHEDOP_PUTINFO: u32 = 0;
/// `XEN_SYSCTL_SCHEDOP_getinfo`.
pub const XEN_SYSCTL_SCHEDOP_GETINFO: u32 = 1;

/// `XEN_INVALID_CORE_ID` / `SOCKET_ID` / `NODE_ID` in cputopo entries.
pub const XEN_INVALID_TOPO_ID: u32 = !0;
/// `XEN_INVALID_MEM_SZ` in numainfo entries.
pub const XEN_INVALID_MEM_SZ: u64 = !0;
/// `XEN_INVALID_NODE_DIST` in the numainfo distance matrix.
pub const XEN_INVALID_NODE_DIST: u32 = !0;

/// Size of the `u` union of `struct xen_sysctl`.
pub const SYSCTL_PAYLOAD_SIZE: usize = 128;

/// `struct xen_sysctl` (136 bytes): the argument of `HYPERVISOR_sysctl`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenSysctl {
    /// `XEN_SYSCTL_*`.
    pub cmd: u32,
    /// Must be [`XEN_SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The per-command payload union.
    pub u: [u8; SYSCTL_PAYLOAD_SIZE],
}

impl XenSysctl {
    /// A zeroed sysctl for `cmd` with the 4.17 interface version.
    pub fn new(cmd: u32) -> Self {
        let mut s = Self::new_zeroed();
        s.cmd = cmd;
        s.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
        s
    }

    /// Read the payload as `T` (the first `size_of::<T>()` bytes of `u`).
    pub fn payload<T: FromBytes>(&self) -> T {
        const { assert!(size_of::<T>() <= SYSCTL_PAYLOAD_SIZE) };
        read_prefix(&self.u)
    }

    /// Write `v` over the first `size_of::<T>()` bytes of `u`.
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, v: &T) {
        const { assert!(size_of::<T>() <= SYSCTL_PAYLOAD_SIZE) };
        write_prefix(&mut self.u, v);
    }

    /// Builder form of [`Self::set_payload`].
    pub fn with_payload<T: IntoBytes + Immutable>(mut self, v: &T) -> Self {
        self.set_payload(v);
        self
    }
}

/// `struct xen_sysctl_readconsole` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ReadConsole {
    /// IN: clear the buffer after reading.
    pub clear: u8,
    /// IN: start at `index` rather than the oldest byte.
    pub incremental: u8,
    /// Explicit padding.
    pub _pad: u16,
    /// IN/OUT: position in the console ring (incremental mode).
    pub index: u32,
    /// IN: guest handle of the destination buffer.
    pub buffer: u64,
    /// IN: buffer size; OUT: bytes written.
    pub count: u32,
    /// Explicit padding.
    pub _pad2: u32,
}

/// `struct xen_sysctl_physinfo` (112 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PhysInfo {
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// Online CPUs.
    pub nr_cpus: u32,
    /// Highest possible CPU id.
    pub max_cpu_id: u32,
    /// NUMA nodes.
    pub nr_nodes: u32,
    /// Highest possible node id.
    pub max_node_id: u32,
    /// CPU frequency, kHz.
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    /// Arch-specific capabilities (Arm: SVE vector length bits).
    pub arch_capabilities: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Pages of RAM Xen manages.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages awaiting scrubbing.
    pub scrub_pages: u64,
    /// Claimed, not yet allocated pages.
    pub outstanding_pages: u64,
    /// Highest machine frame.
    pub max_mfn: u64,
    /// Hardware capability words (x86 CPUID; zero on Arm).
    pub hw_cap: [u32; 8],
}

/// `struct xen_sysctl_sched_id` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SchedId {
    /// OUT: `XEN_SCHEDULER_*` of the default pool.
    pub sched_id: u32,
}

/// `struct xen_sysctl_getdomaininfolist` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GetDomainInfoList {
    /// IN: lowest domain id to report.
    pub first_domain: u16,
    /// Explicit padding.
    pub _pad: u16,
    /// IN: capacity of `buffer` in entries.
    pub max_domains: u32,
    /// IN: guest handle of a [`GetDomainInfo`] array.
    pub buffer: u64,
    /// OUT: entries written (ids ascending).
    pub num_domains: u32,
    /// Explicit padding.
    pub _pad2: u32,
}

/// `struct xen_sysctl_debug_keys` (16 bytes): keys handled as if typed on
/// the hypervisor's console.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DebugKeys {
    /// IN: guest handle of the keys (`const char *`, not NUL-terminated).
    pub keys: u64,
    /// IN: number of keys.
    pub nr_keys: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// `struct xen_sysctl_cputopo` (12 bytes): one CPU of cputopoinfo.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpuTopo {
    /// Core id.
    pub core: u32,
    /// Socket id.
    pub socket: u32,
    /// NUMA node.
    pub node: u32,
}

/// `struct xen_sysctl_cputopoinfo` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpuTopoInfo {
    /// IN: entries in `cputopo`; OUT: number of CPUs (max_cpu_id + 1).
    pub num_cpus: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// IN: guest handle of a [`CpuTopo`] array (0: just report the count).
    pub cputopo: u64,
}

/// `struct xen_sysctl_meminfo` (16 bytes): one node of numainfo.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MemInfo {
    /// Node memory, bytes.
    pub memsize: u64,
    /// Free node memory, bytes.
    pub memfree: u64,
}

/// `struct xen_sysctl_numainfo` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct NumaInfo {
    /// IN: entries in the arrays; OUT: number of nodes.
    pub num_nodes: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// IN: guest handle of a [`MemInfo`] array.
    pub meminfo: u64,
    /// IN: guest handle of a `u32[num_nodes²]` distance matrix.
    pub distance: u64,
}

/// `struct xen_sysctl_cpupool_op` (40 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpupoolOp {
    /// `XEN_SYSCTL_CPUPOOL_OP_*`.
    pub op: u32,
    /// IN/OUT: pool id.
    pub cpupool_id: u32,
    /// IN (create) / OUT (info): `XEN_SCHEDULER_*`.
    pub sched_id: u32,
    /// IN: domain (movedomain).
    pub domid: u32,
    /// IN: CPU (addcpu/rmcpu).
    pub cpu: u32,
    /// OUT: domains in the pool (info).
    pub n_dom: u32,
    /// OUT: CPUs of the pool (info) / free CPUs (freeinfo).
    pub cpumap: XenctlBitmap,
}

/// `struct xen_sysctl_credit_schedule` (12 bytes), in [`SysctlSchedulerOp::u`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SysctlCreditSchedule {
    /// Time slice, ms.
    pub tslice_ms: u32,
    /// Rate limit, µs.
    pub ratelimit_us: u32,
    /// vCPU migration delay, µs.
    pub vcpu_migr_delay_us: u32,
}

/// `struct xen_sysctl_credit2_schedule` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SysctlCredit2Schedule {
    /// Rate limit, µs.
    pub ratelimit_us: u32,
}

/// `struct xen_sysctl_scheduler_op` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SysctlSchedulerOp {
    /// IN: pool.
    pub cpupool_id: u32,
    /// IN: `XEN_SCHEDULER_*` (must match the pool's).
    pub sched_id: u32,
    /// `XEN_SYSCTL_SCHEDOP_*`.
    pub cmd: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Union: [`SysctlCreditSchedule`], [`SysctlCredit2Schedule`], ...
    pub u: [u8; 16],
}

impl SysctlSchedulerOp {
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

const _: () = assert!(size_of::<XenSysctl>() == 136);
const _: () = assert!(offset_of!(XenSysctl, interface_version) == 4);
const _: () = assert!(offset_of!(XenSysctl, u) == 8);
const _: () = assert!(size_of::<ReadConsole>() == 24);
const _: () = assert!(offset_of!(ReadConsole, incremental) == 1);
const _: () = assert!(offset_of!(ReadConsole, index) == 4);
const _: () = assert!(offset_of!(ReadConsole, buffer) == 8);
const _: () = assert!(offset_of!(ReadConsole, count) == 16);
const _: () = assert!(size_of::<PhysInfo>() == 112);
const _: () = assert!(offset_of!(PhysInfo, nr_cpus) == 8);
const _: () = assert!(offset_of!(PhysInfo, max_cpu_id) == 12);
const _: () = assert!(offset_of!(PhysInfo, nr_nodes) == 16);
const _: () = assert!(offset_of!(PhysInfo, cpu_khz) == 24);
const _: () = assert!(offset_of!(PhysInfo, capabilities) == 28);
const _: () = assert!(offset_of!(PhysInfo, arch_capabilities) == 32);
const _: () = assert!(offset_of!(PhysInfo, total_pages) == 40);
const _: () = assert!(offset_of!(PhysInfo, free_pages) == 48);
const _: () = assert!(offset_of!(PhysInfo, scrub_pages) == 56);
const _: () = assert!(offset_of!(PhysInfo, outstanding_pages) == 64);
const _: () = assert!(offset_of!(PhysInfo, max_mfn) == 72);
const _: () = assert!(offset_of!(PhysInfo, hw_cap) == 80);
const _: () = assert!(size_of::<SchedId>() == 4);
const _: () = assert!(size_of::<GetDomainInfoList>() == 24);
const _: () = assert!(offset_of!(GetDomainInfoList, max_domains) == 4);
const _: () = assert!(offset_of!(GetDomainInfoList, buffer) == 8);
const _: () = assert!(offset_of!(GetDomainInfoList, num_domains) == 16);
const _: () = assert!(size_of::<DebugKeys>() == 16);
const _: () = assert!(offset_of!(DebugKeys, nr_keys) == 8);
const _: () = assert!(size_of::<CpuTopo>() == 12);
const _: () = assert!(size_of::<CpuTopoInfo>() == 16);
const _: () = assert!(offset_of!(CpuTopoInfo, cputopo) == 8);
const _: () = assert!(size_of::<MemInfo>() == 16);
const _: () = assert!(size_of::<NumaInfo>() == 24);
const _: () = assert!(offset_of!(NumaInfo, meminfo) == 8);
const _: () = assert!(offset_of!(NumaInfo, distance) == 16);
const _: () = assert!(size_of::<CpupoolOp>() == 40);
const _: () = assert!(offset_of!(CpupoolOp, cpupool_id) == 4);
const _: () = assert!(offset_of!(CpupoolOp, sched_id) == 8);
const _: () = assert!(offset_of!(CpupoolOp, domid) == 12);
const _: () = assert!(offset_of!(CpupoolOp, cpu) == 16);
const _: () = assert!(offset_of!(CpupoolOp, n_dom) == 20);
const _: () = assert!(offset_of!(CpupoolOp, cpumap) == 24);
const _: () = assert!(size_of::<SysctlCreditSchedule>() == 12);
const _: () = assert!(size_of::<SysctlCredit2Schedule>() == 4);
const _: () = assert!(size_of::<SysctlSchedulerOp>() == 32);
const _: () = assert!(offset_of!(SysctlSchedulerOp, cmd) == 8);
const _: () = assert!(offset_of!(SysctlSchedulerOp, u) == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sets_version() {
        let s = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
        let b = s.as_bytes();
        assert_eq!(&b[0..4], &3u32.to_le_bytes());
        assert_eq!(&b[4..8], &0x15u32.to_le_bytes());
        assert!(b[8..].iter().all(|&x| x == 0));
    }

    #[test]
    fn physinfo_payload_at_offset_8() {
        let mut s = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
        s.set_payload(&PhysInfo {
            nr_cpus: 2,
            capabilities: XEN_SYSCTL_PHYSCAP_HVM
                | XEN_SYSCTL_PHYSCAP_HAP
                | XEN_SYSCTL_PHYSCAP_GNTTAB_V1,
            total_pages: 0x40000,
            ..Default::default()
        });
        let b = s.as_bytes();
        assert_eq!(&b[8 + 8..8 + 12], &2u32.to_le_bytes());
        assert_eq!(&b[8 + 28..8 + 32], &0x109u32.to_le_bytes());
        assert_eq!(&b[8 + 40..8 + 48], &0x40000u64.to_le_bytes());
        let p: PhysInfo = s.payload();
        assert_eq!(p.total_pages, 0x40000);
    }

    #[test]
    fn getdomaininfolist_and_scheduler_payloads() {
        let mut s = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
        s.set_payload(&GetDomainInfoList {
            first_domain: 1,
            max_domains: 1024,
            buffer: 0xdead_b000,
            ..Default::default()
        });
        let b = s.as_bytes();
        assert_eq!(&b[8..10], &1u16.to_le_bytes());
        assert_eq!(&b[12..16], &1024u32.to_le_bytes());
        assert_eq!(&b[16..24], &0xdead_b000u64.to_le_bytes());

        let mut op = SysctlSchedulerOp {
            sched_id: crate::domctl::XEN_SCHEDULER_CREDIT,
            cmd: XEN_SYSCTL_SCHEDOP_GETINFO,
            ..Default::default()
        };
        op.set_params(&SysctlCreditSchedule {
            tslice_ms: 30,
            ratelimit_us: 1000,
            vcpu_migr_delay_us: 0,
        });
        assert_eq!(&op.as_bytes()[16..20], &30u32.to_le_bytes());
        assert_eq!(op.params::<SysctlCreditSchedule>().ratelimit_us, 1000);
        assert_eq!(cmd_name(XEN_SYSCTL_CPUPOOL_OP), Some("cpupool_op"));
    }

    #[test]
    fn debug_keys_payload() {
        let s = XenSysctl::new(XEN_SYSCTL_DEBUG_KEYS).with_payload(&DebugKeys {
            keys: 0xffff_8000_1234_5000,
            nr_keys: 2,
            _pad: 0,
        });
        let b = s.as_bytes();
        assert_eq!(&b[0..4], &7u32.to_le_bytes());
        assert_eq!(&b[8..16], &0xffff_8000_1234_5000u64.to_le_bytes());
        assert_eq!(&b[16..20], &2u32.to_le_bytes());
        assert_eq!(s.payload::<DebugKeys>().nr_keys, 2);
        assert_eq!(cmd_name(XEN_SYSCTL_DEBUG_KEYS), Some("debug_keys"));
    }
}
