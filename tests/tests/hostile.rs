//! A hostile guest cannot crash oxen or another domain through hypercall arguments: bad input
//! gets Xen's error code and at most an info/debug log line, never a panic, a WARNING/ERROR
//! line or a stopped neighbour.
//!
//! The test guest's `hostile` scenario (docs/design.md, `guest-frontend/test-guest/src/
//! hostile.rs`) issues a table of bad hypercalls, checks each answer against what Xen 4.17
//! returns (printing `hostile: FAIL ...` on a mismatch), then makes pseudo-random calls from a
//! printed seed and powers off. It runs here
//!
//! * as boot-time DomU d1 next to a d2 that counts: every case answered as Xen does, the
//!   random phase survived, d1 shuts down cleanly, and d2 keeps ticking afterwards;
//! * as Dom0 next to a counting d1: the privileged answers (Dom0 may act on d1), and the
//!   machine powers off with QEMU status 0 when Dom0 is done.
//!
//! The harness's default forbidden list (`(oxen) ERROR`, `WARNING`, `panic`, `domain dN
//! crashed`) is in force for every line.

use oxen_tests::{DEFAULT_TIMEOUT, DomainNode, Error, Line, Qemu, re, test_guest_bin};
use std::time::Duration;

const T: Duration = DEFAULT_TIMEOUT;
const D1_ADDR: u64 = 0x5000_0000;
const D2_ADDR: u64 = 0x5200_0000;
const DOM0_ADDR: u64 = 0x5000_0000;
const DOMU_MIB: u64 = 64;
/// Random calls per run (a few seconds under TCG).
const CALLS: u64 = 10_000;

/// Number of table cases the guest runs: one `hostile: <name> -> ...` line each.
fn case_lines(lines: &[Line], prefix: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.text.strip_prefix(prefix))
        .filter(|t| t.starts_with("hostile: ") && t.contains(" -> "))
        .map(str::to_owned)
        .collect()
}

/// Checks common to both runs on the guest's lines (`prefix` is `(d1) ` or empty for Dom0).
fn check_report(lines: &[Line], prefix: &str, role: &str) {
    let mine: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.text.strip_prefix(prefix))
        .filter(|t| t.starts_with("hostile: "))
        .collect();
    let fails: Vec<&&str> = mine.iter().filter(|t| t.contains("FAIL")).collect();
    assert!(fails.is_empty(), "answers differ from Xen's: {fails:#?}");
    assert!(
        mine.iter()
            .any(|t| t.starts_with(&format!("hostile: {role} RAM"))),
        "the guest did not see itself as {role}: {mine:#?}"
    );
    let cases = case_lines(lines, prefix);
    // Spot checks of the table (the guest checks every line; these make sure the table ran and
    // its lines carry the numbers).
    for want in [
        "hostile: console_io cmd 7 -> -38",
        "hostile: sched_op shutdown unmapped -> -14",
        "hostile: evtchn send port 99999 -> -22",
        "hostile: evtchn alloc_unbound no domain -> -3",
        "hostile: grant map no domain -> 0 status -2",
        "hostile: vcpu_op register_vcpu_info vcpu 7 -> -2",
        "hostile: hvm_op get_param 9999 -> -22",
        "hostile: psci cpu_on mpidr 7 -> -2",
    ] {
        assert!(
            cases.iter().any(|c| c == want),
            "missing `{want}` in {cases:#?}"
        );
    }
    assert!(
        cases
            .iter()
            .any(|c| c.starts_with("hostile: hvc #0x1234 -> undef (ESR 0x2000000")),
        "hvc #0x1234 did not raise an UNDEF: {cases:#?}"
    );
    assert!(cases.len() >= 90, "only {} case lines", cases.len());
    let seed = re(r"^hostile: seed 0x[0-9a-f]+ calls \d+$");
    assert!(mine.iter().any(|t| seed.matches(t)), "no seed line");
    assert!(mine.contains(&format!("hostile: survived {CALLS} calls").as_str()));
    // The tally of the random phase adds up, and the calls reached the handlers (not only
    // -ENOSYS for unknown numbers).
    let tally = mine
        .iter()
        .find_map(|t| t.strip_prefix("hostile: random results: "))
        .expect("no random results line");
    let counts: Vec<u64> = tally.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert_eq!(counts.len(), 6, "{tally}");
    assert_eq!(counts.iter().sum::<u64>(), CALLS, "{tally}");
    assert!(counts[1] > CALLS / 10 && counts[2] > CALLS / 20, "{tally}");
    assert!(mine.contains(&"hostile: done, 0 failures"));
}

/// The tick number of a `(d<N>) tick <i>` line.
fn tick(line: &Line, dom: u32) -> Option<u64> {
    line.text
        .strip_prefix(&format!("(d{dom}) tick "))?
        .parse()
        .ok()
}

#[test]
fn hostile_domu_gets_xen_errors_and_its_neighbour_keeps_running() -> Result<(), Error> {
    let guest = test_guest_bin()?;
    let mut q = Qemu::oxen()?
        .smp(2)
        .with_domains(&[
            DomainNode::new(
                &guest,
                D1_ADDR,
                "oxen.test=hostile oxen.peer=2 oxen.count=10000",
            )
            .memory_mib(DOMU_MIB)
            .cpus(1),
            DomainNode::new(&guest, D2_ADDR, "oxen.test=count")
                .memory_mib(DOMU_MIB)
                .cpus(1),
        ])?
        .spawn()?;
    q.expect(re(r"^\(d1\) TEST-GUEST hostile start$"), T)?;
    q.expect(re(r"^\(d1\) hostile: done, \d+ failures$"), T)?;
    let down = q.expect(re(r"^\(oxen\) d1: shutdown \(poweroff\)$"), T)?;
    // d2 goes on counting after d1 is gone.
    let mut last = None;
    for _ in 0..3 {
        let l = q.expect(re(r"^\(d2\) tick \d+$"), T)?;
        let n = tick(&l, 2);
        assert!(n > last, "d2 ticks out of order: {last:?} then {l}");
        last = n;
    }
    let lines = q.finish()?;
    check_report(&lines, "(d1) ", "domU");
    // The permission cases against d2 were refused.
    let cases = case_lines(&lines, "(d1) ");
    for want in [
        "hostile: peer evtchn alloc_unbound -> -1",
        "hostile: peer grant query_size -> 0 status -8",
        "hostile: peer current_reservation -> -1",
    ] {
        assert!(cases.iter().any(|c| c == want), "missing `{want}`");
    }
    let at = lines.iter().position(|l| *l == down).unwrap();
    let after_d1 = lines[at + 1..]
        .iter()
        .filter(|l| l.text.starts_with("(d1) "))
        .count();
    assert_eq!(after_d1, 0, "d1 printed after its shutdown");
    assert!(
        lines[..at].iter().any(|l| tick(l, 2).is_some()),
        "d2 never ticked before"
    );
    Ok(())
}

#[test]
fn hostile_dom0_gets_privileged_answers_and_powers_off_cleanly() -> Result<(), Error> {
    let guest = test_guest_bin()?;
    let mut q = Qemu::oxen()?
        .smp(2)
        .append("dom0_mem=128M")
        .guest_kernel(
            &guest,
            DOM0_ADDR,
            "oxen.test=hostile oxen.peer=1 oxen.count=10000 oxen.seed=0x5eed",
        )
        .with_domains(&[DomainNode::new(&guest, D2_ADDR, "oxen.test=count")
            .memory_mib(DOMU_MIB)
            .cpus(1)])?
        .spawn()?;
    q.expect("TEST-GUEST hostile start", T)?;
    q.expect(re(r"^hostile: done, \d+ failures$"), T)?;
    q.expect_exit_code(0, T)?;
    let lines = q.finish()?;
    check_report(&lines, "", "dom0");
    let cases = case_lines(&lines, "");
    for want in [
        "hostile: peer evtchn alloc_unbound -> 0",
        "hostile: peer grant query_size -> 0 status 0",
        "hostile: console_io read unmapped -> 0",
    ] {
        assert!(cases.iter().any(|c| c == want), "missing `{want}`");
    }
    assert!(
        lines.iter().any(|l| tick(l, 1).is_some()),
        "d1 never ran next to Dom0"
    );
    Ok(())
}
