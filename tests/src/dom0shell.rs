//! What the tests that drive Linux Dom0's shell share: the machine (QEMU virt, `-smp 2`,
//! 2048 MiB, Dom0 with 512 MiB, booted with `oxen.dom0=shell`, whose `/init` runs
//! `/etc/init.d/xencommons start` before the shell), the console lines that mean Linux,
//! `/init`, xencommons or a DomU went wrong, a time budget per test, and the `xl` and
//! xenstore queries the toolstack tests make.
//!
//! Every function takes the test's [`Budget`]; one shell command may take at most
//! [`Budget::step`], so a hang fails the test in minutes, with its transcript (and the
//! hypervisor's debug-key dump, see [`Shell::run`]).

use std::time::{Duration, Instant};

use crate::{Error, LinuxDom0, Output, Pattern, Qemu, Running, Shell, re, scaled};

/// The hypervisor command line: Dom0 with 512 MiB, the console on the PL011, no debug
/// messages (they would interleave with the shell's output).
pub const HYP_ARGS: &str =
    "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=info guest_loglvl=info";
/// Dom0's command line: xencommons, then the shell.
pub const SHELL_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=shell";
/// Dom0's prompt (busybox may send a cursor position query after it).
pub const PROMPT: &str = r"dom0:\S*# (\x1b\[6n)?$";
/// A DomU's prompt on its console (`xl create -c`, `xl console`).
pub const DOMU_PROMPT: &str = r"domu:\S*# (\x1b\[6n)?$";
/// Where xenconsoled logs DomU consoles (`--log=guest`).
pub const CONSOLE_LOG_DIR: &str = "/var/log/xen/console";

/// A deadline shared by the expectations of one test (unscaled time, scaled when asked).
pub struct Budget {
    start: Instant,
    total: Duration,
}

impl Budget {
    /// A budget of `total` (before `OXEN_TEST_TIMEOUT_SCALE`) starting now.
    pub fn start(total: Duration) -> Self {
        Self {
            start: Instant::now(),
            total,
        }
    }

    /// What is left, but at most 300 s: for one interactive step, so that a lost keystroke
    /// or a hang fails the test soon instead of at the budget's end.
    pub fn step(&self) -> Duration {
        self.left().min(Duration::from_secs(300))
    }

    /// What is left of the whole budget.
    pub fn left(&self) -> Duration {
        let scale = scaled(Duration::from_secs(1)).as_secs_f64();
        self.total
            .saturating_sub(self.start.elapsed().div_f64(scale))
            .max(Duration::from_millis(10))
    }
}

/// Console lines that mean the Linux kernel went wrong (besides the harness's defaults:
/// `(oxen) ERROR`, `WARNING`, `panic`, `domain dN crashed`).
pub fn linux_forbidden() -> Vec<Pattern> {
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
    ]
}

/// [`linux_forbidden`] plus what means Dom0's `/init`, xencommons or a DomU's `/init`
/// failed.
pub fn shell_forbidden() -> Vec<Pattern> {
    let mut v = linux_forbidden();
    v.extend([
        re(r"^dom0: modprobe \S+ failed"),
        Pattern::from("xenfs not mounted"),
        Pattern::from("dom0: shell exited"),
        re(r"^xencommons: error"),
        re(r"^dom0: xencommons rc=[^0]"),
        re(r"^domu: \S+ failed"),
        Pattern::from("domu: shell exited"),
        Pattern::from("poweroff -f returned"),
    ]);
    v
}

/// Boot oxen with Debian's Linux as Dom0 on GIC `gic` (hypervisor options [`HYP_ARGS`]),
/// [`shell_forbidden`] armed; wait until xencommons has started xenstored and
/// xenconsoled and the shell runs.
pub fn boot(gic: u8, b: &Budget) -> Result<Running, Error> {
    let dom0 = LinuxDom0::from_cache()?;
    let mut q = Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .memory_mib(2048)
        .append(HYP_ARGS)
        .linux_dom0(&dom0, SHELL_ARGS)?;
    for p in shell_forbidden() {
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

/// `poweroff` in Dom0's shell: Linux powers down and QEMU exits with status 0.
pub fn power_off(sh: &mut Shell<'_>, b: &Budget) -> Result<(), Error> {
    let q = sh.running();
    q.send("poweroff\r")?;
    q.expect("reboot: Power down", b.left())?;
    q.expect_exit_code(0, b.left())
}

/// Run `cmd` in Dom0's shell, requiring status 0.
pub fn ok(sh: &mut Shell<'_>, cmd: &str, b: &Budget) -> Result<Output, Error> {
    let out = sh.run(cmd, b.step())?;
    assert_eq!(out.status, 0, "command failed:\n{out}");
    Ok(out)
}

/// `xl info`'s free_memory (MiB).
pub fn free_memory(sh: &mut Shell<'_>, b: &Budget) -> Result<u64, Error> {
    let out = ok(sh, "xl info", b)?;
    let v = out
        .value("free_memory")
        .and_then(|v| v.trim_start_matches([' ', ':']).trim().parse().ok());
    Ok(v.unwrap_or_else(|| panic!("no free_memory in xl info:\n{out}")))
}

/// The rows of `xl list` after its header (which must be xl's), Domain-0 (2 vCPUs) first.
pub fn xl_list(sh: &mut Shell<'_>, b: &Budget) -> Result<Vec<String>, Error> {
    xl_list_dom0_vcpus(sh, 2, b)
}

/// [`xl_list`] for a Dom0 with `vcpus` vCPUs (`dom0_max_vcpus=`).
pub fn xl_list_dom0_vcpus(
    sh: &mut Shell<'_>,
    vcpus: u32,
    b: &Budget,
) -> Result<Vec<String>, Error> {
    let out = ok(sh, "xl list", b)?;
    let header = re(r"^Name\s+ID\s+Mem\s+VCPUs\s+State\s+Time\(s\)$");
    assert!(
        out.lines.first().is_some_and(|l| header.matches(l)),
        "xl list header is not xl's:\n{out}"
    );
    let dom0 = re(&format!(
        r"^Domain-0\s+0\s+\d+\s+{vcpus}\s+[-rbpsc]{{6}}\s+\d+\.\d$"
    ));
    assert!(
        out.lines.get(1).is_some_and(|l| dom0.matches(l)),
        "xl list has no Domain-0 row:\n{out}"
    );
    Ok(out.lines[1..].to_vec())
}

/// Write `/tmp/<name>.cfg`: the image's `/etc/xen/domu-plain.cfg` renamed `name`, with `args`
/// added to the DomU's kernel command line; returns its path.
pub fn domu_cfg(sh: &mut Shell<'_>, name: &str, args: &str, b: &Budget) -> Result<String, Error> {
    let path = format!("/tmp/{name}.cfg");
    ok(
        sh,
        &format!(
            "sed -e 's/^name = .*/name = \"{name}\"/' -e 's|rdinit=/init|& {args}|' /etc/xen/domu-plain.cfg > {path}"
        ),
        b,
    )?;
    Ok(path)
}

/// Wait up to 30 s until `xl list` shows Domain-0 only: a destroyed domain stays listed as
/// dying until its last pages are unmapped, and `xl shutdown -w` returns before the
/// domain's monitor destroys it, as on Xen. Returns nothing; callers check the list.
pub fn wait_only_dom0_listed(sh: &mut Shell<'_>, b: &Budget) -> Result<(), Error> {
    ok(
        sh,
        "i=0; while [ $(xl list | wc -l) -gt 2 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done",
        b,
    )
    .map(drop)
}

/// Assert that `xl info`'s free_memory comes back to `free` MiB within 30 s (a destroyed
/// domain's pages return once its last references go).
pub fn assert_free_memory_back(sh: &mut Shell<'_>, free: u64, b: &Budget) -> Result<(), Error> {
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

/// Assert that no DomU and nothing of one is left in Dom0: only Domain-0 listed (after up
/// to 30 s), no `/local/domain/<n>` but 0, no vbd/vif nodes, no loop device bound to a file
/// (blkback lets go a moment after its backend closed: up to 20 s), no `vif*` interface,
/// and `xl info`'s free_memory back to `free` MiB.
pub fn assert_nothing_left(sh: &mut Shell<'_>, free: u64, b: &Budget) -> Result<(), Error> {
    wait_only_dom0_listed(sh, b)?;
    let out = ok(sh, "xl list | tail -n +2 | cut -d' ' -f1", b)?;
    assert_eq!(out.lines, ["Domain-0"], "domains left over:\n{out}");
    let out = ok(sh, "xenstore-list /local/domain", b)?;
    assert_eq!(out.lines, ["0"], "xenstore nodes left over:\n{out}");
    let out = ok(sh, "xenstore-ls -f / | grep -E '/(vbd|vif)( |/)'; true", b)?;
    assert!(out.lines.is_empty(), "device nodes left over:\n{out}");
    let out = ok(
        sh,
        "i=0; while [ -n \"$(cat /sys/block/loop*/loop/backing_file 2>/dev/null)\" ] && [ $i -lt 20 ]; do sleep 1; i=$((i+1)); done; cat /sys/block/loop*/loop/backing_file 2>/dev/null; losetup -a; ls /sys/class/net | grep '^vif'; true",
        b,
    )?;
    assert!(
        out.lines.is_empty(),
        "loop devices or vifs left over:\n{out}"
    );
    assert_free_memory_back(sh, free, b)
}

/// Wait (polling every second, up to `secs` guest seconds) until the DomU console log `log`
/// has a line containing `pattern` (a fixed string); return the log's `DOMU-INIT`,
/// `domu: ...` and `evtchn-ping: ...` lines (carriage returns removed). Fails the test when
/// the pattern did not come.
pub fn wait_domu_log(
    sh: &mut Shell<'_>,
    log: &str,
    pattern: &str,
    secs: u32,
    b: &Budget,
) -> Result<Vec<String>, Error> {
    let out = sh.run(
        &format!(
            "i=0; while ! grep -aqF '{pattern}' {log} 2>/dev/null && [ $i -lt {secs} ]; do sleep 1; i=$((i+1)); done; grep -aE '^(DOMU-INIT|domu: |evtchn-ping: )' {log} | tr -d '\\r'; grep -aqF '{pattern}' {log}"
        ),
        b.left(),
    )?;
    assert_eq!(
        out.status, 0,
        "no '{pattern}' in {log} after {secs} s:\n{out}"
    );
    Ok(out.lines)
}

/// The value of the first `domu: <key>=<value>` line of `lines`; fails the test without one.
pub fn domu_value<'a>(lines: &'a [String], key: &str) -> &'a str {
    let prefix = format!("domu: {key}=");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in the DomU's console: {lines:?}"))
}
