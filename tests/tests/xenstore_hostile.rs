//! A hostile xenstore client in a DomU gets errors and cannot disturb xenstored's other
//! clients (the toolstack issue's acceptance item).
//!
//! Machine and Dom0 as `toolstack.rs` (QEMU virt, GICv3, `-smp 2`, 2048 MiB, Dom0 with
//! 512 MiB booted with `oxen.dom0=shell`: xencommons, then the shell). Dom0 creates two
//! DomUs from `/etc/xen/domu-plain.cfg` at once:
//! * `good` with `oxen.domu=facts`: it reads its own name and domid from xenstore;
//! * `evil` with `oxen.domu=hostile`: its `/init` runs `xs-hostile`
//!   (`dom0-backend/xenstore/src/bin/xs-hostile.rs`) over `/dev/xen/xenbus`: writes outside
//!   its subtree, oversized and malformed requests, watch / transaction / pipelined-request
//!   / node floods, each step checked inside the DomU (`UNEXPECTED` on a wrong answer),
//!   then `xs-hostile: done <n> steps, <k> unexpected` and `domu: hostile done rc=<rc>`.
//!
//! While evil runs and after, Dom0's `xenstore-read /local/domain/0/name` answers
//! `Domain-0` (bounded by `timeout`: a starved Dom0 fails the test), `xl list` shows both
//! DomUs, good has read its own name, xenstored is the same process, and
//! `/local/domain/0` and `/tool` (with their permissions) are unchanged. Then both are
//! destroyed and nothing is left (`xl list`, `/local/domain`, free memory).
//!
//! Timeouts: [`BUDGET`] for the whole test, scaled by `OXEN_TEST_TIMEOUT_SCALE`; no
//! wall-clock figure is asserted.

use oxen_tests::dom0shell::{
    Budget, CONSOLE_LOG_DIR, PROMPT, assert_free_memory_back, boot, domu_cfg, free_memory, ok,
    wait_only_dom0_listed, xl_list,
};
use oxen_tests::{Error, Shell, re};
use std::time::Duration;

/// Time allowed for the whole test, before scaling.
const BUDGET: Duration = Duration::from_secs(1800);
/// Dom0 checks while evil runs, at most (one every few seconds).
const MAX_ROUNDS: u32 = 200;
/// Fewest steps xs-hostile reports (it has about 80): fewer means steps went missing.
const MIN_STEPS: usize = 60;

/// Dom0 is served: `xenstore-read /local/domain/0/name` answers `Domain-0` within 60 s.
fn dom0_served(sh: &mut Shell<'_>, b: &Budget) -> Result<(), Error> {
    let out = sh.run("timeout 60 xenstore-read /local/domain/0/name", b.step())?;
    assert_eq!(out.status, 0, "Dom0's xenstore read failed:\n{out}");
    assert_eq!(out.lines, ["Domain-0"], "Dom0's xenstore read:\n{out}");
    Ok(())
}

/// `xl list` shows exactly Domain-0, good and evil.
fn both_listed(sh: &mut Shell<'_>, b: &Budget) -> Result<(), Error> {
    let rows = xl_list(sh, b)?;
    assert_eq!(rows.len(), 3, "Domain-0, good and evil: {rows:?}");
    for name in ["good", "evil"] {
        let cols = re(&format!(
            r"^{name}\s+\d+\s+256\s+1\s+[-rbpsc]{{6}}\s+\d+\.\d$"
        ));
        assert!(
            rows.iter().any(|r| cols.matches(r)),
            "no xl list row for {name}: {rows:?}"
        );
    }
    Ok(())
}

/// What must not change: Dom0's and /tool's nodes with their permissions.
fn protected(sh: &mut Shell<'_>, b: &Budget) -> Result<Vec<String>, Error> {
    let a = ok(sh, "xenstore-ls -f -p /local/domain/0", b)?;
    let t = ok(sh, "xenstore-ls -f -p /tool", b)?;
    assert!(
        a.lines
            .iter()
            .any(|l| l.starts_with("/local/domain/0/name = \"Domain-0\"")),
        "{a}"
    );
    // The toolstack's backend directories come and go with the DomUs (xl writes
    // backend/console/<domid> as libxl does); they are checked separately.
    let mut v: Vec<String> = a
        .lines
        .into_iter()
        .filter(|l| !l.starts_with("/local/domain/0/backend"))
        .collect();
    v.extend(t.lines);
    Ok(v)
}

/// xenstored's pid.
fn xenstored_pid(sh: &mut Shell<'_>, b: &Budget) -> Result<String, Error> {
    let out = ok(sh, "pidof xenstored", b)?;
    assert_eq!(out.lines.len(), 1, "{out}");
    Ok(out.lines[0].clone())
}

/// The `DOMU-INIT`, `domu:` and `xs-hostile:` lines of DomU `name`'s console log so far.
fn console(sh: &mut Shell<'_>, name: &str, b: &Budget) -> Result<Vec<String>, Error> {
    let out = sh.run(
        &format!(
            "grep -E '^(DOMU-INIT|domu: |xs-hostile: )' {CONSOLE_LOG_DIR}/guest-{name}.log | tr -d '\\r'"
        ),
        b.step(),
    )?;
    Ok(out.lines)
}

fn has(lines: &[String], marker: &str) -> bool {
    lines.iter().any(|l| l.starts_with(marker))
}

#[test]
fn gicv3_hostile_xenstore_client_in_a_domu_gets_errors_and_others_are_served() -> Result<(), Error>
{
    let b = Budget::start(BUDGET);
    let mut q = boot(3, &b)?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.step())?;

    let rows = xl_list(&mut sh, &b)?;
    assert_eq!(rows.len(), 1, "only Domain-0 at first: {rows:?}");
    let free = free_memory(&mut sh, &b)?;
    let before = protected(&mut sh, &b)?;
    let pid = xenstored_pid(&mut sh, &b)?;
    dom0_served(&mut sh, &b)?;

    let good = domu_cfg(&mut sh, "good", "oxen.domu=facts", &b)?;
    let evil = domu_cfg(&mut sh, "evil", "oxen.domu=hostile", &b)?;
    ok(
        &mut sh,
        &format!("xl create {evil} && xl create {good}"),
        &b,
    )?;
    let evil_id = ok(&mut sh, "xl domid evil", &b)?.lines.join("");
    let good_id = ok(&mut sh, "xl domid good", &b)?.lines.join("");

    // Meanwhile: Dom0 served, both listed, until evil is done.
    let mut rounds = 0;
    let mut during = 0;
    let evil_lines = loop {
        dom0_served(&mut sh, &b)?;
        both_listed(&mut sh, &b)?;
        let lines = console(&mut sh, "evil", &b)?;
        if has(&lines, "domu: hostile done") {
            break lines;
        }
        if has(&lines, "xs-hostile: domid:") {
            during += 1;
        }
        rounds += 1;
        assert!(
            rounds < MAX_ROUNDS && b.left() > Duration::from_secs(60),
            "evil did not finish xs-hostile; its console so far: {lines:#?}"
        );
        ok(&mut sh, "sleep 5", &b)?;
    };
    let report = evil_lines.join("\n");
    eprintln!("evil's console:\n{report}\n(Dom0 checked {during} times while it ran)");
    assert!(
        has(&evil_lines, "domu: scenario=hostile"),
        "evil did not run the hostile scenario:\n{report}"
    );
    assert!(
        !evil_lines.iter().any(|l| l.contains("UNEXPECTED")),
        "xs-hostile got answers it should not have:\n{report}"
    );
    let done = re(r"^xs-hostile: done (\d+) steps, 0 unexpected$");
    let steps: usize = evil_lines
        .iter()
        .find(|l| done.matches(l))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or_else(|| panic!("no `xs-hostile: done <n> steps, 0 unexpected`:\n{report}"));
    assert!(steps >= MIN_STEPS, "only {steps} steps:\n{report}");
    assert!(
        evil_lines.iter().any(|l| l == "domu: hostile done rc=0"),
        "xs-hostile did not exit 0:\n{report}"
    );
    // The steps the acceptance item names, each with the answer it must have had.
    for want in [
        r"^xs-hostile: write /local/domain/0/name: error EACCES$",
        r"^xs-hostile: write /tool/x: error EACCES$",
        r"^xs-hostile: write /local/domain/\d+/x: error EACCES$",
        r"^xs-hostile: raw 5000-byte payload, one write: (error|kernel refused)",
        r"^xs-hostile: write 4000-byte value: error (ENOSPC|E2BIG)$",
        r"^xs-hostile: write 2100-char relative path: error (EINVAL|E2BIG)$",
        r"^xs-hostile: read without NUL: error EINVAL$",
        r"^xs-hostile: read non-UTF-8 path: error EINVAL$",
        r"^xs-hostile: read empty path: error EINVAL$",
        r"^xs-hostile: write \.\.: error EINVAL$",
        r"^xs-hostile: watch flood: \d+ accepted, \d+ quota errors",
        r"^xs-hostile: transaction flood: \d+ started, \d+ quota errors",
        r"^xs-hostile: pipelined requests: 40 of 40 answered right, 0 wrong$",
        r"^xs-hostile: node flood: \d+ nodes made, then \d+ quota errors$",
        r"^xs-hostile: watch fires after the flood: ",
        r"^xs-hostile: final read domid: Ok",
        r"^xs-hostile: cleanup gone: ",
    ] {
        let p = re(want);
        assert!(
            evil_lines.iter().any(|l| p.matches(l)),
            "no line matching {want:?}:\n{report}"
        );
    }
    let evil_said = evil_lines
        .iter()
        .find_map(|l| l.strip_prefix("xs-hostile: domid: "))
        .unwrap_or_default();
    assert_eq!(evil_said, evil_id, "evil's domid:\n{report}");

    // After: good has read its own name; Dom0 served; both listed; nothing changed.
    let out = sh.run(
        &format!(
            "i=0; while ! grep -q 'domu: facts done' {CONSOLE_LOG_DIR}/guest-good.log && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done"
        ),
        b.step(),
    )?;
    assert_eq!(out.status, 0, "{out}");
    let good_lines = console(&mut sh, "good", &b)?;
    assert!(
        good_lines.iter().any(|l| l == "domu: name=good"),
        "good did not read its own name: {good_lines:#?}"
    );
    assert!(
        good_lines
            .iter()
            .any(|l| *l == format!("domu: domid={good_id}")),
        "good did not read its domid {good_id}: {good_lines:#?}"
    );
    dom0_served(&mut sh, &b)?;
    both_listed(&mut sh, &b)?;
    let out = ok(
        &mut sh,
        &format!("xenstore-read /local/domain/{good_id}/name /local/domain/{evil_id}/name"),
        &b,
    )?;
    assert_eq!(out.lines, ["good", "evil"], "{out}");
    let out = sh.run(
        &format!("xenstore-exists /local/domain/{evil_id}/data/xs-hostile"),
        b.step(),
    )?;
    assert_ne!(out.status, 0, "xs-hostile left its nodes:\n{out}");
    assert_eq!(
        protected(&mut sh, &b)?,
        before,
        "/local/domain/0 or /tool changed"
    );
    assert_eq!(
        xenstored_pid(&mut sh, &b)?,
        pid,
        "xenstored is not the same process"
    );

    // Destroy both: nothing left.
    ok(&mut sh, "xl destroy evil && xl destroy good", &b)?;
    // A destroyed domain stays listed as dying (`--ps-d`, as on Xen) until Dom0's daemons
    // have unmapped its rings, which they do on @releaseDomain: allow 30 s for it to go.
    wait_only_dom0_listed(&mut sh, &b)?;
    let rows = xl_list(&mut sh, &b)?;
    assert_eq!(rows.len(), 1, "domains left over: {rows:?}");
    let out = ok(&mut sh, "xenstore-ls /local/domain", &b)?;
    assert!(
        out.lines
            .iter()
            .all(|l| l.starts_with("0 = ") || l.starts_with(' ')),
        "xenstore nodes of a DomU left over:\n{out}"
    );
    let out = ok(&mut sh, "xenstore-list /local/domain", &b)?;
    assert_eq!(out.lines, ["0"], "xenstore nodes left over:\n{out}");
    assert_free_memory_back(&mut sh, free, &b)?;
    let out = ok(
        &mut sh,
        "xenstore-ls -f /local/domain/0/backend 2>/dev/null; true",
        &b,
    )?;
    let per_domain = re(r"^/local/domain/0/backend/[^/ ]+/[0-9]+");
    assert!(
        !out.lines.iter().any(|l| per_domain.matches(l)),
        "backend nodes of a destroyed DomU left over:\n{out}"
    );
    dom0_served(&mut sh, &b)?;
    assert_eq!(
        protected(&mut sh, &b)?,
        before,
        "/local/domain/0 or /tool changed"
    );

    sh.running().send("poweroff\r")?;
    let q = sh.running();
    q.expect("reboot: Power down", b.step())?;
    q.expect_exit_code(0, b.step())
}
