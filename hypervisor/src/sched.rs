//! Scheduling of vCPUs on physical CPUs: Xen's credit scheduler (credit1),
//! whose policy is the host-tested `oxen-sched` crate, driven here.
//!
//! # What it owns
//!
//! * [`SCHED`]: the policy ([`Credit`]: per-CPU run queues, credits,
//!   weights, caps, boost, tickling, work stealing, affinity) and the
//!   domains it schedules (`Arc`s, so a vCPU the policy names can be run).
//! * Per CPU ([`RQ`]): the vCPU whose context is loaded, and the blocked
//!   vCPUs this CPU saved last, whose virtual-timer deadlines it watches
//!   (it arms its EL2 timer for the earliest and wakes them when due).
//! * Per CPU: a "look again" flag ([`NEED_RESCHED`]), set by the EL2 timer
//!   interrupt, the SGI when the policy sent it, and local events, which
//!   runs the timers; and a
//!   "decide" flag ([`DECIDE`]), set only when the policy asks this CPU to
//!   pick again (Xen's `SCHEDULE_SOFTIRQ`).
//!
//! The hardware side: every CPU arms its EL2 timer for the policy's next
//! deadline (credit tick, slice end, accounting on CPU 0) or the earliest
//! watched guest timer, whichever is first; the policy's "tickle" masks
//! become the reschedule SGI ([`irq::SGI_KICK`]); with nothing to run a CPU
//! waits in WFI (interrupts masked at EL2; a pending one still wakes it).
//! A guest's own WFI traps only while the machine is oversubscribed or a
//! destroyed domain's RAM waits to be scrubbed ([`VWFI_ADAPTIVE`], or Xen's
//! `vwfi=trap|native`), and a trapped WFI waits in place, its vCPU loaded,
//! while nothing is queued on its CPU ([`wait_in_place`]; such a CPU counts
//! as idle to place a waking vCPU). A CPU that would wait (idle, or in
//! place) scrubs that RAM first, 512 KiB at a time (`crate::mem`).
//! A vCPU moves between CPUs with its whole state: its trap frame, EL1 and
//! FP registers, GIC virtual-interface state (VMCR, APRs) and virtual timer
//! are saved into its [`crate::domain::Vcpu`] when it leaves a CPU and
//! loaded on the next; its list-register contents live in its domain's vGIC
//! model between runs (folded back by `vgic::sync_from_hw` at every exit),
//! and its private interrupts (SGIs, PPIs, the virtual timer's PPI) are
//! virtual, per vCPU in that model, so nothing physical has to follow.
//!
//! # Eligibility
//!
//! The policy runs a vCPU only if it is *eligible*: its domain is alive and
//! not paused by the toolstack and the vCPU is `Runnable`. The policy's own
//! "blocked" state follows eligibility: it is told `wake` where a vCPU
//! becomes eligible (an event for a blocked vCPU, PSCI CPU_ON, boot,
//! unpause) and `block` where the vCPU itself blocks (WFI, `SCHEDOP_block`
//! and `poll`); everything else that makes a vCPU ineligible (pause,
//! shutdown, destruction, CPU_OFF) asks its CPU to reschedule, and
//! [`schedule`] tells the policy to block any vCPU it picks, or runs, that
//! is not eligible. Parking by a cap is the policy's own pause count.
//!
//! # Invariants
//!
//! * Every decision is acted on under the same hold of [`SCHED`]: the
//!   previous vCPU is saved (and only then reported saved to the policy,
//!   which may then let another CPU steal it) and the next loaded before the
//!   lock is dropped. A CPU never decides to keep or drop its current vCPU
//!   and then acts after releasing the lock.
//! * Changes of a vCPU's `state` between `Runnable` and `Blocked` are made
//!   under [`SCHED`] together with the matching policy call.
//! * `RQ[cpu].current` is the policy's current vCPU of `cpu` whenever
//!   [`SCHED`] is free.
//! * A vCPU's `pcpu` is the CPU it runs on or last ran on; its registers
//!   may be reused without reloading only on that CPU (`LIVE_CTX`).
//!
//! * [`WAITING`]`[cpu]` is set only inside [`wait_in_place`], by `cpu`,
//!   while its current vCPU is loaded and waits; [`QUEUED`] and
//!   [`WAITING`] are published announce-then-look, so a vCPU queued on a
//!   waiting CPU always ends the wait.
//!
//! # Lock order
//!
//! `DOMAINS` (never taken under [`SCHED`]), then [`SCHED`], then a CPU's
//! [`RQ`], then a vCPU. `vgic` and `xen` locks are never held while
//! calling in here.

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use oxen_sched::{CpuMask, Credit, SchedError, SchedParams, VcpuInfo, VcpuRef};
use oxen_types::DomId;

use crate::sync::{Mutex, MutexGuard};

use crate::arch::head::{MAX_CPUS, TrapFrame};
use crate::arch::{self, sysreg, timer};
use crate::domain::{DomState, Domain, VcpuState};
use crate::irq;

/// The policy and the domains it schedules.
struct Global {
    credit: Option<Credit>,
    doms: BTreeMap<u16, Arc<Domain>>,
}

static SCHED: Mutex<Global> = Mutex::new(Global {
    credit: None,
    doms: BTreeMap::new(),
});

/// [`SCHED`], held. Releasing it publishes whether the machine is now
/// oversubscribed ([`OVERSUBSCRIBED`]), so every policy change is seen by
/// the WFI trap decision ([`set_wfi_trap`]).
struct Held(MutexGuard<'static, Global>);

impl Deref for Held {
    type Target = Global;
    fn deref(&self) -> &Global {
        &self.0
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Global {
        &mut self.0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(c) = self.0.credit.as_ref() else {
            return;
        };
        publish_oversubscribed(c.oversubscribed());
        publish_queued(c);
    }
}

fn lock_sched() -> Held {
    Held(SCHED.lock())
}

/// WFI trapping, Xen's `vwfi=` ([`VWFI_TRAP`], [`VWFI_NATIVE`]) or, by
/// default, [`VWFI_ADAPTIVE`]: a guest's WFI traps only while the machine
/// is oversubscribed: more vCPUs than CPUs (Xen's definition), or a vCPU
/// waiting in a run queue (two pinned to one CPU). Otherwise each vCPU has
/// a CPU to itself and waits for its interrupts in the hardware (an
/// interrupt for it ends the WFI with one exit instead of a block, an idle
/// period and a wake-up); as soon as that stops, every CPU traps WFI
/// again, so a vCPU with nothing to do gives its CPU away (and an idle CPU
/// can steal). Xen's `vwfi=native` where Xen documents it harmless, and
/// KVM's default (no WFI trap for a vCPU alone on its CPU); the cost is
/// that a vCPU waiting in WFI counts as running in its CPU time.
const VWFI_ADAPTIVE: u8 = 0;
const VWFI_TRAP: u8 = 1;
const VWFI_NATIVE: u8 = 2;
static VWFI: AtomicU8 = AtomicU8::new(VWFI_ADAPTIVE);
/// [`Credit::oversubscribed`] as of the last release of [`SCHED`].
static OVERSUBSCRIBED: AtomicBool = AtomicBool::new(false);
/// Per CPU: its guests run with WFI untrapped (`HCR_EL2.TWI` clear).
static WFI_UNTRAPPED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Record whether the machine is oversubscribed. When it becomes so, CPUs
/// running a guest with WFI untrapped are kicked: they look again (without
/// a new decision) and re-enter with WFI trapped, so their vCPU blocks at
/// its next WFI instead of keeping the CPU. (Sequentially consistent with
/// [`set_wfi_trap`]'s announce-then-look: either that CPU sees
/// `OVERSUBSCRIBED` or this one sees its flag.)
fn publish_oversubscribed(busy: bool) {
    if OVERSUBSCRIBED.swap(busy, Ordering::SeqCst) == busy
        || !busy
        || VWFI.load(Ordering::Relaxed) != VWFI_ADAPTIVE
    {
        return;
    }
    kick_untrapped();
}

/// Kick the other CPUs running a guest with WFI untrapped, so that they
/// look again at [`want_wfi_trap`] before they re-enter it.
fn kick_untrapped() {
    let me = this_cpu();
    for (cpu, untrapped) in WFI_UNTRAPPED.iter().enumerate().take(nr_cpus()) {
        if cpu != me && untrapped.load(Ordering::SeqCst) {
            kick(cpu);
        }
    }
}

/// Whether guests should trap WFI (with `vwfi` adaptive): while the machine
/// is oversubscribed, and while a destroyed domain's RAM waits to be
/// scrubbed (a CPU whose vCPU waits in place scrubs it meanwhile, see
/// [`wait_in_place`]; with WFI untrapped, a CPU would never be idle).
fn want_wfi_trap() -> bool {
    OVERSUBSCRIBED.load(Ordering::SeqCst) || crate::mem::has_dirty()
}

/// A destroyed domain's RAM now waits to be scrubbed (`mem::free_dirty`,
/// after it counted it): CPUs running a guest with WFI untrapped are
/// kicked, so that they trap it again and scrub while their vCPU waits.
/// (Sequentially consistent with [`set_wfi_trap`]'s announce-then-look.)
pub fn memory_to_scrub() {
    if VWFI.load(Ordering::Relaxed) == VWFI_ADAPTIVE {
        kick_untrapped();
    }
}

/// Set this CPU's WFI trap for the guest entry that follows (see
/// [`VWFI_ADAPTIVE`]); HCR_EL2 is written only when the choice changes.
fn set_wfi_trap(cpu: usize) {
    let flag = &WFI_UNTRAPPED[cpu];
    let was = flag.load(Ordering::Relaxed);
    let now = match VWFI.load(Ordering::Relaxed) {
        VWFI_TRAP => false,
        VWFI_NATIVE => true,
        _ if was => !want_wfi_trap(),
        _ => {
            if want_wfi_trap() {
                return;
            }
            // Announce, then look again (publish_oversubscribed and
            // memory_to_scrub do the reverse).
            flag.store(true, Ordering::SeqCst);
            !want_wfi_trap()
        }
    };
    if flag.load(Ordering::Relaxed) != now {
        flag.store(now, Ordering::SeqCst);
    }
    if now != was {
        arch::set_wfi_trap(!now);
    }
}

/// Per CPU: whether a vCPU waits in its run queue, as of the last release
/// of [`SCHED`] (its current vCPU does not wait in place while one does,
/// see [`wait_in_place`]).
static QUEUED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: its current vCPU waits in place for an interrupt.
static WAITING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: nanoseconds its current vCPU waited in place that the policy
/// has not been told yet (it is, before it next looks at that CPU).
static WAITED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// WFIs that waited in place until an interrupt came (statistics).
static WAITS: AtomicU64 = AtomicU64::new(0);

/// Record, per CPU, whether a vCPU waits in its run queue. A CPU whose
/// vCPU waits in place when one starts to is kicked: it stops waiting and
/// blocks it, and runs the queued vCPU. (Sequentially consistent with
/// [`wait_in_place`]'s announce-then-look.)
fn publish_queued(c: &Credit) {
    let me = this_cpu();
    for (cpu, queued) in QUEUED.iter().enumerate().take(c.ncpus().min(MAX_CPUS)) {
        let q = c.runq_len(cpu) > 0;
        if queued.load(Ordering::Relaxed) == q {
            continue;
        }
        queued.store(q, Ordering::SeqCst);
        if q && cpu != me && WAITING[cpu].load(Ordering::SeqCst) {
            kick(cpu);
        }
    }
}

/// The CPUs whose vCPU waits in place now (as good as idle to place a
/// vCPU that wakes up: [`Credit::wake_near`]).
fn waiting_cpus() -> CpuMask {
    let mut m = CpuMask::EMPTY;
    for (cpu, w) in WAITING.iter().enumerate().take(nr_cpus()) {
        if w.load(Ordering::SeqCst) {
            m.insert(cpu);
        }
    }
    m
}

/// The current vCPU executed WFI (trapped: the machine is oversubscribed)
/// and has no interrupt to take. By default ([`VWFI_ADAPTIVE`]), while no
/// vCPU waits in this CPU's run queue, it waits here, its context loaded
/// and the CPU kept for it, until this CPU takes an interrupt: returns
/// true, resume the vCPU (as an interrupt would have ended its WFI had it
/// not trapped: spurious for this vCPU or not, which WFI allows; an event
/// sent to it from another CPU kicks this one). An interrupt for it then
/// costs one exit, not a block, an idle period and a wake-up through the
/// policy. A vCPU that wakes up meanwhile is placed on such a CPU rather
/// than queued behind a busy one ([`Credit::wake_near`]). Returns false,
/// for the caller to block the vCPU, when a vCPU waits in this CPU's run
/// queue (this vCPU then also yields, so that an interrupt that came for
/// it meanwhile does not keep the CPU from that vCPU for the rate limit)
/// or this CPU must look again (the policy's timer or decision, a
/// watched vCPU's timer), which bounds the wait by the credit tick. The
/// time waited is not charged to the vCPU's credit ([`Credit::waited`]).
/// With `vwfi=trap` (Xen's behaviour) the vCPU always blocks.
pub fn wait_in_place() -> bool {
    let cpu = this_cpu();
    if VWFI.load(Ordering::Relaxed) != VWFI_ADAPTIVE {
        return false;
    }
    let must_look =
        || QUEUED[cpu].load(Ordering::SeqCst) || NEED_RESCHED[cpu].load(Ordering::Acquire);
    // Announce, then look (publish_queued does the reverse).
    WAITING[cpu].store(true, Ordering::SeqCst);
    let start = timer::now();
    let resume = loop {
        if must_look() {
            break false;
        }
        // Idle time: scrub a piece of a destroyed domain's RAM if some
        // waits, else wait for an interrupt; then look at what arrived.
        if !crate::mem::scrub_some() {
            sysreg::dsb_sy();
            sysreg::wfi();
        }
        if irq::handle_pending(cpu) != 0 {
            break !must_look();
        }
    };
    WAITING[cpu].store(false, Ordering::Relaxed);
    let waited = timer::ticks_to_ns(timer::now().saturating_sub(start));
    WAITED[cpu].fetch_add(waited, Ordering::Relaxed);
    if resume {
        WAITS.fetch_add(1, Ordering::Relaxed);
    } else if QUEUED[cpu].load(Ordering::SeqCst) {
        // A vCPU waits for this CPU: this one, idle until now, gives way
        // even if an interrupt came for it meanwhile (as it would have had
        // it blocked), instead of keeping the CPU for the rate limit.
        yield_current();
    }
    resume
}

/// A destroyed domain may be waiting to leave the policy.
static REAP: AtomicBool = AtomicBool::new(false);

struct RunQueue {
    current: Option<(Arc<Domain>, usize)>,
    /// vCPUs that left this CPU without being eligible (their virtual-timer
    /// deadlines are this CPU's to watch); stale entries are dropped lazily.
    blocked: Vec<(Arc<Domain>, usize)>,
    /// Earliest virtual-timer deadline among `blocked` (maybe stale:
    /// early is harmless, it only makes the CPU look again).
    earliest: Option<u64>,
}

impl RunQueue {
    const fn new() -> Self {
        Self {
            current: None,
            blocked: Vec::new(),
            earliest: None,
        }
    }
}

static RQ: [Mutex<RunQueue>; MAX_CPUS] = [const { Mutex::new(RunQueue::new()) }; MAX_CPUS];
static NEED_RESCHED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: the policy asked it to decide again (a tickle, its current vCPU
/// blocked, yielded, must move, or its slice ended). Other traps only run
/// the timers: like Xen's, the policy is consulted when it asks, so a
/// timer interrupt or an interrupt kick does not preempt by itself.
static DECIDE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static NR_CPUS: AtomicUsize = AtomicUsize::new(1);
static NEXT_PCPU: AtomicUsize = AtomicUsize::new(0);
/// Context switches (a different vCPU or idle loaded) and switches that
/// brought a vCPU from another CPU, for the `r` debug key.
static SWITCHES: AtomicU64 = AtomicU64::new(0);
static MIGRATIONS: AtomicU64 = AtomicU64::new(0);
/// Check the policy's invariants after every decision (debug builds, until
/// one breaks: an error line, and the scheduler carries on).
static CHECKS: AtomicBool = AtomicBool::new(cfg!(debug_assertions));

/// Record the physical CPUs (index → MPIDR) found at boot and start the
/// scheduler on them.
pub fn set_cpus(mpidrs: &[u64]) {
    for (i, &m) in mpidrs.iter().enumerate().take(MAX_CPUS) {
        MPIDR[i].store(m, Ordering::Relaxed);
    }
    let n = mpidrs.len().clamp(1, MAX_CPUS);
    NR_CPUS.store(n, Ordering::Relaxed);
    lock_sched().credit = Some(Credit::new(n, now_ns()));
}

/// How many physical CPUs oxen runs on.
pub fn nr_cpus() -> usize {
    NR_CPUS.load(Ordering::Relaxed)
}

/// MPIDR of physical CPU `cpu`.
pub fn mpidr_of(cpu: usize) -> u64 {
    MPIDR[cpu % MAX_CPUS].load(Ordering::Relaxed)
}

/// A starting CPU for the next new boot-time vCPU (round-robin; the
/// policy moves vCPUs as load requires).
pub fn next_pcpu() -> usize {
    NEXT_PCPU.fetch_add(1, Ordering::Relaxed) % nr_cpus()
}

/// Starting CPUs for the `n` vCPUs of a domain created at run time: each
/// goes to the CPU with the fewest live vCPUs last run there, Dom0's vCPU 0
/// counting twice (it takes the device interrupts). Only a first placement:
/// the policy moves vCPUs as load requires.
pub fn place_vcpus(n: usize) -> Vec<usize> {
    let cpus = nr_cpus();
    let mut load = alloc::vec![0usize; cpus];
    for d in crate::domain::DOMAINS.lock().iter() {
        if !d.is_alive() {
            continue;
        }
        for (i, v) in d.vcpus.iter().enumerate() {
            let c = v.lock().pcpu % cpus;
            load[c] += if d.is_dom0 && i == 0 { 2 } else { 1 };
        }
    }
    (0..n)
        .map(|_| {
            let c = (0..cpus).min_by_key(|&c| (load[c], c)).unwrap_or(0);
            load[c] += 1;
            c
        })
        .collect()
}

/// Index of the CPU running this code (kept in TPIDR_EL2).
pub fn this_cpu() -> usize {
    sysreg::tpidr_el2() as usize
}

/// The domain and vCPU this CPU is running, if any.
pub fn current() -> Option<(Arc<Domain>, usize)> {
    RQ[this_cpu()].lock().current.clone()
}

/// Per CPU: the register-context id (`Vcpu::ctx_id`) of the vCPU loaded
/// last, set by `load` (0 = none yet). Read without locks on every exit.
static CURRENT_CTX: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The register-context id of the vCPU this CPU runs (the one its list
/// registers and EL1 state belong to).
pub fn current_ctx() -> u64 {
    CURRENT_CTX[this_cpu()].load(Ordering::Relaxed)
}

/// Monotonic time for the policy, in ns (the physical count, shared by
/// every CPU). Read under [`SCHED`] so successive calls never go back.
fn now_ns() -> u64 {
    timer::ticks_to_ns(timer::now())
}

/// Counter value at or just after `ns` (rounded up, so a timer armed for a
/// policy deadline never fires before the policy sees it due).
fn ns_to_count(ns: u64) -> u64 {
    timer::ns_to_ticks(ns) + 1
}

fn vref(dom: &Domain, vcpu: usize) -> VcpuRef {
    VcpuRef::new(dom.id.0, vcpu as u32)
}

/// Make the CPUs in `mask` decide again: this one by its flags, others by
/// their flag and the SGI.
fn signal(mask: CpuMask) {
    let me = this_cpu();
    for c in mask.iter() {
        if c < MAX_CPUS {
            DECIDE[c].store(true, Ordering::Release);
        }
        if c == me {
            NEED_RESCHED[c].store(true, Ordering::Release);
        } else if c < nr_cpus() {
            irq::send_kick(c, mpidr_of(c));
        }
    }
}

/// Whether `vcpu` of `dom` may run (see the module docs).
fn eligible(dom: &Domain, vcpu: usize) -> bool {
    dom.is_alive() && !dom.is_paused() && dom.vcpus[vcpu].lock().state == VcpuState::Runnable
}

/// Register `dom`'s vCPUs with the policy (each starting near its `pcpu`,
/// within its hard affinity), with weight and cap if given, then wake the
/// eligible ones. Errors: the id is still known to the policy (-EBUSY),
/// or the policy refused the weight/cap.
pub fn add_domain(
    dom: &Arc<Domain>,
    weight: Option<u16>,
    cap: Option<u16>,
) -> Result<(), SchedError> {
    let mut g = lock_sched();
    reap_locked(&mut g);
    let Global { credit, doms } = &mut *g;
    let Some(c) = credit.as_mut() else {
        return Err(SchedError::NoDomain);
    };
    let id = dom.id;
    c.add_domain(id, dom.vcpus.len() as u32)?;
    if let Err(e) = c.set_params(id, weight.map(u32::from), cap.map(u32::from)) {
        let _ = c.remove_domain(id);
        return Err(e);
    }
    for i in 0..dom.vcpus.len() {
        let (start, hard) = {
            let v = dom.vcpus[i].lock();
            (v.pcpu.min(c.ncpus() - 1), v.affinity[0])
        };
        let hard = (hard != u64::MAX).then_some(CpuMask(hard));
        let r = vref(dom, i);
        if let Err(e) = c.add_vcpu(r, start, hard) {
            log::error!("{}v{i}: not schedulable: {e:?}", id);
            continue;
        }
        if let Some(info) = c.vcpu_info(r) {
            dom.vcpus[i].lock().pcpu = info.cpu;
        }
    }
    doms.insert(id.0, dom.clone());
    let now = now_ns();
    for i in 0..dom.vcpus.len() {
        if eligible(dom, i) {
            signal(c.wake(vref(dom, i), now));
        }
    }
    Ok(())
}

/// A vCPU came online (boot, PSCI CPU_ON): let the policy run it.
pub fn enqueue(dom: &Arc<Domain>, vcpu: usize) {
    let mut g = lock_sched();
    if eligible(dom, vcpu)
        && let Some(c) = g.credit.as_mut()
    {
        signal(c.wake(vref(dom, vcpu), now_ns()));
    }
}

/// Queue every eligible vCPU of `dom` (it was just unpaused). Made under
/// [`SCHED`] after the pause count dropped, so a CPU that blocked one of
/// them for being paused did so before, and this wakes it.
pub fn domain_unpaused(dom: &Arc<Domain>) {
    let mut g = lock_sched();
    let Some(c) = g.credit.as_mut() else { return };
    let now = now_ns();
    for i in 0..dom.vcpus.len() {
        if eligible(dom, i) {
            signal(c.wake(vref(dom, i), now));
        }
    }
}

/// `dom` was destroyed: its vCPUs leave their CPUs and then the policy.
pub fn domain_destroyed() {
    REAP.store(true, Ordering::Release);
    kick_all();
}

/// Make CPU `cpu` leave the guest it runs soon (it then refills that
/// vCPU's list registers), without asking the policy for a new decision.
pub fn kick(cpu: usize) {
    if cpu == this_cpu() {
        NEED_RESCHED[cpu].store(true, Ordering::Release);
    } else if cpu < nr_cpus() {
        irq::send_kick(cpu, mpidr_of(cpu));
    }
}

/// Ask every CPU to reschedule (a domain died or was paused).
pub fn kick_all() {
    signal(CpuMask::first_n(nr_cpus()));
}

/// The current vCPU gives up the rest of its slice (`SCHEDOP_yield`, WFE),
/// or something made it ineligible (CPU_OFF): reschedule before returning.
pub fn yield_current() {
    let cpu = this_cpu();
    if let Some((d, v)) = current() {
        let mut g = lock_sched();
        if let Some(c) = g.credit.as_mut() {
            signal(c.yield_vcpu(vref(&d, v)));
        }
    }
    DECIDE[cpu].store(true, Ordering::Release);
    NEED_RESCHED[cpu].store(true, Ordering::Release);
}

/// Block the current vCPU until [`wake`] is called for it. The caller
/// looks for pending work after this (and wakes it if there is some).
pub fn block_current() {
    let cpu = this_cpu();
    if let Some((d, v)) = current() {
        let mut g = lock_sched();
        let blocked = {
            let mut vc = d.vcpus[v].lock();
            let b = vc.state == VcpuState::Runnable;
            if b {
                vc.state = VcpuState::Blocked;
            }
            b
        };
        if blocked && let Some(c) = g.credit.as_mut() {
            signal(c.block(vref(&d, v), now_ns()));
        }
    }
    DECIDE[cpu].store(true, Ordering::Release);
    NEED_RESCHED[cpu].store(true, Ordering::Release);
}

/// Make a blocked vCPU runnable again (an event or interrupt arrived).
/// Returns whether it was blocked (the policy queued it and tickled a CPU).
pub fn wake(dom: &Arc<Domain>, vcpu: usize) -> bool {
    // Unlocked look first: only the vCPU itself blocks it, and it looks for
    // pending work after blocking, so one seen runnable here needs nothing.
    if dom.vcpus[vcpu].lock().state != VcpuState::Blocked {
        return false;
    }
    let mut g = lock_sched();
    wake_locked(&mut g, dom, vcpu, now_ns())
}

fn wake_locked(g: &mut Global, dom: &Domain, vcpu: usize, now: u64) -> bool {
    let woke = {
        let mut v = dom.vcpus[vcpu].lock();
        let b = v.state == VcpuState::Blocked;
        if b {
            v.state = VcpuState::Runnable;
        }
        b
    };
    if woke
        && dom.is_alive()
        && !dom.is_paused()
        && let Some(c) = g.credit.as_mut()
    {
        signal(c.wake_near(vref(dom, vcpu), now, waiting_cpus()));
    }
    woke
}

/// The reschedule SGI arrived on `cpu`. It runs the scheduler only if the
/// policy asked this CPU to decide ([`signal`] sets that before sending
/// it); a kick that only makes the CPU leave its guest (new interrupts
/// for its vCPU, a change of WFI trapping) needs no more than the exit.
pub fn kicked(cpu: usize) {
    if cpu < MAX_CPUS && DECIDE[cpu].load(Ordering::Acquire) {
        NEED_RESCHED[cpu].store(true, Ordering::Release);
    }
}

/// The EL2 timer fired on `cpu`.
pub fn request_resched(cpu: usize) {
    if cpu < MAX_CPUS {
        NEED_RESCHED[cpu].store(true, Ordering::Release);
    }
}

/// CNTV_CTL_EL0 bits (Arm ARM D13.8.16).
const CNTV_ENABLE: u64 = 1 << 0;
const CNTV_IMASK: u64 = 1 << 1;

/// Save the vCPU leaving this CPU. Out of line (as [`moved_in`]): exit
/// profiles name the exits that switch vCPUs by it (qemu/profile-exits.py
/// "+switch").
#[inline(never)]
fn save(frame: &TrapFrame, dom: &Domain, vcpu: usize) {
    let mut v = dom.vcpus[vcpu].lock();
    v.running = false;
    v.cpu_ticks += timer::now().saturating_sub(v.run_start);
    v.frame = *frame;
    v.el1.save();
    v.fp.save();
    v.vif.save();
    // The guest's virtual timer must not fire while another vCPU (or
    // nothing) runs here; remember when it wanted to fire instead.
    v.timer_deadline =
        (v.el1.cntv_ctl & (CNTV_ENABLE | CNTV_IMASK) == CNTV_ENABLE).then_some(v.el1.cntv_cval);
    // SAFETY: the vCPU's timer state was saved just above.
    unsafe { sysreg::set_cntv_ctl_el0(0) };
}

/// Per CPU: the vCPU context whose EL1 and FP registers are still live in
/// the hardware, and whose trap frame the CPU's frame slot still holds
/// (0 = none). Resuming that vCPU here after an idle period skips the
/// reload (rewriting SCTLR/TTBR/TCR makes QEMU, and some hardware, drop its
/// TLBs) — only if it last ran here (`pcpu`), not if it ran elsewhere since.
static LIVE_CTX: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn load(frame: &mut TrapFrame, dom: &Domain, vcpu: usize) {
    let mut v = dom.vcpus[vcpu].lock();
    let cpu = this_cpu();
    let moved = v.pcpu != cpu;
    v.running = true;
    v.pcpu = cpu;
    v.run_start = timer::now();
    CURRENT_CTX[cpu].store(v.ctx_id, Ordering::Relaxed);
    if moved {
        moved_in(cpu);
    }
    if LIVE_CTX[cpu].swap(v.ctx_id, Ordering::Relaxed) == v.ctx_id && !moved {
        // Registers untouched since save(), except the timer it stopped.
        // So is `frame`, this CPU's own slot, which save() copied from
        // (whoever rewrites a saved frame gives the vCPU a new ctx_id).
        // SAFETY: re-arming this vCPU's own virtual timer.
        unsafe { sysreg::set_cntv_ctl_el0(v.el1.cntv_ctl) };
    } else {
        // SAFETY: switching this CPU to `dom`'s vCPU: its EL1 state, FP
        // state and stage 2 are loaded together before returning to it.
        unsafe {
            v.el1.restore();
            arch::load_stage2(dom.vttbr);
        }
        v.fp.restore();
        *frame = v.frame;
    }
    v.vif.restore();
}

/// A vCPU that last ran on another CPU is being loaded on `cpu`. Out of
/// line: exit profiles name the exits that migrate a vCPU by it
/// (qemu/profile-exits.py "+migrate").
#[inline(never)]
fn moved_in(cpu: usize) {
    MIGRATIONS.fetch_add(1, Ordering::Relaxed);
    // Whatever this CPU's list registers held for it is stale.
    crate::vgic::forget_loaded(cpu);
}

/// CPU time `vcpu` of `dom` has used, in nanoseconds (including the
/// current run if it is on a CPU).
pub fn vcpu_time_ns(dom: &Domain, vcpu: usize) -> u64 {
    let v = dom.vcpus[vcpu].lock();
    let mut t = v.cpu_ticks;
    if v.running {
        t += timer::now().saturating_sub(v.run_start);
    }
    timer::ticks_to_ns(t)
}

/// The policy's view of a vCPU (CPU, affinity, credit), if it knows it.
pub fn vcpu_info(dom: &Domain, vcpu: usize) -> Option<VcpuInfo> {
    SCHED
        .lock()
        .credit
        .as_ref()
        .and_then(|c| c.vcpu_info(vref(dom, vcpu)))
}

/// `XEN_DOMCTL_SCHEDOP_getinfo`: (weight, cap) of `dom`.
pub fn params(dom: DomId) -> Result<(u16, u16), SchedError> {
    let g = lock_sched();
    g.credit.as_ref().ok_or(SchedError::NoDomain)?.params(dom)
}

/// `XEN_DOMCTL_SCHEDOP_putinfo` as Xen's hypervisor does it (weight 0 and
/// cap 0xFFFF keep the value; ranges are libxl's to check).
pub fn putinfo(dom: DomId, weight: u16, cap: u16) -> Result<(), SchedError> {
    let mut g = lock_sched();
    g.credit
        .as_mut()
        .ok_or(SchedError::NoDomain)?
        .putinfo(dom, weight, cap)
}

/// `XEN_SYSCTL_SCHEDOP_getinfo`.
pub fn sched_params() -> SchedParams {
    let g = lock_sched();
    g.credit
        .as_ref()
        .map(|c| c.sched_params())
        .unwrap_or_default()
}

/// `XEN_SYSCTL_SCHEDOP_putinfo` (Xen's range checks; -EINVAL).
pub fn set_sched_params(p: SchedParams) -> Result<SchedParams, SchedError> {
    let mut g = lock_sched();
    g.credit
        .as_mut()
        .ok_or(SchedError::BadSchedParam)?
        .set_sched_params(p)
}

/// `XEN_DOMCTL_setvcpuaffinity`: new hard and/or soft masks for `vcpu`;
/// returns the effective (hard, soft) masks. The vCPU moves at once if it
/// must (its CPU is told to reschedule; it completes the move after
/// saving it).
pub fn set_affinity(
    dom: &Domain,
    vcpu: usize,
    hard: Option<u64>,
    soft: Option<u64>,
) -> Result<(u64, u64), SchedError> {
    let mut g = lock_sched();
    let c = g.credit.as_mut().ok_or(SchedError::NoDomain)?;
    let r = c.set_affinity(
        vref(dom, vcpu),
        hard.map(CpuMask),
        soft.map(CpuMask),
        now_ns(),
    )?;
    signal(r.resched);
    Ok((r.hard.0, r.soft.0))
}

/// Apply the scheduler's boot options: `sched=` (only `credit`, Xen's
/// name, is known; anything else is warned about and credit used),
/// `sched_credit_tslice_ms=`, `sched_ratelimit_us=` (out of range: a
/// warning and Xen's default, as Xen) and `oxen.noboost` (test knob:
/// wake-ups never boost).
pub fn configure(opts: &oxen_dt::BootOptions) {
    if let Some(s) = opts.sched.as_deref()
        && s != "credit"
    {
        log::warn!("sched={s}: not available, using the credit scheduler");
    }
    let mut g = lock_sched();
    let Some(c) = g.credit.as_mut() else { return };
    let mut p = c.sched_params();
    if let Some(t) = opts.sched_credit_tslice_ms {
        p.tslice_ms = t;
    }
    if let Some(r) = opts.sched_ratelimit_us {
        p.ratelimit_us = r;
    }
    if let Err(e) = c.set_sched_params(p) {
        log::warn!(
            "sched_credit_tslice_ms={} sched_ratelimit_us={}: {e}: defaults used",
            p.tslice_ms,
            p.ratelimit_us
        );
    }
    if opts.noboost {
        log::info!("credit scheduler: wake-up boost disabled (oxen.noboost)");
        c.set_wake_boost(false);
    }
    let vwfi = match opts.vwfi {
        None => VWFI_ADAPTIVE,
        Some(oxen_dt::Vwfi::Trap) => VWFI_TRAP,
        Some(oxen_dt::Vwfi::Native) => VWFI_NATIVE,
    };
    VWFI.store(vwfi, Ordering::Relaxed);
}

/// Remove destroyed domains' vCPUs from the policy once no CPU runs them
/// (their contexts are saved), then the domains, dropping their `Arc`s.
fn reap_locked(g: &mut Global) {
    if !REAP.swap(false, Ordering::AcqRel) {
        return;
    }
    let Global { credit, doms } = g;
    let Some(c) = credit.as_mut() else { return };
    let now = now_ns();
    let mut left = false;
    doms.retain(|_, d| {
        if d.state() != DomState::Dying {
            return true;
        }
        let mut all = true;
        for i in 0..d.vcpus.len() {
            let r = vref(d, i);
            if c.vcpu_info(r).is_none() {
                continue;
            }
            let _ = c.block(r, now);
            if c.remove_vcpu(r).is_err() {
                all = false;
            }
        }
        if all {
            let _ = c.remove_domain(d.id);
            false
        } else {
            left = true;
            true
        }
    });
    if left {
        REAP.store(true, Ordering::Release);
    }
}

/// Decide what runs next on this CPU and put it in `frame`. Returns when
/// `frame` holds a runnable vCPU (waiting in WFI while there is none), and
/// returns that vCPU, with this CPU's WFI trap set for it.
pub fn schedule(frame: &mut TrapFrame) -> (Arc<Domain>, usize) {
    let next = decide(frame);
    set_wfi_trap(this_cpu());
    next
}

/// [`schedule`]'s decision and context switch.
fn decide(frame: &mut TrapFrame) -> (Arc<Domain>, usize) {
    let cpu = this_cpu();
    loop {
        if !NEED_RESCHED[cpu].load(Ordering::Acquire) {
            // Nothing asked for a decision: keep an eligible current vCPU
            // (the policy's state is untouched, so nothing is decided here).
            let rq = RQ[cpu].lock();
            if let Some((d, v)) = &rq.current
                && eligible(d, *v)
            {
                return (d.clone(), *v);
            }
        }
        NEED_RESCHED[cpu].store(false, Ordering::Release);
        let mut g = lock_sched();
        reap_locked(&mut g);
        let now = now_ns();
        wake_expired_timers(&mut g, cpu, now);
        let Global { credit, doms } = &mut *g;
        let Some(c) = credit.as_mut() else {
            drop(g);
            idle_wait(cpu, None);
            continue;
        };
        // The current vCPU's waits in place are not charged (then timer
        // work: accounting, credit tick, slice end).
        let waited = WAITED[cpu].swap(0, Ordering::Relaxed);
        if waited != 0 {
            c.waited(cpu, waited);
        }
        signal(c.timer(cpu, now));
        let mut rq = RQ[cpu].lock();
        let keep = match &rq.current {
            Some((d, v)) if !eligible(d, *v) => {
                signal(c.block(vref(d, *v), now));
                None
            }
            Some((d, v)) => Some((d.clone(), *v)),
            None => None,
        };
        if let Some((d, v)) = keep
            && !DECIDE[cpu].swap(false, Ordering::AcqRel)
        {
            // The policy did not ask for a decision: the current vCPU runs on.
            arm(c, &rq, cpu);
            return (d, v);
        }
        DECIDE[cpu].store(false, Ordering::Release);
        let next = pick(c, doms, cpu, now);
        let mut next = next;
        let same = loop {
            let same = match (&rq.current, &next) {
                (Some((cd, cv)), Some((nd, nv))) => Arc::ptr_eq(cd, nd) && cv == nv,
                (None, None) => true,
                _ => false,
            };
            if !same {
                SWITCHES.fetch_add(1, Ordering::Relaxed);
                if let Some((pd, pv)) = rq.current.take()
                    && pd.state() != DomState::Dying
                {
                    save(frame, &pd, pv);
                    if !eligible(&pd, pv) {
                        watch_blocked(&mut rq, pd, pv);
                    }
                }
            }
            // The previous vCPU's context is saved (or it is the next one):
            // from now on other CPUs may take it. A migration that completes
            // here may bring it to this CPU: then decide again.
            let m = c.context_saved(cpu, now);
            signal(m.and_not(CpuMask::single(cpu)));
            if !m.contains(cpu) {
                break same;
            }
            next = pick(c, doms, cpu, now);
        };
        if CHECKS.load(Ordering::Relaxed)
            && let Err(e) = c.check_invariants()
        {
            log::error!("CPU{cpu}: scheduler invariant broken: {e}");
            CHECKS.store(false, Ordering::Relaxed);
        }
        let deadline = deadline(c, &rq, cpu);
        match next {
            Some((nd, nv)) => {
                if !same {
                    load(frame, &nd, nv);
                    rq.current = Some((nd.clone(), nv));
                }
                arm(c, &rq, cpu);
                return (nd, nv);
            }
            None => {
                drop(rq);
                drop(g);
                idle_wait(cpu, deadline);
            }
        }
    }
}

/// When `cpu` must look again (counter value): the policy's next timer
/// (credit tick, slice end, accounting) or the earliest guest timer it
/// watches, whichever is first.
fn deadline(c: &Credit, rq: &RunQueue, cpu: usize) -> Option<u64> {
    match (c.next_timer(cpu).map(ns_to_count), rq.earliest) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Arm this CPU's EL2 timer for [`deadline`] (or stop it).
fn arm(c: &Credit, rq: &RunQueue, cpu: usize) {
    match deadline(c, rq, cpu) {
        Some(t) => timer::arm_at(t),
        None => timer::disarm(),
    }
}

/// Ask the policy what `cpu` runs next until it names an eligible vCPU or
/// idle; ineligible picks are blocked in the policy.
fn pick(
    c: &mut Credit,
    doms: &BTreeMap<u16, Arc<Domain>>,
    cpu: usize,
    now: u64,
) -> Option<(Arc<Domain>, usize)> {
    loop {
        let dec = c.schedule(cpu, now);
        signal(dec.tickle.and_not(CpuMask::single(cpu)));
        let r = dec.next?;
        match doms.get(&r.dom.0) {
            Some(d) if (r.vcpu as usize) < d.vcpus.len() && eligible(d, r.vcpu as usize) => {
                return Some((d.clone(), r.vcpu as usize));
            }
            _ => signal(c.block(r, now).and_not(CpuMask::single(cpu))),
        }
    }
}

/// Put a vCPU that left this CPU without being eligible on the list whose
/// timers this CPU watches (once: a vCPU that blocks again before the list
/// was pruned is already there).
fn watch_blocked(rq: &mut RunQueue, d: Arc<Domain>, v: usize) {
    if let Some(t) = d.vcpus[v].lock().timer_deadline {
        rq.earliest = Some(rq.earliest.map_or(t, |e| e.min(t)));
    }
    if !rq
        .blocked
        .iter()
        .any(|(bd, bv)| Arc::ptr_eq(bd, &d) && *bv == v)
    {
        rq.blocked.push((d, v));
    }
}

/// Wake the blocked vCPUs this CPU watches whose virtual timer has expired
/// (they were descheduled with it armed), and recompute the earliest
/// deadline still ahead. Entries of dead domains or vCPUs no longer
/// blocked are dropped.
fn wake_expired_timers(g: &mut Global, cpu: usize, now: u64) {
    let count = timer::now();
    let mut earliest: Option<u64> = None;
    let mut due = Vec::new();
    {
        let mut rq = RQ[cpu].lock();
        if rq.blocked.is_empty() {
            return;
        }
        rq.blocked.retain(|(d, i)| {
            if !d.is_alive() {
                return false;
            }
            let v = d.vcpus[*i].lock();
            if v.state != VcpuState::Blocked {
                return false;
            }
            match v.timer_deadline {
                Some(t) if t <= count => {
                    due.push((d.clone(), *i));
                    false
                }
                Some(t) => {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                    true
                }
                None => true,
            }
        });
        rq.earliest = earliest;
    }
    for (d, i) in due {
        wake_locked(g, &d, i, now);
    }
}

/// Nothing to run: scrub a piece of a destroyed domain's RAM if some waits
/// (then look again), else sleep until an interrupt (or `deadline`, a
/// counter value); then handle what arrived.
fn idle_wait(cpu: usize, deadline: Option<u64>) {
    crate::domain::reap();
    match deadline {
        Some(t) => timer::arm_at(t),
        None => timer::disarm(),
    }
    // Sleep, unless a piece was scrubbed instead (then look for work again).
    if !crate::mem::scrub_some() && !NEED_RESCHED[cpu].load(Ordering::Acquire) {
        sysreg::dsb_sy();
        sysreg::wfi();
    }
    irq::handle_pending(cpu);
    NEED_RESCHED[cpu].store(true, Ordering::Release);
}

/// Where the scheduler references `dom` (for the `q` debug key): "policy"
/// while it is registered, "CPUn current" / "CPUn watched" per run queue.
pub fn references(dom: &Domain) -> Vec<alloc::string::String> {
    use alloc::format;
    let mut r = Vec::new();
    let is = |d: &Arc<Domain>| core::ptr::eq(Arc::as_ptr(d), dom);
    if lock_sched().doms.values().any(is) {
        r.push(alloc::string::String::from("policy"));
    }
    for (cpu, rq) in RQ.iter().enumerate().take(nr_cpus()) {
        let rq = rq.lock();
        if rq.current.as_ref().is_some_and(|(d, _)| is(d)) {
            r.push(format!("CPU{cpu} current"));
        }
        let n = rq.blocked.iter().filter(|(d, _)| is(d)).count();
        if n != 0 {
            r.push(format!("CPU{cpu} watched x{n}"));
        }
    }
    r
}

/// The scheduler as text, for the `r` debug key: per physical CPU the
/// policy's run queue (Xen's format), then which blocked vCPUs' timers it
/// watches; then counters.
pub fn dump(out: &mut dyn core::fmt::Write) {
    let now = timer::now();
    let rel = |t: u64| -> i64 {
        let us = timer::ticks_to_ns(t.abs_diff(now)) / 1000;
        if t >= now { us as i64 } else { -(us as i64) }
    };
    let g = lock_sched();
    if let Some(c) = g.credit.as_ref() {
        let p = c.sched_params();
        let _ = writeln!(
            out,
            "Scheduler: SMP Credit Scheduler (credit), tslice={}ms ratelimit={}us",
            p.tslice_ms, p.ratelimit_us
        );
        let s = c.stats();
        let _ = writeln!(
            out,
            "  steals={} migrations={} boosts={} tickles={} parks={} accountings={} switches={} moved-in={} waited-in-place={}",
            s.steals,
            s.migrations,
            s.boosts,
            s.tickles,
            s.parks,
            s.accountings,
            SWITCHES.load(Ordering::Relaxed),
            MIGRATIONS.load(Ordering::Relaxed),
            WAITS.load(Ordering::Relaxed)
        );
    }
    let _ = write!(out, "  domains scheduled:");
    for (id, d) in &g.doms {
        let _ = write!(out, " d{id}({:?})", d.state());
    }
    let _ = writeln!(out);
    for (cpu, rq) in RQ.iter().enumerate().take(nr_cpus()) {
        if let Some(c) = g.credit.as_ref() {
            let _ = c.dump_cpu(cpu, out);
        }
        let rq = rq.lock();
        if let Some((d, v)) = &rq.current {
            let _ = writeln!(out, "  current: d{}v{v}", d.id.0);
        }
        let _ = write!(out, "  blocked (timer in us):");
        for (d, v) in &rq.blocked {
            let vc = d.vcpus[*v].lock();
            match vc.timer_deadline {
                Some(t) => {
                    let _ = write!(out, " d{}v{v}({:?},{})", d.id.0, vc.state, rel(t));
                }
                None => {
                    let _ = write!(out, " d{}v{v}({:?},-)", d.id.0, vc.state);
                }
            }
        }
        let _ = writeln!(out);
    }
}

/// The scheduler's counters at one moment: this module's switches, vCPUs
/// moved in and WFIs waited in place, and the credit policy's own; shown
/// as the one `credit scheduler: ...` line.
pub struct Stats {
    switches: u64,
    moved_in: u64,
    waits: u64,
    policy: oxen_sched::Stats,
}

/// The scheduler's counters now (`None` before the policy is set up).
pub fn stats() -> Option<Stats> {
    let g = lock_sched();
    g.credit.as_ref().map(|c| Stats {
        switches: SWITCHES.load(Ordering::Relaxed),
        moved_in: MIGRATIONS.load(Ordering::Relaxed),
        waits: WAITS.load(Ordering::Relaxed),
        policy: c.stats(),
    })
}

impl core::fmt::Display for Stats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = &self.policy;
        write!(
            f,
            "credit scheduler: {} switches, {} vCPUs moved in, {} WFIs waited in place, {} steals, {} migrations, {} boosts, {} parks, {} accountings",
            self.switches,
            self.moved_in,
            self.waits,
            s.steals,
            s.migrations,
            s.boosts,
            s.parks,
            s.accountings
        )
    }
}

/// One line of scheduler statistics, printed when the machine stops.
pub fn log_stats() {
    if let Some(s) = stats() {
        log::info!("{s}");
    }
}

/// First entry of a CPU into guests: never returns.
pub fn run(cpu: usize) -> ! {
    let slot = crate::arch::head::frame_slot(cpu);
    // SAFETY: the frame slot at the top of this CPU's stack is only used by
    // this CPU, and nothing else references it yet.
    let frame = unsafe { &mut *slot };
    *frame = TrapFrame::default();
    NEED_RESCHED[cpu].store(true, Ordering::Release);
    let (dom, vcpu) = schedule(frame);
    crate::vgic::load_to_hw(&dom, vcpu);
    // This function never returns: the reference `schedule` handed out must
    // go now (the run queue keeps its own while the vCPU is current), or the
    // first domain this CPU runs could never be freed (with Dom0 on fewer
    // vCPUs than CPUs, that is a run-time DomU).
    drop(dom);
    // SAFETY: `schedule` loaded a runnable vCPU (registers, EL1 state, stage 2)
    // into this CPU's frame slot.
    unsafe { crate::arch::head::enter_frame(slot) }
}
