//! Xen guest-ABI state of a domain and the hypercalls built on it:
//! memory_op (shared_info and grant-table frames, reservations, foreign
//! maps), vcpu_op (vcpu_info and runstate registration), event_channel_op,
//! sched_op block/poll, grant_table_op, hvm_op, vm_assist, platform_op,
//! physdev_op and the xen_version sub-ops that depend on the domain.
//!
//! The state machines (ports, grants) live in the host-tested `oxen-xen`
//! crate, as do the pure argument rules (`oxen_xen::hcall`); this module
//! maps them onto guest memory, stage 2 and the scheduler.
//!
//! # Memory this module owns
//!
//! * one `shared_info` frame per domain, allocated with the domain and
//!   mapped wherever the guest asks (`XENMAPSPACE_shared_info`);
//! * the grant-table frames, allocated on demand up to `max_frames`;
//! * nothing else: RAM pages a guest gives up (ballooned out, or replaced
//!   by a mapping) stay in `Domain::mem` and go to the domain's *pool*
//!   (`DomainXen::pool`), from which `populate_physmap` maps them back.
//!   They are never returned to `FRAMES` while the domain lives, so no page
//!   ever changes owner behind a stale mapping; the domain's `Drop` frees
//!   them with the rest of its RAM.
//!
//! The frames are scrubbed and freed when `DomainXen` is dropped (after
//! `Domain::drop` has destroyed the stage 2 and flushed the TLBs). Only RAM
//! of a domain is ever mapped into *another* domain (grant maps, foreign
//! maps), never these frames. A mapping of another domain's RAM holds an
//! `Arc` of that domain (`DomainXen::holds`) so its RAM outlives the
//! mapping, like Xen's page references; [`domain_destroyed`] drops them.
//!
//! # Locking
//!
//! `Domain::xen` locks are taken before any stage-2 lock; two of them in
//! ascending domid order ([`lock_pair`]). Nothing here takes `DOMAINS`, a
//! run queue or a vCPU lock while holding a `xen` lock: upcalls and wake-ups
//! ([`Kicks`]) are collected under the lock and delivered after it is
//! dropped.

extern crate alloc;

pub(crate) mod consoleio;
pub(crate) mod domctl;
pub(crate) mod evtchn;
pub(crate) mod grant;
pub(crate) mod memory;
pub(crate) mod misc;
pub(crate) mod multicall;
mod phys;
pub(crate) mod schedop;
pub(crate) mod sysctl;
pub(crate) mod version;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use crate::sync::MutexGuard;
use oxen_mm::{MmError, S2Attrs};
use oxen_types::{DomId, Ipa, PAGE_SIZE, PhysAddr, VcpuId};
use oxen_xen::evtchn::{DomainEvtchn, EvtchnConfig, NR_EVTCHN_2L, VcpuBits};
use oxen_xen::grant::{GrantConfig, GrantTable};
use oxen_xen::hcall::{FromBytes, Immutable, IntoBytes};
use xen_abi::Errno;
use xen_abi::hvm::{
    HVM_NR_PARAMS, HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_IRQ_TYPE_SHIFT,
    HVM_PARAM_CALLBACK_TYPE_PPI, HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_LOW_LEVEL,
};

use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::guest_mem;
use crate::mem::HostTables;

// Entry points for the rest of the hypervisor.
pub use evtchn::{dump as dump_evtchn, raise_virq};

/// Per-domain Xen ABI state (shared_info, vcpu_info, event channels, grants).
pub struct DomainXen {
    /// Whether `evtchn`/`grant` were built for the real domain id (lazily,
    /// on first use, see [`lock`]).
    ready: bool,
    nr_vcpus: usize,
    /// The hypervisor-owned `shared_info` frame.
    shared_info: Option<PhysAddr>,
    /// GFN where the guest mapped `shared_info`.
    shared_gfn: Option<u64>,
    /// Host address of each vCPU's registered `vcpu_info`.
    vcpu_info: Vec<Option<PhysAddr>>,
    /// Event bits of vCPUs with neither a registered `vcpu_info` nor a
    /// legacy slot in `shared_info` (Xen's dummy vcpu_info).
    private_bits: Vec<VcpuBits>,
    /// Registered runstate area (guest virtual address) per vCPU.
    runstate_va: Vec<Option<u64>>,
    /// `VMASST_TYPE_*` bits enabled by the guest.
    vm_assist: u64,
    /// Ports each vCPU is blocked polling on (`SCHEDOP_poll`).
    polling: Vec<Vec<u32>>,
    evtchn: DomainEvtchn,
    grant: GrantTable,
    /// Host frames of the grant table, by frame index.
    grant_frames: Vec<PhysAddr>,
    hvm_params: [u64; HVM_NR_PARAMS as usize],
    /// Own RAM pages the guest does not map any more (see module docs).
    pool: Vec<PhysAddr>,
    /// Foreign RAM mapped by this domain (`XENMAPSPACE_gmfn_foreign`): GFN →
    /// owner.
    foreign: BTreeMap<u64, DomId>,
    /// Domains whose RAM this one maps (grants, foreign maps), with the
    /// number of such mappings.
    holds: BTreeMap<u16, (Arc<Domain>, u32)>,
}

/// Grant frames a domain may have (Xen's default `gnttab_max_frames`). The
/// `/hypervisor` reg[0] window must be at least this × 4 KiB.
pub const GRANT_MAX_FRAMES: u32 = oxen_xen::grant::DEFAULT_MAX_FRAMES;

impl DomainXen {
    /// State of a new domain with `nr_vcpus` vCPUs. Allocates its
    /// `shared_info` frame (an allocation failure is logged and answered
    /// with `-ENOMEM` when the guest maps it).
    pub fn new(nr_vcpus: usize) -> Self {
        let nr_vcpus = nr_vcpus.max(1);
        let shared_info = phys::alloc_frame();
        if shared_info.is_none() {
            log::error!("no memory for a shared_info frame");
        }
        let placeholder = DomId::INVALID;
        Self {
            ready: false,
            nr_vcpus,
            shared_info,
            shared_gfn: None,
            vcpu_info: vec![None; nr_vcpus],
            private_bits: vec![VcpuBits::default(); nr_vcpus],
            runstate_va: vec![None; nr_vcpus],
            vm_assist: 0,
            polling: vec![Vec::new(); nr_vcpus],
            evtchn: DomainEvtchn::new(evtchn_config(placeholder, nr_vcpus, false)),
            grant: GrantTable::new(GrantConfig::new(placeholder)),
            grant_frames: Vec::new(),
            hvm_params: [0; HVM_NR_PARAMS as usize],
            pool: Vec::new(),
            foreign: BTreeMap::new(),
            holds: BTreeMap::new(),
        }
    }

    /// Build the tables for the real domain (first use).
    fn ensure(&mut self, id: DomId, is_dom0: bool) {
        if self.ready {
            return;
        }
        self.ready = true;
        self.evtchn = DomainEvtchn::new(evtchn_config(id, self.nr_vcpus, is_dom0));
        let mut cfg = GrantConfig::new(id);
        cfg.max_frames = GRANT_MAX_FRAMES;
        self.grant = GrantTable::new(cfg);
        // Frame 0 exists from the start (Xen's INITIAL_NR_GRANT_FRAMES).
        if self.grant_frames.is_empty() {
            match phys::alloc_frame() {
                Some(f) => self.grant_frames.push(f),
                None => log::error!("{id}: no memory for grant frame 0"),
            }
        }
        // Like Xen's evtchn_allocate: the upcall is a level, active-low PPI.
        self.hvm_params[HVM_PARAM_CALLBACK_IRQ as usize] = (HVM_PARAM_CALLBACK_TYPE_PPI
            << HVM_PARAM_CALLBACK_IRQ_TYPE_SHIFT)
            | (HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_LOW_LEVEL << 8)
            | u64::from(crate::virq::EVTCHN_UPCALL_INTID);
    }

    /// The event-channel table and the domain's event bits, borrowed
    /// together.
    fn evtchn_and_bits(&mut self) -> (&mut DomainEvtchn, phys::LiveBits<'_>) {
        let bits = phys::LiveBits {
            shared: self.shared_info,
            vcpu_info: &self.vcpu_info,
            private: &mut self.private_bits,
        };
        (&mut self.evtchn, bits)
    }

    /// Take a hold on `other` (one more mapping of its RAM).
    fn hold(&mut self, other: &Arc<Domain>) {
        self.holds
            .entry(other.id.0)
            .or_insert_with(|| (other.clone(), 0))
            .1 += 1;
    }

    /// Drop one hold on domain `id`. Returns the `Arc` if it was the last,
    /// so the caller can drop it after releasing its locks.
    #[must_use]
    fn unhold(&mut self, id: DomId) -> Option<Arc<Domain>> {
        let e = self.holds.get_mut(&id.0)?;
        e.1 = e.1.saturating_sub(1);
        if e.1 == 0 {
            return self.holds.remove(&id.0).map(|(d, _)| d);
        }
        None
    }

    /// A held domain (for unmapping its RAM).
    fn held(&self, id: DomId) -> Option<Arc<Domain>> {
        self.holds.get(&id.0).map(|(d, _)| d.clone())
    }
}

impl Drop for DomainXen {
    fn drop(&mut self) {
        // The domain's stage 2 is gone and its TLB entries flushed
        // (Domain::drop runs before its fields drop), and these frames are
        // never mapped into another domain.
        for f in self
            .shared_info
            .take()
            .into_iter()
            .chain(self.grant_frames.drain(..))
        {
            phys::free_frame(f);
        }
    }
}

fn evtchn_config(domid: DomId, nr_vcpus: usize, is_dom0: bool) -> EvtchnConfig {
    EvtchnConfig {
        domid,
        nr_vcpus: nr_vcpus as u32,
        max_ports: NR_EVTCHN_2L,
        global_virq_handler: is_dom0,
    }
}

/// Lock `dom`'s Xen state (building its tables on first use).
fn lock(dom: &Domain) -> MutexGuard<'_, DomainXen> {
    let mut g = dom.xen.lock();
    g.ensure(dom.id, dom.is_dom0);
    g
}

/// Lock two different domains' Xen state in ascending domid order; the
/// guards come back in argument order.
fn lock_pair<'a>(
    a: &'a Domain,
    b: &'a Domain,
) -> (MutexGuard<'a, DomainXen>, MutexGuard<'a, DomainXen>) {
    if a.id.0 < b.id.0 {
        let ga = lock(a);
        let gb = lock(b);
        (ga, gb)
    } else {
        let gb = lock(b);
        let ga = lock(a);
        (ga, gb)
    }
}

/// Upcalls to inject and vCPUs to wake, collected under a `xen` lock and
/// carried out after it is released.
#[derive(Default)]
struct Kicks {
    /// The first upcall (the usual only one: no allocation), then the rest.
    upcall: Option<(Arc<Domain>, usize)>,
    upcalls: Vec<(Arc<Domain>, usize)>,
    wakes: Vec<(Arc<Domain>, usize)>,
}

impl Kicks {
    fn upcall(&mut self, dom: &Arc<Domain>, vcpu: Option<VcpuId>) {
        if let Some(v) = vcpu {
            let u = (dom.clone(), v.0 as usize);
            if self.upcall.is_none() {
                self.upcall = Some(u);
            } else {
                self.upcalls.push(u);
            }
        }
    }

    fn fire(self) {
        for (d, v) in self.upcall.into_iter().chain(self.upcalls) {
            crate::virq::raise_upcall(&d, v);
        }
        for (d, v) in self.wakes {
            crate::sched::wake(&d, v);
        }
    }
}

/// The domain a domid argument names, for operations on another domain.
fn domain_by_id(caller: &Arc<Domain>, id: DomId) -> Result<Arc<Domain>, Errno> {
    if id == caller.id || id == DomId::SELF {
        return Ok(caller.clone());
    }
    crate::domain::get(id).ok_or(Errno::ESRCH)
}

/// The domain a `domid` argument of an `XSM_TARGET` operation names, in
/// Xen's order: the id is looked up first (`rcu_lock_domain_by_any_id`:
/// `-ESRCH` for no such domain, `DOMID_SELF` is the caller), and only then
/// is the caller's right checked (another domain needs Dom0: `-EPERM`).
fn target_domain(caller: &Arc<Domain>, domid: u16) -> Result<Arc<Domain>, Errno> {
    let id = DomId(domid);
    if id == caller.id || id == DomId::SELF {
        return Ok(caller.clone());
    }
    let d = crate::domain::get(id).ok_or(Errno::ESRCH)?;
    if !caller.is_dom0 {
        return Err(Errno::EPERM);
    }
    Ok(d)
}

// ---- guest arguments ----

/// Read a struct from guest virtual address `va`.
fn read_arg<T: FromBytes + IntoBytes>(dom: &Domain, va: u64) -> Result<T, Errno> {
    let mut t = T::new_zeroed();
    guest_mem::copy_from_guest(dom, va, t.as_mut_bytes())?;
    Ok(t)
}

/// Write a struct back to guest virtual address `va`.
fn write_arg<T: IntoBytes + Immutable>(dom: &Domain, va: u64, t: &T) -> Result<(), Errno> {
    guest_mem::copy_to_guest(dom, va, t.as_bytes())?;
    Ok(())
}

/// Arrange for the guest to re-issue the current hypercall (Xen's
/// continuation): it resumes at the `HVC` again with the argument
/// registers the caller has updated. Returns the value x0 must hold.
fn continuation(frame: &mut TrapFrame, x0: u64) -> Result<i64, Errno> {
    frame.elr = frame.elr.wrapping_sub(4);
    Ok(x0 as i64)
}

// ---- stage 2 ----

/// Highest GFN a guest may name (52-bit IPA).
const MAX_GFN: u64 = 1 << 40;

fn check_gfn(gfn: u64) -> Result<Ipa, Errno> {
    if gfn >= MAX_GFN {
        return Err(Errno::EINVAL);
    }
    Ok(Ipa(gfn << 12))
}

/// The host page `gfn` maps to in `dom`'s stage 2.
fn s2_lookup(dom: &Domain, gfn: u64) -> Option<PhysAddr> {
    let ipa = check_gfn(gfn).ok()?;
    let s2 = dom.stage2.lock();
    let (pa, _) = s2.as_ref()?.translate(&mut HostTables, ipa)?;
    Some(PhysAddr(pa.as_u64() & !(PAGE_SIZE - 1)))
}

/// Unmap one page of `dom` and flush its TLB entries.
fn s2_unmap(dom: &Domain, gfn: u64) -> Result<(), Errno> {
    let ipa = check_gfn(gfn)?;
    let r = {
        let mut s2 = dom.stage2.lock();
        let s2 = s2.as_mut().ok_or(Errno::ESRCH)?;
        s2.unmap(
            &mut phys::LiveTables {
                vttbr: dom.vttbr,
                host: HostTables,
            },
            ipa,
            PAGE_SIZE,
        )
    };
    crate::arch::flush_guest_tlb(dom.vttbr);
    r.map_err(|e| {
        log::info!("{}: stage-2 unmap of gfn {gfn:#x} failed: {e:?}", dom.id);
        Errno::ENOMEM
    })
}

/// Map one page into `dom` at `gfn` (which must be unmapped).
fn s2_map(dom: &Domain, gfn: u64, pa: PhysAddr, attrs: S2Attrs) -> Result<(), Errno> {
    let ipa = check_gfn(gfn)?;
    let mut s2 = dom.stage2.lock();
    let s2 = s2.as_mut().ok_or(Errno::ESRCH)?;
    s2.map(
        &mut phys::LiveTables {
            vttbr: dom.vttbr,
            host: HostTables,
        },
        ipa,
        pa,
        PAGE_SIZE,
        attrs,
    )
    .map_err(|e| match e {
        MmError::AlreadyMapped => Errno::EBUSY,
        MmError::OutOfMemory => Errno::ENOMEM,
        _ => Errno::EINVAL,
    })
}

/// Guest-RAM stage-2 attributes of foreign pages: Normal WB, never
/// executable.
fn foreign_attrs(readonly: bool) -> S2Attrs {
    S2Attrs {
        read: true,
        write: !readonly,
        exec: false,
        mem: oxen_mm::MemType::Normal,
    }
}

/// Make `gfn` of `dom` empty so something else can be mapped there: the
/// domain's own RAM goes to its pool, its shared_info or a grant frame is
/// forgotten there. Anything else (a grant or foreign mapping) is
/// `-EBUSY`: it has to be unmapped through its own interface first.
fn vacate(dom: &Domain, x: &mut DomainXen, gfn: u64) -> Result<(), Errno> {
    check_gfn(gfn)?;
    let Some(pa) = s2_lookup(dom, gfn) else {
        return Ok(());
    };
    if dom.owns_phys(pa, PAGE_SIZE) {
        x.pool.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        s2_unmap(dom, gfn)?;
        x.pool.push(pa);
    } else if x.shared_info == Some(pa) {
        s2_unmap(dom, gfn)?;
        x.shared_gfn = None;
    } else if x.grant_frames.contains(&pa) {
        s2_unmap(dom, gfn)?;
        x.grant.remove_gfn(gfn);
    } else {
        log::info!(
            "{}: gfn {gfn:#x} holds a foreign or grant mapping: -EBUSY",
            dom.id
        );
        return Err(Errno::EBUSY);
    }
    Ok(())
}

/// Pages `dom` has (Xen's `tot_pages`): its RAM minus what it gave back,
/// plus its shared_info frame once mapped (Xen counts that page as the
/// domain's: a guest mapping it over a RAM page keeps its total).
pub(crate) fn tot_pages(dom: &Domain) -> u64 {
    let ram = dom.ram_bytes() / PAGE_SIZE;
    let x = lock(dom);
    ram.saturating_sub(x.pool.len() as u64) + u64::from(x.shared_gfn.is_some())
}

/// The five argument registers of the hypercall in `frame`.
pub(crate) fn args(frame: &TrapFrame) -> [u64; 5] {
    [frame.x[0], frame.x[1], frame.x[2], frame.x[3], frame.x[4]]
}

/// Tear down what a dying domain holds in others: close its event
/// channels (their remote ends become unbound again, as in Xen's
/// `evtchn_destroy`), unmap the grants and foreign pages it maps (releasing
/// their pins and the holds on their owners). Call once, after
/// `Domain::kill`, with no locks held. Its own frames are freed when the
/// domain is dropped.
pub fn domain_destroyed(dom: &Arc<Domain>) {
    evtchn::close_all(dom);
    grant::unmap_all(dom);
    memory::unmap_all_foreign(dom);
}

/// The domains among `doms` that hold `dom` (map its RAM), with their
/// number of mappings (for the `q` debug key). Takes each domain's Xen
/// lock in turn, one at a time.
pub fn holders_of(dom: &Domain, doms: &[Arc<Domain>]) -> alloc::vec::Vec<(DomId, u32)> {
    doms.iter()
        .filter_map(|d| {
            let x = d.xen.lock();
            x.holds
                .get(&dom.id.0)
                .and_then(|(h, n)| core::ptr::eq(Arc::as_ptr(h), dom).then_some((d.id, *n)))
        })
        .collect()
}
