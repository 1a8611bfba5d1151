//! Toolstack tests: from Dom0's shell, `xl` creates Debian's Linux as a run-time DomU with
//! a PV console and xenstore, and `xl list/console/shutdown/destroy/info` behave as Xen
//! 4.17's (the "xl create" issue's acceptance list).
//!
//! Machine: as `dom0_linux.rs` (QEMU virt, `-smp 2`, 2048 MiB, Dom0 with 512 MiB), Dom0
//! booted with `oxen.dom0=shell`, whose `/init` runs `/etc/init.d/xencommons start`
//! (xenstored, Dom0's xenstore entries, xenconsoled `--log=guest`) before the shell. The
//! DomU is the image's `/etc/xen/domu-plain.cfg` (256 MiB, 1 vCPU, the same kernel, the
//! initramfs of `qemu/domu/`; `xl create -c` starts the ready `/etc/xen/domu.cfg`, the same
//! with a disk and a vif), sometimes renamed or with `oxen.domu=check|facts` added to its
//! command line, which makes its `/init` print `domu: name=...`, `domu: domid=...` (read
//! by the DomU itself with `xenstore-read`) into its console log.
//!
//! Three Dom0 boots share the checks (each boot is a test):
//! * GICv3 and GICv2, [`lifecycle`]: `xl list` columns; a DomU that checks itself and
//!   powers off (console log shows `DOMU-INIT` and its own name, the domain is gone after);
//!   `xl create -c /etc/xen/domu.cfg` with typed input reaching the ready DomU's shell
//!   (`xenstore-read name` answers `domu`, `/dev/xvda` is there, 3 pings of Dom0 over
//!   `xenbr0` answered) and Ctrl-] back to Dom0, `xl console` to the same shell again;
//!   `xl list` with Domain-0 and domu;
//!   `xl shutdown -w`; two DomUs at once, each reading its own name; `xl destroy`; in the
//!   end `xl list`, `/local/domain` and `xl info`'s free_memory are as before.
//! * GICv3, [`bad_input_and_cycles`]: malformed cfg, unknown key, missing kernel, too much
//!   memory each fail with one error line and a non-zero status and leave nothing
//!   (`xl list`, `/local/domain`, free_memory); then 20 create/destroy cycles leave
//!   free_memory exactly as before, and all their RAM scrubbed (oxen's `memory:` line,
//!   `xl debug-keys x` read back with `xl dmesg`).
//!
//! Everything Dom0 prints is checked against Linux's and `/init`'s failure lines; DomU
//! console output is read from `/var/log/xen/console/guest-<name>.log` (xenconsoled).
//!
//! Validating against real Xen 4.17 needs Xen's own tools in the image, so these run on
//! oxen only. Timeouts: [`BUDGET`] per test, scaled by `OXEN_TEST_TIMEOUT_SCALE`.

use oxen_tests::dom0shell::{
    Budget, CONSOLE_LOG_DIR, DOMU_PROMPT, PROMPT, assert_free_memory_back, boot, domu_cfg,
    free_memory, ok, power_off, wait_only_dom0_listed, xl_list,
};
use oxen_tests::{Error, Shell, counter, re, scaled};
use std::time::Duration;

/// Time allowed for one whole test, before scaling.
const BUDGET: Duration = Duration::from_secs(1500);

/// Nothing of any DomU left: `xl list` has Domain-0 only, `/local/domain` has only `0`,
/// free memory is `free` MiB.
fn nothing_left(sh: &mut Shell<'_>, free: u64, b: &Budget) -> Result<(), Error> {
    // As with Xen, `xl shutdown -w` returns once the domain has shut down; its monitor
    // destroys it a moment later: allow 30 s for the last row to go.
    wait_only_dom0_listed(sh, b)?;
    let rows = xl_list(sh, b)?;
    assert_eq!(rows.len(), 1, "domains left over: {rows:?}");
    let out = ok(sh, "xenstore-list /local/domain", b)?;
    assert_eq!(out.lines, ["0"], "xenstore nodes left over:\n{out}");
    assert_free_memory_back(sh, free, b)?;
    Ok(())
}

/// oxen's memory figures (debug key `x`, read back with `xl dmesg`): KiB of destroyed
/// domains' RAM waiting to be scrubbed, and KiB scrubbed since boot.
fn scrubbing(sh: &mut Shell<'_>, b: &Budget) -> Result<(u64, u64), Error> {
    // The line also goes to the serial console, whose `(oxen)` lines the shell harness
    // drops: xl's copy is read back with a prefix of its own.
    let out = ok(
        sh,
        "xl debug-keys x && xl dmesg | grep -F '(oxen) memory: ' | tail -n 1 | sed 's/^/scrub: /'",
        b,
    )?;
    let line = out
        .value("scrub: ")
        .unwrap_or_else(|| panic!("no memory line from xl debug-keys x:\n{out}"));
    let kib = |label: &str| -> u64 {
        counter(line, "(oxen) memory: ", label)
            .unwrap_or_else(|| panic!("no number before '{label}' in {line:?}"))
    };
    Ok((kib(" KiB waiting to be scrubbed"), kib(" KiB scrubbed")))
}

/// Wait (in Dom0, up to `secs` s) until DomU `name`'s console log has `marker`; return the
/// log's `DOMU-INIT` and `domu:` lines.
fn wait_console(
    sh: &mut Shell<'_>,
    name: &str,
    marker: &str,
    secs: u32,
    b: &Budget,
) -> Result<Vec<String>, Error> {
    let log = format!("{CONSOLE_LOG_DIR}/guest-{name}.log");
    let out = sh.run(
        &format!(
            "i=0; while ! grep -q '{marker}' {log} 2>/dev/null && [ $i -lt {secs} ]; do sleep 1; i=$((i+1)); done; grep -E '^(DOMU-INIT|domu: )' {log} | tr -d '\\r'; grep -q '{marker}' {log}"
        ),
        b.left().min(Duration::from_secs(u64::from(secs) * 2 + 120)),
    )?;
    assert_eq!(
        out.status, 0,
        "{marker:?} not in {log} after {secs} s:\n{out}"
    );
    Ok(out.lines)
}

/// Wait (in Dom0, up to `secs` s) until domain `name` is gone from `xl list`.
fn wait_gone(sh: &mut Shell<'_>, name: &str, secs: u32, b: &Budget) -> Result<(), Error> {
    ok(
        sh,
        &format!(
            "i=0; while xl domid {name} >/dev/null 2>&1 && [ $i -lt {secs} ]; do sleep 1; i=$((i+1)); done; ! xl domid {name} >/dev/null 2>&1"
        ),
        b,
    )
    .map(drop)
}

/// The facts a DomU printed about itself: its name and domid as it read them.
fn facts(lines: &[String], name: &str) -> u32 {
    assert!(
        lines.iter().any(|l| l.starts_with("DOMU-INIT uptime=")),
        "no DOMU-INIT in {name}'s console: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "domu: hypervisor=xen"),
        "{name} does not see Xen: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| *l == format!("domu: name={name}")),
        "{name} did not read its own name: {lines:?}"
    );
    lines
        .iter()
        .find_map(|l| l.strip_prefix("domu: domid=")?.parse().ok())
        .unwrap_or_else(|| panic!("{name} did not read its domid: {lines:?}"))
}

/// The row of `name` in `xl list` rows, checked to have xl's columns for domu.cfg.
fn row<'a>(rows: &'a [String], name: &str) -> &'a str {
    let r = rows
        .iter()
        .find(|r| r.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in xl list: {rows:?}"));
    let cols = re(&format!(
        r"^{name}\s+\d+\s+256\s+1\s+[-rbpsc]{{6}}\s+\d+\.\d$"
    ));
    assert!(cols.matches(r), "xl list row of {name} is not xl's: {r:?}");
    r
}

/// The acceptance flow on one Dom0 boot; see the module docs.
fn lifecycle(gic: u8) -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let mut q = boot(gic, &b)?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;

    let rows = xl_list(&mut sh, &b)?;
    assert_eq!(rows.len(), 1, "only Domain-0 at first: {rows:?}");
    let free = free_memory(&mut sh, &b)?;

    // A DomU that checks itself and powers off: its console log, then it is gone.
    let check = domu_cfg(&mut sh, "domu", "oxen.domu=check", &b)?;
    let out = ok(&mut sh, &format!("xl create {check}"), &b)?;
    assert!(
        out.lines
            .iter()
            .any(|l| l == &format!("Parsing config from {check}")),
        "xl create does not say what it parses:\n{out}"
    );
    let lines = wait_console(&mut sh, "domu", "domu: check done", 300, &b)?;
    facts(&lines, "domu");
    wait_gone(&mut sh, "domu", 120, &b)?;
    nothing_left(&mut sh, free, &b)?;

    // xl create -c: the ready DomU's shell on this console; typed input reaches it.
    ok(
        &mut sh,
        &format!("rm -f {CONSOLE_LOG_DIR}/guest-domu.log"),
        &b,
    )?;
    let q = sh.running();
    q.send("xl create -c /etc/xen/domu.cfg\r")?;
    q.expect(re(r"^DOMU-INIT uptime=[0-9.]+$"), b.step())?;
    q.expect(re(r"^domu: starting shell"), b.step())?;
    q.expect_prompt(re(DOMU_PROMPT), b.step())?;
    q.send("xenstore-read name\r")?;
    q.expect(re(r"^(\x1b\[6n)?domu$"), b.step())?;
    q.expect_prompt(re(DOMU_PROMPT), b.step())?;
    q.send("echo domu-$((40+2))\r")?;
    q.expect(re(r"^(\x1b\[6n)?domu-42$"), b.step())?;
    q.expect_prompt(re(DOMU_PROMPT), b.step())?;
    // The ready DomU has its disk and its eth0 on Dom0's bridge.
    q.send("[ -b /dev/xvda ] && echo has-xvda; ping -c 3 -W 5 192.0.2.1 | grep -o '[0-9]* packets received'\r")?;
    q.expect(re(r"^(\x1b\[6n)?has-xvda$"), b.step())?;
    q.expect(re(r"^3 packets received$"), b.step())?;
    q.expect_prompt(re(DOMU_PROMPT), b.step())?;
    q.send("\x1d")?; // Ctrl-]: back to Dom0, the DomU keeps running
    q.send("\r")?;
    q.expect_prompt(re(PROMPT), b.step())?;
    // xl console: the same shell again. The client puts the terminal in raw mode with
    // TCSAFLUSH (as Xen's xenconsole), dropping what was typed ahead: type Enter until the
    // DomU's prompt answers.
    q.send("xl console domu\r")?;
    std::thread::sleep(scaled(Duration::from_secs(2)));
    let mut attached = false;
    for _ in 0..20 {
        q.send("\r")?;
        if q.expect_prompt(re(DOMU_PROMPT), Duration::from_secs(3))
            .is_ok()
        {
            attached = true;
            break;
        }
    }
    assert!(attached, "xl console domu: no DomU prompt");
    q.send("echo again-$((6*7))\r")?;
    q.expect(re(r"^(\x1b\[6n)?again-42$"), b.step())?;
    q.expect_prompt(re(DOMU_PROMPT), b.step())?;
    q.send("\x1d")?;
    q.send("\r")?;
    q.expect_prompt(re(PROMPT), b.step())?;
    let rows = xl_list(&mut sh, &b)?;
    assert_eq!(rows.len(), 2, "Domain-0 and domu: {rows:?}");
    row(&rows, "domu");
    let out = ok(
        &mut sh,
        "xenstore-read /local/domain/$(xl domid domu)/name",
        &b,
    )?;
    assert_eq!(out.lines, ["domu"], "{out}");

    // xl shutdown -w: the guest powers itself off; xl returns once it is gone.
    ok(&mut sh, "xl shutdown -w domu", &b)?;
    nothing_left(&mut sh, free, &b)?;

    // Two DomUs at once, each reading its own name; then destroy and shutdown.
    let a = domu_cfg(&mut sh, "domu-a", "oxen.domu=facts", &b)?;
    let c = domu_cfg(&mut sh, "domu-b", "oxen.domu=facts", &b)?;
    ok(&mut sh, &format!("xl create {a} && xl create {c}"), &b)?;
    let fa = facts(
        &wait_console(&mut sh, "domu-a", "domu: facts done", 300, &b)?,
        "domu-a",
    );
    let fb = facts(
        &wait_console(&mut sh, "domu-b", "domu: facts done", 300, &b)?,
        "domu-b",
    );
    assert_ne!(fa, fb, "two DomUs with one domid");
    let rows = xl_list(&mut sh, &b)?;
    assert_eq!(rows.len(), 3, "Domain-0, domu-a and domu-b: {rows:?}");
    row(&rows, "domu-a");
    row(&rows, "domu-b");
    ok(&mut sh, "xl destroy domu-a", &b)?;
    let rows = xl_list(&mut sh, &b)?;
    assert!(rows.iter().all(|r| !r.starts_with("domu-a ")), "{rows:?}");
    row(&rows, "domu-b");
    ok(&mut sh, "xl shutdown -w domu-b", &b)?;
    nothing_left(&mut sh, free, &b)?;

    power_off(&mut sh, &b)
}

/// Bad configurations fail cleanly; 20 create/destroy cycles return all memory.
fn bad_input_and_cycles(gic: u8) -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let mut q = boot(gic, &b)?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;
    let free = free_memory(&mut sh, &b)?;

    let bad = [
        (
            "malformed",
            r#"printf 'name = "bad\nmemory = \n' > /tmp/bad.cfg"#,
        ),
        (
            "unknown key",
            "sed 's/^memory = .*/memroy = 256/' /etc/xen/domu-plain.cfg > /tmp/bad.cfg",
        ),
        (
            "missing kernel",
            "sed 's|^kernel = .*|kernel = \"/opt/domu/NoSuchImage\"|' /etc/xen/domu-plain.cfg > /tmp/bad.cfg",
        ),
        (
            "too much memory",
            "sed 's/^memory = .*/memory = 4096/' /etc/xen/domu-plain.cfg > /tmp/bad.cfg",
        ),
    ];
    for (what, make) in bad {
        ok(&mut sh, make, &b)?;
        let out = sh.run(
            "xl create /tmp/bad.cfg >/tmp/out 2>/tmp/err; rc=$?; grep -v '^Parsing config from' /tmp/err | grep -v '^\\[ *[0-9.]*\\]'; cat /tmp/out; exit_is() { return $1; }; exit_is $rc",
            b.step(),
        )?;
        assert_ne!(out.status, 0, "{what}: xl create succeeded:\n{out}");
        assert_eq!(
            out.lines.len(),
            1,
            "{what}: xl create should print one error line:\n{out}"
        );
        nothing_left(&mut sh, free, &b)?;
    }

    // 20 create/destroy cycles: every page comes back, scrubbed.
    let (_, scrubbed_before) = scrubbing(&mut sh, &b)?;
    let cyc = domu_cfg(&mut sh, "cyc", "", &b)?;
    let out = sh.run(
        &format!(
            "n=0; for i in $(seq 20); do xl create -q {cyc} && xl destroy cyc || break; n=$i; done; echo cycles=$n"
        ),
        b.left(),
    )?;
    assert_eq!(
        out.value("cycles="),
        Some("20"),
        "create/destroy cycles:\n{out}"
    );
    nothing_left(&mut sh, free, &b)?;
    // Each DomU's 256 MiB were zeroed before reuse (a piece at a time by CPUs that wait,
    // or by the next create that needed them), and soon none waits any more.
    let mut now = scrubbing(&mut sh, &b)?;
    for _ in 0..20 {
        if now.0 == 0 {
            break;
        }
        ok(&mut sh, "sleep 1", &b)?;
        now = scrubbing(&mut sh, &b)?;
    }
    let (waiting, scrubbed) = now;
    assert_eq!(waiting, 0, "KiB of destroyed DomUs' RAM still not scrubbed");
    assert!(
        scrubbed - scrubbed_before >= 20 * 256 * 1024,
        "20 DomUs of 256 MiB destroyed, {} KiB scrubbed",
        scrubbed - scrubbed_before
    );

    power_off(&mut sh, &b)
}

#[test]
fn gicv3_xl_create_console_list_shutdown_destroy_two_domus() -> Result<(), Error> {
    lifecycle(3)
}

#[test]
fn gicv2_xl_create_console_list_shutdown_destroy_two_domus() -> Result<(), Error> {
    lifecycle(2)
}

#[test]
fn gicv3_xl_create_bad_configs_fail_cleanly_and_20_cycles_return_all_memory() -> Result<(), Error> {
    bad_input_and_cycles(3)
}
