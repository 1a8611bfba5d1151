//! `domctl`: the toolstack's control of domains (Xen 4.17, interface
//! version 0x15), Dom0 only. Creating a domain makes it paused, with its
//! vCPUs offline and no RAM; the toolstack then populates its memory
//! (`memory_op` on its domid), loads it through foreign mappings, sets
//! vCPU 0's registers and unpauses it.
//!
//! Argument order follows Xen's `do_domctl`: the struct is copied in
//! (-EFAULT), the interface version checked (-EACCES), the target looked
//! up (-ESRCH), then the caller's privilege (-EPERM for any domain but Dom0).
//! On success the struct is copied back (the outputs live in it).
//!
//! Implemented: createdomain, destroydomain, pause/unpausedomain,
//! getdomaininfo, setdomainhandle, max_mem, set/getvcpucontext, getvcpuinfo, max_vcpus,
//! scheduler_op (credit weight/cap, recorded), set/getvcpuaffinity
//! (recorded; vCPUs stay where the scheduler pinned them),
//! set/get_address_size, set/getnodeaffinity (one node),
//! cacheflush, get/set_paging_mempool_size. Everything else is -ENOSYS.

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use oxen_types::{DomId, PAGE_SIZE};
use xen_abi::Errno;
use xen_abi::domctl::*;

use super::{read_arg, s2_lookup, write_arg};
use crate::arch::context::El1Context;
use crate::arch::head::TrapFrame;
use crate::domain::{self, DomState, Domain, VcpuState};
use crate::{guest_mem, sched};

/// vCPUs a run-time domain may have (the vGIC's limits).
const MAX_VCPUS_V2: u32 = 8;
const MAX_VCPUS_V3: u32 = 64;
/// Most pages one `cacheflush` covers (Xen: `1 << MAX_ORDER`).
const CACHEFLUSH_MAX: u64 = 1 << 20;
/// PSTATE.M values a 64-bit guest vCPU may start in: EL0t, EL1t, EL1h.
const GUEST_MODES: [u64; 3] = [0x0, 0x4, 0x5];

/// `domctl(op)`.
pub(crate) fn domctl(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame) -> Result<i64, Errno> {
    let uop = frame.x[0];
    let mut op: XenDomctl = read_arg(dom, uop)?;
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    // Xen looks the target up before it checks the caller's privilege.
    let target = match op.cmd {
        XEN_DOMCTL_CREATEDOMAIN | XEN_DOMCTL_GETDOMAININFO => None,
        _ => Some(lookup(op.domain)?),
    };
    if !dom.is_dom0 {
        log::info!("{}v{vcpu}: domctl {}: not permitted", dom.id, op.cmd);
        return Err(Errno::EPERM);
    }
    let r = match (op.cmd, target) {
        (XEN_DOMCTL_CREATEDOMAIN, _) => create(&mut op),
        (XEN_DOMCTL_GETDOMAININFO, _) => first_from(DomId(op.domain))
            .map(|(id, info)| {
                op.domain = id.0;
                op.set_payload(&info);
                0
            })
            .ok_or(Errno::ESRCH),
        (cmd, Some(t)) => on_domain(dom, &t, cmd, &mut op),
        (_, None) => Err(Errno::ESRCH),
    };
    if let Err(e) = r {
        log::debug!("d0: domctl {} on d{}: -{}", op.cmd, op.domain, e.name());
        return Err(e);
    }
    write_arg(dom, uop, &op)?;
    r
}

/// The listed domain `domid` names (-ESRCH if none; `DOMID_SELF` is not
/// resolved, as in Xen's `rcu_lock_domain_by_id`).
fn lookup(domid: u16) -> Result<Arc<Domain>, Errno> {
    domain::get(DomId(domid)).ok_or(Errno::ESRCH)
}

/// The domctls that act on an existing domain `t`.
fn on_domain(
    caller: &Arc<Domain>,
    t: &Arc<Domain>,
    cmd: u32,
    op: &mut XenDomctl,
) -> Result<i64, Errno> {
    let is_self = Arc::ptr_eq(caller, t);
    match cmd {
        XEN_DOMCTL_DESTROYDOMAIN => {
            if is_self {
                return Err(Errno::EINVAL);
            }
            domain::destroy(t);
            Ok(0)
        }
        XEN_DOMCTL_PAUSEDOMAIN => {
            if is_self || t.state() == DomState::Dying {
                return Err(Errno::EINVAL);
            }
            t.pause();
            sched::kick_all();
            Ok(0)
        }
        XEN_DOMCTL_UNPAUSEDOMAIN => {
            if is_self {
                return Err(Errno::EINVAL);
            }
            match t.unpause() {
                None => Err(Errno::EINVAL),
                Some(now_running) => {
                    if now_running {
                        sched::domain_unpaused(t);
                    }
                    Ok(0)
                }
            }
        }
        XEN_DOMCTL_MAX_MEM => {
            let m: MaxMem = op.payload();
            t.max_pages.store(m.max_memkb >> 2, Ordering::Release);
            Ok(0)
        }
        XEN_DOMCTL_MAX_VCPUS => {
            // The vCPUs were made by createdomain; Xen insists on the same count.
            let m: MaxVcpus = op.payload();
            if m.max as usize != t.vcpus.len() {
                return Err(Errno::EINVAL);
            }
            t.vcpus_made.store(true, Ordering::Release);
            Ok(0)
        }
        XEN_DOMCTL_SETVCPUCONTEXT => set_vcpu_context(caller, t, is_self, op),
        XEN_DOMCTL_GETVCPUCONTEXT => get_vcpu_context(caller, t, is_self, op),
        XEN_DOMCTL_GETVCPUINFO => {
            let mut vi: GetVcpuInfo = op.payload();
            let i = vi.vcpu as usize;
            if i >= t.vcpus.len() {
                return Err(Errno::EINVAL);
            }
            {
                let v = t.vcpus[i].lock();
                vi.online = u8::from(v.state != VcpuState::Offline);
                vi.blocked = u8::from(v.state == VcpuState::Blocked);
                vi.running = u8::from(v.running);
                vi.cpu = v.pcpu as u32;
            }
            if let Some(info) = sched::vcpu_info(t, i) {
                vi.cpu = info.cpu as u32;
            }
            vi.cpu_time = sched::vcpu_time_ns(t, i);
            op.set_payload(&vi);
            Ok(0)
        }
        XEN_DOMCTL_SCHEDULER_OP => {
            let mut so: DomctlSchedulerOp = op.payload();
            if so.sched_id != XEN_SCHEDULER_CREDIT {
                return Err(Errno::EINVAL);
            }
            match so.cmd {
                XEN_DOMCTL_SCHEDOP_GETINFO => {
                    let (weight, cap) = sched::params(t.id).map_err(|e| e.errno())?;
                    so.set_params(&SchedCredit { weight, cap });
                }
                XEN_DOMCTL_SCHEDOP_PUTINFO => {
                    // Credit1: weight 0 and cap ~0 mean "unchanged". Xen
                    // range-checks neither (libxl does); a cap above 100 per
                    // vCPU is refused here too.
                    let c: SchedCredit = so.params();
                    if c.cap != u16::MAX && u32::from(c.cap) > 100 * t.vcpus.len() as u32 {
                        log::info!("d0: scheduler_op on {}: cap {} out of range", t.id, c.cap);
                        return Err(Errno::EINVAL);
                    }
                    sched::putinfo(t.id, c.weight, c.cap).map_err(|e| e.errno())?;
                }
                _ => return Err(Errno::EINVAL),
            }
            op.set_payload(&so);
            Ok(0)
        }
        XEN_DOMCTL_SETVCPUAFFINITY | XEN_DOMCTL_GETVCPUAFFINITY => {
            vcpu_affinity(caller, t, cmd == XEN_DOMCTL_SETVCPUAFFINITY, op)
        }
        XEN_DOMCTL_SETDOMAINHANDLE => {
            let h: SetDomainHandle = op.payload();
            *t.handle.lock() = h.handle;
            Ok(0)
        }
        XEN_DOMCTL_SET_ADDRESS_SIZE => {
            // Only 64-bit guests: AArch32 domains are not supported.
            let a: AddressSize = op.payload();
            if a.size == 64 {
                Ok(0)
            } else {
                Err(Errno::EINVAL)
            }
        }
        XEN_DOMCTL_GET_ADDRESS_SIZE => {
            op.set_payload(&AddressSize { size: 64 });
            Ok(0)
        }
        XEN_DOMCTL_SETNODEAFFINITY => Ok(0),
        XEN_DOMCTL_GETNODEAFFINITY => {
            let n: NodeAffinity = op.payload();
            super::sysctl::write_cpumap(caller, &n.nodemap, 1)?;
            Ok(0)
        }
        XEN_DOMCTL_CACHEFLUSH => {
            let c: CacheFlush = op.payload();
            cacheflush(t, c.start_pfn, c.nr_pfns)
        }
        XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE => {
            let p: PagingMempool = op.payload();
            if !p.size.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            t.paging_pool.store(p.size, Ordering::Relaxed);
            Ok(0)
        }
        XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE => {
            op.set_payload(&PagingMempool {
                size: t.paging_pool.load(Ordering::Relaxed),
            });
            Ok(0)
        }
        _ => {
            log::info!("d0: domctl {cmd} not implemented: -ENOSYS");
            Err(Errno::ENOSYS)
        }
    }
}

/// `XEN_DOMCTL_createdomain`.
fn create(op: &mut XenDomctl) -> Result<i64, Errno> {
    let mut c: CreateDomain = op.payload();
    let host = crate::domain_build::HOST.get().ok_or(Errno::EINVAL)?;
    // Xen/Arm's arch_sanitise_domain_config: an HVM guest with HAP, nothing
    // else oxen could honour (no IOMMU, no vPMU, no TEE).
    if c.flags != XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP {
        log::info!("d0: createdomain with flags {:#x}: -EINVAL", c.flags);
        return Err(Errno::EINVAL);
    }
    let native = match host.gic {
        oxen_dt::Gic::V2 { .. } => XEN_DOMCTL_CONFIG_GIC_V2,
        oxen_dt::Gic::V3 { .. } => XEN_DOMCTL_CONFIG_GIC_V3,
    };
    if c.arch.gic_version != XEN_DOMCTL_CONFIG_GIC_NATIVE && c.arch.gic_version != native {
        return Err(Errno::EINVAL);
    }
    if c.arch.tee_type != XEN_DOMCTL_CONFIG_TEE_NONE
        || (c.grant_opts & XEN_DOMCTL_GRANT_VERSION_MASK) > 1
    {
        return Err(Errno::EINVAL);
    }
    let limit = if native == XEN_DOMCTL_CONFIG_GIC_V2 {
        MAX_VCPUS_V2
    } else {
        MAX_VCPUS_V3
    };
    if c.max_vcpus == 0 || c.max_vcpus > limit {
        return Err(Errno::EINVAL);
    }
    let want = (op.domain != 0 && op.domain < DOMID_FIRST_RESERVED).then_some(DomId(op.domain));
    let (nr_spis, handle) = (c.arch.nr_spis, c.handle);
    // Placed before the domain table is locked (placing reads it).
    let pcpus = crate::sched::place_vcpus(c.max_vcpus as usize);
    let d = domain::register_new(
        want,
        |id, vmid| crate::domain_build::new_toolstack_domain(id, vmid, &pcpus, nr_spis, handle),
        Errno::EEXIST,
        Errno::ENOMEM,
    )?;
    if let Err(e) = sched::add_domain(&d, None, None) {
        log::error!("{}: not schedulable ({e:?}): destroyed", d.id);
        domain::destroy(&d);
        return Err(Errno::EBUSY);
    }
    c.arch.gic_version = native;
    c.arch.clock_frequency = 0;
    op.domain = d.id.0;
    op.set_payload(&c);
    log::info!(
        "{}: created by the toolstack: {} vCPU(s) on CPU {:?}, GICv{}, paused",
        d.id,
        pcpus.len(),
        pcpus,
        if native == XEN_DOMCTL_CONFIG_GIC_V2 {
            2
        } else {
            3
        }
    );
    Ok(0)
}

/// The first domain with an id ≥ `from` (listed, or dying but still
/// referenced), and its `getdomaininfo` record.
pub(super) fn first_from(from: DomId) -> Option<(DomId, GetDomainInfo)> {
    let mut all = domain::DOMAINS.lock().clone();
    all.extend(domain::zombies());
    all.retain(|d| d.id.0 >= from.0);
    let d = all.into_iter().min_by_key(|d| d.id.0)?;
    Some((d.id, domain_info(&d)))
}

/// Xen's `getdomaininfo` record of `d`.
pub(super) fn domain_info(d: &Arc<Domain>) -> GetDomainInfo {
    let state = d.state();
    let mut flags = XEN_DOMINF_HVM_GUEST | XEN_DOMINF_HAP;
    // Xen's shutdown code is ~0 until the domain shuts down, shifted in
    // whole: a live domain reads 0xffff.... in the upper half.
    let code = d.shutdown_code().map_or(u32::MAX, u32::from);
    flags |= code << XEN_DOMINF_SHUTDOWNSHIFT;
    if state == DomState::Dying {
        flags |= XEN_DOMINF_DYING;
    }
    if state != DomState::Running {
        flags |= XEN_DOMINF_SHUTDOWN;
    }
    if d.is_paused() {
        flags |= XEN_DOMINF_PAUSED;
    }
    let mut online = 0u32;
    let mut blocked = 0u32;
    let mut running = false;
    let mut cpu_time = 0u64;
    for i in 0..d.vcpus.len() {
        {
            let v = d.vcpus[i].lock();
            if v.state != VcpuState::Offline {
                online += 1;
            }
            if v.state == VcpuState::Blocked {
                blocked += 1;
            }
            running |= v.running;
        }
        cpu_time += sched::vcpu_time_ns(d, i);
    }
    if online > 0 && blocked == online {
        flags |= XEN_DOMINF_BLOCKED;
    }
    if running && state == DomState::Running {
        flags |= XEN_DOMINF_RUNNING;
    }
    let tot = super::tot_pages(d);
    GetDomainInfo {
        domain: d.id.0,
        flags,
        tot_pages: tot,
        max_pages: d.max_pages.load(Ordering::Acquire),
        cpu_time,
        nr_online_vcpus: online,
        // ~0 until `max_vcpus` made them (oxen makes them at createdomain).
        max_vcpu_id: if d.vcpus_made.load(Ordering::Acquire) {
            d.vcpus.len() as u32 - 1
        } else {
            u32::MAX
        },
        handle: *d.handle.lock(),
        gpaddr_bits: crate::domain_build::HOST.get().map_or(40, |h| h.ipa_bits),
        ..Default::default()
    }
}

/// `XEN_DOMCTL_setvcpucontext`: vCPU `vcpu` of a paused domain gets the
/// registers of a `vcpu_guest_context` (or is reset to offline by a NULL
/// context).
fn set_vcpu_context(
    caller: &Domain,
    t: &Domain,
    is_self: bool,
    op: &XenDomctl,
) -> Result<i64, Errno> {
    let a: VcpuContextArg = op.payload();
    let i = a.vcpu as usize;
    if is_self || i >= t.vcpus.len() {
        return Err(Errno::EINVAL);
    }
    if !t.is_paused() {
        return Err(Errno::EBUSY);
    }
    if a.ctxt == 0 {
        let mut v = t.vcpus[i].lock();
        v.state = VcpuState::Offline;
        v.initialised = false;
        return Ok(0);
    }
    let c: VcpuGuestContext = read_arg(caller, a.ctxt)?;
    let r = &c.user_regs;
    // A 64-bit EL1/EL0 state (Xen's is_guest_pv64_psr): nRW clear, M in
    // EL0t/EL1t/EL1h.
    if r.cpsr & 0x10 != 0 || !GUEST_MODES.contains(&(r.cpsr & 0xf)) || r.cpsr >> 32 != 0 {
        return Err(Errno::EINVAL);
    }
    let mut v = t.vcpus[i].lock();
    if v.running {
        return Err(Errno::EBUSY);
    }
    v.frame = TrapFrame::default();
    v.frame.x[..31].copy_from_slice(&r.x);
    v.frame.elr = r.pc64;
    v.frame.spsr = r.cpsr;
    let mut el1 = El1Context::reset(crate::domain::vmpidr(i as u32));
    el1.sp_el0 = r.sp_el0;
    el1.sp_el1 = r.sp_el1;
    el1.elr_el1 = r.elr_el1;
    el1.spsr_el1 = r.spsr_el1;
    el1.sctlr = c.sctlr;
    el1.tcr = c.ttbcr;
    el1.ttbr0 = c.ttbr0;
    el1.ttbr1 = c.ttbr1;
    v.el1 = el1;
    v.fp = Default::default();
    v.ctx_id = crate::domain::new_ctx_id();
    v.initialised = true;
    v.state = if c.flags & VGCF_ONLINE != 0 {
        VcpuState::Runnable
    } else {
        VcpuState::Offline
    };
    Ok(0)
}

/// `XEN_DOMCTL_getvcpucontext`: the registers saved for vCPU `vcpu`.
fn get_vcpu_context(
    caller: &Domain,
    t: &Domain,
    is_self: bool,
    op: &XenDomctl,
) -> Result<i64, Errno> {
    let a: VcpuContextArg = op.payload();
    let i = a.vcpu as usize;
    if is_self || i >= t.vcpus.len() {
        return Err(Errno::EINVAL);
    }
    let c = {
        let v = t.vcpus[i].lock();
        if !v.initialised {
            return Err(Errno::ENODATA);
        }
        let mut c = VcpuGuestContext::default();
        c.user_regs.x.copy_from_slice(&v.frame.x[..31]);
        c.user_regs.pc64 = v.frame.elr;
        c.user_regs.cpsr = v.frame.spsr;
        c.user_regs.sp_el0 = v.el1.sp_el0;
        c.user_regs.sp_el1 = v.el1.sp_el1;
        c.user_regs.elr_el1 = v.el1.elr_el1;
        c.user_regs.spsr_el1 = v.el1.spsr_el1;
        c.sctlr = v.el1.sctlr;
        c.ttbcr = v.el1.tcr;
        c.ttbr0 = v.el1.ttbr0;
        c.ttbr1 = v.el1.ttbr1;
        if v.state != VcpuState::Offline {
            c.flags = VGCF_ONLINE;
        }
        c
    };
    if a.ctxt != 0 {
        write_arg(caller, a.ctxt, &c)?;
    }
    Ok(0)
}

/// Bytes of CPU bitmap the hypervisor reads or writes for a bitmap of
/// `nr_bits` bits (at most one u64 of CPUs: oxen runs on ≤ 64 CPUs).
fn bitmap_bytes(nr_bits: u32) -> usize {
    (nr_bits as usize).div_ceil(8).min(8)
}

/// Read a `xenctl_bitmap` from the caller's memory.
fn read_bitmap(caller: &Domain, b: &XenctlBitmap) -> Result<u64, Errno> {
    let n = bitmap_bytes(b.nr_bits);
    let mut raw = [0u8; 8];
    guest_mem::copy_from_guest(caller, b.bitmap, &mut raw[..n])?;
    let mut m = u64::from_le_bytes(raw);
    if b.nr_bits < 64 {
        m &= (1u64 << b.nr_bits) - 1;
    }
    Ok(m)
}

/// The physical CPUs that exist, as a mask.
pub(super) fn online_cpus() -> u64 {
    let n = sched::nr_cpus();
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// `XEN_DOMCTL_{set,get}vcpuaffinity`: the scheduler applies the masks
/// (the vCPU moves at once if its CPU is no longer allowed) and set
/// returns the effective ones (hard ∩ online CPUs, soft ∩ hard ∩ online);
/// get returns the masks as set. Xen's errors: vCPU out of range or no
/// mask flag (-EINVAL), a hard mask without an online CPU (-EINVAL).
fn vcpu_affinity(caller: &Domain, t: &Domain, set: bool, op: &mut XenDomctl) -> Result<i64, Errno> {
    let a: VcpuAffinity = op.payload();
    let i = a.vcpu as usize;
    if i >= t.vcpus.len() {
        return Err(Errno::EINVAL);
    }
    let mask = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT;
    if a.flags & mask == 0 {
        return Err(Errno::EINVAL);
    }
    let which = [
        (XEN_VCPUAFFINITY_HARD, &a.cpumap_hard, 0usize),
        (XEN_VCPUAFFINITY_SOFT, &a.cpumap_soft, 1usize),
    ];
    let out = if set {
        let mut new = [None, None];
        for (flag, map, k) in which {
            if a.flags & flag != 0 {
                new[k] = Some(read_bitmap(caller, map)?);
            }
        }
        let (h, s) = sched::set_affinity(t, i, new[0], new[1]).map_err(|e| {
            log::info!("d0: setvcpuaffinity {}v{i}: {e}", t.id);
            e.errno()
        })?;
        let mut v = t.vcpus[i].lock();
        for (slot, m) in v.affinity.iter_mut().zip(new) {
            if let Some(m) = m {
                *slot = m;
            }
        }
        [h, s]
    } else {
        match sched::vcpu_info(t, i) {
            Some(info) => [info.hard.0, info.soft.0],
            None => t.vcpus[i].lock().affinity,
        }
    };
    for (flag, map, k) in which {
        if a.flags & flag != 0 {
            super::sysctl::write_cpumap(caller, map, out[k] & online_cpus())?;
        }
    }
    Ok(0)
}

/// `XEN_DOMCTL_cacheflush`: clean and invalidate the data cache over the
/// RAM pages of `[start, start+nr)` (holes skipped), then the instruction
/// caches, so a guest starting with caches off sees what Dom0 wrote.
fn cacheflush(t: &Domain, start: u64, nr: u64) -> Result<i64, Errno> {
    let end = start.checked_add(nr).ok_or(Errno::EINVAL)?;
    if nr > CACHEFLUSH_MAX {
        return Err(Errno::EINVAL);
    }
    for gfn in start..end {
        if let Some(pa) = s2_lookup(t, gfn)
            && t.owns_phys(pa, PAGE_SIZE)
        {
            // SAFETY: `pa` is a page of the domain's RAM, in the EL2 map.
            unsafe { crate::arch::clean_inval_dcache(pa.as_u64(), PAGE_SIZE) };
        }
    }
    crate::arch::icache_inval_all();
    Ok(0)
}
