//! Unit tests, one or more per rule of credit1 (see the crate docs).

use super::*;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

fn v(d: u16) -> VcpuRef {
    VcpuRef::new(d, 0)
}

/// A scheduler with one 1-vCPU domain per entry of `doms` (vCPU on `cpu`),
/// all blocked.
fn setup(ncpus: usize, doms: &[(u16, usize)]) -> Credit {
    let mut s = Credit::new(ncpus, 0);
    for &(d, cpu) in doms {
        s.add_domain(DomId(d), 1).unwrap();
        s.add_vcpu(v(d), cpu, None).unwrap();
    }
    s
}

/// schedule + context_saved, as a CPU does.
fn sched(s: &mut Credit, cpu: usize, now: u64) -> Decision {
    let d = s.schedule(cpu, now);
    let _ = s.context_saved(cpu, now);
    d
}

fn pri(s: &Credit, x: VcpuRef) -> Priority {
    s.vcpu_info(x).unwrap().pri
}

fn credit(s: &Credit, x: VcpuRef) -> i32 {
    s.vcpu_info(x).unwrap().credit
}

// ---------------------------------------------------------------- credits

#[test]
fn burn_is_exact_with_remainder_carried() {
    let mut s = setup(1, &[(1, 0)]);
    let _ = s.wake(v(1), 0);
    assert_eq!(sched(&mut s, 0, 0).next, Some(v(1)));
    let _ = s.tick(0, 150 * US); // 1.5 credits: 1 charged, .5 carried
    assert_eq!(credit(&s, v(1)), -1);
    let _ = s.tick(0, 300 * US);
    assert_eq!(credit(&s, v(1)), -3);
    let _ = s.tick(0, 1000 * US);
    assert_eq!(credit(&s, v(1)), -10);
    // Sub-credit runs are not lost across many short runs either: 20 runs
    // of 50 µs (0.5 credit each) cost 10 credits.
    let mut s = setup(1, &[(1, 0)]);
    let mut t = 0;
    for _ in 0..20 {
        let _ = s.wake(v(1), t);
        sched(&mut s, 0, t);
        t += 50 * US;
        let _ = s.block(v(1), t);
        sched(&mut s, 0, t);
        t += MS;
    }
    assert!(
        (-11..=-10).contains(&credit(&s, v(1))),
        "{}",
        credit(&s, v(1))
    );
    assert_eq!(s.cpu_time(v(1), t), 20 * 50 * US);
}

#[test]
fn time_waited_in_place_is_not_charged() {
    let mut s = setup(1, &[(1, 0)]);
    let _ = s.wake(v(1), 0);
    assert_eq!(sched(&mut s, 0, 0).next, Some(v(1)));
    // 1 ms on the CPU, of which 600 µs waiting in place: 0.4 ms = 4 credits.
    s.waited(0, 600 * US);
    let _ = s.tick(0, MS);
    assert_eq!(credit(&s, v(1)), -4);
    // An idle CPU has nobody to credit; a CPU out of range is ignored.
    let mut s = setup(2, &[(1, 0)]);
    s.waited(1, MS);
    s.waited(7, MS);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let _ = s.tick(0, MS);
    assert_eq!(credit(&s, v(1)), -10);
}

#[test]
fn a_wake_goes_to_a_cpu_whose_vcpu_waits_in_place() {
    // d1 runs on CPU 0, d2 on CPU 1 (waiting in place); d3 last ran on CPU 0.
    let two_busy = || {
        let mut s = setup(2, &[(1, 0), (2, 1), (3, 0)]);
        // d3 ran on CPU 0 and blocked (its next wake-up is boosted).
        let _ = s.wake(v(3), 0);
        sched(&mut s, 0, 0);
        let _ = s.block(v(3), 0);
        sched(&mut s, 0, 0);
        let _ = s.wake(v(1), 0);
        let _ = s.wake(v(2), 0);
        sched(&mut s, 0, 0);
        sched(&mut s, 1, 0);
        assert_eq!(s.current(0), Some(v(1)));
        assert_eq!(s.current(1), Some(v(2)));
        // Their wake-up boosts end.
        let _ = s.tick(0, 100 * US);
        let _ = s.tick(1, 100 * US);
        s
    };
    // Plain wake: queued behind d1 on CPU 0.
    let mut s = two_busy();
    let _ = s.wake(v(3), MS);
    assert_eq!(s.runq(0), vec![v(3)]);
    // CPU 1 waits: queued there, and CPU 1 tickled (boost beats d2).
    let mut s = two_busy();
    let t = s.wake_near(v(3), MS, CpuMask::single(1));
    assert_eq!(s.runq(0), vec![]);
    assert_eq!(s.runq(1), vec![v(3)]);
    assert_eq!(s.runq_len(1), 1);
    assert!(t.contains(1), "{t:?}");
    let d = sched(&mut s, 1, MS);
    assert_eq!(d.next, Some(v(3)), "{d:?} {:?}", s.vcpu_info(v(2)));
    s.check_invariants().unwrap();
    // Its own CPU waiting, or pinned away from the waiting CPU: it stays.
    let mut s = setup(2, &[(1, 0), (2, 1), (3, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    s.set_affinity(v(3), Some(CpuMask::single(0)), None, 0)
        .unwrap();
    let _ = s.wake_near(v(3), MS, CpuMask::single(1));
    assert_eq!(s.runq(0), vec![v(3)]);
    let mut s = setup(2, &[(1, 0), (3, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let _ = s.wake_near(v(3), MS, CpuMask::single(0));
    assert_eq!(s.runq(0), vec![v(3)]);
    assert_eq!(s.runq(1), vec![]);
}

fn activate(s: &mut Credit, x: VcpuRef) {
    s.acct_start(x);
}

#[test]
fn accounting_shares_by_weight_per_active_vcpu() {
    let mut s = setup(1, &[(1, 0), (2, 0)]);
    s.set_params(DomId(2), Some(512), None).unwrap();
    activate(&mut s, v(1));
    activate(&mut s, v(2));
    let _ = s.account(30 * MS);
    assert_eq!(credit(&s, v(1)), 100);
    assert_eq!(credit(&s, v(2)), 200);

    // Weight counts per active vCPU: a 2-vCPU domain at 256 gets twice a
    // 1-vCPU domain at 256 (2 CPUs: 600 credits).
    let mut s = Credit::new(2, 0);
    s.add_domain(DomId(1), 2).unwrap();
    s.add_domain(DomId(2), 1).unwrap();
    for (x, c) in [(VcpuRef::new(1, 0), 0), (VcpuRef::new(1, 1), 1), (v(2), 0)] {
        s.add_vcpu(x, c, None).unwrap();
        activate(&mut s, x);
    }
    assert_eq!(s.weight, 768);
    let _ = s.account(30 * MS);
    assert_eq!(credit(&s, VcpuRef::new(1, 0)), 200);
    assert_eq!(credit(&s, VcpuRef::new(1, 1)), 200);
    assert_eq!(credit(&s, v(2)), 200);
}

#[test]
fn accounting_priorities_and_clipping() {
    let mut s = setup(1, &[(1, 0), (2, 0)]);
    activate(&mut s, v(1));
    activate(&mut s, v(2));
    s.vc_mut(v(1)).credit = -1000;
    s.vc_mut(v(2)).credit = 260;
    let _ = s.account(30 * MS);
    // -1000 + 150 < -300: clipped, OVER.
    assert_eq!(credit(&s, v(1)), -300);
    assert_eq!(pri(&s, v(1)), Priority::Over);
    // 260 + 150 > 300: leaves the active list, credit halved, UNDER.
    assert_eq!(credit(&s, v(2)), 205);
    assert_eq!(pri(&s, v(2)), Priority::Under);
    assert!(!s.vcpu_info(v(2)).unwrap().active);
    assert_eq!(s.weight, 256);
    // An inactive vCPU earns nothing; a tick that finds it running makes
    // it active again.
    let _ = s.account(60 * MS);
    assert_eq!(credit(&s, v(2)), 205);
    let _ = s.wake(v(2), 60 * MS);
    assert_eq!(sched(&mut s, 0, 60 * MS).next, Some(v(2)));
    let _ = s.tick(0, 70 * MS);
    assert!(s.vcpu_info(v(2)).unwrap().active);
    assert_eq!(credit(&s, v(2)), 105);
}

#[test]
fn accounting_surplus_goes_to_the_others() {
    // Cap 10 on a 1-CPU system: domain 1 gets 30, the rest goes to 2.
    let mut s = setup(1, &[(1, 0), (2, 0)]);
    s.set_params(DomId(1), None, Some(10)).unwrap();
    activate(&mut s, v(2));
    activate(&mut s, v(1)); // visited first (list head)
    let _ = s.account(30 * MS);
    assert_eq!(credit(&s, v(1)), 30);
    assert_eq!(credit(&s, v(2)), 270);
}

// ---------------------------------------------------------------- boost

#[test]
fn boost_on_wake_only_from_under_and_not_after_placement() {
    let mut s = setup(1, &[(1, 0)]);
    // First wake after add_vcpu: placement counts as a migration.
    let _ = s.wake(v(1), 0);
    assert_eq!(pri(&s, v(1)), Priority::Under);
    sched(&mut s, 0, 0);
    let _ = s.block(v(1), MS);
    sched(&mut s, 0, MS);
    let _ = s.wake(v(1), 2 * MS);
    assert_eq!(pri(&s, v(1)), Priority::Boost);
    assert_eq!(s.stats().boosts, 1);
    // Never from OVER.
    sched(&mut s, 0, 2 * MS);
    let _ = s.block(v(1), 3 * MS);
    sched(&mut s, 0, 3 * MS);
    s.vc_mut(v(1)).pri = PRI_OVER;
    let _ = s.wake(v(1), 4 * MS);
    assert_eq!(pri(&s, v(1)), Priority::Over);
}

#[test]
fn boost_ends_at_first_tick_that_finds_it_running() {
    let mut s = setup(1, &[(1, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let _ = s.block(v(1), MS);
    sched(&mut s, 0, MS);
    let _ = s.wake(v(1), 2 * MS);
    sched(&mut s, 0, 2 * MS);
    assert_eq!(pri(&s, v(1)), Priority::Boost);
    let _ = s.timer(0, 10 * MS);
    assert_eq!(pri(&s, v(1)), Priority::Under);
}

#[test]
fn boost_off_knob() {
    let mut s = setup(1, &[(1, 0)]);
    s.set_wake_boost(false);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let _ = s.block(v(1), MS);
    sched(&mut s, 0, MS);
    let _ = s.wake(v(1), 2 * MS);
    assert_eq!(pri(&s, v(1)), Priority::Under);
}

// ---------------------------------------------------------------- run queue

#[test]
fn runq_by_priority_fifo_within_and_yield_behind_one() {
    let mut s = setup(1, &[(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]);
    let _ = s.wake(v(1), 0);
    assert_eq!(sched(&mut s, 0, 0).next, Some(v(1)));
    for (d, p) in [(2, PRI_OVER), (3, PRI_UNDER), (4, PRI_OVER), (5, PRI_UNDER)] {
        s.vc_mut(v(d)).pri = p;
        s.vc_mut(v(d)).migrating = false;
        let _ = s.wake(v(d), 0);
    }
    // 3 and 5 were boosted on wake (UNDER); OVERs stay behind, FIFO.
    assert_eq!(s.runq(0), [v(3), v(5), v(2), v(4)]);
    s.vc_mut(v(3)).pri = PRI_UNDER;
    s.vc_mut(v(5)).pri = PRI_UNDER;
    // v1 (UNDER) yields: it goes behind the UNDERs and one OVER.
    let r = s.yield_vcpu(v(1));
    assert_eq!(r, CpuMask::single(0));
    assert_eq!(sched(&mut s, 0, 5 * MS).next, Some(v(3)));
    assert_eq!(s.runq(0), [v(5), v(2), v(1), v(4)]);
}

#[test]
fn queued_and_oversubscribed() {
    let mut s = setup(2, &[(1, 0), (2, 0), (3, 1)]);
    assert_eq!(s.nr_queued(), 0);
    let _ = s.wake(v(1), 0);
    let _ = s.wake(v(3), 0);
    assert_eq!(s.nr_queued(), 2);
    assert_eq!(sched(&mut s, 0, 0).next, Some(v(1)));
    assert_eq!(sched(&mut s, 1, 0).next, Some(v(3)));
    // Each CPU runs its only vCPU: nobody waits.
    assert_eq!(s.nr_queued(), 0);
    let _ = s.wake(v(2), 0);
    assert_eq!(s.nr_queued(), 1);
    let _ = s.block(v(3), MS);
    // CPU 1, left with nothing, steals the waiting vCPU.
    assert_eq!(sched(&mut s, 1, MS).next, Some(v(2)));
    assert_eq!(s.nr_queued(), 0);
    // Three vCPUs on two CPUs: oversubscribed even with empty queues.
    assert!(s.oversubscribed());
    let mut two = setup(2, &[(1, 0), (2, 1)]);
    let _ = two.wake(v(1), 0);
    assert!(two.oversubscribed(), "v1 waits in CPU 0's queue");
    assert_eq!(sched(&mut two, 0, 0).next, Some(v(1)));
    assert!(!two.oversubscribed());
}

#[test]
fn runq_sorted_at_the_first_tick_after_accounting() {
    let mut s = setup(1, &[(1, 0), (2, 0), (3, 0), (4, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    for d in [2, 3, 4] {
        s.vc_mut(v(d)).pri = PRI_OVER;
        let _ = s.wake(v(d), 0);
    }
    assert_eq!(s.runq(0), [v(2), v(3), v(4)]);
    // Accounting made 4 then 3 UNDER: the next tick moves them up, in order.
    s.vc_mut(v(4)).pri = PRI_UNDER;
    s.vc_mut(v(3)).pri = PRI_UNDER;
    let _ = s.tick(0, 5 * MS);
    assert_eq!(
        s.runq(0),
        [v(2), v(3), v(4)],
        "no accounting since the last sort"
    );
    s.runq_sort = s.runq_sort.wrapping_add(1);
    let _ = s.tick(0, 10 * MS);
    assert_eq!(s.runq(0), [v(3), v(4), v(2)]);
}

// ---------------------------------------------------------------- slice, ratelimit, tick

#[test]
fn slice_and_aligned_tick() {
    let mut s = setup(2, &[(1, 1)]);
    let _ = s.wake(v(1), 3 * MS);
    let d = sched(&mut s, 1, 3 * MS);
    assert_eq!(d.next, Some(v(1)));
    assert_eq!(d.run_for_ns, Some(30 * MS));
    // The tick restarts aligned to its period: 10 ms, not 13 ms.
    assert_eq!(s.next_timer(1), Some(10 * MS));
    let _ = s.timer(1, 10 * MS);
    assert_eq!(s.next_timer(1), Some(20 * MS));
    // Going idle stops it; no timer at all on an idle non-master CPU.
    let _ = s.block(v(1), 15 * MS);
    let d = sched(&mut s, 1, 15 * MS);
    assert_eq!(
        d,
        Decision {
            next: None,
            run_for_ns: None,
            migrated: false,
            tickle: CpuMask::EMPTY
        }
    );
    assert_eq!(s.next_timer(1), None);
    assert!(s.idlers().contains(1));
    // The master CPU always has the accounting.
    assert_eq!(s.next_timer(0), Some(30 * MS));
    // Slice end.
    let _ = s.wake(v(1), 17 * MS);
    sched(&mut s, 1, 17 * MS);
    assert_eq!(s.next_timer(1), Some(20 * MS));
    let _ = s.timer(1, 20 * MS);
    let _ = s.timer(1, 30 * MS);
    let _ = s.timer(1, 40 * MS);
    assert_eq!(s.timer(1, 47 * MS), CpuMask::single(1));
}

#[test]
fn ratelimit_keeps_a_fresh_vcpu() {
    let mut s = setup(1, &[(1, 0), (2, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let _ = s.block(v(2), 0);
    s.vc_mut(v(2)).migrating = false;
    // A boosted waker at 0.3 ms: tickles CPU 0 (higher priority, no idler)
    // but v1 has run only 0.3 ms of its 1 ms rate limit.
    assert_eq!(s.wake(v(2), 300 * US), CpuMask::single(0));
    let d = sched(&mut s, 0, 300 * US);
    assert_eq!(d.next, Some(v(1)));
    assert_eq!(d.run_for_ns, Some(700 * US));
    assert_eq!(s.stats().ratelimited, 1);
    let d = sched(&mut s, 0, 1000 * US);
    assert_eq!(d.next, Some(v(2)));
    // Less than 100 µs in: the timer is 100 µs (as Xen writes it).
    let d = sched(&mut s, 0, 1050 * US);
    assert_eq!((d.next, d.run_for_ns), (Some(v(2)), Some(MIN_TIMER_NS)));
    // A yielder is not held by the rate limit.
    let _ = s.yield_vcpu(v(2));
    assert_eq!(sched(&mut s, 0, 1100 * US).next, Some(v(1)));
    // Rate limit 0 is off.
    s.set_sched_params(SchedParams {
        tslice_ms: 30,
        ratelimit_us: 0,
        vcpu_migr_delay_us: 0,
    })
    .unwrap();
    s.vc_mut(v(2)).pri = PRI_BOOST;
    s.runq_remove(v(2));
    s.runq_insert_at(v(2));
    assert_eq!(sched(&mut s, 0, 1200 * US).next, Some(v(2)));
}

#[test]
fn block_then_wake_before_schedule_keeps_running() {
    let mut s = setup(1, &[(1, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    assert_eq!(s.block(v(1), 5 * MS), CpuMask::single(0));
    assert_eq!(s.wake(v(1), 5 * MS), CpuMask::EMPTY);
    let d = sched(&mut s, 0, 5 * MS);
    assert_eq!(d.next, Some(v(1)));
    assert_eq!(s.cpu_time(v(1), 8 * MS), 8 * MS);
}

// ---------------------------------------------------------------- caps

#[test]
fn cap_parks_and_unparks_without_boost() {
    let mut s = setup(1, &[(1, 0)]);
    s.set_params(DomId(1), None, Some(25)).unwrap();
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let _ = s.tick(0, 10 * MS); // active now
    let _ = s.tick(0, 20 * MS);
    let _ = s.tick(0, 30 * MS);
    // 30 ms run: -300 + 75 = -225 < -75: parked, leaves the CPU.
    let r = s.account(30 * MS);
    assert_eq!(r, CpuMask::single(0));
    let i = s.vcpu_info(v(1)).unwrap();
    assert!(i.parked && i.pause_count == 1 && i.pri == Priority::Over);
    assert_eq!(sched(&mut s, 0, 30 * MS).next, None);
    // Three more accountings bring it to >= 0: unparked, queued UNDER.
    let _ = s.account(60 * MS);
    let _ = s.account(90 * MS);
    assert!(s.vcpu_info(v(1)).unwrap().parked);
    let r = s.account(120 * MS);
    assert_eq!(r, CpuMask::single(0));
    let i = s.vcpu_info(v(1)).unwrap();
    assert!(!i.parked && i.pause_count == 0 && i.queued);
    assert_eq!(i.pri, Priority::Under, "no boost on unpark");
    assert_eq!(s.stats().parks, 1);
    assert_eq!(s.stats().unparks, 1);
}

#[test]
fn parking_composes_with_pause() {
    let mut s = setup(1, &[(1, 0)]);
    s.set_params(DomId(1), None, Some(25)).unwrap();
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    for k in 1..=3 {
        let _ = s.tick(0, k * 10 * MS);
    }
    assert_eq!(s.account(30 * MS), CpuMask::single(0));
    sched(&mut s, 0, 30 * MS);
    let _ = s.pause(v(1)); // toolstack pause while parked
    for k in 2..=4 {
        let _ = s.account(k * 30 * MS);
    }
    let i = s.vcpu_info(v(1)).unwrap();
    assert!(!i.parked && i.pause_count == 1 && !i.queued);
    assert_eq!(s.unpause(v(1)), CpuMask::single(0));
    assert!(s.vcpu_info(v(1)).unwrap().queued);
}

// ---------------------------------------------------------------- tickle

#[test]
fn tickle_prefers_an_idle_cpu_and_clears_it_from_idlers() {
    let mut s = setup(3, &[(1, 0), (2, 0), (3, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    assert_eq!(s.idlers(), CpuMask::of(&[1, 2]));
    // v2 queued on busy CPU 0: one idler is tickled (cycling), not CPU 0.
    assert_eq!(s.wake(v(2), 0), CpuMask::single(1));
    assert_eq!(s.idlers(), CpuMask::single(2));
    assert_eq!(s.wake(v(3), 0), CpuMask::single(2));
    assert_eq!(s.idlers(), CpuMask::EMPTY);
    // The tickled CPUs steal them.
    let d = sched(&mut s, 1, 0);
    assert_eq!((d.next, d.migrated), (Some(v(2)), true));
    assert_eq!(sched(&mut s, 2, 0).next, Some(v(3)));
}

#[test]
fn tickle_without_idlers_only_for_higher_priority() {
    let mut s = setup(1, &[(1, 0), (2, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    // First wake is not boosted: UNDER vs UNDER, nobody tickled.
    assert_eq!(s.wake(v(2), 0), CpuMask::EMPTY);
    assert_eq!(sched(&mut s, 0, 30 * MS).next, Some(v(2)));
    let _ = s.block(v(1), 30 * MS);
    // v1 blocked while queued: leaves the queue.
    assert!(s.runq(0).is_empty());
    // Boosted: beats the running UNDER vCPU.
    assert_eq!(s.wake(v(1), 40 * MS), CpuMask::single(0));
}

#[test]
fn tickle_pinned_and_soft_affinity() {
    // Exclusively pinned to its idle CPU: that CPU.
    let mut s = setup(2, &[(1, 1)]);
    s.set_affinity(v(1), Some(CpuMask::single(1)), None, 0)
        .unwrap();
    assert_eq!(s.wake(v(1), 0), CpuMask::single(1));
    // Soft affinity: the idler in the soft mask is preferred.
    let mut s = setup(3, &[(1, 0), (2, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let r = s
        .set_affinity(v(2), None, Some(CpuMask::single(2)), 0)
        .unwrap();
    assert_eq!(r.soft, CpuMask::single(2));
    assert_eq!(s.wake(v(2), 0), CpuMask::single(2));
}

// ---------------------------------------------------------------- stealing

#[test]
fn steal_rules() {
    // Never from a CPU that runs idle (it is about to run its queue).
    let mut s = setup(2, &[(1, 0), (2, 0)]);
    let _ = s.wake(v(1), 0);
    let _ = s.wake(v(2), 0);
    assert_eq!(sched(&mut s, 1, 0).next, None);
    // Never a vCPU whose context is not saved yet.
    assert_eq!(s.schedule(0, 0).next, Some(v(1)));
    let _ = s.context_saved(0, 0);
    // The second tick finds v1 active with work queued behind it and CPU 1
    // idle: it asks for a migration (Xen's push in csched_unit_acct).
    let _ = s.tick(0, 10 * MS);
    assert_eq!(s.tick(0, 20 * MS), CpuMask::single(0));
    let d = s.schedule(0, 20 * MS);
    assert_eq!(d.next, Some(v(2)));
    // Once saved, the pick keeps CPU 0 (its queue is empty now, as in Xen)
    // and the wake tickles idle CPU 1, which steals v1.
    let r = s.context_saved(0, 20 * MS);
    assert_eq!(r, CpuMask::single(1));
    let d = sched(&mut s, 1, 20 * MS);
    assert_eq!((d.next, d.migrated), (Some(v(1)), true));

    let mut s = setup(2, &[(1, 0), (2, 0), (3, 1)]);
    for d in [1, 2, 3] {
        let _ = s.wake(v(d), 0);
    }
    sched(&mut s, 0, 0);
    sched(&mut s, 1, 0);
    assert_eq!(s.runq(0), [v(2)]);
    // CPU 0 switches v1 out but has not saved it: CPU 1 (its vCPU OVER)
    // may not take v1.
    s.vc_mut(v(1)).pri = PRI_UNDER;
    s.vc_mut(v(2)).pri = PRI_UNDER;
    s.vc_mut(v(3)).pri = PRI_OVER;
    let _ = s.yield_vcpu(v(1));
    assert_eq!(s.schedule(0, 40 * MS).next, Some(v(2)));
    assert_eq!(s.runq(0), [v(1)]);
    assert_eq!(sched(&mut s, 1, 40 * MS).next, Some(v(3)));
    let _ = s.context_saved(0, 40 * MS);
    // Saved: now it goes (UNDER beats the local OVER).
    let d = sched(&mut s, 1, 41 * MS);
    assert_eq!((d.next, d.migrated), (Some(v(1)), true));
    assert_eq!(s.runq(1), [v(3)]);
    // Only strictly higher priority: an OVER is not stolen by an OVER.
    s.vc_mut(v(1)).pri = PRI_OVER;
    s.vc_mut(v(2)).pri = PRI_OVER;
    let _ = s.wake(v(2), 41 * MS);
    let before = s.stats().steals;
    let _ = s.yield_vcpu(v(2));
    let d = sched(&mut s, 0, 80 * MS);
    assert!(!d.migrated);
    assert_eq!(s.stats().steals, before);
}

#[test]
fn steal_respects_hard_affinity_and_cache_hot_delay() {
    let mut s = setup(2, &[(1, 0), (2, 0)]);
    s.set_affinity(v(2), Some(CpuMask::single(0)), None, 0)
        .unwrap();
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    let _ = s.wake(v(2), 0);
    assert_eq!(sched(&mut s, 1, 0).next, None, "v2 may only run on CPU 0");

    let mut s = setup(2, &[(1, 0), (2, 0), (3, 1)]);
    s.set_sched_params(SchedParams {
        tslice_ms: 30,
        ratelimit_us: 1000,
        vcpu_migr_delay_us: 5000,
    })
    .unwrap();
    for d in [1, 2, 3] {
        let _ = s.wake(v(d), 0);
    }
    sched(&mut s, 0, 0);
    sched(&mut s, 1, 0);
    s.vc_mut(v(3)).pri = PRI_OVER;
    // v1 ran until 30 ms: cache-hot for 5 ms after.
    assert_eq!(sched(&mut s, 0, 30 * MS).next, Some(v(2)));
    assert!(!sched(&mut s, 1, 32 * MS).migrated);
    let d = sched(&mut s, 1, 36 * MS);
    assert_eq!((d.next, d.migrated), (Some(v(1)), true));
}

// ---------------------------------------------------------------- control

#[test]
fn set_params_checks_like_libxl() {
    let mut s = setup(1, &[(1, 0)]);
    s.add_domain(DomId(2), 2).unwrap();
    for w in [0, 65536, 70000] {
        let e = s.set_params(DomId(1), Some(w), Some(10)).unwrap_err();
        assert_eq!(e, SchedError::WeightOutOfRange);
        assert_eq!(e.errno(), Errno::EINVAL);
    }
    assert!(
        SchedError::WeightOutOfRange
            .message()
            .contains("1 to 65535")
    );
    assert_eq!(
        s.set_params(DomId(1), None, Some(101)),
        Err(SchedError::CapOutOfRange)
    );
    assert_eq!(
        s.set_params(DomId(2), None, Some(201)),
        Err(SchedError::CapOutOfRange)
    );
    assert_eq!(s.params(DomId(1)), Ok((256, 0)), "nothing changed");
    assert_eq!(s.set_params(DomId(2), Some(65535), Some(200)), Ok(()));
    assert_eq!(s.params(DomId(2)), Ok((65535, 200)));
    assert_eq!(
        s.set_params(DomId(9), Some(1), None),
        Err(SchedError::NoDomain)
    );
    assert_eq!(SchedError::NoDomain.errno(), Errno::ESRCH);
    // Changing the weight of an active domain updates the total.
    activate(&mut s, v(1));
    s.set_params(DomId(1), Some(1), None).unwrap();
    assert_eq!(s.weight, 1);
}

#[test]
fn putinfo_is_xen_hypercall_semantics() {
    let mut s = setup(1, &[(1, 0)]);
    activate(&mut s, v(1));
    s.putinfo(DomId(1), 0, 0xFFFF).unwrap();
    assert_eq!(s.params(DomId(1)), Ok((256, 0)), "0 and 0xFFFF keep");
    s.putinfo(DomId(1), 1000, 500).unwrap();
    assert_eq!(s.params(DomId(1)), Ok((1000, 500)), "no range check");
    assert_eq!(s.weight, 1000);
    assert_eq!(s.putinfo(DomId(7), 1, 1), Err(SchedError::NoDomain));
    // Yield is only for the running vCPU.
    assert_eq!(s.yield_vcpu(v(1)), CpuMask::EMPTY);
    assert!(!s.vc(v(1)).yielding);
}

#[test]
fn sched_params_checks_like_xen() {
    let mut s = Credit::new(1, 0);
    assert_eq!(
        s.sched_params(),
        SchedParams {
            tslice_ms: 30,
            ratelimit_us: 1000,
            vcpu_migr_delay_us: 0
        }
    );
    let bad = [
        (0, 1000, 0),
        (1001, 1000, 0),
        (30, 99, 0),
        (30, 500_001, 0),
        (1, 1001, 0),
        (30, 0, 100_001),
    ];
    for (t, r, m) in bad {
        let p = SchedParams {
            tslice_ms: t,
            ratelimit_us: r,
            vcpu_migr_delay_us: m,
        };
        assert_eq!(
            s.set_sched_params(p),
            Err(SchedError::BadSchedParam),
            "{p:?}"
        );
    }
    assert_eq!(s.sched_params().tslice_ms, 30);
    let p = SchedParams {
        tslice_ms: 2,
        ratelimit_us: 0,
        vcpu_migr_delay_us: 100_000,
    };
    assert_eq!(s.set_sched_params(p), Ok(p));
    // Under 3 ms: one tick per slice.
    assert_eq!(s.tick_period_ns(), 2 * MS);
    assert_eq!(s.credits_per_tslice, 20);
}

#[test]
fn affinity_errors_and_deferred_migration() {
    let mut s = setup(2, &[(1, 0)]);
    assert_eq!(
        s.set_affinity(v(1), Some(CpuMask::single(5)), None, 0),
        Err(SchedError::BadAffinity)
    );
    assert_eq!(
        s.set_affinity(v(1), None, None, 0),
        Err(SchedError::BadAffinity)
    );
    assert_eq!(
        s.set_affinity(v(9), Some(CpuMask::single(0)), None, 0),
        Err(SchedError::NoVcpu)
    );
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    // Pin the running vCPU to CPU 1: CPU 0 must reschedule; the move
    // happens once its context is saved, and CPU 1 is tickled.
    let r = s
        .set_affinity(v(1), Some(CpuMask::of(&[1, 7])), None, MS)
        .unwrap();
    assert_eq!(r.hard, CpuMask::single(1));
    assert_eq!(r.resched, CpuMask::single(0));
    assert!(!s.vc(v(1)).pinned, "pinned tests the raw mask (2 CPUs)");
    assert_eq!(s.schedule(0, MS).next, None);
    assert_eq!(s.vcpu_info(v(1)).unwrap().cpu, 0);
    assert_eq!(s.context_saved(0, MS), CpuMask::single(1));
    let i = s.vcpu_info(v(1)).unwrap();
    assert_eq!((i.cpu, i.queued, i.pri), (1, true, Priority::Under));
    let d = sched(&mut s, 1, MS);
    assert_eq!((d.next, d.migrated), (Some(v(1)), true));
    assert_eq!(s.stats().migrations, 1);
}

#[test]
fn remove_vcpu_and_domain() {
    let mut s = setup(1, &[(1, 0)]);
    let _ = s.wake(v(1), 0);
    sched(&mut s, 0, 0);
    assert_eq!(s.remove_vcpu(v(1)), Err(SchedError::Busy));
    assert_eq!(s.remove_domain(DomId(1)), Err(SchedError::NotEmpty));
    assert_eq!(s.pause(v(1)), CpuMask::single(0));
    sched(&mut s, 0, MS);
    assert_eq!(s.remove_vcpu(v(1)), Ok(()));
    assert_eq!(s.remove_domain(DomId(1)), Ok(()));
    assert_eq!(s.add_domain(DomId(1), 1), Ok(()));
    assert_eq!(s.add_domain(DomId(1), 1), Err(SchedError::DomainExists));
    assert_eq!(
        s.add_vcpu(VcpuRef::new(1, 1), 0, None),
        Err(SchedError::NoVcpu)
    );
}

// ---------------------------------------------------------------- invariants under random use

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random events, control calls and timer interrupts, sometimes with the
/// context save delayed until the next `schedule`: the invariants hold
/// after every call, nothing panics, and once every requested reschedule
/// is done no CPU sits idle with its own queue non-empty.
#[test]
fn invariants_hold_under_random_use() {
    for seed in 1..=20u64 {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let ncpus = 1 + (seed as usize % 4);
        let mut s = Credit::new(ncpus, 0);
        let mut all = Vec::new();
        for d in 1..=3u16 {
            s.add_domain(DomId(d), 2).unwrap();
            for i in 0..2 {
                let x = VcpuRef::new(d, i);
                s.add_vcpu(x, r.below(ncpus as u64) as usize, None).unwrap();
                all.push(x);
            }
        }
        let mut now = 0u64;
        let mut resched = CpuMask::EMPTY;
        let mut unsaved = CpuMask::EMPTY;
        let mut paused = BTreeMap::new();
        for _ in 0..3000 {
            now += r.below(3 * MS);
            let x = all[r.below(all.len() as u64) as usize];
            let m = match r.below(12) {
                0..=2 => s.wake(x, now),
                3 | 4 => s.block(x, now),
                5 => s.yield_vcpu(x),
                6 => {
                    *paused.entry(x).or_insert(0u32) += 1;
                    s.pause(x)
                }
                7 => match paused.get_mut(&x) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        s.unpause(x)
                    }
                    _ => CpuMask::EMPTY,
                },
                8 => {
                    let hard = CpuMask(r.next() & 0xF);
                    let soft = CpuMask(r.next() & 0xF);
                    match s.set_affinity(x, Some(hard), Some(soft), now) {
                        Ok(a) => {
                            assert!(a.hard.intersects(s.online));
                            a.resched
                        }
                        Err(e) => {
                            assert_eq!(e, SchedError::BadAffinity);
                            assert!(!hard.intersects(s.online));
                            CpuMask::EMPTY
                        }
                    }
                }
                9 => {
                    let w = r.below(70_000) as u32;
                    let c = r.below(250) as u32;
                    let res = s.set_params(x.dom, Some(w), Some(c));
                    assert_eq!(res.is_ok(), (1..=65535).contains(&w) && c <= 200);
                    CpuMask::EMPTY
                }
                _ => {
                    let mut m = CpuMask::EMPTY;
                    for cpu in 0..ncpus {
                        if s.next_timer(cpu).is_some_and(|t| t <= now) {
                            m = m.or(s.timer(cpu, now));
                        }
                    }
                    m
                }
            };
            s.check_invariants().unwrap();
            resched = resched.or(m);
            while let Some(cpu) = resched.first() {
                resched.remove(cpu);
                let d = s.schedule(cpu, now);
                resched = resched.or(d.tickle);
                if let Some(n) = d.next {
                    assert!(s.vcpu_info(n).unwrap().hard.contains(cpu));
                }
                // Sometimes the save is late (until the next schedule).
                if r.below(4) == 0 {
                    unsaved.insert(cpu);
                } else {
                    unsaved.remove(cpu);
                    resched = resched.or(s.context_saved(cpu, now));
                }
                s.check_invariants().unwrap();
            }
            for cpu in 0..ncpus {
                if s.current(cpu).is_none() && !unsaved.contains(cpu) {
                    assert!(
                        s.runq(cpu).is_empty(),
                        "seed {seed}: CPU {cpu} idle with work"
                    );
                }
            }
        }
        assert!(s.stats().accountings > 0);
        eprintln!("seed {seed}: {ncpus} CPUs, {:?}", s.stats());
    }
}

#[test]
fn dump_like_xen() {
    let mut s = setup(1, &[(1, 0), (2, 0)]);
    s.set_params(DomId(2), Some(512), Some(50)).unwrap();
    let _ = s.wake(v(1), 0);
    let _ = s.wake(v(2), 0);
    sched(&mut s, 0, 0);
    let _ = s.tick(0, 10 * MS);
    let mut out = String::new();
    s.dump_cpu(0, &mut out).unwrap();
    assert_eq!(
        out,
        "CPU[00] nr_run=2, sort=0, sibling={0}, core={0}\n\
         \trun: [1.0] pri=-1 flags=0 cpu=0 credit=-100 [w=256,cap=0]\n\
         \t  1: [2.0] pri=-1 flags=0 cpu=0 credit=0 [w=512,cap=50]\n"
    );
}

#[test]
fn vcpu_refs_order_by_domain_then_index() {
    let mut r = [
        VcpuRef::new(2, 0),
        VcpuRef::new(1, 7),
        VcpuRef::new(u16::MAX, 0),
        VcpuRef::new(1, u32::MAX),
        VcpuRef::new(0, 3),
    ];
    r.sort();
    let pairs: Vec<(u16, u32)> = r.iter().map(|v| (v.dom.0, v.vcpu)).collect();
    let mut want = pairs.clone();
    want.sort();
    assert_eq!(pairs, want);
    assert_eq!(pairs[0], (0, 3));
    assert_eq!(pairs[4], (u16::MAX, 0));
}
