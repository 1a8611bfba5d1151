//! Xen's credit scheduler (credit1, as `xen/common/sched/credit.c` of Xen 4.17
//! implements it) as a pure, host-tested policy.
//!
//! # What it owns
//!
//! [`Credit`] owns every scheduling decision and nothing else: one run queue
//! per physical CPU, the credits, priorities and flags of each vCPU, the
//! weights, caps and active lists of the domains, the set of idle CPUs, and
//! the deadlines of the three scheduler timers (credit tick per CPU, time
//! slice per CPU, accounting on the master CPU 0). It owns no time source, no
//! timer, no interrupt and no vCPU context: time comes in as `now` (ns,
//! monotonic, any origin), and the CPUs that must reschedule come out as a
//! [`CpuMask`] for the caller to signal (Xen's `SCHEDULE_SOFTIRQ` raised
//! through an SGI). Nothing here blocks, spins or needs `unsafe`; the caller
//! serialises calls (one lock around the whole [`Credit`] is correct; Xen's
//! finer per-runqueue locking is an optimisation the policy does not need).
//!
//! # The rules (Xen 4.17, rule by rule)
//!
//! * **Credits.** The running vCPU is charged exactly for the time it ran
//!   (10 credits per ms, remainder carried in `residual`, Xen's
//!   `burn_credits`) at each credit tick and each [`Credit::schedule`].
//!   Every time slice (30 ms by default) [`Credit::account`] hands out
//!   `300 × nCPUs` credits to the *active* vCPUs in proportion to their
//!   domain's weight (weight is per active vCPU), clipped by the domain's cap
//!   and by one slice's worth per vCPU, with the surplus of the satisfied
//!   offered to the rest (Xen's `csched_acct`, including the negative-balance
//!   catch-up and the reordering of domains below their peak). A vCPU whose
//!   credit goes above 300 stops being active (credit halved); credit never
//!   goes below -300. A vCPU becomes active when a tick finds it running.
//! * **Priorities.** BOOST (0) > UNDER (-1) > OVER (-2) > IDLE (-64).
//!   Accounting sets UNDER (credit ≥ 0) or OVER (credit < 0). Run queues are
//!   ordered by priority, FIFO within a priority; each CPU re-sorts its queue
//!   (UNDER before OVER, order kept) at its first tick after an accounting.
//! * **Boost.** A waking vCPU is boosted only if it is UNDER, not waking from
//!   a migration (`MIGRATING`, set when the scheduler itself picks its CPU)
//!   and not being unparked (`PARKED` is cleared only after the wake). BOOST
//!   ends at the first credit tick that finds the vCPU running or at the next
//!   accounting. Charging is exact, so a vCPU that blocks just before every
//!   tick still goes OVER and then loses boosting.
//! * **Caps** (percent of one CPU for the whole domain, 0 = none): at
//!   accounting an OVER vCPU of a capped domain whose credit is below minus
//!   its per-vCPU cap is *parked* (paused, so it leaves its CPU at once); a
//!   later accounting that finds its credit ≥ 0 unparks it (without boost).
//!   Parking is a pause count, so it composes with [`Credit::pause`].
//! * **Time slice and rate limit.** A picked vCPU runs for one slice (default
//!   30 ms) unless preempted. [`Credit::schedule`] keeps a runnable,
//!   non-yielding current vCPU that has run for less than the rate limit
//!   (default 1 ms) since it was switched in, for the rest of the rate limit
//!   (at least 100 µs, as Xen writes it).
//! * **Tickling.** A vCPU is woken onto the queue of the CPU it last ran on;
//!   then (Xen's `__runq_tickle`) that CPU is tickled if it is idle or if no
//!   CPU is idle and the waker has a higher priority than what runs there;
//!   otherwise one idle CPU from the waker's soft, then hard, affinity is
//!   tickled (cycling), and it will steal the waker. Tickled CPUs leave the
//!   idle set at once.
//! * **Work stealing** (pull only, Xen's `csched_load_balance`): when the
//!   best local candidate is OVER or there is none, the CPU looks at the
//!   queues of the non-idle other CPUs that have more than one runnable
//!   vCPU, soft-affinity step first then hard, and takes the first queued
//!   vCPU of strictly higher priority that is not running, whose affinity
//!   allows this CPU and that is not cache-hot (`vcpu_migration_delay`,
//!   default 0). A peer running idle is never robbed.
//! * **Push at the tick** (Xen's `csched_unit_acct`): a tick that finds an
//!   already active vCPU running while another CPU of its affinity is idle
//!   and its own CPU has work queued migrates it there (Arm's flat topology:
//!   every CPU is its own core, so "more idle" means "idle").
//! * **Affinity.** Hard affinity is never violated (placement, stealing,
//!   migration); soft affinity is preferred where Xen prefers it (pick,
//!   tickle, steal). A hard affinity of one CPU marks the vCPU `PINNED`.
//!
//! # Invariants
//!
//! * A vCPU is in at most one place: current on its CPU, queued on the run
//!   queue of `vcpu.cpu`, or neither (blocked, paused, parked, or waiting to
//!   migrate). Only runnable vCPUs are queued, and the queue is sorted by
//!   priority.
//! * A CPU is in the idle set only while it runs nothing and has not been
//!   tickled since it went idle.
//! * A vCPU only ever runs on, is queued on, or moves to a CPU of its hard
//!   affinity.
//! * The global weight is the sum of the domain weights over active vCPUs.
//!
//! # How a hypervisor drives it
//!
//! 1. At boot: [`Credit::new`] with the number of CPUs; [`Credit::add_domain`]
//!    and [`Credit::add_vcpu`] for each vCPU (they start blocked), then
//!    [`Credit::wake`] the ones that are online.
//! 2. Each CPU arms its EL2 timer for [`Credit::next_timer`] and, when it
//!    fires, calls [`Credit::timer`] (accounting on the master, credit tick,
//!    slice end), then re-arms.
//! 3. Events: a vCPU that executes WFI (or `SCHEDOP_block`) →
//!    [`Credit::block`]; a vCPU that gets an interrupt or event while
//!    blocked → [`Credit::wake`]; `SCHEDOP_yield` → [`Credit::yield_vcpu`];
//!    toolstack pause → [`Credit::pause`] / [`Credit::unpause`].
//! 4. Every call that can change what should run returns a [`CpuMask`] of
//!    CPUs that must call [`Credit::schedule`]: set a local "need resched"
//!    flag for the calling CPU and send the reschedule SGI to the others.
//! 5. [`Credit::schedule`] returns a [`Decision`]: which vCPU to run (or idle
//!    in WFI when `None`), for how long at most (arm the timer), and whether
//!    it was stolen from another CPU (move its interrupts). After saving the
//!    previous vCPU's context the CPU calls [`Credit::context_saved`]: until
//!    then that vCPU is neither stolen nor migrated, and deferred migrations
//!    (tick push, affinity change) complete there.
//! 6. Control: [`Credit::set_params`] (`XEN_DOMCTL_scheduler_op`),
//!    [`Credit::set_sched_params`] (`XEN_SYSCTL_scheduler_op`),
//!    [`Credit::set_affinity`] (`XEN_DOMCTL_setvcpuaffinity`); errors carry
//!    Xen's errno ([`SchedError::errno`]) and libxl's message. Queries:
//!    [`Credit::vcpu_info`], [`Credit::cpu_time`] (`getvcpuinfo`),
//!    [`Credit::dump_cpu`] (the `r` debug key), [`Credit::check_invariants`].
//!
//! Time is any monotonic ns count shared by all CPUs (CNTPCT scaled by
//! CNTFRQ); a timer handled late is fine (`now` ≥ the deadline), and every
//! `now` passed in must be ≥ the previous one.
//!
//! ```
//! use oxen_sched::{CpuMask, Credit, DomId, VcpuRef};
//! const MS: u64 = 1_000_000;
//! let mut s = Credit::new(2, 0);
//! s.add_domain(DomId(0), 1).unwrap();
//! let v = VcpuRef::new(0, 0);
//! s.add_vcpu(v, 0, None).unwrap();
//! // Dom0's vCPU comes online: CPU 0 (idle) is told to reschedule.
//! assert_eq!(s.wake(v, 0), CpuMask::single(0));
//! let d = s.schedule(0, 0);
//! assert_eq!((d.next, d.run_for_ns), (Some(v), Some(30 * MS)));
//! let _ = s.context_saved(0, 0);
//! // CPU 0 arms its timer for the credit tick (10 ms) and runs the vCPU.
//! assert_eq!(s.next_timer(0), Some(10 * MS));
//! assert_eq!(s.timer(0, 10 * MS), CpuMask::EMPTY);
//! // The vCPU executes WFI at 12 ms: CPU 0 reschedules and idles.
//! assert_eq!(s.block(v, 12 * MS), CpuMask::single(0));
//! assert_eq!(s.schedule(0, 12 * MS).next, None);
//! let _ = s.context_saved(0, 12 * MS);
//! // Idle: only the accounting (master CPU) remains due.
//! assert_eq!(s.next_timer(0), Some(30 * MS));
//! assert_eq!(s.next_timer(1), None);
//! ```
//!
//! # Left out
//!
//! Tasklets run in idle context (Xen boosts the idle vCPU), CPU hot-plug and
//! cpupools, NUMA nodes and SMT siblings (Arm Xen 4.17 gives every CPU its own
//! core), `sched_smt_power_savings`, and statistics beyond [`Stats`].
//! The tickle rule in Xen that marks the running vCPU for migration when the
//! waker has no idle CPU but its hard affinity meets the idle set cannot fire
//! as written (both conditions test the same mask), so it is not modelled.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod mask;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

pub use mask::{CpuMask, MAX_CPUS};
pub use oxen_types::DomId;
pub use xen_abi::Errno;

/// Weight of a new domain (`CSCHED_DEFAULT_WEIGHT`).
pub const DEFAULT_WEIGHT: u16 = 256;
/// Credit ticks per time slice (`CSCHED_TICKS_PER_TSLICE`).
pub const TICKS_PER_TSLICE: u64 = 3;
/// Default time slice, also the accounting period (`CSCHED_DEFAULT_TSLICE_MS`).
pub const DEFAULT_TSLICE_MS: u32 = 30;
/// Credits burnt per ms of CPU (`CSCHED_CREDITS_PER_MSEC`).
pub const CREDITS_PER_MSEC: u64 = 10;
/// Default rate limit (`SCHED_DEFAULT_RATELIMIT_US`).
pub const DEFAULT_RATELIMIT_US: u32 = 1000;
/// Shortest timer the scheduler asks for (`CSCHED_MIN_TIMER`), in ns.
pub const MIN_TIMER_NS: u64 = 100_000;
/// Valid time slices (`XEN_SYSCTL_CSCHED_TSLICE_MIN/MAX`), in ms.
pub const TSLICE_RANGE_MS: core::ops::RangeInclusive<u32> = 1..=1000;
/// Valid non-zero rate limits (`XEN_SYSCTL_SCHED_RATELIMIT_MIN/MAX`), in µs.
pub const RATELIMIT_RANGE_US: core::ops::RangeInclusive<u32> = 100..=500_000;
/// Largest `vcpu_migration_delay` (`XEN_SYSCTL_CSCHED_MGR_DLY_MAX_US`), in µs.
pub const MIGR_DELAY_MAX_US: u32 = 100_000;
/// The CPU that runs the accounting (Xen's `prv->master`).
pub const MASTER_CPU: usize = 0;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_US: u64 = 1_000;

const PRI_BOOST: i8 = 0;
const PRI_UNDER: i8 = -1;
const PRI_OVER: i8 = -2;
const PRI_IDLE: i8 = -64;

/// A vCPU: its domain and its index in the domain. Ordered by domain,
/// then index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VcpuRef {
    /// The domain.
    pub dom: DomId,
    /// The vCPU's index within the domain.
    pub vcpu: u32,
}

impl VcpuRef {
    /// vCPU `vcpu` of domain `dom`.
    pub const fn new(dom: u16, vcpu: u32) -> Self {
        VcpuRef {
            dom: DomId(dom),
            vcpu,
        }
    }

    /// (domain, index) as one number, in the same order: every policy
    /// lookup compares keys, and one integer comparison is what keeps them
    /// cheap.
    const fn key(self) -> u64 {
        ((self.dom.0 as u64) << 32) | self.vcpu as u64
    }
}

impl Ord for VcpuRef {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for VcpuRef {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for VcpuRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.dom, self.vcpu)
    }
}

/// A credit1 priority; higher runs first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Priority {
    /// `CSCHED_PRI_TS_BOOST` (0): woken while UNDER.
    Boost,
    /// `CSCHED_PRI_TS_UNDER` (-1): credit ≥ 0 at the last accounting.
    Under,
    /// `CSCHED_PRI_TS_OVER` (-2): credit < 0 at the last accounting.
    Over,
    /// `CSCHED_PRI_IDLE` (-64): the idle vCPU.
    Idle,
}

impl Priority {
    fn from_raw(p: i8) -> Self {
        match p {
            PRI_BOOST => Priority::Boost,
            PRI_UNDER => Priority::Under,
            PRI_OVER => Priority::Over,
            _ => Priority::Idle,
        }
    }

    /// Xen's numeric value.
    pub fn raw(self) -> i8 {
        match self {
            Priority::Boost => PRI_BOOST,
            Priority::Under => PRI_UNDER,
            Priority::Over => PRI_OVER,
            Priority::Idle => PRI_IDLE,
        }
    }
}

/// What a CPU runs next.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    /// The vCPU to run; `None`: run idle (WFI) until an interrupt.
    pub next: Option<VcpuRef>,
    /// Run it at most this long, then call [`Credit::schedule`] again
    /// ([`Credit::next_timer`] includes this deadline); `None` when idle.
    pub run_for_ns: Option<u64>,
    /// `next` last ran on another CPU, or was added on another CPU and never
    /// ran (stolen, or moved by a tick push or an affinity change): its
    /// context was saved there, and its interrupts and timers must follow
    /// it here.
    pub migrated: bool,
    /// CPUs to tickle because this call completed a deferred migration (only
    /// when [`Credit::context_saved`] was not called after the last switch).
    pub tickle: CpuMask,
}

/// Why a control operation was refused. Nothing was changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SchedError {
    /// No such domain (`-ESRCH`).
    NoDomain,
    /// The domain already exists (`-EEXIST`).
    DomainExists,
    /// No such vCPU, or index ≥ the domain's vCPU count (`-ESRCH`/`-EINVAL`).
    NoVcpu,
    /// The vCPU already exists (`-EEXIST`).
    VcpuExists,
    /// Weight outside 1..=65535 (libxl: `-EINVAL`).
    WeightOutOfRange,
    /// Cap above 100 × vCPUs (libxl: `-EINVAL`).
    CapOutOfRange,
    /// Time slice, rate limit or migration delay out of range (`-EINVAL`).
    BadSchedParam,
    /// Affinity with no online CPU, or neither mask given (`-EINVAL`).
    BadAffinity,
    /// CPU index not online (`-EINVAL`).
    BadCpu,
    /// The vCPU is running or its context is not saved yet (`-EBUSY`).
    Busy,
    /// The domain still has vCPUs (`-EBUSY`).
    NotEmpty,
}

impl SchedError {
    /// The errno a hypercall returns for it.
    pub fn errno(self) -> Errno {
        match self {
            SchedError::NoDomain => Errno::ESRCH,
            SchedError::NoVcpu => Errno::ESRCH,
            SchedError::DomainExists | SchedError::VcpuExists => Errno::EEXIST,
            SchedError::Busy | SchedError::NotEmpty => Errno::EBUSY,
            _ => Errno::EINVAL,
        }
    }

    /// The message libxl/xl prints for it, where they have one.
    pub fn message(self) -> &'static str {
        match self {
            SchedError::WeightOutOfRange => {
                "Cpu weight out of range, valid values are within range from 1 to 65535"
            }
            SchedError::CapOutOfRange => "Cpu cap out of range, valid range is from 0 to",
            SchedError::NoDomain => "No such domain",
            SchedError::BadAffinity => "Could not set affinity",
            _ => "Invalid argument",
        }
    }
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// System-wide parameters (`xen_sysctl_credit_schedule`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SchedParams {
    /// Time slice and accounting period, ms (1..=1000).
    pub tslice_ms: u32,
    /// Rate limit, µs (0 = off, else 100..=500 000, ≤ tslice).
    pub ratelimit_us: u32,
    /// Cache-hot delay before a vCPU may be stolen, µs (≤ 100 000).
    pub vcpu_migr_delay_us: u32,
}

impl Default for SchedParams {
    fn default() -> Self {
        SchedParams {
            tslice_ms: DEFAULT_TSLICE_MS,
            ratelimit_us: DEFAULT_RATELIMIT_US,
            vcpu_migr_delay_us: 0,
        }
    }
}

/// Counters, for tests and the `r` debug key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// vCPUs taken from another CPU's queue by [`Credit::schedule`].
    pub steals: u64,
    /// Migrations completed (tick push, affinity change).
    pub migrations: u64,
    /// Wake-ups that boosted the vCPU.
    pub boosts: u64,
    /// CPUs tickled on wake-ups.
    pub tickles: u64,
    /// Times a vCPU was parked / unparked by its cap.
    pub parks: u64,
    /// See `parks`.
    pub unparks: u64,
    /// Decisions that kept the current vCPU because of the rate limit.
    pub ratelimited: u64,
    /// Accounting passes.
    pub accountings: u64,
}

/// A snapshot of one vCPU's scheduling state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VcpuInfo {
    /// The CPU it runs or waits on (`v->processor`).
    pub cpu: usize,
    /// Its priority.
    pub pri: Priority,
    /// Its credit.
    pub credit: i32,
    /// Whether it is on its domain's active list (earns credit).
    pub active: bool,
    /// Current on its CPU.
    pub running: bool,
    /// Queued on its CPU's run queue.
    pub queued: bool,
    /// Blocked (waiting for an event).
    pub blocked: bool,
    /// Parked by its domain's cap.
    pub parked: bool,
    /// Pause count (toolstack pauses plus parking).
    pub pause_count: u32,
    /// CPU time consumed, ns (up to the last switch or tick).
    pub cpu_time_ns: u64,
    /// Hard affinity as set.
    pub hard: CpuMask,
    /// Soft affinity as set.
    pub soft: CpuMask,
}

/// Effective affinities after [`Credit::set_affinity`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AffinityResult {
    /// Hard affinity ∩ online CPUs.
    pub hard: CpuMask,
    /// Soft ∩ hard ∩ online CPUs.
    pub soft: CpuMask,
    /// CPUs that must reschedule.
    pub resched: CpuMask,
}

#[derive(Debug)]
struct Vcpu {
    cpu: usize,
    pri: i8,
    credit: i32,
    residual: u64,
    /// Xen's `start_time`: while running, the time up to which it has been
    /// charged (minus the carried remainder); while descheduled, that minus
    /// the time it was descheduled (Xen's `start_time -= now`).
    start_time: i64,
    last_sched_time: u64,
    /// When it was last switched in (Xen's `state_entry_time`).
    state_entry_time: u64,
    parked: bool,
    yielding: bool,
    /// Xen's `CSCHED_FLAG_UNIT_MIGRATING`: no boost at the next wake.
    migrating: bool,
    pinned: bool,
    active: bool,
    blocked: bool,
    pause_count: u32,
    /// Xen's `_VPF_migrating`: waiting to be moved once descheduled.
    migrate_req: bool,
    on_runq: bool,
    /// Current on its CPU, or descheduled but context not saved yet.
    is_running: bool,
    hard: CpuMask,
    soft: CpuMask,
    soft_effective: bool,
    cpu_time_ns: u64,
    /// The CPU it last ran on (at first: where [`Credit::add_vcpu`] put it).
    last_cpu: usize,
}

impl Vcpu {
    fn runnable(&self) -> bool {
        !self.blocked && self.pause_count == 0 && !self.migrate_req
    }
}

#[derive(Debug)]
struct Dom {
    weight: u16,
    cap: u16,
    nr_vcpus: u32,
    /// Active vCPUs, most recently activated first.
    active: Vec<VcpuRef>,
    vcpus: Vec<VcpuRef>,
}

#[derive(Debug, Default)]
struct Pcpu {
    runq: VecDeque<VcpuRef>,
    curr: Option<VcpuRef>,
    /// Descheduled by the last `schedule`, context not saved yet.
    prev: Option<VcpuRef>,
    tick_next: Option<u64>,
    slice_end: Option<u64>,
    runq_sort_last: u32,
    last_tickle_cpu: usize,
}

/// The credit scheduler of one pool of CPUs. See the crate documentation.
#[derive(Debug)]
pub struct Credit {
    ncpus: usize,
    online: CpuMask,
    idlers: CpuMask,
    cpus: Vec<Pcpu>,
    vcpus: BTreeMap<VcpuRef, Vcpu>,
    doms: BTreeMap<DomId, Dom>,
    /// Active domains, Xen's `active_sdom` order.
    active_doms: Vec<DomId>,
    /// Σ weight over active vCPUs.
    weight: u32,
    credit_balance: i64,
    runq_sort: u32,
    balance_bias: usize,
    params: SchedParams,
    tslice_ns: u64,
    tick_ns: u64,
    credits_per_tslice: i64,
    ratelimit_ns: u64,
    migr_delay_ns: u64,
    acct_next: u64,
    boost_enabled: bool,
    stats: Stats,
}

impl Credit {
    /// A scheduler for CPUs `0..ncpus` (clamped to 1..=[`MAX_CPUS`]), all
    /// idle, with Xen's default parameters; the first accounting is due one
    /// time slice after `now`.
    pub fn new(ncpus: usize, now: u64) -> Self {
        let ncpus = ncpus.clamp(1, MAX_CPUS);
        let mut s = Credit {
            ncpus,
            online: CpuMask::first_n(ncpus),
            idlers: CpuMask::first_n(ncpus),
            cpus: (0..ncpus).map(|_| Pcpu::default()).collect(),
            vcpus: BTreeMap::new(),
            doms: BTreeMap::new(),
            active_doms: Vec::new(),
            weight: 0,
            credit_balance: 0,
            runq_sort: 0,
            balance_bias: 0,
            params: SchedParams::default(),
            tslice_ns: 0,
            tick_ns: 0,
            credits_per_tslice: 0,
            ratelimit_ns: 0,
            migr_delay_ns: 0,
            acct_next: 0,
            boost_enabled: true,
            stats: Stats::default(),
        };
        s.apply_params(SchedParams::default());
        s.acct_next = now + s.tslice_ns;
        s
    }

    fn apply_params(&mut self, p: SchedParams) {
        // Xen's __csched_set_tslice.
        let ticks = if (p.tslice_ms as u64) < TICKS_PER_TSLICE {
            1
        } else {
            TICKS_PER_TSLICE
        };
        self.tslice_ns = p.tslice_ms as u64 * NS_PER_MS;
        self.tick_ns = p.tslice_ms as u64 * 1000 / ticks * NS_PER_US;
        self.credits_per_tslice = CREDITS_PER_MSEC as i64 * p.tslice_ms as i64;
        self.ratelimit_ns = p.ratelimit_us as u64 * NS_PER_US;
        self.migr_delay_ns = p.vcpu_migr_delay_us as u64 * NS_PER_US;
        self.params = p;
    }

    /// Number of CPUs.
    pub fn ncpus(&self) -> usize {
        self.ncpus
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// System-wide parameters (`XEN_SYSCTL_SCHEDOP_getinfo`).
    pub fn sched_params(&self) -> SchedParams {
        self.params
    }

    /// Credit tick period in ns (tslice / 3).
    pub fn tick_period_ns(&self) -> u64 {
        self.tick_ns
    }

    /// `XEN_SYSCTL_SCHEDOP_putinfo`: Xen's range checks, then the new values
    /// apply from the next slice, tick and accounting.
    pub fn set_sched_params(&mut self, p: SchedParams) -> Result<SchedParams, SchedError> {
        if !TSLICE_RANGE_MS.contains(&p.tslice_ms)
            || (p.ratelimit_us != 0 && !RATELIMIT_RANGE_US.contains(&p.ratelimit_us))
            || p.ratelimit_us as u64 * NS_PER_US > p.tslice_ms as u64 * NS_PER_MS
            || p.vcpu_migr_delay_us > MIGR_DELAY_MAX_US
        {
            return Err(SchedError::BadSchedParam);
        }
        self.apply_params(p);
        Ok(self.params)
    }

    /// Test knob (not in Xen): turn the wake-up boost off, to show what it
    /// buys (the research note's F4 "no-boost" run). On by default.
    pub fn set_wake_boost(&mut self, enabled: bool) {
        self.boost_enabled = enabled;
    }

    // ------------------------------------------------------------------
    // Domains and vCPUs
    // ------------------------------------------------------------------

    /// Registers a domain with `nr_vcpus` vCPUs (the bound for its cap), at
    /// the default weight 256 and no cap.
    pub fn add_domain(&mut self, dom: DomId, nr_vcpus: u32) -> Result<(), SchedError> {
        if self.doms.contains_key(&dom) {
            return Err(SchedError::DomainExists);
        }
        self.doms.insert(
            dom,
            Dom {
                weight: DEFAULT_WEIGHT,
                cap: 0,
                nr_vcpus,
                active: Vec::new(),
                vcpus: Vec::new(),
            },
        );
        Ok(())
    }

    /// Removes a domain whose vCPUs were all removed.
    pub fn remove_domain(&mut self, dom: DomId) -> Result<(), SchedError> {
        let d = self.doms.get(&dom).ok_or(SchedError::NoDomain)?;
        if !d.vcpus.is_empty() {
            return Err(SchedError::NotEmpty);
        }
        self.doms.remove(&dom);
        Ok(())
    }

    /// Registers a vCPU, blocked, with hard affinity `hard` (all CPUs when
    /// `None`) and no soft affinity. Like Xen's `csched_unit_insert` its CPU
    /// is picked starting from `cpu` (kept when idle), and its first wake-up
    /// is not boosted.
    pub fn add_vcpu(
        &mut self,
        v: VcpuRef,
        cpu: usize,
        hard: Option<CpuMask>,
    ) -> Result<(), SchedError> {
        let d = self.doms.get(&v.dom).ok_or(SchedError::NoDomain)?;
        if v.vcpu >= d.nr_vcpus {
            return Err(SchedError::NoVcpu);
        }
        if self.vcpus.contains_key(&v) {
            return Err(SchedError::VcpuExists);
        }
        if cpu >= self.ncpus {
            return Err(SchedError::BadCpu);
        }
        let hard = hard.unwrap_or(CpuMask::first_n(MAX_CPUS));
        if !hard.intersects(self.online) {
            return Err(SchedError::BadAffinity);
        }
        let start = if hard.contains(cpu) {
            cpu
        } else {
            hard.and(self.online).cycle(cpu).unwrap_or(0)
        };
        self.vcpus.insert(
            v,
            Vcpu {
                cpu: start,
                pri: PRI_UNDER,
                credit: 0,
                residual: 0,
                start_time: 0,
                last_sched_time: 0,
                state_entry_time: 0,
                parked: false,
                yielding: false,
                migrating: false,
                pinned: hard.count() == 1,
                active: false,
                blocked: true,
                pause_count: 0,
                migrate_req: false,
                on_runq: false,
                is_running: false,
                hard,
                soft: CpuMask::first_n(MAX_CPUS),
                soft_effective: false,
                cpu_time_ns: 0,
                last_cpu: start,
            },
        );
        self.dom_mut(v.dom).vcpus.push(v);
        let c = self.res_pick(v);
        self.vc_mut(v).cpu = c;
        self.vc_mut(v).last_cpu = c;
        Ok(())
    }

    /// Removes a vCPU that is not running and whose context is saved
    /// (pause it and let its CPU reschedule first).
    pub fn remove_vcpu(&mut self, v: VcpuRef) -> Result<(), SchedError> {
        let vc = self.vcpus.get(&v).ok_or(SchedError::NoVcpu)?;
        if vc.is_running {
            return Err(SchedError::Busy);
        }
        if vc.on_runq {
            self.runq_remove(v);
        }
        if self.vc(v).active {
            self.acct_stop(v);
        }
        self.vcpus.remove(&v);
        self.dom_mut(v.dom).vcpus.retain(|x| *x != v);
        Ok(())
    }

    /// `XEN_DOMCTL_SCHEDOP_getinfo`: (weight, cap).
    pub fn params(&self, dom: DomId) -> Result<(u16, u16), SchedError> {
        let d = self.doms.get(&dom).ok_or(SchedError::NoDomain)?;
        Ok((d.weight, d.cap))
    }

    /// `xl sched-credit -d dom -w weight -c cap` (`XEN_DOMCTL_SCHEDOP_putinfo`
    /// with libxl's checks): `None` keeps a value; weight must be 1..=65535
    /// and cap 0..=100 × the domain's vCPUs. On error nothing changes.
    pub fn set_params(
        &mut self,
        dom: DomId,
        weight: Option<u32>,
        cap: Option<u32>,
    ) -> Result<(), SchedError> {
        let d = self.doms.get(&dom).ok_or(SchedError::NoDomain)?;
        if let Some(w) = weight
            && !(1..=65535).contains(&w)
        {
            return Err(SchedError::WeightOutOfRange);
        }
        if let Some(c) = cap
            && c > 100 * d.nr_vcpus.max(1)
        {
            return Err(SchedError::CapOutOfRange);
        }
        let nact = d.active.len() as u32;
        let old = d.weight as u32;
        if let Some(w) = weight {
            self.weight = self.weight - old * nact + w * nact;
            self.dom_mut(dom).weight = w as u16;
        }
        if let Some(c) = cap {
            self.dom_mut(dom).cap = c.min(u16::MAX as u32 - 1) as u16;
        }
        Ok(())
    }

    /// `XEN_DOMCTL_SCHEDOP_putinfo` exactly as the Xen 4.17 hypervisor does
    /// it (`csched_dom_cntl`): weight 0 keeps the weight, cap 0xFFFF keeps the
    /// cap, and nothing is range-checked (libxl checks; see
    /// [`Credit::set_params`]).
    pub fn putinfo(&mut self, dom: DomId, weight: u16, cap: u16) -> Result<(), SchedError> {
        let d = self.doms.get(&dom).ok_or(SchedError::NoDomain)?;
        let nact = d.active.len() as u32;
        let old = d.weight as u32;
        if weight != 0 {
            self.weight = self.weight - old * nact + weight as u32 * nact;
            self.dom_mut(dom).weight = weight;
        }
        if cap != u16::MAX {
            self.dom_mut(dom).cap = cap;
        }
        Ok(())
    }

    /// `XEN_DOMCTL_setvcpuaffinity`: sets the hard and/or soft affinity (a
    /// `None` keeps it), then re-places the vCPU as Xen does (it may move
    /// even if its CPU stays allowed: an idle CPU is preferred). Errors: no
    /// mask, or a hard mask without an online CPU (`-EINVAL`).
    pub fn set_affinity(
        &mut self,
        v: VcpuRef,
        hard: Option<CpuMask>,
        soft: Option<CpuMask>,
        now: u64,
    ) -> Result<AffinityResult, SchedError> {
        if !self.vcpus.contains_key(&v) {
            return Err(SchedError::NoVcpu);
        }
        if hard.is_none() && soft.is_none() {
            return Err(SchedError::BadAffinity);
        }
        if let Some(h) = hard
            && !h.intersects(self.online)
        {
            return Err(SchedError::BadAffinity);
        }
        let _ = now;
        let online = self.online;
        let vc = self.vc_mut(v);
        if let Some(h) = hard {
            vc.hard = h;
            vc.pinned = h.count() == 1;
        }
        if let Some(s) = soft {
            vc.soft = s;
        }
        vc.soft_effective = !vc.hard.is_subset(vc.soft) && vc.soft.intersects(vc.hard);
        let res_hard = vc.hard.and(online);
        let res_soft = vc.soft.and(vc.hard).and(online);
        let mut resched = self.migrate_start(v);
        resched = resched.or(self.migrate_finish(v));
        Ok(AffinityResult {
            hard: res_hard,
            soft: res_soft,
            resched,
        })
    }

    /// A snapshot of a vCPU's state.
    pub fn vcpu_info(&self, v: VcpuRef) -> Option<VcpuInfo> {
        let vc = self.vcpus.get(&v)?;
        Some(VcpuInfo {
            cpu: vc.cpu,
            pri: Priority::from_raw(vc.pri),
            credit: vc.credit,
            active: vc.active,
            running: self.cpus[vc.cpu].curr == Some(v),
            queued: vc.on_runq,
            blocked: vc.blocked,
            parked: vc.parked,
            pause_count: vc.pause_count,
            cpu_time_ns: vc.cpu_time_ns,
            hard: vc.hard,
            soft: vc.soft,
        })
    }

    /// What `cpu` runs now (`None`: idle).
    pub fn current(&self, cpu: usize) -> Option<VcpuRef> {
        self.cpus.get(cpu).and_then(|p| p.curr)
    }

    /// The run queue of `cpu`, head first.
    pub fn runq(&self, cpu: usize) -> Vec<VcpuRef> {
        self.cpus
            .get(cpu)
            .map(|p| p.runq.iter().copied().collect())
            .unwrap_or_default()
    }

    /// CPUs currently in the idle set.
    pub fn idlers(&self) -> CpuMask {
        self.idlers
    }

    /// How many runnable vCPUs wait in `cpu`'s run queue.
    pub fn runq_len(&self, cpu: usize) -> usize {
        self.cpus.get(cpu).map_or(0, |p| p.runq.len())
    }

    /// How many runnable vCPUs wait in run queues for a CPU (0: no CPU has
    /// more work than its current vCPU).
    pub fn nr_queued(&self) -> usize {
        self.cpus.iter().map(|p| p.runq.len()).sum()
    }

    /// Whether some vCPU waits for a CPU now, or could: a vCPU waits in a
    /// run queue, or there are more vCPUs than CPUs (Xen's definition of
    /// an oversubscribed system).
    pub fn oversubscribed(&self) -> bool {
        self.vcpus.len() > self.ncpus || self.nr_queued() > 0
    }

    // ------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------

    /// A blocked vCPU got work (interrupt, event, `VCPUOP_up`): queue it on
    /// its CPU, boosted if the rules allow, and tickle.
    #[must_use]
    pub fn wake(&mut self, v: VcpuRef, now: u64) -> CpuMask {
        let _ = now;
        let Some(vc) = self.vcpus.get_mut(&v) else {
            return CpuMask::EMPTY;
        };
        if !vc.blocked {
            return CpuMask::EMPTY;
        }
        vc.blocked = false;
        self.vcpu_wake(v)
    }

    /// [`Credit::wake`], where the CPUs in `waiting` run a vCPU that only
    /// waits for an interrupt with the CPU kept for it (a WFI waiting in
    /// place), so they are as good as idle to place it: a vCPU whose own
    /// CPU runs another vCPU (and does not wait) is queued on one of them
    /// instead (its soft affinity first, its hard affinity only), and
    /// tickled there if it beats the waiting vCPU. Not a vCPU still being
    /// descheduled or moved elsewhere.
    #[must_use]
    pub fn wake_near(&mut self, v: VcpuRef, now: u64, waiting: CpuMask) -> CpuMask {
        if let Some(vc) = self.vcpus.get(&v)
            && vc.blocked
            && !vc.is_running
            && !vc.on_runq
            && !vc.migrate_req
            && !waiting.contains(vc.cpu)
            && self.cpus[vc.cpu].curr.is_some()
        {
            let home = vc.cpu;
            let mut to = None;
            for soft_step in [true, false] {
                if soft_step && !self.has_soft_affinity(vc) {
                    continue;
                }
                let cand = Self::balance_mask(vc, soft_step)
                    .and(self.online)
                    .and(waiting);
                if let Some(t) = cand.cycle(home) {
                    to = Some(t);
                    break;
                }
            }
            if let Some(t) = to {
                self.vc_mut(v).cpu = t;
            }
        }
        self.wake(v, now)
    }

    /// The vCPU blocks (WFI, `SCHEDOP_block`): leaves its queue, or its CPU
    /// must reschedule if it is running.
    #[must_use]
    pub fn block(&mut self, v: VcpuRef, now: u64) -> CpuMask {
        let _ = now;
        let Some(vc) = self.vcpus.get_mut(&v) else {
            return CpuMask::EMPTY;
        };
        if vc.blocked {
            return CpuMask::EMPTY;
        }
        let was = vc.runnable();
        vc.blocked = true;
        if was { self.sleep(v) } else { CpuMask::EMPTY }
    }

    /// `SCHEDOP_yield`: the current vCPU goes behind one lower-priority
    /// vCPU at its next [`Credit::schedule`], which its CPU must now call
    /// (ignored for a vCPU that is not running).
    #[must_use]
    pub fn yield_vcpu(&mut self, v: VcpuRef) -> CpuMask {
        let Some(vc) = self.vcpus.get_mut(&v) else {
            return CpuMask::EMPTY;
        };
        let cpu = vc.cpu;
        if self.cpus[cpu].curr == Some(v) {
            vc.yielding = true;
            CpuMask::single(cpu)
        } else {
            CpuMask::EMPTY
        }
    }

    /// Pause (toolstack or domain pause): counted, composes with parking.
    #[must_use]
    pub fn pause(&mut self, v: VcpuRef) -> CpuMask {
        let Some(vc) = self.vcpus.get_mut(&v) else {
            return CpuMask::EMPTY;
        };
        let was = vc.runnable();
        vc.pause_count += 1;
        if was { self.sleep(v) } else { CpuMask::EMPTY }
    }

    /// Undo one [`Credit::pause`].
    #[must_use]
    pub fn unpause(&mut self, v: VcpuRef) -> CpuMask {
        let Some(vc) = self.vcpus.get_mut(&v) else {
            return CpuMask::EMPTY;
        };
        if vc.pause_count == 0 {
            return CpuMask::EMPTY;
        }
        vc.pause_count -= 1;
        self.vcpu_wake(v)
    }

    /// The vCPU running on `cpu` spent `ns` waiting for an interrupt with
    /// the CPU kept for it (its WFI waited in place, nothing else wanting
    /// the CPU): it is not charged credit for that time, as it would not
    /// have been had it blocked. Its CPU time still counts it (as Xen's
    /// `vwfi=native` does).
    pub fn waited(&mut self, cpu: usize, ns: u64) {
        if let Some(c) = self.cpus.get(cpu).and_then(|p| p.curr)
            && let Some(vc) = self.vcpus.get_mut(&c)
        {
            vc.start_time = vc.start_time.saturating_add(ns.min(i64::MAX as u64) as i64);
        }
    }

    /// The earliest time at which `cpu` needs [`Credit::timer`]: its credit
    /// tick (only while it runs a vCPU), its slice end, and on the master
    /// CPU the accounting.
    pub fn next_timer(&self, cpu: usize) -> Option<u64> {
        let p = self.cpus.get(cpu)?;
        let mut t = [p.tick_next, p.slice_end].into_iter().flatten().min();
        if cpu == MASTER_CPU {
            t = Some(t.map_or(self.acct_next, |x| x.min(self.acct_next)));
        }
        t
    }

    /// `cpu`'s timer fired at `now`: runs what is due (accounting on the
    /// master, the credit tick, the slice end). Returns the CPUs that must
    /// reschedule (`cpu` itself when its slice ended).
    #[must_use]
    pub fn timer(&mut self, cpu: usize, now: u64) -> CpuMask {
        let mut r = CpuMask::EMPTY;
        if cpu >= self.ncpus {
            return r;
        }
        if cpu == MASTER_CPU && now >= self.acct_next {
            r = r.or(self.account(now));
        }
        if self.cpus[cpu].tick_next.is_some_and(|t| now >= t) {
            r = r.or(self.tick(cpu, now));
        }
        if self.cpus[cpu].slice_end.is_some_and(|t| now >= t) {
            self.cpus[cpu].slice_end = None;
            r.insert(cpu);
        }
        r
    }

    /// The credit tick of `cpu` (Xen's `csched_tick`, every tslice/3 while
    /// the CPU runs a vCPU): charge the running vCPU, end its boost, make it
    /// active, maybe push it to an idle CPU, sort the queue after an
    /// accounting. Never preempts by itself, except for a push.
    #[must_use]
    pub fn tick(&mut self, cpu: usize, now: u64) -> CpuMask {
        let mut r = CpuMask::EMPTY;
        if cpu >= self.ncpus {
            return r;
        }
        if let Some(v) = self.cpus[cpu].curr {
            r = self.unit_acct(v, cpu, now);
        }
        self.runq_sort(cpu);
        if self.cpus[cpu].curr.is_some() {
            self.cpus[cpu].tick_next = Some(now + self.tick_ns);
        }
        r
    }

    /// Pick what `cpu` runs next (Xen's `csched_schedule`). Call it when
    /// told to (returned masks, slice end) and whenever the current vCPU
    /// blocked or yielded.
    pub fn schedule(&mut self, cpu: usize, now: u64) -> Decision {
        if cpu >= self.ncpus {
            return Decision {
                next: None,
                run_for_ns: None,
                migrated: false,
                tickle: CpuMask::EMPTY,
            };
        }
        let tickle = self.context_saved(cpu, now);
        let scurr = self.cpus[cpu].curr;

        if let Some(c) = scurr {
            self.burn_credits(c, now);
            let ratelimit = self.ratelimit_ns;
            let vc = self.vc_mut(c);
            vc.start_time -= now as i64;
            vc.last_sched_time = now;

            // Rate limit.
            let runtime = now.saturating_sub(vc.state_entry_time);
            if !vc.yielding && ratelimit != 0 && vc.runnable() && runtime < ratelimit {
                let vc = self.vc_mut(c);
                vc.start_time += now as i64;
                let t = if runtime < MIN_TIMER_NS {
                    MIN_TIMER_NS
                } else {
                    self.ratelimit_ns - runtime
                };
                self.stats.ratelimited += 1;
                self.cpus[cpu].slice_end = Some(now + t);
                return Decision {
                    next: Some(c),
                    run_for_ns: Some(t),
                    migrated: false,
                    tickle,
                };
            }
            if self.vc(c).runnable() {
                self.runq_insert_at(c);
            }
            self.vc_mut(c).yielding = false;
        }
        let tslice = self.tslice_ns;

        // Head of the local queue, or steal.
        let head = self.cpus[cpu].runq.front().copied();
        let head_pri = head.map_or(PRI_IDLE, |h| self.vc(h).pri);
        let snext = if head_pri > PRI_OVER {
            self.runq_remove(head.unwrap_or_else(|| unreachable!()));
            head
        } else {
            match self.load_balance(cpu, head_pri, now) {
                Some(s) => Some(s),
                None => {
                    if let Some(h) = head {
                        self.runq_remove(h);
                    }
                    head
                }
            }
        };

        match snext {
            None => self.idlers.insert(cpu),
            Some(_) => self.idlers.remove(cpu),
        }

        if let Some(n) = snext {
            let vc = self.vc_mut(n);
            vc.start_time += now as i64;
            vc.cpu = cpu;
        }
        let mut migrated = false;
        if snext != scurr {
            if let Some(p) = scurr {
                let vc = self.vc_mut(p);
                vc.cpu_time_ns += now.saturating_sub(vc.state_entry_time);
                // Context not saved until context_saved().
                self.cpus[cpu].prev = Some(p);
            }
            if let Some(n) = snext {
                let vc = self.vc_mut(n);
                vc.is_running = true;
                vc.state_entry_time = now;
                migrated = vc.last_cpu != cpu;
                vc.last_cpu = cpu;
            }
            self.cpus[cpu].curr = snext;
        }

        let run_for = snext.map(|_| tslice);
        self.cpus[cpu].slice_end = run_for.map(|t| now + t);
        // Credit tick: off while idle, restarted aligned when leaving idle.
        match (scurr.is_some(), snext.is_some()) {
            (true, false) => self.cpus[cpu].tick_next = None,
            (false, true) => {
                self.cpus[cpu].tick_next = Some(now + self.tick_ns - now % self.tick_ns)
            }
            _ => {}
        }
        Decision {
            next: snext,
            run_for_ns: run_for,
            migrated,
            tickle,
        }
    }

    /// `cpu` saved the context of the vCPU it switched away from in its last
    /// [`Credit::schedule`]: from now on that vCPU may be stolen or moved,
    /// and a migration requested while it ran completes here.
    #[must_use]
    pub fn context_saved(&mut self, cpu: usize, now: u64) -> CpuMask {
        let Some(p) = self.cpus.get_mut(cpu).and_then(|c| c.prev.take()) else {
            return CpuMask::EMPTY;
        };
        let Some(vc) = self.vcpus.get_mut(&p) else {
            return CpuMask::EMPTY;
        };
        if self.cpus[cpu].curr == Some(p) {
            return CpuMask::EMPTY;
        }
        vc.is_running = false;
        vc.state_entry_time = now;
        self.migrate_finish(p)
    }

    /// Checks the invariants listed in the crate documentation (for tests
    /// and debug builds): every runnable vCPU is current or queued exactly
    /// once, on a CPU of its hard affinity; queued vCPUs are runnable and not
    /// current; idle-set CPUs run nothing; the global weight and the active
    /// lists agree.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut seen = BTreeMap::new();
        for (cpu, p) in self.cpus.iter().enumerate() {
            if let Some(c) = p.curr {
                let vc = self.vcpus.get(&c).ok_or("current vCPU unknown")?;
                if vc.cpu != cpu || !vc.is_running || vc.on_runq {
                    return Err("current vCPU state");
                }
                if !vc.hard.contains(cpu) && !vc.migrate_req {
                    return Err("current vCPU outside its hard affinity");
                }
                seen.insert(c, ());
            } else if !p.runq.is_empty() && self.idlers.contains(cpu) {
                return Err("idle-set CPU with work queued");
            }
            if p.curr.is_some() && self.idlers.contains(cpu) {
                return Err("busy CPU in the idle set");
            }
            for q in &p.runq {
                let vc = self.vcpus.get(q).ok_or("queued vCPU unknown")?;
                if vc.cpu != cpu || !vc.on_runq || !vc.runnable() {
                    return Err("queued vCPU state");
                }
                if !vc.hard.contains(cpu) {
                    return Err("queued vCPU outside its hard affinity");
                }
                if seen.insert(*q, ()).is_some() {
                    return Err("vCPU in two places");
                }
            }
        }
        let mut weight = 0u32;
        for (v, vc) in &self.vcpus {
            if vc.runnable() && !seen.contains_key(v) {
                return Err("runnable vCPU neither current nor queued");
            }
            if vc.on_runq != self.cpus[vc.cpu].runq.contains(v) {
                return Err("on_runq flag");
            }
            if vc.active {
                weight += self.doms[&v.dom].weight as u32;
                if !self.doms[&v.dom].active.contains(v) {
                    return Err("active vCPU not on its domain's list");
                }
            }
        }
        if weight != self.weight {
            return Err("global weight");
        }
        for (d, dom) in &self.doms {
            if dom.active.is_empty() == self.active_doms.contains(d) {
                return Err("active domain list");
            }
        }
        Ok(())
    }

    /// Xen's `r` debug key for `cpu`: a `CPU[nn] nr_run=..` line, then the
    /// running vCPU and the queue, one `[dom.vcpu] pri=.. flags=.. cpu=..
    /// credit=.. [w=..,cap=..]` line each.
    pub fn dump_cpu(&self, cpu: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        let Some(p) = self.cpus.get(cpu) else {
            return Ok(());
        };
        writeln!(
            out,
            "CPU[{:02}] nr_run={}, sort={}, sibling={{{cpu}}}, core={{{cpu}}}",
            cpu,
            p.runq.len() + p.curr.is_some() as usize,
            p.runq_sort_last
        )?;
        let line = |out: &mut dyn fmt::Write, v: &VcpuRef| -> fmt::Result {
            let vc = &self.vcpus[v];
            let d = &self.doms[&v.dom];
            let flags = vc.parked as u32
                | (vc.yielding as u32) << 1
                | (vc.migrating as u32) << 2
                | (vc.pinned as u32) << 4;
            writeln!(
                out,
                "[{}.{}] pri={} flags={:x} cpu={} credit={} [w={},cap={}]",
                v.dom.0, v.vcpu, vc.pri, flags, vc.cpu, vc.credit, d.weight, d.cap
            )
        };
        if let Some(c) = &p.curr {
            write!(out, "\trun: ")?;
            line(out, c)?;
        }
        for (i, q) in p.runq.iter().enumerate() {
            write!(out, "\t{:3}: ", i + 1)?;
            line(out, q)?;
        }
        Ok(())
    }

    /// CPU time consumed by `v` up to `now` (including the current run).
    pub fn cpu_time(&self, v: VcpuRef, now: u64) -> u64 {
        let Some(vc) = self.vcpus.get(&v) else {
            return 0;
        };
        let mut t = vc.cpu_time_ns;
        if self.cpus[vc.cpu].curr == Some(v) {
            t += now.saturating_sub(vc.state_entry_time);
        }
        t
    }

    // ------------------------------------------------------------------
    // Accounting (csched_acct)
    // ------------------------------------------------------------------

    /// The accounting pass (Xen's `csched_acct`, every time slice on the
    /// master CPU; [`Credit::timer`] calls it when due). Returns the CPUs
    /// that must reschedule because a vCPU was parked or unparked.
    #[must_use]
    pub fn account(&mut self, now: u64) -> CpuMask {
        self.acct_next = now + self.tslice_ns;
        self.stats.accountings += 1;
        let mut resched = CpuMask::EMPTY;
        let weight_total = self.weight as i64;
        let mut credit_total = self.credits_per_tslice * self.ncpus as i64;
        if self.credit_balance < 0 {
            credit_total -= self.credit_balance;
        }
        if weight_total == 0 {
            self.credit_balance = 0;
            return resched;
        }
        let cpt = self.credits_per_tslice;
        let mut weight_left = weight_total;
        let mut credit_balance: i64 = 0;
        let mut credit_xtra = false;
        let mut credit_cap: i64 = 0;
        let order = self.active_doms.clone();
        for dom in order {
            let (weight, cap, nact, members) = {
                let d = &self.doms[&dom];
                (
                    d.weight as i64,
                    d.cap as i64,
                    d.active.len() as i64,
                    d.active.clone(),
                )
            };
            if nact == 0 {
                continue;
            }
            weight_left -= weight * nact;
            let mut credit_peak = nact * cpt;
            if self.credit_balance < 0 {
                credit_peak +=
                    (-self.credit_balance * weight * nact + (weight_total - 1)) / weight_total;
            }
            if cap != 0 {
                credit_cap = (cap * cpt + 99) / 100;
                if credit_cap < credit_peak {
                    credit_peak = credit_cap;
                }
                credit_cap = (credit_cap + (nact - 1)) / nact;
            }
            let mut credit_fair =
                (credit_total * weight * nact + (weight_total - 1)) / weight_total;
            if credit_fair < credit_peak {
                credit_xtra = true;
            } else {
                if weight_left != 0 {
                    credit_total += ((credit_fair - credit_peak) * weight_total
                        + (weight_left - 1))
                        / weight_left;
                }
                if credit_xtra {
                    self.active_doms.retain(|d| *d != dom);
                    self.active_doms.insert(0, dom);
                }
                credit_fair = credit_peak;
            }
            let credit_fair = (credit_fair + (nact - 1)) / nact;

            for v in members {
                let vc = self.vc_mut(v);
                vc.credit = (vc.credit as i64 + credit_fair) as i32;
                let mut credit = vc.credit as i64;
                if credit < 0 {
                    vc.pri = PRI_OVER;
                    if cap != 0 && credit < -credit_cap && !vc.parked {
                        vc.parked = true;
                        self.stats.parks += 1;
                        resched = resched.or(self.pause(v));
                    }
                    if credit < -cpt {
                        credit = -cpt;
                        self.vc_mut(v).credit = credit as i32;
                    }
                } else {
                    vc.pri = PRI_UNDER;
                    if vc.parked {
                        self.stats.unparks += 1;
                        // Unpause first: PARKED still set, so no boost.
                        resched = resched.or(self.unpause(v));
                        self.vc_mut(v).parked = false;
                    }
                    if credit > cpt {
                        self.acct_stop(v);
                        credit /= 2;
                        self.vc_mut(v).credit = credit as i32;
                    }
                }
                credit_balance += credit;
            }
        }
        self.credit_balance = credit_balance;
        self.runq_sort = self.runq_sort.wrapping_add(1);
        resched
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    fn vc(&self, v: VcpuRef) -> &Vcpu {
        &self.vcpus[&v]
    }

    fn vc_mut(&mut self, v: VcpuRef) -> &mut Vcpu {
        self.vcpus.get_mut(&v).unwrap_or_else(|| unreachable!())
    }

    fn dom_mut(&mut self, d: DomId) -> &mut Dom {
        self.doms.get_mut(&d).unwrap_or_else(|| unreachable!())
    }

    fn has_soft_affinity(&self, vc: &Vcpu) -> bool {
        vc.soft_effective && !self.online.is_subset(vc.soft)
    }

    /// Xen's `affinity_balance_cpumask`: soft ∩ hard, or hard.
    fn balance_mask(vc: &Vcpu, soft_step: bool) -> CpuMask {
        if soft_step {
            vc.soft.and(vc.hard)
        } else {
            vc.hard
        }
    }

    fn burn_credits(&mut self, v: VcpuRef, now: u64) {
        let vc = self.vc_mut(v);
        let delta = now as i64 - vc.start_time;
        if delta <= 0 {
            return;
        }
        let val = delta as u64 * CREDITS_PER_MSEC + vc.residual;
        vc.residual = val % NS_PER_MS;
        let credits = val / NS_PER_MS;
        vc.credit = (vc.credit as i64 - credits as i64) as i32;
        vc.start_time += (credits * NS_PER_MS / CREDITS_PER_MSEC) as i64;
    }

    fn runq_insert_at(&mut self, v: VcpuRef) {
        let (cpu, pri, yielding) = {
            let vc = self.vc(v);
            (vc.cpu, vc.pri, vc.yielding)
        };
        let q = &self.cpus[cpu].runq;
        let mut idx = q
            .iter()
            .position(|r| pri > self.vcpus[r].pri)
            .unwrap_or(q.len());
        if yielding && idx < q.len() {
            idx += 1;
        }
        self.cpus[cpu].runq.insert(idx, v);
        self.vc_mut(v).on_runq = true;
    }

    fn runq_remove(&mut self, v: VcpuRef) {
        let cpu = self.vc(v).cpu;
        self.cpus[cpu].runq.retain(|x| *x != v);
        self.vc_mut(v).on_runq = false;
    }

    fn runq_sort(&mut self, cpu: usize) {
        if self.cpus[cpu].runq_sort_last == self.runq_sort {
            return;
        }
        self.cpus[cpu].runq_sort_last = self.runq_sort;
        let q: Vec<VcpuRef> = self.cpus[cpu].runq.drain(..).collect();
        let (mut under, over): (Vec<_>, Vec<_>) =
            q.into_iter().partition(|v| self.vcpus[v].pri >= PRI_UNDER);
        under.extend(over);
        self.cpus[cpu].runq = under.into();
    }

    /// Takes `v` off its CPU (pause, block, migration): reschedule if it
    /// runs there, else leave the queue.
    fn sleep(&mut self, v: VcpuRef) -> CpuMask {
        let cpu = self.vc(v).cpu;
        if self.cpus[cpu].curr == Some(v) {
            CpuMask::single(cpu)
        } else {
            if self.vc(v).on_runq {
                self.runq_remove(v);
            }
            CpuMask::EMPTY
        }
    }

    /// Xen's `vcpu_wake` + `csched_unit_wake`.
    fn vcpu_wake(&mut self, v: VcpuRef) -> CpuMask {
        let vc = self.vc(v);
        if !vc.runnable() || vc.on_runq || self.cpus[vc.cpu].curr == Some(v) {
            return CpuMask::EMPTY;
        }
        let boost = self.boost_enabled;
        let vc = self.vc_mut(v);
        let migrating = core::mem::take(&mut vc.migrating);
        if !migrating && vc.pri == PRI_UNDER && !vc.parked && boost {
            vc.pri = PRI_BOOST;
            self.stats.boosts += 1;
        }
        self.runq_insert_at(v);
        self.runq_tickle(v)
    }

    /// Xen's `__runq_tickle`.
    fn runq_tickle(&mut self, v: VcpuRef) -> CpuMask {
        let vc = self.vc(v);
        let (cpu, new_pri, pinned, has_soft) =
            (vc.cpu, vc.pri, vc.pinned, self.has_soft_affinity(vc));
        let (soft_mask, hard_mask) = (Self::balance_mask(vc, true), Self::balance_mask(vc, false));
        let cur_pri = self.cpus[cpu].curr.map_or(PRI_IDLE, |c| self.vc(c).pri);
        let idle_mask = self.idlers.and(self.online);
        let mut mask = CpuMask::EMPTY;

        // Exclusively pinned and its CPU idle; or its CPU idle; or no idler
        // and it beats what runs there: tickle its own CPU.
        if (pinned && idle_mask.contains(cpu))
            || cur_pri == PRI_IDLE
            || (idle_mask.is_empty() && new_pri > cur_pri)
        {
            mask.insert(cpu);
        } else if !idle_mask.is_empty() {
            for soft_step in [true, false] {
                if soft_step && !has_soft {
                    continue;
                }
                let scratch = if soft_step { soft_mask } else { hard_mask }.and(idle_mask);
                if scratch.is_empty() && soft_step {
                    continue;
                }
                if scratch.is_empty() {
                    if new_pri > cur_pri {
                        // (Xen also marks cur for migration here when new's
                        // hard affinity meets the idlers: impossible, as
                        // scratch is exactly that intersection.)
                        mask.insert(cpu);
                    }
                } else {
                    let last = self.cpus[cpu].last_tickle_cpu;
                    let t = scratch.cycle(last).unwrap_or(cpu);
                    self.cpus[cpu].last_tickle_cpu = t;
                    mask.insert(t);
                }
                if !mask.is_empty() {
                    break;
                }
            }
        }
        self.idlers = self.idlers.and_not(mask);
        self.stats.tickles += mask.count() as u64;
        mask
    }

    /// Xen's `_csched_cpu_pick` on Arm's flat topology: the vCPU's CPU if it
    /// is (or would be) idle, else an idle CPU of its soft, then hard,
    /// affinity, else its CPU (or the next allowed one).
    fn cpu_pick(&self, v: VcpuRef) -> usize {
        let vc = self.vc(v);
        let home = vc.cpu;
        let mut cpu = home;
        for soft_step in [true, false] {
            let cpus = Self::balance_mask(vc, soft_step).and(self.online);
            if soft_step && (!self.has_soft_affinity(vc) || cpus.is_empty()) {
                continue;
            }
            cpu = if cpus.contains(home) {
                home
            } else {
                cpus.cycle(home).unwrap_or(home)
            };
            let mut idlers = self.idlers.and(self.online);
            if home == cpu && self.cpus[cpu].runq.is_empty() {
                idlers.insert(cpu);
            }
            let cand = cpus.and(idlers);
            if !cand.contains(cpu)
                && let Some(c) = cand.cycle(cpu)
            {
                cpu = c;
            }
            if idlers.contains(cpu) {
                break;
            }
        }
        cpu
    }

    /// Xen's `csched_res_pick`: pick, and no boost at the coming wake.
    fn res_pick(&mut self, v: VcpuRef) -> usize {
        let c = self.cpu_pick(v);
        self.vc_mut(v).migrating = true;
        c
    }

    /// Xen's `csched_unit_acct` (tick on a CPU running `v`).
    fn unit_acct(&mut self, v: VcpuRef, cpu: usize, now: u64) -> CpuMask {
        if self.vc(v).pri == PRI_BOOST {
            self.vc_mut(v).pri = PRI_UNDER;
        }
        self.burn_credits(v, now);
        if !self.vc(v).active {
            self.acct_start(v);
            CpuMask::EMPTY
        } else {
            let new_cpu = self.cpu_pick(v);
            if new_cpu != cpu && !self.vc(v).migrate_req {
                self.vc_mut(v).migrate_req = true;
                CpuMask::single(cpu)
            } else {
                CpuMask::EMPTY
            }
        }
    }

    fn acct_start(&mut self, v: VcpuRef) {
        self.vc_mut(v).active = true;
        let d = self.dom_mut(v.dom);
        d.active.insert(0, v);
        let w = d.weight as u32;
        let first = d.active.len() == 1;
        self.weight += w;
        if first && !self.active_doms.contains(&v.dom) {
            self.active_doms.insert(0, v.dom);
        }
    }

    fn acct_stop(&mut self, v: VcpuRef) {
        self.vc_mut(v).active = false;
        let d = self.dom_mut(v.dom);
        d.active.retain(|x| *x != v);
        let w = d.weight as u32;
        let empty = d.active.is_empty();
        self.weight -= w;
        if empty {
            self.active_doms.retain(|x| *x != v.dom);
        }
    }

    /// Xen's `sched_unit_migrate_start`: flag and take it off its CPU.
    fn migrate_start(&mut self, v: VcpuRef) -> CpuMask {
        let was = self.vc(v).runnable();
        self.vc_mut(v).migrate_req = true;
        if was { self.sleep(v) } else { CpuMask::EMPTY }
    }

    /// Xen's `sched_unit_migrate_finish`: once it is not running, move it to
    /// the picked CPU and wake it there.
    fn migrate_finish(&mut self, v: VcpuRef) -> CpuMask {
        let vc = self.vc(v);
        if vc.is_running || !vc.migrate_req {
            return CpuMask::EMPTY;
        }
        if vc.on_runq {
            self.runq_remove(v);
        }
        let old = self.vc(v).cpu;
        let new = self.res_pick(v);
        let vc = self.vc_mut(v);
        vc.cpu = new;
        vc.migrate_req = false;
        if new != old {
            self.stats.migrations += 1;
        }
        self.vcpu_wake(v)
    }

    /// Xen's `csched_load_balance` + `csched_runq_steal`.
    fn load_balance(&mut self, cpu: usize, pri: i8, now: u64) -> Option<VcpuRef> {
        for soft_step in [true, false] {
            let workers = self
                .online
                .and_not(self.idlers)
                .and_not(CpuMask::single(cpu));
            let Some(first) = workers.cycle(self.balance_bias) else {
                continue;
            };
            let mut peer = first;
            loop {
                if let Some(v) = self.runq_steal(peer, cpu, pri, soft_step, now) {
                    self.stats.steals += 1;
                    self.balance_bias = peer;
                    self.runq_remove(v);
                    self.vc_mut(v).cpu = cpu;
                    return Some(v);
                }
                peer = workers.cycle(peer).unwrap_or(first);
                if peer == first {
                    break;
                }
            }
        }
        None
    }

    fn runq_steal(
        &self,
        peer: usize,
        cpu: usize,
        pri: i8,
        soft_step: bool,
        now: u64,
    ) -> Option<VcpuRef> {
        let p = &self.cpus[peer];
        // nr_runnable <= 1: nothing to steal. Never from a CPU running idle.
        if p.runq.len() + p.curr.is_some() as usize <= 1 || p.curr.is_none() {
            return None;
        }
        for &v in &p.runq {
            let vc = self.vc(v);
            if vc.pri <= pri {
                break;
            }
            if vc.is_running || (soft_step && !self.has_soft_affinity(vc)) {
                continue;
            }
            let hot = self.migr_delay_ns != 0
                && now.saturating_sub(vc.last_sched_time) < self.migr_delay_ns;
            if !hot && Self::balance_mask(vc, soft_step).contains(cpu) {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
