//! The two outside worlds oxl talks to, as small traits: the hypervisor ([`Hv`]: domctl,
//! sysctl, memory and event-channel ops, foreign writes) and xenstore ([`Store`]). The builder
//! and the verbs only see these traits, so they run against fakes on the host
//! ([`crate::fake`]) and against `xenctrl`/`xenstore` in Dom0 ([`crate::xen`]).
//!
//! Invariants: every method reports failure as a [`SysError`] whose text is one line naming
//! what failed; `errno` carries the Xen/OS errno when there is one, so callers can tell
//! "no such domain" (ESRCH) from other failures.

use std::fmt;
use std::time::Duration;

/// A failed hypervisor, xenstore or OS operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysError {
    pub errno: Option<i32>,
    pub msg: String,
}

impl SysError {
    /// An errno, rendered as `ENAME (description)`.
    pub fn errno(e: i32) -> SysError {
        SysError {
            errno: Some(e),
            msg: errno_text(e),
        }
    }

    /// A plain message.
    pub fn msg(m: impl Into<String>) -> SysError {
        SysError {
            errno: None,
            msg: m.into(),
        }
    }

    /// The same error with `what: ` in front.
    pub fn context(self, what: &str) -> SysError {
        SysError {
            errno: self.errno,
            msg: format!("{what}: {}", self.msg),
        }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for SysError {}

/// `ENOMEM (Cannot allocate memory)`.
pub fn errno_text(e: i32) -> String {
    let n = nix::errno::Errno::from_raw(e);
    if n == nix::errno::Errno::UnknownErrno {
        format!("error {e}")
    } else {
        format!("{n:?} ({})", n.desc())
    }
}

pub type SysResult<T> = Result<T, SysError>;

pub const ESRCH: i32 = 3;
pub const ENOENT: i32 = 2;
pub const ENOMEM: i32 = 12;

/// sysctl physinfo, the fields oxl uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysInfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub cpu_khz: u32,
    /// XEN_SYSCTL_PHYSCAP_* bits.
    pub capabilities: u32,
    pub total_pages: u64,
    pub free_pages: u64,
    pub scrub_pages: u64,
    pub outstanding_pages: u64,
    pub hw_cap: [u32; 8],
}

/// XEN_SYSCTL_PHYSCAP_* bits.
pub mod physcap {
    pub const HVM: u32 = 1 << 0;
    pub const PV: u32 = 1 << 1;
    pub const DIRECTIO: u32 = 1 << 2;
    pub const HAP: u32 = 1 << 3;
    pub const SHADOW: u32 = 1 << 4;
    pub const IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
    pub const VMTRACE: u32 = 1 << 6;
    pub const VPMU: u32 = 1 << 7;
    pub const GNTTAB_V1: u32 = 1 << 8;
    pub const GNTTAB_V2: u32 = 1 << 9;
}

/// XEN_DOMINF_* flags and decoding.
pub mod dominf {
    pub const DYING: u32 = 1 << 0;
    pub const SHUTDOWN: u32 = 1 << 2;
    pub const PAUSED: u32 = 1 << 3;
    pub const BLOCKED: u32 = 1 << 4;
    pub const RUNNING: u32 = 1 << 5;
    pub const SHUTDOWN_SHIFT: u32 = 16;
}

/// getdomaininfo, the fields oxl uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomInfo {
    pub domid: u32,
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub cpu_time_ns: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub handle: [u8; 16],
    pub gpaddr_bits: u8,
}

impl DomInfo {
    pub fn dying(&self) -> bool {
        self.flags & dominf::DYING != 0
    }
    pub fn shutdown(&self) -> bool {
        self.flags & dominf::SHUTDOWN != 0
    }
    pub fn paused(&self) -> bool {
        self.flags & dominf::PAUSED != 0
    }
    pub fn blocked(&self) -> bool {
        self.flags & dominf::BLOCKED != 0
    }
    pub fn running(&self) -> bool {
        self.flags & dominf::RUNNING != 0
    }
    /// The shutdown reason (valid when [`DomInfo::shutdown`]).
    pub fn shutdown_reason(&self) -> u32 {
        (self.flags >> dominf::SHUTDOWN_SHIFT) & 0xff
    }
}

/// Shutdown reason codes (`SHUTDOWN_*` in sched.h).
pub mod reason {
    pub const POWEROFF: u32 = 0;
    pub const REBOOT: u32 = 1;
    pub const SUSPEND: u32 = 2;
    pub const CRASH: u32 = 3;
    pub const WATCHDOG: u32 = 4;
    pub const SOFT_RESET: u32 = 5;
}

/// getvcpuinfo + getvcpuaffinity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    pub online: bool,
    pub blocked: bool,
    pub running: bool,
    pub cpu_time_ns: u64,
    pub cpu: u32,
    /// Hard and soft affinity bitmaps (bit j of byte i = CPU 8i+j).
    pub hard: Vec<u8>,
    pub soft: Vec<u8>,
}

/// xen_version facts for `xl info` and the builder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionInfo {
    pub major: u32,
    pub minor: u32,
    pub extra: String,
    pub capabilities: String,
    pub changeset: String,
    pub commandline: String,
    pub compiler: String,
    pub compile_by: String,
    pub compile_domain: String,
    pub compile_date: String,
    pub pagesize: u32,
    pub virt_start: u64,
    pub build_id: String,
}

/// The createdomain request (arm64 PVH, as libxl fills it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateDomain {
    pub handle: [u8; 16],
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub grant_opts: u32,
}

/// What createdomain returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    pub domid: u32,
    /// XEN_DOMCTL_CONFIG_GIC_V2 (1) or V3 (2).
    pub gic_version: u8,
    /// 0 when the hypervisor did not say.
    pub clock_frequency: u32,
}

/// The initial vCPU state set by setvcpucontext (arm64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuContext {
    pub pc: u64,
    pub x0: u64,
    pub cpsr: u64,
    pub sctlr: u64,
    pub online: bool,
}

/// HVM params (`hvm/params.h`).
pub mod param {
    pub const CALLBACK_IRQ: u32 = 0;
    pub const STORE_PFN: u32 = 1;
    pub const STORE_EVTCHN: u32 = 2;
    pub const CONSOLE_PFN: u32 = 17;
    pub const CONSOLE_EVTCHN: u32 = 18;
    pub const MONITOR_RING_PFN: u32 = 28;
}

/// Hypervisor operations oxl needs.
pub trait Hv {
    fn physinfo(&self) -> SysResult<PhysInfo>;
    fn version(&self) -> SysResult<VersionInfo>;
    /// sysctl sched_id (CREDIT 5, CREDIT2 6, ARINC653 7, RTDS 8, NULL 9).
    fn sched_id(&self) -> SysResult<u32>;
    /// Number of CPUs in no cpupool (`free_cpus`).
    fn free_cpus(&self) -> SysResult<u32>;
    fn create_domain(&self, req: &CreateDomain) -> SysResult<Created>;
    /// getdomaininfo of exactly `domid` (`None` if it does not exist).
    fn domain_info(&self, domid: u32) -> SysResult<Option<DomInfo>>;
    /// Every domain, ascending ids.
    fn list_domains(&self) -> SysResult<Vec<DomInfo>>;
    fn max_vcpus(&self, domid: u32, n: u32) -> SysResult<()>;
    fn max_mem(&self, domid: u32, kb: u64) -> SysResult<()>;
    fn alloc_unbound(&self, domid: u32, remote: u32) -> SysResult<u32>;
    fn set_paging_mempool_size(&self, domid: u32, bytes: u64) -> SysResult<()>;
    fn set_address_size(&self, domid: u32, bits: u32) -> SysResult<()>;
    /// XENMEM_populate_physmap: extents of `2^order` pages at `gfns`; returns extents done.
    fn populate(&self, domid: u32, order: u32, gfns: &[u64]) -> SysResult<usize>;
    /// Maps `ceil(data.len() / 4096)` pages from `gfn` (foreign map), copies `data`, zeroes the
    /// rest of the last page, unmaps.
    fn write_pages(&self, domid: u32, gfn: u64, data: &[u8]) -> SysResult<()>;
    /// Maps `ceil(len / 4096)` pages from `gfn`, lets `fill` write the first `len` bytes,
    /// zeroes the rest of the last page, unmaps (as [`Hv::write_pages`] of what `fill` wrote).
    fn fill_pages(
        &self,
        domid: u32,
        gfn: u64,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> SysResult<()>,
    ) -> SysResult<()> {
        let mut buf = vec![0u8; len];
        fill(&mut buf)?;
        self.write_pages(domid, gfn, &buf)
    }
    fn cacheflush(&self, domid: u32, gfn: u64, nr: u64) -> SysResult<()>;
    fn set_param(&self, domid: u32, index: u32, value: u64) -> SysResult<()>;
    fn set_vcpu_context(&self, domid: u32, vcpu: u32, ctx: &VcpuContext) -> SysResult<()>;
    /// Writes `grant_entry_v1 {GTF_permit_access, backend domid, frame}` at each grant ref of
    /// `domid`'s table (libxl's `xc_dom_gnttab_seed`: ref 0 = console, 1 = xenstore).
    fn seed_grants(&self, domid: u32, backend: u32, frames: &[u64]) -> SysResult<()>;
    fn vcpu_info(&self, domid: u32, vcpu: u32) -> SysResult<VcpuInfo>;
    /// setvcpuaffinity: hard and/or soft affinity to the CPUs of a bitmap (`None` keeps it).
    fn set_vcpu_affinity(
        &self,
        domid: u32,
        vcpu: u32,
        hard: Option<&[u8]>,
        soft: Option<&[u8]>,
    ) -> SysResult<()>;
    /// The domain's credit/credit2 parameters: `None` leaves one as it is.
    fn set_sched_credit(&self, domid: u32, weight: Option<u16>, cap: Option<u16>) -> SysResult<()>;
    /// The domain's credit parameters (weight, cap).
    fn sched_credit(&self, domid: u32) -> SysResult<(u16, u16)>;
    /// Pool-0's credit parameters (tslice ms, ratelimit µs, migration delay µs).
    fn sched_credit_params(&self) -> SysResult<(u32, u32, u32)>;
    /// Set Pool-0's credit parameters (tslice ms, ratelimit µs, migration delay µs).
    fn set_sched_credit_params(&self, p: (u32, u32, u32)) -> SysResult<()>;
    fn pause(&self, domid: u32) -> SysResult<()>;
    /// sysctl debug_keys: the hypervisor handles `keys` as if typed on its console.
    fn send_debug_keys(&self, keys: &[u8]) -> SysResult<()>;
    /// sysctl readconsole: the hypervisor's console ring, oldest byte first (read whole, as
    /// libxl's console reader does); `clear` then clears what was read.
    fn read_console(&self, clear: bool) -> SysResult<Vec<u8>>;
    fn unpause(&self, domid: u32) -> SysResult<()>;
    fn destroy(&self, domid: u32) -> SysResult<()>;
}

/// xenstore permission kinds oxl sets (`n`, `r`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermKind {
    None,
    Read,
}

/// One ACL entry; the first of a list is the owner and everyone else's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    pub id: u32,
    pub kind: PermKind,
}

/// `(n0)`.
pub const fn n(id: u32) -> Perm {
    Perm {
        id,
        kind: PermKind::None,
    }
}
/// `(r1)`.
pub const fn r(id: u32) -> Perm {
    Perm {
        id,
        kind: PermKind::Read,
    }
}

/// xenstore operations oxl needs (transaction 0 = none).
pub trait Store {
    fn read(&self, tx: u32, path: &str) -> SysResult<Option<String>>;
    fn write(&self, tx: u32, path: &str, value: &str) -> SysResult<()>;
    fn rm(&self, tx: u32, path: &str) -> SysResult<()>;
    /// The children of `path` (empty when it does not exist).
    fn directory(&self, tx: u32, path: &str) -> SysResult<Vec<String>>;
    fn set_perms(&self, tx: u32, path: &str, perms: &[Perm]) -> SysResult<()>;
    fn transaction_start(&self) -> SysResult<u32>;
    /// `Ok(false)` when the transaction conflicted (EAGAIN) and must be retried.
    fn transaction_end(&self, tx: u32, commit: bool) -> SysResult<bool>;
    fn introduce(&self, domid: u32, gfn: u64, port: u32) -> SysResult<()>;
    fn watch(&self, path: &str, token: &str) -> SysResult<()>;
    fn unwatch(&self, path: &str, token: &str) -> SysResult<()>;
    /// The next watch event, or `None` when `timeout` passes first.
    fn wait_watch(&self, timeout: Option<Duration>) -> SysResult<Option<(String, String)>>;
}

/// Runs `body` in a transaction, retrying (bounded) while it conflicts.
pub fn with_transaction<S: Store + ?Sized, T>(
    s: &S,
    mut body: impl FnMut(u32) -> SysResult<T>,
) -> SysResult<T> {
    for _ in 0..32 {
        let tx = s.transaction_start()?;
        match body(tx) {
            Ok(v) => {
                if s.transaction_end(tx, true)? {
                    return Ok(v);
                }
            }
            Err(e) => {
                let _ = s.transaction_end(tx, false);
                return Err(e);
            }
        }
    }
    Err(SysError::msg(
        "xenstore transaction kept conflicting (EAGAIN 32 times)",
    ))
}

/// The name of domain `domid` (`/local/domain/N/name`; `Domain-0` for 0 as libxl says).
pub fn domain_name<S: Store + ?Sized>(s: &S, domid: u32) -> SysResult<Option<String>> {
    let name = s.read(0, &format!("/local/domain/{domid}/name"))?;
    Ok(name.or_else(|| (domid == 0).then(|| "Domain-0".to_string())))
}
