//! A discrete-event machine that drives [`Credit`] the way a hypervisor
//! would: a fake clock, simulated vCPUs (CPU hogs, I/O-like periodic wakers,
//! tick dodgers), timer interrupts at [`Credit::next_timer`], reschedules on
//! the returned masks (IPIs are instant, context switches free), and
//! `context_saved` right after each switch. It records every run interval so
//! tests can measure shares over any window, and wake-to-run latencies.

#![allow(dead_code)]

use oxen_sched::{CpuMask, Credit, DomId, VcpuRef};

pub const MS: u64 = 1_000_000;
pub const US: u64 = 1_000;
pub const SEC: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Always runnable.
    Hog,
    /// Wakes every `period` (at `phase + k × period`), needs `burst` of CPU,
    /// then blocks until the next period.
    Io { period: u64, phase: u64, burst: u64 },
    /// Needs `run` of CPU, then sleeps `sleep` of wall time, forever.
    Dodger { run: u64, sleep: u64 },
}

pub struct SimVcpu {
    pub id: VcpuRef,
    pub beh: Behaviour,
    remaining: u64,
    next_wake: Option<u64>,
    run_start: u64,
    woken_at: Option<u64>,
    last_cpu: Option<usize>,
    /// (start, end, cpu) of every run.
    pub runs: Vec<(u64, u64, usize)>,
    /// (wake time, wake-to-run latency) of every wake-up.
    pub latencies: Vec<(u64, u64)>,
}

pub struct Sim {
    pub s: Credit,
    pub now: u64,
    pub vcpus: Vec<SimVcpu>,
    cur: Vec<Option<usize>>,
    resched: CpuMask,
    pub switches: u64,
    /// Switches to a vCPU that last ran on another CPU.
    pub moved: u64,
}

impl Sim {
    pub fn new(ncpus: usize) -> Self {
        Sim {
            s: Credit::new(ncpus, 0),
            now: 0,
            vcpus: Vec::new(),
            cur: vec![None; ncpus],
            resched: CpuMask::EMPTY,
            switches: 0,
            moved: 0,
        }
    }

    /// Adds a one-vCPU domain `dom` starting on `cpu`, woken at once.
    pub fn add(&mut self, dom: u16, cpu: usize, beh: Behaviour) -> VcpuRef {
        self.add_with(dom, cpu, beh, None)
    }

    pub fn add_with(
        &mut self,
        dom: u16,
        cpu: usize,
        beh: Behaviour,
        hard: Option<CpuMask>,
    ) -> VcpuRef {
        self.add_vcpu(dom, 1, 0, cpu, beh, hard)
    }

    /// Adds vCPU `idx` of domain `dom` (created with `nr` vCPUs if new).
    pub fn add_vcpu(
        &mut self,
        dom: u16,
        nr: u32,
        idx: u32,
        cpu: usize,
        beh: Behaviour,
        hard: Option<CpuMask>,
    ) -> VcpuRef {
        let v = VcpuRef::new(dom, idx);
        if self.s.params(DomId(dom)).is_err() {
            self.s.add_domain(DomId(dom), nr).unwrap();
        }
        self.s.add_vcpu(v, cpu, hard).unwrap();
        let remaining = match beh {
            Behaviour::Hog => u64::MAX,
            Behaviour::Io { burst, .. } => burst,
            Behaviour::Dodger { run, .. } => run,
        };
        let first_wake = match beh {
            Behaviour::Io { phase, .. } => phase,
            _ => self.now,
        };
        self.vcpus.push(SimVcpu {
            id: v,
            beh,
            remaining,
            next_wake: Some(first_wake),
            run_start: 0,
            woken_at: None,
            last_cpu: None,
            runs: Vec::new(),
            latencies: Vec::new(),
        });
        v
    }

    pub fn set_params(&mut self, dom: u16, weight: Option<u32>, cap: Option<u32>) {
        self.s.set_params(DomId(dom), weight, cap).unwrap();
    }

    /// `xl vcpu-pin`: new hard affinity, effective at once.
    pub fn pin(&mut self, v: VcpuRef, hard: CpuMask) {
        let r = self.s.set_affinity(v, Some(hard), None, self.now).unwrap();
        self.resched = self.resched.or(r.resched);
    }

    fn idx(&self, v: VcpuRef) -> usize {
        self.vcpus.iter().position(|x| x.id == v).unwrap()
    }

    fn stop_running(&mut self, cpu: usize) {
        if let Some(i) = self.cur[cpu] {
            let sv = &mut self.vcpus[i];
            let ran = self.now - sv.run_start;
            if ran > 0 {
                sv.runs.push((sv.run_start, self.now, cpu));
            }
            if sv.remaining != u64::MAX {
                sv.remaining -= ran.min(sv.remaining);
            }
            sv.run_start = self.now;
        }
    }

    fn do_schedule(&mut self, cpu: usize) {
        self.stop_running(cpu);
        let prev = self.cur[cpu];
        let d = self.s.schedule(cpu, self.now);
        self.resched = self.resched.or(d.tickle);
        if d.migrated {
            self.moved += 1;
        }
        let next = d.next.map(|v| self.idx(v));
        if let Some(i) = next {
            let info = self.s.vcpu_info(self.vcpus[i].id).unwrap();
            assert!(
                info.hard.contains(cpu),
                "{} ran outside its hard affinity",
                self.vcpus[i].id
            );
            for (c, other) in self.cur.iter().enumerate() {
                assert!(c == cpu || *other != Some(i), "vCPU on two CPUs");
            }
            let sv = &mut self.vcpus[i];
            if next != prev
                && let Some(l) = sv.last_cpu
            {
                assert_eq!(d.migrated, l != cpu, "Decision::migrated");
            }
            sv.last_cpu = Some(cpu);
            sv.run_start = self.now;
            if let Some(w) = sv.woken_at.take() {
                sv.latencies.push((w, self.now - w));
            }
        }
        if next != prev {
            self.switches += 1;
        }
        self.cur[cpu] = next;
        let r = self.s.context_saved(cpu, self.now);
        self.resched = self.resched.or(r);
    }

    fn finish_time(&self, cpu: usize) -> Option<u64> {
        let i = self.cur[cpu]?;
        let sv = &self.vcpus[i];
        if sv.remaining == u64::MAX {
            None
        } else {
            Some(sv.run_start + sv.remaining)
        }
    }

    /// Runs the machine until `end`.
    pub fn run_until(&mut self, end: u64) {
        let ncpus = self.cur.len();
        loop {
            while let Some(cpu) = self.resched.first() {
                self.resched.remove(cpu);
                self.do_schedule(cpu);
            }
            let mut t = u64::MAX;
            for cpu in 0..ncpus {
                if let Some(x) = self.s.next_timer(cpu) {
                    t = t.min(x);
                }
                if let Some(x) = self.finish_time(cpu) {
                    t = t.min(x);
                }
            }
            for sv in &self.vcpus {
                if let Some(w) = sv.next_wake {
                    t = t.min(w);
                }
            }
            if t > end {
                self.now = end;
                for cpu in 0..ncpus {
                    self.stop_running(cpu);
                }
                return;
            }
            assert!(t >= self.now, "time went backwards");
            self.now = t;
            // 1. Bursts that complete now: the vCPU blocks.
            for cpu in 0..ncpus {
                if self.finish_time(cpu) == Some(self.now) {
                    self.stop_running(cpu);
                    let i = self.cur[cpu].unwrap();
                    let sv = &mut self.vcpus[i];
                    match sv.beh {
                        Behaviour::Io {
                            period,
                            phase,
                            burst,
                        } => {
                            let k = (self.now - phase) / period + 1;
                            sv.next_wake = Some(phase + k * period);
                            sv.remaining = burst;
                        }
                        Behaviour::Dodger { run, sleep } => {
                            sv.next_wake = Some(self.now + sleep);
                            sv.remaining = run;
                        }
                        Behaviour::Hog => unreachable!(),
                    }
                    let r = self.s.block(sv.id, self.now);
                    self.resched = self.resched.or(r);
                }
            }
            // 2. Wake-ups due now.
            for i in 0..self.vcpus.len() {
                if self.vcpus[i].next_wake == Some(self.now) {
                    self.vcpus[i].next_wake = None;
                    self.vcpus[i].woken_at = Some(self.now);
                    let r = self.s.wake(self.vcpus[i].id, self.now);
                    self.resched = self.resched.or(r);
                }
            }
            // 3. Timer interrupts due now.
            for cpu in 0..ncpus {
                if self.s.next_timer(cpu).is_some_and(|x| x <= self.now) {
                    let r = self.s.timer(cpu, self.now);
                    self.resched = self.resched.or(r);
                }
            }
        }
    }

    /// CPU time `v` got in `[a, b)`.
    pub fn ran(&self, v: VcpuRef, a: u64, b: u64) -> u64 {
        self.vcpus[self.idx(v)]
            .runs
            .iter()
            .map(|&(s, e, _)| e.min(b).saturating_sub(s.max(a)))
            .sum()
    }

    /// Share of one CPU `v` got in `[a, b)`.
    pub fn share(&self, v: VcpuRef, a: u64, b: u64) -> f64 {
        self.ran(v, a, b) as f64 / (b - a) as f64
    }

    /// CPUs `v` ever ran on.
    pub fn cpus_used(&self, v: VcpuRef) -> CpuMask {
        let mut m = CpuMask::EMPTY;
        for &(_, _, c) in &self.vcpus[self.idx(v)].runs {
            m.insert(c);
        }
        m
    }

    /// Sorted latencies of the wake-ups at or after `from`.
    pub fn latencies(&self, v: VcpuRef, from: u64) -> Vec<u64> {
        let mut l: Vec<u64> = self.vcpus[self.idx(v)]
            .latencies
            .iter()
            .filter(|x| x.0 >= from)
            .map(|x| x.1)
            .collect();
        l.sort_unstable();
        l
    }
}
