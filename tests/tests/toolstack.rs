//! Toolstack tests: from Dom0's shell, `xl` creates Debian's Linux as a run-time DomU with
//! a PV console and xenstore, and `xl list/console/shutdown/destroy/info` behave as Xen
//! 4.17's (the "xl create" issue's acceptance list).
//!
//! Machine: as `dom0_linux.rs` (QEMU virt, `-smp 2`, 2048 MiB, Dom0 with 512 MiB), Dom0
//! booted with `oxen.dom0=shell`, whose `/init` runs `/etc/init.d/xencommons start`
//! (xenstored, Dom0's xenstore entries, xenconsoled `--log=guest`) before the shell. The
//! DomU is the image's `/etc/xen/domu.cfg` (256 MiB, 1 vCPU, the same kernel, the initramfs
//! of `qemu/domu/`), sometimes renamed or with `oxen.domu=check|facts` added to its
//! command line, which makes its `/init` print `domu: name=...`, `domu: domid=...` (read
//! by the DomU itself with `xenstore-read`) into its console log.
//!
//! Three Dom0 boots share the checks (each boot is a test):
//! * GICv3 and GICv2, [`lifecycle`]: `xl list` columns; a DomU that checks itself and
//!   powers off (console log shows `DOMU-INIT` and its own name, the domain is gone after);
//!   `xl create -c` with typed input reaching the DomU's shell (`xenstore-read name`
//!   answers `domu`) and Ctrl-] back to Dom0, `xl console` to the same shell again;
//!   `xl list` with Domain-0 and domu;
//!   `xl shutdown -w`; two DomUs at once, each reading its own name; `xl destroy`; in the
//!   end `xl list`, `/local/domain` and `xl info`'s free_memory are as before.
//! * GICv3, [`bad_input_and_cycles`]: malformed cfg, unknown key, missing kernel, too much
//!   memory each fail with one error line and a non-zero status and leave nothing
//!   (`xl list`, `/local/domain`, free_memory); then 20 create/destroy cycles leave
//!   free_memory exactly as before.
//!
//! Everything Dom0 prints is checked against Linux's and `/init`'s failure lines; DomU
//! console output is read from `/var/log/xen/console/guest-<name>.log` (xenconsoled).
//!
//! Validating against real Xen 4.17 needs Xen's own tools in the image, so these run on
//! oxen only. Timeouts: [`BUDGET`] per test, scaled by `OXEN_TEST_TIMEOUT_SCALE`.

use oxen_tests::{Error, LinuxDom0, Output, Pattern, Qemu, Running, Shell, re, scaled};
use std::time::{Duration, Instant};

/// The hypervisor command line: as `dom0_linux.rs`, but without debug messages, which
/// would interleave with the shell's output more often.
const HYP_ARGS: &str =
    "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=info guest_loglvl=info";
/// Dom0's command line: xencommons, then the shell.
const SHELL_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=shell";
/// Time allowed for one whole test, before scaling.
const BUDGET: Duration = Duration::from_secs(1500);
/// Dom0's prompt (busybox may send a cursor position query after it).
const PROMPT: &str = r"dom0:\S*# (\x1b\[6n)?$";
/// The DomU's prompt on its console (`xl create -c`).
const DOMU_PROMPT: &str = r"domu:\S*# (\x1b\[6n)?$";
/// Where xenconsoled logs DomU consoles.
const CONSOLE_LOG_DIR: &str = "/var/log/xen/console";

/// A deadline shared by the expectations of one test (unscaled time left).
struct Budget {
    start: Instant,
}

impl Budget {
    fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// What is left, but at most 300 s: for one interactive step, so that a lost
    /// keystroke fails the test soon, with its transcript, instead of at the budget's end.
    fn step(&self) -> Duration {
        self.left().min(Duration::from_secs(300))
    }

    fn left(&self) -> Duration {
        let scale = scaled(Duration::from_secs(1)).as_secs_f64();
        BUDGET
            .saturating_sub(self.start.elapsed().div_f64(scale))
            .max(Duration::from_millis(10))
    }
}

/// Console lines that mean Linux, `/init`, xencommons or a DomU went wrong (besides the
/// harness's defaults: `(oxen) ERROR`, `WARNING`, `panic`, `domain dN crashed`).
fn forbidden() -> Vec<Pattern> {
    vec![
        re(r"\bOops\b"),
        Pattern::from("BUG:"),
        Pattern::from("kernel BUG at"),
        Pattern::from("[ cut here ]"),
        re(r"(?i)call trace"),
        Pattern::from("Unable to handle kernel"),
        Pattern::from("Internal error:"),
        Pattern::from("soft lockup"),
        re(r"rcu: INFO: .*detected stall"),
        Pattern::from("blocked for more than"),
        Pattern::from("segfault at"),
        re(r"^dom0: modprobe \S+ failed"),
        Pattern::from("xenfs not mounted"),
        Pattern::from("dom0: shell exited"),
        re(r"^xencommons: error"),
        re(r"^dom0: xencommons rc=[^0]"),
        re(r"^domu: \S+ failed"),
        Pattern::from("domu: shell exited"),
        Pattern::from("poweroff -f returned"),
    ]
}

/// Boot oxen with Debian's Linux as Dom0 on GIC `gic`, wait for xencommons and the shell.
fn boot(gic: u8, b: &Budget) -> Result<Running, Error> {
    let dom0 = LinuxDom0::from_cache()?;
    let mut q = Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .memory_mib(2048)
        .append(HYP_ARGS)
        .linux_dom0(&dom0, SHELL_ARGS)?;
    for p in forbidden() {
        q = q.forbid(p);
    }
    let mut q = q.spawn()?;
    q.expect(re("^OXEN-DOM0-INIT$"), b.left())?;
    q.expect(re("^dom0: capabilities=control_d$"), b.left())?;
    q.expect(re(r"^xencommons: xenstored started \(pid \d+"), b.left())?;
    q.expect(re(r"^xencommons: Dom0 set up"), b.left())?;
    q.expect(re(r"^xencommons: xenconsoled started \(pid \d+"), b.left())?;
    q.expect(re("^dom0: xencommons rc=0$"), b.left())?;
    Ok(q)
}

/// Run `cmd` in Dom0's shell, requiring status 0.
fn ok(sh: &mut Shell<'_>, cmd: &str, b: &Budget) -> Result<Output, Error> {
    let out = sh.run(cmd, b.step())?;
    assert_eq!(out.status, 0, "command failed:\n{out}");
    Ok(out)
}

/// `xl info`'s free_memory (MiB).
fn free_memory(sh: &mut Shell<'_>, b: &Budget) -> Result<u64, Error> {
    let out = ok(sh, "xl info", b)?;
    let v = out
        .value("free_memory")
        .and_then(|v| v.trim_start_matches([' ', ':']).trim().parse().ok());
    Ok(v.unwrap_or_else(|| panic!("no free_memory in xl info:\n{out}")))
}

/// The rows of `xl list` after its header (which must be Xen's).
fn xl_list(sh: &mut Shell<'_>, b: &Budget) -> Result<Vec<String>, Error> {
    let out = ok(sh, "xl list", b)?;
    let header = re(r"^Name\s+ID\s+Mem\s+VCPUs\s+State\s+Time\(s\)$");
    assert!(
        out.lines.first().is_some_and(|l| header.matches(l)),
        "xl list header is not xl's:\n{out}"
    );
    let dom0 = re(r"^Domain-0\s+0\s+\d+\s+2\s+[-rbpsc]{6}\s+\d+\.\d$");
    assert!(
        out.lines.get(1).is_some_and(|l| dom0.matches(l)),
        "xl list has no Domain-0 row:\n{out}"
    );
    Ok(out.lines[1..].to_vec())
}

/// Nothing of any DomU left: `xl list` has Domain-0 only, `/local/domain` has only `0`,
/// free memory is `free` MiB.
fn nothing_left(sh: &mut Shell<'_>, free: u64, b: &Budget) -> Result<(), Error> {
    // As with Xen, `xl shutdown -w` returns once the domain has shut down; its monitor
    // destroys it a moment later: allow 30 s for the last row to go.
    ok(
        sh,
        "i=0; while [ $(xl list | wc -l) -gt 2 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done",
        b,
    )?;
    let rows = xl_list(sh, b)?;
    assert_eq!(rows.len(), 1, "domains left over: {rows:?}");
    let out = ok(sh, "xenstore-list /local/domain", b)?;
    assert_eq!(out.lines, ["0"], "xenstore nodes left over:\n{out}");
    // A destroyed domain's pages come back once its last references go: allow a moment.
    let mut now = free_memory(sh, b)?;
    for _ in 0..30 {
        if now == free {
            break;
        }
        ok(sh, "sleep 1", b)?;
        now = free_memory(sh, b)?;
    }
    assert_eq!(now, free, "free memory changed");
    Ok(())
}

/// Write `/tmp/<name>.cfg`: domu.cfg renamed, with `args` added to the kernel command line.
fn cfg(sh: &mut Shell<'_>, name: &str, args: &str, b: &Budget) -> Result<String, Error> {
    let path = format!("/tmp/{name}.cfg");
    ok(
        sh,
        &format!(
            "sed -e 's/^name = .*/name = \"{name}\"/' -e 's|rdinit=/init|& {args}|' /etc/xen/domu.cfg > {path}"
        ),
        b,
    )?;
    Ok(path)
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
    let b = Budget::start();
    let mut q = boot(gic, &b)?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;

    let rows = xl_list(&mut sh, &b)?;
    assert_eq!(rows.len(), 1, "only Domain-0 at first: {rows:?}");
    let free = free_memory(&mut sh, &b)?;

    // A DomU that checks itself and powers off: its console log, then it is gone.
    let check = cfg(&mut sh, "domu", "oxen.domu=check", &b)?;
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

    // xl create -c: the DomU's shell on this console; typed input reaches it.
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
    let a = cfg(&mut sh, "domu-a", "oxen.domu=facts", &b)?;
    let c = cfg(&mut sh, "domu-b", "oxen.domu=facts", &b)?;
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

    sh.running().send("poweroff\r")?;
    q_expect_power_down(sh.running(), &b)
}

fn q_expect_power_down(q: &mut Running, b: &Budget) -> Result<(), Error> {
    q.expect("reboot: Power down", b.left())?;
    q.expect_exit_code(0, b.left())
}

/// Bad configurations fail cleanly; 20 create/destroy cycles return all memory.
fn bad_input_and_cycles(gic: u8) -> Result<(), Error> {
    let b = Budget::start();
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
            "sed 's/^memory = .*/memroy = 256/' /etc/xen/domu.cfg > /tmp/bad.cfg",
        ),
        (
            "missing kernel",
            "sed 's|^kernel = .*|kernel = \"/opt/domu/NoSuchImage\"|' /etc/xen/domu.cfg > /tmp/bad.cfg",
        ),
        (
            "too much memory",
            "sed 's/^memory = .*/memory = 4096/' /etc/xen/domu.cfg > /tmp/bad.cfg",
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

    // 20 create/destroy cycles: every page comes back.
    let cyc = cfg(&mut sh, "cyc", "", &b)?;
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

    sh.running().send("poweroff\r")?;
    q_expect_power_down(sh.running(), &b)
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
