//! Debug keys: what oxen prints when the console input is switched to the
//! hypervisor (Ctrl-a three times, as on Xen) and a key is typed, or when
//! Dom0 sends keys (`xl debug-keys`, sysctl `debug_keys`).
//!
//! Owns nothing but the key table. Each dump takes the locks it reads one at
//! a time (a run queue, a vCPU, a vGIC, a domain's Xen state), never two
//! together, so it may run from the console interrupt or Dom0's hypercall on
//! any CPU. The output is a snapshot of moving state, for people chasing a
//! hang.

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;

use crate::arch::timer;
use crate::domain::{self, Domain};

/// The keys and what they show (`h` prints this list).
const KEYS: &[(u8, &str)] = &[
    (b'h', "this list"),
    (
        b'r',
        "run queues: what each physical CPU runs, queues and watches",
    ),
    (
        b'q',
        "domains and their vCPUs: state, timer, virtual GIC; destroyed ones still referenced, by what",
    ),
    (b'e', "event channels of every domain"),
    (b'x', "guest exit, scheduler and memory scrubbing counters"),
];

/// Handle debug key `c` (unknown keys print the list).
pub fn handle(c: u8) {
    let mut s = String::new();
    match c {
        b'r' => {
            let _ = writeln!(s, "'r' pressed -> run queues");
            crate::sched::dump(&mut s);
        }
        b'q' => {
            let _ = writeln!(s, "'q' pressed -> domains");
            for d in domain::DOMAINS.lock().clone() {
                dump_domain(&d, &mut s);
            }
            // Destroyed domains something still references (their RAM is not back yet).
            let zs = domain::zombies();
            let all: alloc::vec::Vec<_> = domain::DOMAINS
                .lock()
                .iter()
                .cloned()
                .chain(zs.iter().cloned())
                .collect();
            for z in &zs {
                let mut by = crate::sched::references(z);
                for (id, n) in crate::xen::holders_of(z, &all) {
                    by.push(alloc::format!("{id} maps x{n}"));
                }
                // Ours: `zs` and `all` (one each).
                let left = alloc::sync::Arc::strong_count(z) - 2;
                let _ = writeln!(
                    s,
                    "d{} '{}': destroyed, {} references left, tracked: {}",
                    z.id.0,
                    z.name,
                    left,
                    if by.is_empty() {
                        alloc::string::String::from("none")
                    } else {
                        by.join(", ")
                    }
                );
            }
        }
        b'e' => {
            let _ = writeln!(s, "'e' pressed -> event channels");
            for d in domain::DOMAINS.lock().clone() {
                let _ = writeln!(s, "d{}:", d.id.0);
                crate::xen::dump_evtchn(&d, &mut s);
            }
        }
        b'x' => {
            let _ = writeln!(s, "'x' pressed -> guest exit and scheduler counters");
            let _ = writeln!(s, "{}", crate::trap::exit_stats());
            if let Some(st) = crate::sched::stats() {
                let _ = writeln!(s, "{st}");
            }
            let _ = writeln!(s, "{}", crate::mem::scrub_stats());
        }
        b'\r' | b'\n' => return,
        _ => {
            let _ = writeln!(s, "debug keys:");
            for (k, what) in KEYS {
                let _ = writeln!(s, "  {}  {what}", *k as char);
            }
        }
    }
    for line in s.lines() {
        crate::console::print(format_args!("(oxen) {line}\n"));
    }
}

/// One domain: its state and, per vCPU, scheduling, timer and vGIC state.
fn dump_domain(d: &Domain, s: &mut String) {
    let now = timer::now();
    let _ = writeln!(
        s,
        "d{} '{}': {:?}{}",
        d.id.0,
        d.name,
        d.state(),
        if d.is_paused() { ", paused" } else { "" }
    );
    for v in 0..d.vcpus.len() {
        let (state, running, pcpu, deadline, ctl, cval) = {
            let vc = d.vcpus[v].lock();
            (
                vc.state,
                vc.running,
                vc.pcpu,
                vc.timer_deadline,
                vc.el1.cntv_ctl,
                vc.el1.cntv_cval,
            )
        };
        let rel = |t: u64| -> i64 {
            let us = (timer::ticks_to_ns(t.abs_diff(now)) / 1000) as i64;
            if t >= now { us } else { -us }
        };
        let _ = write!(
            s,
            "  v{v}: {state:?}{} on CPU{pcpu}; saved CNTV_CTL {ctl:#x} CVAL {:+}us",
            if running { ", running" } else { "" },
            rel(cval)
        );
        if let Some(t) = deadline {
            let _ = write!(s, "; wake at {:+}us", rel(t));
        }
        let _ = writeln!(s);
        let g = d.vgic.lock();
        let _ = write!(s, "      vGIC listed:");
        for e in g.listed(v).iter().flatten() {
            let _ = write!(s, " {}:{:?}", e.intid, e.state);
        }
        let _ = write!(s, "; waiting:");
        for i in g.pending_for(v).take(8) {
            let _ = write!(s, " {i}");
        }
        for i in [27u32, 31] {
            let _ = write!(
                s,
                "; {i}:{}{}{}",
                if g.is_enabled(v, i) { "E" } else { "e" },
                if g.is_pending_in_model(v, i) {
                    "P"
                } else {
                    "p"
                },
                if g.is_active(v, i) { "A" } else { "a" },
            );
        }
        let _ = writeln!(s);
    }
}
