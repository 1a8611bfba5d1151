//! Scheduling of vCPUs on physical CPUs.
//!
//! Each vCPU is pinned to one physical CPU (chosen round-robin when its
//! domain is built). Every physical CPU runs its own queue round-robin with
//! a fixed time slice enforced by the EL2 timer; a vCPU also gives up its
//! CPU on WFI, `sched_op(yield)` and when its domain dies. With nothing to
//! run a CPU waits in WFI with interrupts masked at EL2 (a pending interrupt
//! still wakes it) and polls the GIC.

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::sync::Mutex;

use crate::arch::head::{MAX_CPUS, TrapFrame};
use crate::arch::{self, sysreg, timer};
use crate::domain::{Domain, VcpuState};
use crate::irq;

/// Length of a time slice.
pub const SLICE_NS: u64 = 10_000_000;

struct RunQueue {
    current: Option<(Arc<Domain>, usize)>,
    queue: VecDeque<(Arc<Domain>, usize)>,
    /// vCPUs pinned here that left the CPU blocked (their virtual-timer
    /// deadlines are this CPU's to watch); stale entries are dropped lazily.
    blocked: alloc::vec::Vec<(Arc<Domain>, usize)>,
    need_resched: bool,
    /// Earliest virtual-timer deadline among `blocked` (maybe stale:
    /// early is harmless, it only makes the CPU look again).
    earliest: Option<u64>,
}

impl RunQueue {
    const fn new() -> Self {
        Self {
            current: None,
            queue: VecDeque::new(),
            blocked: alloc::vec::Vec::new(),
            need_resched: false,
            earliest: None,
        }
    }
}

static RQ: [Mutex<RunQueue>; MAX_CPUS] = [const { Mutex::new(RunQueue::new()) }; MAX_CPUS];
static MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static NR_CPUS: AtomicUsize = AtomicUsize::new(1);
static NEXT_PCPU: AtomicUsize = AtomicUsize::new(0);

/// Record the physical CPUs (index → MPIDR) found at boot.
pub fn set_cpus(mpidrs: &[u64]) {
    for (i, &m) in mpidrs.iter().enumerate().take(MAX_CPUS) {
        MPIDR[i].store(m, Ordering::Relaxed);
    }
    NR_CPUS.store(mpidrs.len().clamp(1, MAX_CPUS), Ordering::Relaxed);
}

/// How many physical CPUs oxen runs on.
pub fn nr_cpus() -> usize {
    NR_CPUS.load(Ordering::Relaxed)
}

/// MPIDR of physical CPU `cpu`.
pub fn mpidr_of(cpu: usize) -> u64 {
    MPIDR[cpu % MAX_CPUS].load(Ordering::Relaxed)
}

/// The physical CPU the next new vCPU is pinned to.
pub fn next_pcpu() -> usize {
    NEXT_PCPU.fetch_add(1, Ordering::Relaxed) % nr_cpus()
}

/// Physical CPUs for the `n` vCPUs of a domain created at run time: each
/// goes to the CPU with the least load, where load is the number of live
/// vCPUs pinned there and Dom0's vCPU 0 counts twice (it takes the device
/// interrupts and, by default, every event-channel upcall: a DomU beside it
/// would be preempted by each of its own console or xenstore notifications).
/// Ties go to the lowest CPU number.
pub fn place_vcpus(n: usize) -> alloc::vec::Vec<usize> {
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

/// Make a vCPU runnable on its physical CPU (wakes that CPU if remote).
pub fn enqueue(dom: &Arc<Domain>, vcpu: usize) {
    let pcpu = dom.vcpus[vcpu].lock().pcpu;
    RQ[pcpu].lock().queue.push_back((dom.clone(), vcpu));
    kick(pcpu);
}

/// Ask CPU `cpu` to reschedule soon.
pub fn kick(cpu: usize) {
    if cpu == this_cpu() {
        RQ[cpu].lock().need_resched = true;
    } else {
        irq::send_kick(cpu, mpidr_of(cpu));
    }
}

/// Ask every CPU to reschedule (a domain died).
pub fn kick_all() {
    for c in 0..nr_cpus() {
        kick(c);
    }
}

/// The current vCPU gives up the rest of its slice.
pub fn yield_current() {
    RQ[this_cpu()].lock().need_resched = true;
}

/// Block the current vCPU until [`wake`] is called for it. The caller has
/// checked that nothing it waits for is already pending.
pub fn block_current() {
    let cpu = this_cpu();
    let mut rq = RQ[cpu].lock();
    if let Some((d, v)) = &rq.current {
        let mut vc = d.vcpus[*v].lock();
        if vc.state == VcpuState::Runnable {
            vc.state = VcpuState::Blocked;
        }
    }
    rq.need_resched = true;
}

/// Make a blocked vCPU runnable again (an event or interrupt arrived).
/// Returns whether it was blocked (it is queued and its CPU kicked then).
pub fn wake(dom: &Arc<Domain>, vcpu: usize) -> bool {
    let woke = {
        let mut v = dom.vcpus[vcpu].lock();
        if v.state == VcpuState::Blocked {
            v.state = VcpuState::Runnable;
            true
        } else {
            false
        }
    };
    if woke {
        enqueue(dom, vcpu);
    }
    woke
}

/// Timer tick or kick on this CPU: reschedule before returning to the guest.
pub fn request_resched(cpu: usize) {
    RQ[cpu].lock().need_resched = true;
}

/// Arm the EL2 timer for the end of the slice now starting, or earlier
/// when a blocked vCPU's virtual timer is due before that, so it wakes on
/// time rather than at the next slice boundary.
fn arm_slice(rq: &RunQueue) {
    let end = timer::now() + timer::ns_to_ticks(SLICE_NS);
    timer::arm_at(rq.earliest.map_or(end, |t| t.min(end)));
}

/// CNTV_CTL_EL0 bits (Arm ARM D13.8.16).
const CNTV_ENABLE: u64 = 1 << 0;
const CNTV_IMASK: u64 = 1 << 1;

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
/// (0 = none). Resuming that vCPU after an idle period skips the reload,
/// which matters because rewriting SCTLR/TTBR/TCR makes QEMU (and some
/// hardware) drop its TLBs.
static LIVE_CTX: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn load(frame: &mut TrapFrame, dom: &Domain, vcpu: usize) {
    let mut v = dom.vcpus[vcpu].lock();
    v.running = true;
    v.run_start = timer::now();
    let cpu = this_cpu();
    CURRENT_CTX[cpu].store(v.ctx_id, Ordering::Relaxed);
    if LIVE_CTX[cpu].swap(v.ctx_id, Ordering::Relaxed) == v.ctx_id {
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

fn runnable(dom: &Domain, vcpu: usize) -> bool {
    dom.is_alive() && !dom.is_paused() && dom.vcpus[vcpu].lock().state == VcpuState::Runnable
}

/// Queue every runnable vCPU of `dom` (it was just unpaused: its vCPUs
/// were dropped from the run queues while it was paused).
///
/// The check is made under the vCPU's run-queue lock: `schedule` decides to
/// drop a paused current vCPU and saves it (clearing `running`) under that
/// same lock, so a vCPU seen `running` here is one `schedule` has not
/// dropped yet, and will keep now that the domain is unpaused.
pub fn domain_unpaused(dom: &Arc<Domain>) {
    for i in 0..dom.vcpus.len() {
        let pcpu = dom.vcpus[i].lock().pcpu;
        let go = {
            let mut rq = RQ[pcpu].lock();
            let go = {
                let v = dom.vcpus[i].lock();
                v.state == VcpuState::Runnable && !v.running
            };
            if go {
                rq.queue.push_back((dom.clone(), i));
            }
            go
        };
        if go {
            kick(pcpu);
        }
    }
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

/// Decide what runs next on this CPU and put it in `frame`. Returns when
/// `frame` holds a runnable vCPU (waiting in WFI while there is none), and
/// returns that vCPU.
pub fn schedule(frame: &mut TrapFrame) -> (Arc<Domain>, usize) {
    let cpu = this_cpu();
    let mut timers_checked = false;
    loop {
        let mut rq = RQ[cpu].lock();
        if rq.need_resched && !rq.blocked.is_empty() && !timers_checked {
            // A tick or a kick: time to look at blocked vCPUs' timers. The
            // lock is dropped for that, so everything is looked at afresh
            // after it (the current vCPU may have been woken meanwhile).
            drop(rq);
            wake_expired_timers(cpu);
            timers_checked = true;
            continue;
        }
        // Decided under the same lock hold as everything below: a vCPU
        // woken while it is still current is queued here and dropped from
        // the queue as current, so it must then be kept (or queued again).
        let keep = match &rq.current {
            Some((d, v)) => runnable(d, *v),
            None => false,
        };
        if keep && !rq.need_resched {
            return kept(&rq);
        }
        rq.need_resched = false;
        // The next runnable entry; dead or offline entries are dropped.
        let mut next = None;
        while let Some((d, v)) = rq.queue.pop_front() {
            let is_current = rq
                .current
                .as_ref()
                .is_some_and(|(cd, cv)| Arc::ptr_eq(cd, &d) && *cv == v);
            if is_current {
                // A wake-up queued the vCPU while it was still current.
                continue;
            }
            if runnable(&d, v) {
                next = Some((d, v));
                break;
            }
        }
        match next {
            None if keep => {
                arm_slice(&rq);
                return kept(&rq);
            }
            Some((nd, nv)) => {
                if let Some((cd, cv)) = rq.current.take() {
                    if keep {
                        save(frame, &cd, cv);
                        rq.queue.push_back((cd, cv));
                    } else if cd.state() != crate::domain::DomState::Dying {
                        // Blocked, offline (PSCI CPU_OFF) or paused: keep its state.
                        save(frame, &cd, cv);
                        watch_blocked(&mut rq, cd, cv);
                    }
                }
                load(frame, &nd, nv);
                rq.current = Some((nd.clone(), nv));
                arm_slice(&rq);
                return (nd, nv);
            }
            None => {
                if let Some((cd, cv)) = rq.current.take()
                    && cd.state() != crate::domain::DomState::Dying
                {
                    save(frame, &cd, cv);
                    watch_blocked(&mut rq, cd, cv);
                }
                drop(rq);
                timer::disarm();
                idle_wait(cpu);
            }
        }
    }
}

/// The current vCPU, which `schedule` keeps.
fn kept(rq: &RunQueue) -> (Arc<Domain>, usize) {
    match &rq.current {
        Some((d, v)) => (d.clone(), *v),
        None => unreachable!("schedule keeps only a current vCPU"),
    }
}

/// Put a vCPU that left this CPU without being runnable on the list whose
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

/// Wake the blocked vCPUs pinned to `cpu` whose virtual timer has expired
/// (they were descheduled with it armed), and return the earliest deadline
/// still ahead (and whether any vCPU was woken). Only this CPU's own list
/// and vCPUs are touched: no lock another CPU uses on its fast path.
fn wake_expired_timers(cpu: usize) -> (bool, Option<u64>) {
    let now = timer::now();
    let mut earliest: Option<u64> = None;
    let mut due = alloc::vec::Vec::new();
    {
        let mut rq = RQ[cpu].lock();
        rq.blocked.retain(|(d, i)| {
            if !d.is_alive() {
                return false;
            }
            let v = d.vcpus[*i].lock();
            if v.state != VcpuState::Blocked {
                return false;
            }
            match v.timer_deadline {
                Some(t) if t <= now => {
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
    let woke = !due.is_empty();
    for (d, i) in due {
        wake(&d, i);
    }
    (woke, earliest)
}

/// Nothing to run: sleep until an interrupt, then handle it.
fn idle_wait(cpu: usize) {
    crate::domain::reap();
    match wake_expired_timers(cpu) {
        (true, _) => return,
        (false, Some(t)) => timer::arm_at(t),
        (false, None) => {}
    }
    sysreg::dsb_sy();
    sysreg::wfi();
    irq::handle_pending(cpu);
}

/// The run queues as text, for the `r` debug key: per physical CPU what
/// runs, what waits to run and which blocked vCPUs' timers it watches.
pub fn dump(out: &mut dyn core::fmt::Write) {
    let now = timer::now();
    let rel = |t: u64| -> i64 {
        let us = timer::ticks_to_ns(t.abs_diff(now)) / 1000;
        if t >= now { us as i64 } else { -(us as i64) }
    };
    for (cpu, rq) in RQ.iter().enumerate().take(nr_cpus()) {
        let rq = rq.lock();
        let name = |d: &Arc<Domain>, v: usize| alloc::format!("d{}v{v}", d.id.0);
        let cur = rq
            .current
            .as_ref()
            .map_or_else(|| alloc::string::String::from("idle"), |(d, v)| name(d, *v));
        let _ = writeln!(
            out,
            "CPU{cpu}: running {cur}{}",
            if rq.need_resched {
                ", resched pending"
            } else {
                ""
            }
        );
        let _ = write!(out, "  run queue:");
        for (d, v) in &rq.queue {
            let _ = write!(out, " {}", name(d, *v));
        }
        let _ = writeln!(out);
        let _ = write!(out, "  blocked (timer in us):");
        for (d, v) in &rq.blocked {
            let vc = d.vcpus[*v].lock();
            match vc.timer_deadline {
                Some(t) => {
                    let _ = write!(out, " {}({:?},{})", name(d, *v), vc.state, rel(t));
                }
                None => {
                    let _ = write!(out, " {}({:?},-)", name(d, *v), vc.state);
                }
            }
        }
        let _ = writeln!(out);
    }
}

/// First entry of a CPU into guests: never returns.
pub fn run(cpu: usize) -> ! {
    let slot = crate::arch::head::frame_slot(cpu);
    // SAFETY: the frame slot at the top of this CPU's stack is only used by
    // this CPU, and nothing else references it yet.
    let frame = unsafe { &mut *slot };
    *frame = TrapFrame::default();
    let (dom, vcpu) = schedule(frame);
    crate::vgic::load_to_hw(&dom, vcpu);
    // SAFETY: `schedule` loaded a runnable vCPU (registers, EL1 state, stage 2)
    // into this CPU's frame slot.
    unsafe { crate::arch::head::enter_frame(slot) }
}
