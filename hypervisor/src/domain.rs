//! Domains and their virtual CPUs.
//!
//! A [`Domain`] owns its RAM (host ranges mapped at guest IPAs: the
//! boot-time banks of `mem`, plus the ranges the toolstack populated at run
//! time in `extra_mem`), its stage-2 tables and VMID, and its vCPUs.
//!
//! Lifecycle, as Xen's: *running* → *shut down* (by itself, a crash or
//! `remote_shutdown`; its vCPUs stop, it stays listed with its reason until
//! the toolstack destroys it) → *dying* ([`destroy`]: removed from
//! [`DOMAINS`], its event channels closed and the mappings it holds of
//! others released). A dying domain whose RAM another domain still maps
//! (a zombie, as in Xen) lives on in [`ZOMBIES`]; its memory is scrubbed and
//! returned when the last `Arc` goes (`Drop`). Independently of that, a
//! controller pause count (`pausedomain`/`unpausedomain`; a domain created
//! by the toolstack starts paused) keeps its vCPUs off the CPUs.
//!
//! Invariants: ids and VMIDs are unique among listed domains and zombies;
//! every host range in `mem`/`extra_mem` belongs to this domain alone until
//! `Drop` gives it back to `FRAMES`.
//!
//! Lock order: DOMAINS, then ZOMBIES, then a run queue, then a domain's
//! stage 2, then a vCPU; `extra_mem` is a leaf. A vCPU's lock is only taken
//! by the physical CPU it is pinned to, except while it is offline or its
//! domain is paused.

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::sync::Weak;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::sync::Mutex;
use oxen_mm::Stage2;
use oxen_types::{DomId, Ipa, PAGE_SIZE, PhysAddr, PhysRange};

use oxen_vgic::Vgic;

use crate::arch::context::{El1Context, FpContext};
use crate::arch::gich::VifState;
use crate::arch::head::TrapFrame;
use crate::console::LineBuf;
use crate::mem::HostTables;
use crate::vgic::VgicLayout;

/// PSTATE a vCPU starts with: EL1h, D/A/I/F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// One contiguous piece of a domain's RAM.
#[derive(Clone, Copy, Debug)]
pub struct MemBank {
    /// Where the guest sees it.
    pub ipa: Ipa,
    /// The host memory behind it.
    pub phys: PhysRange,
}

/// Lifecycle of a domain (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum DomState {
    /// Its vCPUs may run.
    Running = 0,
    /// Shut down (by itself, a crash or Dom0); vCPUs are descheduled; the
    /// reason is in `shutdown_code`.
    Shutdown = 1,
    /// Destroyed: gone from the domain table.
    Dying = 2,
}

/// Run state of one vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VcpuState {
    /// Not started (secondary before PSCI CPU_ON) or stopped (CPU_OFF).
    Offline,
    /// Wants a physical CPU.
    Runnable,
    /// Waiting for an event (sched_op block/poll, WFI); see `sched::wake`.
    Blocked,
}

/// A virtual CPU.
pub struct Vcpu {
    /// Physical CPU it runs on or last ran on (at first: where it was
    /// placed); the scheduler's to change.
    pub pcpu: usize,
    /// General-purpose registers, PC and PSTATE while not running.
    pub frame: TrapFrame,
    /// EL1 system registers while not running.
    pub el1: El1Context,
    /// FP/SIMD registers while not running.
    pub fp: FpContext,
    /// Offline or runnable.
    pub state: VcpuState,
    /// GIC virtual interface state (VMCR, active priorities).
    pub vif: VifState,
    /// Virtual-timer deadline (physical count) while blocked, if armed.
    pub timer_deadline: Option<u64>,
    /// Unique id of this vCPU's register context (never reused), so a CPU
    /// can tell that the registers it holds are still this vCPU's.
    pub ctx_id: u64,
    /// Whether a physical CPU runs it now.
    pub running: bool,
    /// CPU time used, in timer ticks (updated when it leaves a CPU).
    pub cpu_ticks: u64,
    /// Timer count when it last went onto a CPU.
    pub run_start: u64,
    /// Whether it has a register context (boot, PSCI CPU_ON or
    /// `setvcpucontext`); `getvcpucontext` needs one.
    pub initialised: bool,
    /// Hard and soft affinity as the toolstack set them (bit n = CPU n).
    pub affinity: [u64; 2],
}

static NEXT_CTX_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// A fresh register-context id (a vCPU whose registers are reset gets one,
/// so no CPU mistakes stale hardware state for it).
pub fn new_ctx_id() -> u64 {
    NEXT_CTX_ID.fetch_add(1, Ordering::Relaxed)
}

/// A domain.
pub struct Domain {
    /// Its id (Dom0 = 0).
    pub id: DomId,
    /// Its name (from the device tree).
    pub name: String,
    /// Whether it is the privileged control domain.
    pub is_dom0: bool,
    /// RAM, in guest-address order.
    pub mem: Vec<MemBank>,
    /// VTTBR_EL2 value: VMID and stage-2 root.
    pub vttbr: u64,
    /// Stage-2 tables.
    pub stage2: Mutex<Option<Stage2>>,
    /// The vCPUs.
    pub vcpus: Vec<Mutex<Vcpu>>,
    state: AtomicU8,
    /// Console output not yet printed.
    pub console: Mutex<LineBuf>,
    /// Xen ABI state: shared_info, event channels, grant table.
    pub xen: Mutex<crate::xen::DomainXen>,
    /// The virtual GIC's register model.
    pub vgic: Mutex<Vgic>,
    /// Where the virtual GIC sits in the domain's IPA space.
    pub vgic_layout: VgicLayout,
    /// The emulated console UART (`vpl011` in the domain's DT node).
    pub vuart: Option<Mutex<oxen_vuart::VUart>>,
    /// Unimplemented hypercall numbers already reported (bit n = number n,
    /// bit 63 = any number ≥ 63).
    pub reported_hypercalls: core::sync::atomic::AtomicU64,
    /// Bumped on every change to the vGIC model that may make an interrupt
    /// deliverable to any of its vCPUs (lets a CPU skip refilling list
    /// registers otherwise); see `vgic_vcpu_gen` for changes to one vCPU.
    pub vgic_gen: core::sync::atomic::AtomicU64,
    /// Per vCPU: bumped on a change that may make an interrupt deliverable
    /// to that vCPU only (an injection or line change targeting it).
    pub vgic_vcpu_gen: Vec<core::sync::atomic::AtomicU64>,
    /// VMID (in `vttbr`).
    pub vmid: u16,
    /// RAM populated at run time (`populate_physmap` by the toolstack), as
    /// host ranges; merged when adjacent.
    pub extra_mem: Mutex<Vec<PhysRange>>,
    /// Most pages the domain may have (`max_mem`; boot-time domains: their
    /// boot RAM).
    pub max_pages: AtomicU64,
    /// Controller pause count: its vCPUs run only while this is 0.
    pause_count: AtomicU32,
    /// Why it shut down (`ShutdownReason` as u8), valid in `Shutdown`/`Dying`.
    shutdown_code: AtomicU8,
    /// Xen's domain handle (the toolstack's UUID).
    pub handle: Mutex<[u8; 16]>,
    /// Whether the toolstack created it (`createdomain`).
    pub from_toolstack: bool,
    /// Whether its vCPUs count as made (Xen makes them at `max_vcpus`;
    /// oxen at creation, but reports them only from then on).
    pub vcpus_made: core::sync::atomic::AtomicBool,
    /// `set_paging_mempool_size` value in bytes (recorded; oxen's stage-2
    /// tables come from the free pool).
    pub paging_pool: AtomicU64,
}

/// vMPIDR of vCPU `id` (Xen's layout: Aff0 = id % 16, Aff1 = id / 16; bit 31 RES1).
pub fn vmpidr(id: u32) -> u64 {
    (1 << 31) | oxen_vgic::vcpu_mpidr(id as usize)
}

/// The vCPU index a guest-supplied MPIDR names, if well-formed.
pub fn vcpu_from_mpidr(mpidr: u64) -> Option<u32> {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    if aff0 > 0xf || mpidr & !0xffff != 0 {
        return None;
    }
    Some((aff1 * 16 + aff0) as u32)
}

impl Domain {
    /// Assemble a domain from its parts; vCPU 0 starts at `entry` with x0 = `dtb`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: DomId,
        name: String,
        is_dom0: bool,
        mem: Vec<MemBank>,
        stage2: Stage2,
        vmid: u16,
        vgic: Vgic,
        vgic_layout: VgicLayout,
        pcpus: &[usize],
        boot: Option<(Ipa, Ipa)>,
    ) -> Self {
        let vttbr = (u64::from(vmid) << 48) | stage2.root().as_u64();
        let boot_pages = mem.iter().map(|b| b.phys.size).sum::<u64>() / PAGE_SIZE;
        let vcpus = pcpus
            .iter()
            .enumerate()
            .map(|(i, &pcpu)| {
                let mut frame = TrapFrame::default();
                frame.spsr = SPSR_EL1H_MASKED;
                let state = match boot {
                    Some((entry, dtb)) if i == 0 => {
                        frame.elr = entry.as_u64();
                        frame.x[0] = dtb.as_u64();
                        VcpuState::Runnable
                    }
                    _ => VcpuState::Offline,
                };
                Mutex::new(Vcpu {
                    pcpu,
                    frame,
                    el1: El1Context::reset(vmpidr(i as u32)),
                    fp: FpContext::default(),
                    state,
                    vif: VifState::default(),
                    timer_deadline: None,
                    ctx_id: new_ctx_id(),
                    running: false,
                    cpu_ticks: 0,
                    run_start: 0,
                    initialised: state == VcpuState::Runnable,
                    affinity: [u64::MAX; 2],
                })
            })
            .collect();
        Self {
            id,
            name,
            is_dom0,
            mem,
            vttbr,
            stage2: Mutex::new(Some(stage2)),
            vcpus,
            state: AtomicU8::new(DomState::Running as u8),
            console: Mutex::new(LineBuf::new()),
            xen: Mutex::new(crate::xen::DomainXen::new(pcpus.len())),
            vgic: Mutex::new(vgic),
            vgic_layout,
            vgic_gen: core::sync::atomic::AtomicU64::new(1),
            vgic_vcpu_gen: (0..pcpus.len())
                .map(|_| core::sync::atomic::AtomicU64::new(0))
                .collect(),
            reported_hypercalls: core::sync::atomic::AtomicU64::new(0),
            vuart: None,
            vmid,
            extra_mem: Mutex::new(Vec::new()),
            // Boot-time domains keep the RAM they were built with.
            max_pages: AtomicU64::new(boot_pages),
            pause_count: AtomicU32::new(0),
            shutdown_code: AtomicU8::new(0),
            handle: Mutex::new([0; 16]),
            from_toolstack: false,
            vcpus_made: core::sync::atomic::AtomicBool::new(true),
            paging_pool: AtomicU64::new(0),
        }
    }

    /// Whether the domain is running (not shut down, not dying): its
    /// vCPUs may be scheduled unless it is paused.
    pub fn is_alive(&self) -> bool {
        self.state.load(Ordering::Acquire) == DomState::Running as u8
    }

    /// Its lifecycle state.
    pub fn state(&self) -> DomState {
        match self.state.load(Ordering::Acquire) {
            0 => DomState::Running,
            1 => DomState::Shutdown,
            _ => DomState::Dying,
        }
    }

    /// Shut the domain down for `reason` (raw `SHUTDOWN_*`). Returns false
    /// if it was not running (the first reason stays, as in Xen).
    pub fn mark_shutdown(&self, reason: u8) -> bool {
        if self
            .state
            .compare_exchange(
                DomState::Running as u8,
                DomState::Shutdown as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        self.shutdown_code.store(reason, Ordering::Release);
        true
    }

    /// Mark the domain dying. Returns false if it already was.
    fn mark_dying(&self) -> bool {
        self.state.swap(DomState::Dying as u8, Ordering::AcqRel) != DomState::Dying as u8
    }

    /// Why it shut down, once it has.
    pub fn shutdown_code(&self) -> Option<u8> {
        (self.state() != DomState::Running).then(|| self.shutdown_code.load(Ordering::Acquire))
    }

    /// Whether the controller paused it.
    pub fn is_paused(&self) -> bool {
        self.pause_count.load(Ordering::Acquire) != 0
    }

    /// `pausedomain`: one more pause.
    pub fn pause(&self) {
        self.pause_count.fetch_add(1, Ordering::AcqRel);
    }

    /// `unpausedomain`: one pause less. Returns false (and changes nothing)
    /// if it was not paused; true and whether it now runs otherwise.
    pub fn unpause(&self) -> Option<bool> {
        self.pause_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
            .ok()
            .map(|old| old == 1)
    }

    /// Whether all of `[pa, pa+len)` is this domain's RAM.
    pub fn owns_phys(&self, pa: PhysAddr, len: u64) -> bool {
        self.mem.iter().any(|b| b.phys.contains_range(pa, len))
            || self
                .extra_mem
                .lock()
                .iter()
                .any(|r| r.contains_range(pa, len))
    }

    /// Total RAM in bytes (boot-time banks and run-time populated ranges).
    pub fn ram_bytes(&self) -> u64 {
        self.mem.iter().map(|b| b.phys.size).sum::<u64>()
            + self.extra_mem.lock().iter().map(|r| r.size).sum::<u64>()
    }

    /// Record host range `r` as run-time RAM of this domain.
    pub fn add_extra_mem(&self, r: PhysRange) {
        let mut m = self.extra_mem.lock();
        if let Some(last) = m.last_mut() {
            if last.end() == r.start.as_u64() {
                last.size += r.size;
                return;
            }
            if r.end() == last.start.as_u64() {
                *last = PhysRange::new(r.start, last.size + r.size);
                return;
            }
        }
        m.push(r);
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        crate::arch::flush_guest_tlb(self.vttbr);
        if let Some(s2) = self.stage2.lock().take() {
            s2.destroy(&mut HostTables);
        }
        let bytes = self.ram_bytes();
        let extra = core::mem::take(&mut *self.extra_mem.lock());
        // The domain is gone (no vCPU runs, no reference is left), so its
        // RAM is ours again: idle CPUs scrub it before anything can reuse it
        // (crate::mem), so no other domain reads what this one left behind,
        // and whoever dropped the last reference (maybe under the
        // scheduler's lock) does not wait for that.
        for r in self.mem.iter().map(|b| b.phys).chain(extra) {
            crate::mem::free_dirty(r);
        }
        log::info!("{}: freed, {} KiB returned", self.id, bytes >> 10);
    }
}

/// Every domain, by id.
pub static DOMAINS: Mutex<Vec<Arc<Domain>>> = Mutex::new(Vec::new());

/// Destroyed domains that something still references (their id and VMID
/// stay taken until they are freed).
pub static ZOMBIES: Mutex<Vec<Weak<Domain>>> = Mutex::new(Vec::new());

/// Destroyed domains still referenced (for `getdomaininfo`'s dying flag).
pub fn zombies() -> Vec<Arc<Domain>> {
    let mut z = ZOMBIES.lock();
    z.retain(|w| w.strong_count() > 0);
    z.iter().filter_map(Weak::upgrade).collect()
}

/// Whether `id` or `vmid` is taken by a listed domain or a zombie.
fn taken(doms: &[Arc<Domain>], zombies: &[Arc<Domain>], f: impl Fn(&Domain) -> bool) -> bool {
    doms.iter().chain(zombies).any(|d| f(d))
}

/// Register a new domain, choosing its id (`want`, or the next free one
/// after the last handed out, as Xen's rover) and VMID. `make` builds it
/// from (id, vmid). Fails with the errno Xen gives: -EEXIST for a taken
/// id, -ENOMEM with no id/VMID left, or `make`'s error.
pub fn register_new<E>(
    want: Option<DomId>,
    make: impl FnOnce(DomId, u16) -> Result<Arc<Domain>, E>,
    exists: E,
    full: E,
) -> Result<Arc<Domain>, E> {
    static ROVER: AtomicU32 = AtomicU32::new(0);
    let zs = zombies();
    let mut doms = DOMAINS.lock();
    let id = match want {
        Some(id) if taken(&doms, &zs, |d| d.id == id) => return Err(exists),
        Some(id) => id,
        None => {
            let start = ROVER.load(Ordering::Relaxed);
            let limit = u32::from(DomId::MAX_REAL) + 1;
            let mut found = None;
            for i in 1..limit {
                let cand = (start + i) % limit;
                if cand == 0 {
                    continue;
                }
                let c = DomId(cand as u16);
                if !taken(&doms, &zs, |d| d.id == c) {
                    found = Some(c);
                    break;
                }
            }
            let Some(id) = found else { return Err(full) };
            ROVER.store(u32::from(id.0), Ordering::Relaxed);
            id
        }
    };
    let Some(vmid) = (1..=255u16).find(|&v| !taken(&doms, &zs, |d| d.vmid == v)) else {
        return Err(full);
    };
    let d = make(id, vmid)?;
    doms.push(d.clone());
    doms.sort_by_key(|d| d.id.0);
    Ok(d)
}

/// Destroy `dom` (`destroydomain`, or a domain nobody else can destroy):
/// it leaves the table, its event channels close and the mappings it holds
/// of other domains go; its own memory is freed when the last reference
/// goes. Dom0 gets `VIRQ_DOM_EXC`. Returns false if it was already dying.
pub fn destroy(dom: &Arc<Domain>) -> bool {
    if !dom.mark_dying() {
        return false;
    }
    dom.console.lock().flush_if_pending(dom.id.0);
    crate::xen::domain_destroyed(dom);
    {
        let mut doms = DOMAINS.lock();
        doms.retain(|d| !Arc::ptr_eq(d, dom));
        ZOMBIES.lock().push(Arc::downgrade(dom));
    }
    crate::sched::domain_destroyed();
    if dom.name.is_empty() {
        log::info!("{}: destroyed", dom.id);
    } else {
        log::info!("{}: destroyed ('{}')", dom.id, dom.name);
    }
    let ns: u64 = (0..dom.vcpus.len())
        .map(|i| crate::sched::vcpu_time_ns(dom, i))
        .sum();
    log::info!(
        "{}: used {}.{:06} s of CPU time",
        dom.id,
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 1000
    );
    notify_dom0_exc();
    true
}

/// Tell Dom0 that a domain changed state (`VIRQ_DOM_EXC`).
pub fn notify_dom0_exc() {
    if let Some(d0) = get(DomId::DOM0)
        && d0.is_alive()
    {
        crate::xen::raise_virq(&d0, xen_abi::event_channel::VIRQ_DOM_EXC);
    }
}

/// Look a domain up by id.
pub fn get(id: DomId) -> Option<Arc<Domain>> {
    DOMAINS.lock().iter().find(|d| d.id == id).cloned()
}

/// Number of domains still running.
pub fn alive_count() -> usize {
    DOMAINS.lock().iter().filter(|d| d.is_alive()).count()
}

/// Forget zombies that have been freed.
pub fn reap() {
    ZOMBIES.lock().retain(|w| w.strong_count() > 0);
}
