//! [`Xc`]: hypercalls from Dom0 through `/dev/xen/privcmd` (libxencall and
//! libxenctrl's role): `domctl`, `sysctl`, memory, event channel, HVM param
//! and version ops, with typed helpers.
//!
//! Invariants: every pointer handed to the hypervisor is the address of a
//! [`HypercallBuf`] alive for the whole call (the domctl/sysctl structs are
//! bounced through a per-handle scratch page guarded by a mutex, embedded
//! arrays get their own buffers). `interface_version` is always set to 0x15.
//! Counts coming back from the hypervisor are checked against what was asked
//! before use.

use std::fs::{File, OpenOptions};
use std::sync::{Mutex, MutexGuard};

use xen_abi::domctl::{self as dc, XenDomctl};
use xen_abi::event_channel::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_STATUS, EvtchnAllocUnbound, EvtchnStatus,
};
use xen_abi::hvm::{HVMOP_GET_PARAM, HVMOP_SET_PARAM, XenHvmParam};
use xen_abi::hypercall::{self as hc, xenver};
use xen_abi::memory::{XENMEM_POPULATE_PHYSMAP, XenMemoryReservation};
use xen_abi::sysctl::{self as sc, XenSysctl};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::conring;
use crate::domain::DomainInfo;
use crate::error::{Error, Result};
use crate::hcall::HypercallBuf;
use crate::sys;

/// Path of the privcmd device.
pub const PRIVCMD_PATH: &str = "/dev/xen/privcmd";
/// Path of the hypercall buffer device.
pub const HYPERCALL_PATH: &str = "/dev/xen/hypercall";

/// Operation name of a domctl command for error messages.
pub fn domctl_op_name(cmd: u32) -> &'static str {
    match cmd {
        dc::XEN_DOMCTL_CREATEDOMAIN => "domctl createdomain",
        dc::XEN_DOMCTL_DESTROYDOMAIN => "domctl destroydomain",
        dc::XEN_DOMCTL_PAUSEDOMAIN => "domctl pausedomain",
        dc::XEN_DOMCTL_UNPAUSEDOMAIN => "domctl unpausedomain",
        dc::XEN_DOMCTL_GETDOMAININFO => "domctl getdomaininfo",
        dc::XEN_DOMCTL_SETVCPUAFFINITY => "domctl setvcpuaffinity",
        dc::XEN_DOMCTL_GETVCPUAFFINITY => "domctl getvcpuaffinity",
        dc::XEN_DOMCTL_MAX_MEM => "domctl max_mem",
        dc::XEN_DOMCTL_SETVCPUCONTEXT => "domctl setvcpucontext",
        dc::XEN_DOMCTL_GETVCPUCONTEXT => "domctl getvcpucontext",
        dc::XEN_DOMCTL_GETVCPUINFO => "domctl getvcpuinfo",
        dc::XEN_DOMCTL_MAX_VCPUS => "domctl max_vcpus",
        dc::XEN_DOMCTL_SCHEDULER_OP => "domctl scheduler_op",
        dc::XEN_DOMCTL_SETDOMAINHANDLE => "domctl setdomainhandle",
        dc::XEN_DOMCTL_IRQ_PERMISSION => "domctl irq_permission",
        dc::XEN_DOMCTL_IOMEM_PERMISSION => "domctl iomem_permission",
        dc::XEN_DOMCTL_SET_ADDRESS_SIZE => "domctl set_address_size",
        dc::XEN_DOMCTL_MEMORY_MAPPING => "domctl memory_mapping",
        dc::XEN_DOMCTL_SETNODEAFFINITY => "domctl setnodeaffinity",
        dc::XEN_DOMCTL_GETNODEAFFINITY => "domctl getnodeaffinity",
        dc::XEN_DOMCTL_CACHEFLUSH => "domctl cacheflush",
        dc::XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE => "domctl get_paging_mempool_size",
        dc::XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE => "domctl set_paging_mempool_size",
        _ => "domctl",
    }
}

/// Operation name of a sysctl command for error messages.
pub fn sysctl_op_name(cmd: u32) -> &'static str {
    match cmd {
        sc::XEN_SYSCTL_READCONSOLE => "sysctl readconsole",
        sc::XEN_SYSCTL_PHYSINFO => "sysctl physinfo",
        sc::XEN_SYSCTL_SCHED_ID => "sysctl sched_id",
        sc::XEN_SYSCTL_GETDOMAININFOLIST => "sysctl getdomaininfolist",
        sc::XEN_SYSCTL_DEBUG_KEYS => "sysctl debug_keys",
        sc::XEN_SYSCTL_CPUTOPOINFO => "sysctl cputopoinfo",
        sc::XEN_SYSCTL_NUMAINFO => "sysctl numainfo",
        sc::XEN_SYSCTL_CPUPOOL_OP => "sysctl cpupool_op",
        sc::XEN_SYSCTL_SCHEDULER_OP => "sysctl scheduler_op",
        _ => "sysctl",
    }
}

/// `xen_compile_info` decoded (`XENVER_compile_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileInfo {
    /// Compiler version string.
    pub compiler: String,
    /// Who built it.
    pub compile_by: String,
    /// Build host domain.
    pub compile_domain: String,
    /// Build date.
    pub compile_date: String,
}

/// One CPU pool (`XEN_SYSCTL_CPUPOOL_OP_INFO`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpupoolInfo {
    /// Pool id.
    pub cpupool_id: u32,
    /// `XEN_SCHEDULER_*`.
    pub sched_id: u32,
    /// Domains in the pool.
    pub n_dom: u32,
    /// CPU bitmap (bit j of byte i = CPU 8i+j).
    pub cpumap: Vec<u8>,
}

/// How long [`Xc::destroy`] retries an EAGAIN answer.
pub const DESTROY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes of the CPU bitmaps xenctrl passes (1024 CPUs).
const CPUMAP_BYTES: usize = 128;

/// The CPUs set in a bitmap, ascending.
pub fn bitmap_cpus(map: &[u8]) -> Vec<u32> {
    let mut v = Vec::new();
    for (i, b) in map.iter().enumerate() {
        for j in 0..8 {
            if b & (1 << j) != 0 {
                v.push((i * 8 + j) as u32);
            }
        }
    }
    v
}

/// Decode a NUL-terminated (or full) byte string.
pub(crate) fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// `SCHEDOP_remote_shutdown` (`sched.h`).
const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;

/// `struct sched_remote_shutdown` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct SchedRemoteShutdown {
    domain_id: u16,
    _pad: u16,
    reason: u32,
}

const _: () = assert!(size_of::<SchedRemoteShutdown>() == 8);

/// A handle on the hypervisor: `/dev/xen/privcmd` plus hypercall buffers.
#[derive(Debug)]
pub struct Xc {
    privcmd: File,
    hcall_dev: Option<File>,
    scratch: Mutex<HypercallBuf>,
}

impl Xc {
    /// Open `/dev/xen/privcmd` (and `/dev/xen/hypercall` for buffers, falling
    /// back to locked anonymous memory when it is missing).
    pub fn open() -> Result<Self> {
        let privcmd = OpenOptions::new()
            .read(true)
            .write(true)
            .open(PRIVCMD_PATH)
            .map_err(|e| Error::os("open /dev/xen/privcmd (is this Dom0 on Xen?)", e))?;
        let hcall_dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open(HYPERCALL_PATH)
            .ok();
        let scratch = HypercallBuf::new(hcall_dev.as_ref(), 4096)?;
        Ok(Self {
            privcmd,
            hcall_dev,
            scratch: Mutex::new(scratch),
        })
    }

    /// The privcmd device (for foreign mappings).
    pub(crate) fn privcmd(&self) -> &File {
        &self.privcmd
    }

    /// A fresh pinned buffer of at least `len` bytes for hypercall arguments.
    pub fn hypercall_buf(&self, len: usize) -> Result<HypercallBuf> {
        HypercallBuf::new(self.hcall_dev.as_ref(), len)
    }

    fn scratch(&self) -> MutexGuard<'_, HypercallBuf> {
        self.scratch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issue hypercall `op` with raw arguments; `name` labels errors.
    ///
    /// # Safety
    /// Every argument that is an address (and every address inside the
    /// memory they point to) must be memory of this process that the
    /// hypervisor may read and write for the duration of the call —
    /// normally the [`HypercallBuf::addr`] of a live buffer.
    #[allow(unsafe_code)] // declares the contract only; the call is in `sys`.
    pub unsafe fn hypercall(&self, name: &'static str, op: u64, args: [u64; 5]) -> Result<i64> {
        self.call(name, op, args)
    }

    /// Internal hypercall; callers keep the module invariant (addresses are
    /// live hypercall buffers).
    fn call(&self, name: &'static str, op: u64, args: [u64; 5]) -> Result<i64> {
        sys::hypercall(&self.privcmd, op, args).map_err(|e| Error::from_hypercall_errno(name, e))
    }

    /// Issue `d` (interface version set here) and copy the result back into
    /// it, whether or not the hypervisor succeeded. Returns the hypercall's
    /// value. Handles embedded in the payload must be hypercall buffers.
    pub fn domctl(&self, d: &mut XenDomctl) -> Result<i64> {
        d.interface_version = dc::XEN_DOMCTL_INTERFACE_VERSION;
        let mut buf = self.scratch();
        buf.write(0, d)?;
        let r = self.call(domctl_op_name(d.cmd), hc::DOMCTL, [buf.addr(), 0, 0, 0, 0]);
        *d = buf.read(0)?;
        r
    }

    /// Issue `s` (interface version set here) and copy the result back.
    pub fn sysctl(&self, s: &mut XenSysctl) -> Result<i64> {
        s.interface_version = sc::XEN_SYSCTL_INTERFACE_VERSION;
        let mut buf = self.scratch();
        buf.write(0, s)?;
        let r = self.call(sysctl_op_name(s.cmd), hc::SYSCTL, [buf.addr(), 0, 0, 0, 0]);
        *s = buf.read(0)?;
        r
    }

    /// A sub-op whose argument is one struct, bounced through the scratch
    /// page and copied back.
    fn struct_op<T>(&self, name: &'static str, op: u64, cmd: u64, arg: &mut T) -> Result<i64>
    where
        T: FromBytes + IntoBytes + Immutable + KnownLayout,
    {
        let mut buf = self.scratch();
        buf.write(0, arg)?;
        let r = self.call(name, op, [cmd, buf.addr(), 0, 0, 0]);
        *arg = buf.read(0)?;
        r
    }

    fn domctl_payload<T>(&self, cmd: u32, domid: u16, p: &T) -> Result<XenDomctl>
    where
        T: IntoBytes + Immutable,
    {
        let mut d = XenDomctl::new(cmd, domid).with_payload(p);
        self.domctl(&mut d)?;
        Ok(d)
    }

    fn domctl_simple(&self, cmd: u32, domid: u16) -> Result<()> {
        let mut d = XenDomctl::new(cmd, domid);
        self.domctl(&mut d).map(drop)
    }

    // ---- domains -------------------------------------------------------

    /// Create a domain; Xen picks the id (returned), as libxl asks with
    /// `domain = DOMID_INVALID`. The configuration is not written back; use
    /// [`Xc::domain_create_with`] for that.
    pub fn domain_create(&self, cfg: &dc::CreateDomain) -> Result<u16> {
        let mut c = *cfg;
        self.domain_create_with(dc::DOMID_INVALID, &mut c)
    }

    /// Create a domain with id `domid` (0 or ≥ `DOMID_FIRST_RESERVED`: Xen
    /// picks one). `cfg` receives what Xen copied back (e.g. the resolved GIC
    /// version and `clock_frequency`).
    pub fn domain_create_with(&self, domid: u16, cfg: &mut dc::CreateDomain) -> Result<u16> {
        let d = self.domctl_payload(dc::XEN_DOMCTL_CREATEDOMAIN, domid, cfg)?;
        *cfg = d.payload();
        if d.domain == 0 || d.domain >= dc::DOMID_FIRST_RESERVED {
            return Err(Error::invalid(
                "domctl createdomain",
                format!("hypervisor returned domain id {}", d.domain),
            ));
        }
        Ok(d.domain)
    }

    /// The first domain with id ≥ `first` (Xen 4.17 semantics); `None` when
    /// there is none. Check `domid` if you wanted exactly `first`.
    pub fn domain_getinfo(&self, first: u16) -> Result<Option<DomainInfo>> {
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, first);
        match self.domctl(&mut d) {
            Ok(_) => Ok(Some(DomainInfo::from(&d.payload::<dc::GetDomainInfo>()))),
            Err(e) if e.xen_errno() == Some(xen_abi::Errno::ESRCH) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Exactly domain `domid`, `None` if it does not exist.
    pub fn domain_info(&self, domid: u16) -> Result<Option<DomainInfo>> {
        Ok(self.domain_getinfo(domid)?.filter(|d| d.domid == domid))
    }

    /// Up to `max` domains with id ≥ `first`, ascending (`max` is capped at
    /// the number of possible domain ids).
    pub fn domain_getinfolist(&self, first: u16, max: u32) -> Result<Vec<DomainInfo>> {
        const OP: &str = "sysctl getdomaininfolist";
        let max = max.min(u32::from(dc::DOMID_FIRST_RESERVED));
        if max == 0 {
            return Ok(Vec::new());
        }
        let elem = size_of::<dc::GetDomainInfo>();
        let buf = self.hypercall_buf(max as usize * elem)?;
        let mut s =
            XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST).with_payload(&sc::GetDomainInfoList {
                first_domain: first,
                max_domains: max,
                buffer: buf.addr(),
                ..Default::default()
            });
        self.sysctl(&mut s)?;
        let n = s.payload::<sc::GetDomainInfoList>().num_domains;
        if n > max {
            return Err(Error::invalid(
                OP,
                format!("hypervisor returned {n} domains for {max} slots"),
            ));
        }
        let raw: Vec<dc::GetDomainInfo> = buf.read_slice(0, n as usize)?;
        Ok(raw.iter().map(DomainInfo::from).collect())
    }

    /// Pause (increments the pause count).
    pub fn pause(&self, domid: u16) -> Result<()> {
        self.domctl_simple(dc::XEN_DOMCTL_PAUSEDOMAIN, domid)
    }

    /// Unpause (decrements the pause count).
    pub fn unpause(&self, domid: u16) -> Result<()> {
        self.domctl_simple(dc::XEN_DOMCTL_UNPAUSEDOMAIN, domid)
    }

    /// Destroy (the domain becomes dying, then disappears when the last
    /// reference, e.g. a foreign mapping, goes). Retries while the
    /// hypervisor answers EAGAIN (still relinquishing memory), for at most
    /// [`DESTROY_TIMEOUT`].
    pub fn destroy(&self, domid: u16) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            match self.domctl_simple(dc::XEN_DOMCTL_DESTROYDOMAIN, domid) {
                Err(e)
                    if e.xen_errno() == Some(xen_abi::Errno::EAGAIN)
                        && start.elapsed() < DESTROY_TIMEOUT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                r => return r,
            }
        }
    }

    /// Shut `domid` down with `reason` (`SHUTDOWN_*`) as if it had asked
    /// itself (`SCHEDOP_remote_shutdown`, libxc's `xc_domain_shutdown`).
    pub fn domain_shutdown(&self, domid: u16, reason: u32) -> Result<()> {
        let mut a = SchedRemoteShutdown {
            domain_id: domid,
            _pad: 0,
            reason,
        };
        self.struct_op(
            "sched_op remote_shutdown",
            hc::SCHED_OP,
            SCHEDOP_REMOTE_SHUTDOWN,
            &mut a,
        )
        .map(drop)
    }

    /// Set the number of vCPUs (must equal the createdomain value).
    pub fn max_vcpus(&self, domid: u16, max: u32) -> Result<()> {
        self.domctl_payload(dc::XEN_DOMCTL_MAX_VCPUS, domid, &dc::MaxVcpus { max })
            .map(drop)
    }

    /// Set the memory limit in KiB.
    pub fn max_mem(&self, domid: u16, max_memkb: u64) -> Result<()> {
        self.domctl_payload(dc::XEN_DOMCTL_MAX_MEM, domid, &dc::MaxMem { max_memkb })
            .map(drop)
    }

    /// Set the guest address size (32 or 64).
    pub fn set_address_size(&self, domid: u16, bits: u32) -> Result<()> {
        self.domctl_payload(
            dc::XEN_DOMCTL_SET_ADDRESS_SIZE,
            domid,
            &dc::AddressSize { size: bits },
        )
        .map(drop)
    }

    /// Set the P2M page pool size in bytes.
    pub fn set_paging_mempool_size(&self, domid: u16, bytes: u64) -> Result<()> {
        self.domctl_payload(
            dc::XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE,
            domid,
            &dc::PagingMempool { size: bytes },
        )
        .map(drop)
    }

    /// The P2M page pool size in bytes.
    pub fn get_paging_mempool_size(&self, domid: u16) -> Result<u64> {
        let d = self.domctl_payload(
            dc::XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE,
            domid,
            &dc::PagingMempool::default(),
        )?;
        Ok(d.payload::<dc::PagingMempool>().size)
    }

    /// Clean and invalidate the data cache over `nr` GFNs from `start`.
    pub fn cacheflush(&self, domid: u16, start_pfn: u64, nr_pfns: u64) -> Result<()> {
        self.domctl_payload(
            dc::XEN_DOMCTL_CACHEFLUSH,
            domid,
            &dc::CacheFlush { start_pfn, nr_pfns },
        )
        .map(drop)
    }

    /// Load `ctx` into vCPU `vcpu` (with `VGCF_ONLINE` it starts on unpause).
    pub fn set_vcpu_context(
        &self,
        domid: u16,
        vcpu: u32,
        ctx: &dc::VcpuGuestContext,
    ) -> Result<()> {
        let mut buf = self.hypercall_buf(size_of::<dc::VcpuGuestContext>())?;
        buf.write(0, ctx)?;
        self.domctl_payload(
            dc::XEN_DOMCTL_SETVCPUCONTEXT,
            domid,
            &dc::VcpuContextArg {
                vcpu,
                _pad: 0,
                ctxt: buf.addr(),
            },
        )
        .map(drop)
    }

    /// Read vCPU `vcpu`'s context.
    pub fn get_vcpu_context(&self, domid: u16, vcpu: u32) -> Result<dc::VcpuGuestContext> {
        let buf = self.hypercall_buf(size_of::<dc::VcpuGuestContext>())?;
        self.domctl_payload(
            dc::XEN_DOMCTL_GETVCPUCONTEXT,
            domid,
            &dc::VcpuContextArg {
                vcpu,
                _pad: 0,
                ctxt: buf.addr(),
            },
        )?;
        buf.read(0)
    }

    /// State of vCPU `vcpu`.
    pub fn get_vcpu_info(&self, domid: u16, vcpu: u32) -> Result<dc::GetVcpuInfo> {
        let d = self.domctl_payload(
            dc::XEN_DOMCTL_GETVCPUINFO,
            domid,
            &dc::GetVcpuInfo {
                vcpu,
                ..Default::default()
            },
        )?;
        Ok(d.payload())
    }

    /// Set the domain's UUID.
    pub fn set_domain_handle(&self, domid: u16, handle: &[u8; 16]) -> Result<()> {
        self.domctl_payload(
            dc::XEN_DOMCTL_SETDOMAINHANDLE,
            domid,
            &dc::SetDomainHandle { handle: *handle },
        )
        .map(drop)
    }

    /// Hard (and soft) affinity of a vCPU as CPU bitmaps of `CPUMAP_BYTES`.
    pub fn get_vcpu_affinity(&self, domid: u16, vcpu: u32) -> Result<(Vec<u8>, Vec<u8>)> {
        let buf = self.hypercall_buf(2 * CPUMAP_BYTES)?;
        let map = |off: usize| dc::XenctlBitmap {
            bitmap: buf.addr_at(off),
            nr_bits: (CPUMAP_BYTES * 8) as u32,
            _pad: 0,
        };
        self.domctl_payload(
            dc::XEN_DOMCTL_GETVCPUAFFINITY,
            domid,
            &dc::VcpuAffinity {
                vcpu,
                flags: dc::XEN_VCPUAFFINITY_HARD | dc::XEN_VCPUAFFINITY_SOFT,
                cpumap_hard: map(0),
                cpumap_soft: map(CPUMAP_BYTES),
            },
        )?;
        Ok((
            buf.read_slice(0, CPUMAP_BYTES)?,
            buf.read_slice(CPUMAP_BYTES, CPUMAP_BYTES)?,
        ))
    }

    /// Set the hard affinity of a vCPU to the CPUs in `cpus` (bitmap).
    pub fn set_vcpu_affinity_hard(&self, domid: u16, vcpu: u32, cpus: &[u8]) -> Result<()> {
        self.set_vcpu_affinity(domid, vcpu, Some(cpus), None)
    }

    /// Set the hard and/or soft affinity of a vCPU (bitmaps; `None` keeps one).
    pub fn set_vcpu_affinity(
        &self,
        domid: u16,
        vcpu: u32,
        hard: Option<&[u8]>,
        soft: Option<&[u8]>,
    ) -> Result<()> {
        for m in [hard, soft].into_iter().flatten() {
            if m.len() > CPUMAP_BYTES {
                return Err(Error::invalid(
                    "domctl setvcpuaffinity",
                    format!("cpumap of {} bytes is over {CPUMAP_BYTES}", m.len()),
                ));
            }
        }
        let mut buf = self.hypercall_buf(2 * CPUMAP_BYTES)?;
        let mut flags = 0;
        if let Some(h) = hard {
            buf.write_slice(0, h)?;
            flags |= dc::XEN_VCPUAFFINITY_HARD;
        }
        if let Some(s) = soft {
            buf.write_slice(CPUMAP_BYTES, s)?;
            flags |= dc::XEN_VCPUAFFINITY_SOFT;
        }
        let map = |on: bool, off: usize| {
            if on {
                dc::XenctlBitmap {
                    bitmap: buf.addr_at(off),
                    nr_bits: (CPUMAP_BYTES * 8) as u32,
                    _pad: 0,
                }
            } else {
                dc::XenctlBitmap::default()
            }
        };
        let op = dc::VcpuAffinity {
            vcpu,
            flags,
            cpumap_hard: map(hard.is_some(), 0),
            cpumap_soft: map(soft.is_some(), CPUMAP_BYTES),
        };
        self.domctl_payload(dc::XEN_DOMCTL_SETVCPUAFFINITY, domid, &op)
            .map(drop)
    }

    /// Credit/credit2 parameters of a domain (`sched_id` must be the
    /// domain's scheduler).
    pub fn sched_credit_get(&self, domid: u16, sched_id: u32) -> Result<dc::SchedCredit> {
        let op = dc::DomctlSchedulerOp {
            sched_id,
            cmd: dc::XEN_DOMCTL_SCHEDOP_GETINFO,
            ..Default::default()
        };
        let d = self.domctl_payload(dc::XEN_DOMCTL_SCHEDULER_OP, domid, &op)?;
        Ok(d.payload::<dc::DomctlSchedulerOp>().params())
    }

    /// Set credit/credit2 parameters (weight 0 / cap 0xFFFF = unchanged).
    pub fn sched_credit_set(&self, domid: u16, sched_id: u32, p: &dc::SchedCredit) -> Result<()> {
        let mut op = dc::DomctlSchedulerOp {
            sched_id,
            cmd: dc::XEN_DOMCTL_SCHEDOP_PUTINFO,
            ..Default::default()
        };
        op.set_params(p);
        self.domctl_payload(dc::XEN_DOMCTL_SCHEDULER_OP, domid, &op)
            .map(drop)
    }

    // ---- memory --------------------------------------------------------

    /// `XENMEM_populate_physmap` for `domid`: one extent of 2^`order` pages at
    /// each GFN in `gfns`. Returns how many extents were populated (may be
    /// fewer than asked; the caller decides whether that is an error).
    pub fn populate_physmap(&self, domid: u16, order: u32, gfns: &[u64]) -> Result<usize> {
        const OP: &str = "memory_op populate_physmap";
        if gfns.is_empty() {
            return Ok(0);
        }
        let mut list = self.hypercall_buf(gfns.len() * 8)?;
        list.write_slice(0, gfns)?;
        let mut r = XenMemoryReservation {
            extent_start: list.addr(),
            nr_extents: gfns.len() as u64,
            extent_order: order,
            mem_flags: 0,
            domid,
            _pad: [0; 6],
        };
        let done = self.struct_op(OP, hc::MEMORY_OP, XENMEM_POPULATE_PHYSMAP, &mut r)?;
        usize::try_from(done)
            .ok()
            .filter(|&n| n <= gfns.len())
            .ok_or_else(|| {
                Error::invalid(
                    OP,
                    format!("hypervisor reported {done} of {} extents", gfns.len()),
                )
            })
    }

    // ---- event channels, HVM params -------------------------------------

    /// Allocate an unbound port in `dom` that `remote` may bind.
    pub fn evtchn_alloc_unbound(&self, dom: u16, remote: u16) -> Result<u32> {
        let mut a = EvtchnAllocUnbound {
            dom,
            remote_dom: remote,
            port: 0,
        };
        self.struct_op(
            "event_channel_op alloc_unbound",
            hc::EVENT_CHANNEL_OP,
            EVTCHNOP_ALLOC_UNBOUND,
            &mut a,
        )?;
        Ok(a.port)
    }

    /// Status of `port` in `dom`.
    pub fn evtchn_status(&self, dom: u16, port: u32) -> Result<EvtchnStatus> {
        let mut s = EvtchnStatus {
            dom,
            port,
            ..Default::default()
        };
        self.struct_op(
            "event_channel_op status",
            hc::EVENT_CHANNEL_OP,
            EVTCHNOP_STATUS,
            &mut s,
        )?;
        Ok(s)
    }

    /// `HVMOP_set_param`.
    pub fn hvm_set_param(&self, domid: u16, index: u32, value: u64) -> Result<()> {
        let mut p = XenHvmParam {
            domid,
            pad: 0,
            index,
            value,
        };
        self.struct_op("hvm_op set_param", hc::HVM_OP, HVMOP_SET_PARAM, &mut p)
            .map(drop)
    }

    /// `HVMOP_get_param`.
    pub fn hvm_get_param(&self, domid: u16, index: u32) -> Result<u64> {
        let mut p = XenHvmParam {
            domid,
            pad: 0,
            index,
            value: 0,
        };
        self.struct_op("hvm_op get_param", hc::HVM_OP, HVMOP_GET_PARAM, &mut p)?;
        Ok(p.value)
    }

    // ---- version ---------------------------------------------------------

    /// `XENVER_version`: (major, minor).
    pub fn xen_version(&self) -> Result<(u32, u32)> {
        let v = self.call(
            "xen_version version",
            hc::XEN_VERSION,
            [xenver::VERSION, 0, 0, 0, 0],
        )?;
        Ok(((v >> 16) as u32 & 0xFFFF, v as u32 & 0xFFFF))
    }

    /// `XENVER_pagesize`.
    pub fn xen_pagesize(&self) -> Result<u64> {
        let v = self.call(
            "xen_version pagesize",
            hc::XEN_VERSION,
            [xenver::PAGESIZE, 0, 0, 0, 0],
        )?;
        Ok(v as u64)
    }

    fn version_bytes(&self, name: &'static str, cmd: u64, len: usize) -> Result<Vec<u8>> {
        let buf = self.hypercall_buf(len)?;
        self.call(name, hc::XEN_VERSION, [cmd, buf.addr(), 0, 0, 0])?;
        Ok(buf.bytes()[..len].to_vec())
    }

    /// `XENVER_extraversion` (e.g. ".7").
    pub fn xen_extraversion(&self) -> Result<String> {
        let b = self.version_bytes("xen_version extraversion", xenver::EXTRAVERSION, 16)?;
        Ok(c_string(&b))
    }

    /// `XENVER_capabilities` (e.g. "xen-3.0-aarch64 xen-3.0-armv7l ").
    pub fn xen_capabilities(&self) -> Result<String> {
        let b = self.version_bytes("xen_version capabilities", xenver::CAPABILITIES, 1024)?;
        Ok(c_string(&b))
    }

    /// `XENVER_changeset`.
    pub fn xen_changeset(&self) -> Result<String> {
        let b = self.version_bytes("xen_version changeset", xenver::CHANGESET, 64)?;
        Ok(c_string(&b))
    }

    /// `XENVER_commandline`.
    pub fn xen_commandline(&self) -> Result<String> {
        let b = self.version_bytes("xen_version commandline", xenver::COMMANDLINE, 1024)?;
        Ok(c_string(&b))
    }

    /// `XENVER_platform_parameters`: `virt_start`.
    pub fn xen_platform_virt_start(&self) -> Result<u64> {
        let b = self.version_bytes(
            "xen_version platform_parameters",
            xenver::PLATFORM_PARAMETERS,
            8,
        )?;
        Ok(u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))
    }

    /// `XENVER_compile_info`.
    pub fn xen_compile_info(&self) -> Result<CompileInfo> {
        let b = self.version_bytes("xen_version compile_info", xenver::COMPILE_INFO, 144)?;
        Ok(CompileInfo {
            compiler: c_string(&b[0..64]),
            compile_by: c_string(&b[64..80]),
            compile_domain: c_string(&b[80..112]),
            compile_date: c_string(&b[112..144]),
        })
    }

    /// `XENVER_build_id` as bytes (empty if the hypervisor has none).
    pub fn xen_build_id(&self) -> Result<Vec<u8>> {
        const OP: &str = "xen_version build_id";
        const MAX: usize = 1024;
        let mut buf = self.hypercall_buf(4 + MAX)?;
        buf.write(0, &(MAX as u32))?;
        let n = match self.call(OP, hc::XEN_VERSION, [xenver::BUILD_ID, buf.addr(), 0, 0, 0]) {
            Ok(n) => n,
            Err(e) if e.xen_errno() == Some(xen_abi::Errno::ENODATA) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX)
            .ok_or_else(|| Error::invalid(OP, format!("length {n}")))?;
        Ok(buf.bytes()[4..4 + n].to_vec())
    }

    // ---- system ------------------------------------------------------------

    /// Host information.
    pub fn physinfo(&self) -> Result<sc::PhysInfo> {
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
        self.sysctl(&mut s)?;
        Ok(s.payload())
    }

    /// The default scheduler (`XEN_SCHEDULER_*`).
    pub fn sched_id(&self) -> Result<u32> {
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_SCHED_ID);
        self.sysctl(&mut s)?;
        Ok(s.payload::<sc::SchedId>().sched_id)
    }

    /// Read the hypervisor console ring: up to `max` bytes from `index`
    /// (incremental) or the newest `max` bytes. Returns the bytes and the
    /// next index.
    pub fn readconsole(
        &self,
        clear: bool,
        incremental: bool,
        index: u32,
        max: u32,
    ) -> Result<(Vec<u8>, u32)> {
        let buf = self.hypercall_buf(max as usize)?;
        self.readconsole_into(&buf, clear, incremental, index, max)
    }

    /// [`Xc::readconsole`] into `buf` (at least `max` bytes).
    fn readconsole_into(
        &self,
        buf: &HypercallBuf,
        clear: bool,
        incremental: bool,
        index: u32,
        max: u32,
    ) -> Result<(Vec<u8>, u32)> {
        const OP: &str = "sysctl readconsole";
        if max as usize > buf.len() {
            return Err(Error::invalid(
                OP,
                format!("{max} bytes asked of a {}-byte buffer", buf.len()),
            ));
        }
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_READCONSOLE).with_payload(&sc::ReadConsole {
            clear: u8::from(clear),
            incremental: u8::from(incremental),
            index,
            buffer: buf.addr(),
            count: max,
            ..Default::default()
        });
        self.sysctl(&mut s)?;
        let r: sc::ReadConsole = s.payload();
        if r.count > max {
            return Err(Error::invalid(OP, format!("count {} over {max}", r.count)));
        }
        Ok((buf.bytes()[..r.count as usize].to_vec(), r.index))
    }

    /// The whole hypervisor console ring, oldest byte first (`xl dmesg`; libxl's console
    /// reader over `xc_readconsolering`): incremental reads of [`conring::READ_CHUNK`] bytes
    /// into one hypercall buffer until a read returns nothing ([`conring::read_ring`]);
    /// `clear` then clears what was read. Errors name `sysctl readconsole`.
    pub fn read_console_ring(&self, clear: bool) -> Result<Vec<u8>> {
        let buf = self.hypercall_buf(conring::READ_CHUNK as usize)?;
        conring::read_ring(
            |index, clear| self.readconsole_into(&buf, clear, true, index, conring::READ_CHUNK),
            clear,
        )
    }

    /// Have the hypervisor handle `keys` as if typed on its console
    /// (`xc_send_debug_keys`; what they print goes to the hypervisor's
    /// console).
    pub fn send_debug_keys(&self, keys: &[u8]) -> Result<()> {
        const OP: &str = "sysctl debug_keys";
        let nr_keys = u32::try_from(keys.len())
            .map_err(|_| Error::invalid(OP, format!("{} keys", keys.len())))?;
        let mut buf = self.hypercall_buf(keys.len())?;
        buf.bytes_mut()[..keys.len()].copy_from_slice(keys);
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_DEBUG_KEYS).with_payload(&sc::DebugKeys {
            keys: buf.addr(),
            nr_keys,
            _pad: 0,
        });
        self.sysctl(&mut s).map(drop)
    }

    /// The first CPU pool with id ≥ `first`; `None` past the last.
    pub fn cpupool_info(&self, first: u32) -> Result<Option<CpupoolInfo>> {
        let buf = self.hypercall_buf(CPUMAP_BYTES)?;
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_CPUPOOL_OP).with_payload(&sc::CpupoolOp {
            op: sc::XEN_SYSCTL_CPUPOOL_OP_INFO,
            cpupool_id: first,
            cpumap: dc::XenctlBitmap {
                bitmap: buf.addr(),
                nr_bits: (CPUMAP_BYTES * 8) as u32,
                _pad: 0,
            },
            ..Default::default()
        });
        match self.sysctl(&mut s) {
            Ok(_) => {}
            Err(e) if e.xen_errno() == Some(xen_abi::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
        let r: sc::CpupoolOp = s.payload();
        Ok(Some(CpupoolInfo {
            cpupool_id: r.cpupool_id,
            sched_id: r.sched_id,
            n_dom: r.n_dom,
            cpumap: buf.read_slice(0, CPUMAP_BYTES)?,
        }))
    }

    /// CPUs in no pool (bitmap).
    pub fn cpupool_freeinfo(&self) -> Result<Vec<u8>> {
        let buf = self.hypercall_buf(CPUMAP_BYTES)?;
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_CPUPOOL_OP).with_payload(&sc::CpupoolOp {
            op: sc::XEN_SYSCTL_CPUPOOL_OP_FREEINFO,
            cpumap: dc::XenctlBitmap {
                bitmap: buf.addr(),
                nr_bits: (CPUMAP_BYTES * 8) as u32,
                _pad: 0,
            },
            ..Default::default()
        });
        self.sysctl(&mut s)?;
        buf.read_slice(0, CPUMAP_BYTES)
    }

    /// Topology of every CPU (index = CPU id; absent CPUs are all-ones).
    pub fn cputopoinfo(&self) -> Result<Vec<sc::CpuTopo>> {
        const OP: &str = "sysctl cputopoinfo";
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_CPUTOPOINFO);
        self.sysctl(&mut s)?;
        let n = s.payload::<sc::CpuTopoInfo>().num_cpus;
        if n == 0 || n > 4096 {
            return Err(Error::invalid(OP, format!("{n} CPUs")));
        }
        let buf = self.hypercall_buf(n as usize * size_of::<sc::CpuTopo>())?;
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_CPUTOPOINFO).with_payload(&sc::CpuTopoInfo {
            num_cpus: n,
            _pad: 0,
            cputopo: buf.addr(),
        });
        self.sysctl(&mut s)?;
        let got = s.payload::<sc::CpuTopoInfo>().num_cpus.min(n);
        buf.read_slice(0, got as usize)
    }

    /// Memory per NUMA node and the node distance matrix (row-major).
    pub fn numainfo(&self) -> Result<(Vec<sc::MemInfo>, Vec<u32>)> {
        const OP: &str = "sysctl numainfo";
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_NUMAINFO);
        self.sysctl(&mut s)?;
        let n = s.payload::<sc::NumaInfo>().num_nodes;
        if n == 0 || n > 64 {
            return Err(Error::invalid(OP, format!("{n} nodes")));
        }
        let n = n as usize;
        let mem = self.hypercall_buf(n * size_of::<sc::MemInfo>())?;
        let dist = self.hypercall_buf(n * n * 4)?;
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_NUMAINFO).with_payload(&sc::NumaInfo {
            num_nodes: n as u32,
            _pad: 0,
            meminfo: mem.addr(),
            distance: dist.addr(),
        });
        self.sysctl(&mut s)?;
        let got = (s.payload::<sc::NumaInfo>().num_nodes as usize).min(n);
        Ok((mem.read_slice(0, got)?, dist.read_slice(0, n * n)?))
    }

    /// Scheduler-wide credit parameters of a pool (`XEN_SCHEDULER_CREDIT`).
    pub fn sched_credit_params_get(&self, cpupool_id: u32) -> Result<sc::SysctlCreditSchedule> {
        let op = sc::SysctlSchedulerOp {
            cpupool_id,
            sched_id: dc::XEN_SCHEDULER_CREDIT,
            cmd: sc::XEN_SYSCTL_SCHEDOP_GETINFO,
            ..Default::default()
        };
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_SCHEDULER_OP).with_payload(&op);
        self.sysctl(&mut s)?;
        Ok(s.payload::<sc::SysctlSchedulerOp>().params())
    }

    /// Set the scheduler-wide credit parameters of a pool.
    pub fn sched_credit_params_set(
        &self,
        cpupool_id: u32,
        p: &sc::SysctlCreditSchedule,
    ) -> Result<sc::SysctlCreditSchedule> {
        let mut op = sc::SysctlSchedulerOp {
            cpupool_id,
            sched_id: dc::XEN_SCHEDULER_CREDIT,
            cmd: sc::XEN_SYSCTL_SCHEDOP_PUTINFO,
            ..Default::default()
        };
        op.set_params(p);
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_SCHEDULER_OP).with_payload(&op);
        self.sysctl(&mut s)?;
        Ok(s.payload::<sc::SysctlSchedulerOp>().params())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names() {
        assert_eq!(
            domctl_op_name(dc::XEN_DOMCTL_CREATEDOMAIN),
            "domctl createdomain"
        );
        assert_eq!(domctl_op_name(4242), "domctl");
        assert_eq!(
            sysctl_op_name(sc::XEN_SYSCTL_DEBUG_KEYS),
            "sysctl debug_keys"
        );
        assert_eq!(
            sysctl_op_name(sc::XEN_SYSCTL_READCONSOLE),
            "sysctl readconsole"
        );
        assert_eq!(
            sysctl_op_name(sc::XEN_SYSCTL_GETDOMAININFOLIST),
            "sysctl getdomaininfolist"
        );
    }

    #[test]
    fn c_strings_and_bitmaps() {
        assert_eq!(c_string(b".7\0\0junk"), ".7");
        assert_eq!(c_string(b"abc"), "abc");
        assert_eq!(bitmap_cpus(&[0b101, 0, 0x80]), vec![0, 2, 23]);
    }

    #[test]
    fn open_without_xen_fails_with_one_line() {
        if std::path::Path::new(PRIVCMD_PATH).exists() {
            return; // Running in Dom0: nothing to check here.
        }
        let e = Xc::open().unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("open /dev/xen/privcmd"), "{s}");
        assert!(!s.contains('\n'));
    }
}
