//! Linux Dom0 tests: boot Debian's stock arm64 kernel (6.1) as Dom0 on oxen with the
//! busybox initramfs of `make dom0` and check what its `/init` (`qemu/dom0/init.sh`) and
//! the kernel print, as the "Linux Dom0" issue asks.
//!
//! Machine: QEMU virt, `-smp 2`, 2048 MiB, GICv2 or GICv3; hypervisor command line
//! [`HYP_ARGS`] (Xen's options; oxen accepts the same), Dom0 with 512 MiB and all CPUs,
//! loaded as `make run` does. Three Linux boots in all:
//!
//! * `oxen.dom0=check` on GICv2 and on GICv3: the kernel finds Xen 4.17, sets up grant
//!   tables (v1 layout) and event channels (2-level or FIFO ABI: Linux 6.1 prints which
//!   one it got; oxen offers 2-level, Xen FIFO), brings up both vCPUs; `/init` sees
//!   `/proc/xen/capabilities` = `control_d`, `/dev/xen/{evtchn,privcmd,gntdev}`, 2 CPUs,
//!   about 512 MiB; `evtchn-ping` does 10,000 event-channel round trips; Dom0 powers off and
//!   QEMU exits 0.
//! * `oxen.dom0=shell`: typed input reaches the busybox shell (`echo oxen-$((40+2))`
//!   answers `oxen-42`) and `poweroff` typed there ends QEMU with status 0.
//!
//! Any oxen warning or error, Linux oops/BUG/WARN/panic/call trace/stall, or failure line
//! of `/init` anywhere on the console fails the test.
//!
//! Timeouts: [`BUDGET`] per test (scaled by `OXEN_TEST_TIMEOUT_SCALE`) shared by all its
//! expectations. Under TCG Linux boots in 5–30 s and the ping-pong may take minutes on a
//! busy host; nothing here asserts a wall-clock figure.
//!
//! Validating the expectations against real Xen 4.17 (same QEMU command, only `-kernel`
//! differs): `OXEN_TEST_HYPERVISOR=.cache/xen/root/boot/xen-4.17-arm64 cargo test -p
//! oxen-tests --test dom0_linux`. None of Xen's normal `(XEN)` lines matches a forbidden
//! pattern (checked with GICv2 and GICv3), so the list is the same, strict one for both.

use oxen_tests::dom0shell::{self, Budget, PROMPT, SHELL_ARGS};
use oxen_tests::{Error, LinuxDom0, Pattern, Qemu, Running, re};
use std::time::Duration;

/// The hypervisor command line (as `qemu/bench.sh`; Xen needs the console options).
const HYP_ARGS: &str =
    "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all";
/// Dom0's command line for the `check` scenario.
const CHECK_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=check oxen.ping=10000";
/// Round trips `evtchn-ping` must complete.
const PING_ROUNDS: u32 = 10_000;
/// Time allowed for one whole test, before scaling.
const BUDGET: Duration = Duration::from_secs(600);

/// Console lines that mean Linux or `/init` went wrong (besides the harness's defaults:
/// `(oxen) ERROR`, `WARNING` — which covers `(oxen) WARNING` and Linux's `WARNING: CPU` —,
/// `panic`, `domain dN crashed`): the kernel's, then `/init`'s and evtchn-ping's.
fn linux_forbidden() -> Vec<Pattern> {
    let mut v = dom0shell::linux_forbidden();
    v.extend([
        re(r"^dom0: modprobe \S+ failed"),
        Pattern::from("xenfs not mounted"),
        Pattern::from("poweroff -f returned"),
        Pattern::from("dom0: unknown scenario"),
        Pattern::from("dom0: shell exited"),
        re(r"^evtchn-ping: error"),
        re(r"^dom0: evtchn-ping rc=[^0]"),
    ]);
    v
}

/// oxen (or `OXEN_TEST_HYPERVISOR`) with Debian's Linux as Dom0 running `bootargs`.
fn linux_dom0(gic: u8, bootargs: &str) -> Result<Qemu, Error> {
    let dom0 = LinuxDom0::from_cache()?;
    let mut q = Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .memory_mib(2048)
        .append(HYP_ARGS)
        .linux_dom0(&dom0, bootargs)?;
    for p in linux_forbidden() {
        q = q.forbid(p);
    }
    Ok(q)
}

/// The comma-separated list after `prefix` in `line`.
fn list_after<'a>(line: &'a str, prefix: &str) -> Vec<&'a str> {
    line.strip_prefix(prefix)
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .collect()
}

/// The kernel's boot up to `/init`: Xen found, grant tables, event channels, both vCPUs.
fn expect_xen_linux_boot(q: &mut Running, b: &Budget) -> Result<(), Error> {
    q.expect(re(r"Booting Linux on physical CPU 0x0+ "), b.left())?;
    q.expect("Xen 4.17 support found", b.left())?;
    q.expect(
        "xen:grant_table: Grant tables using version 1 layout",
        b.left(),
    )?;
    q.expect(re(r"xen:events: Using (2-level|FIFO-based) ABI$"), b.left())?;
    q.expect("smp: Brought up 1 node, 2 CPUs", b.left())?;
    q.expect(re("^OXEN-DOM0-INIT$"), b.left())?;
    q.expect(re("^dom0: hypervisor=xen$"), b.left())?;
    let modules = q.expect(re("^dom0: modules="), b.left())?;
    let loaded = list_after(&modules.text, "dom0: modules=");
    for m in ["xen-evtchn", "xen-privcmd", "xen-gntdev", "xenfs"] {
        assert!(loaded.contains(&m), "module {m} not loaded: {modules}");
    }
    q.expect(re("^dom0: capabilities=control_d$"), b.left())?;
    Ok(())
}

/// Boot with `oxen.dom0=check` on GIC version `gic` and check everything `/init` reports.
fn check_scenario(gic: u8) -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let mut q = linux_dom0(gic, CHECK_ARGS)?.spawn()?;
    expect_xen_linux_boot(&mut q, &b)?;
    q.expect(re("^dom0: scenario=check$"), b.left())?;
    q.expect(re("^dom0: nr_cpus=2$"), b.left())?;

    let mem = q.expect(re(r"^dom0: mem_total_kb=\d+$"), b.left())?;
    let kb: u64 = mem.text["dom0: mem_total_kb=".len()..].parse().unwrap();
    assert!(
        (400 * 1024..=512 * 1024).contains(&kb),
        "Dom0 should have dom0_mem=512M (MemTotal a little less): {mem}"
    );

    let devs = q.expect(re("^dom0: dev-xen="), b.left())?;
    let present = list_after(&devs.text, "dom0: dev-xen=");
    for d in ["evtchn", "privcmd", "gntdev"] {
        assert!(present.contains(&d), "/dev/xen/{d} missing: {devs}");
    }

    // `dmesg | grep -i xen`: the kernel log itself has the lines, not only the console.
    q.expect_all(
        &[
            re(r"^dom0-dmesg: \[ *\d+\.\d+\] Xen 4\.17 support found$"),
            re(r"^dom0-dmesg: .*xen:grant_table: Grant tables using version 1 layout$"),
            re(r"^dom0-dmesg: .*xen:events: Using (2-level|FIFO-based) ABI$"),
        ],
        b.left(),
    )?;

    q.expect(
        re(&format!(
            r"^evtchn-ping: {PING_ROUNDS} round trips, median [0-9.]+ us"
        )),
        b.left(),
    )?;
    q.expect(re("^dom0: evtchn-ping rc=0$"), b.left())?;
    q.expect(re("^dom0: check done$"), b.left())?;
    q.expect("reboot: Power down", b.left())?;
    q.expect_exit_code(0, b.left())
}

#[test]
fn gicv2_linux_dom0_finds_xen_and_pings_10000_event_channel_round_trips() -> Result<(), Error> {
    check_scenario(2)
}

#[test]
fn gicv3_linux_dom0_finds_xen_and_pings_10000_event_channel_round_trips() -> Result<(), Error> {
    check_scenario(3)
}

/// Typed input reaches Dom0's shell through the hypervisor's console, and `poweroff`
/// typed there ends QEMU cleanly.
#[test]
fn gicv3_linux_dom0_shell_answers_typed_input_and_powers_off() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let mut q = linux_dom0(3, SHELL_ARGS)?.spawn()?;
    expect_xen_linux_boot(&mut q, &b)?;
    q.expect(re("^dom0: starting shell"), b.left())?;
    q.expect_prompt(re(PROMPT), b.left())?;
    // Enter is a carriage return on a terminal.
    q.send("echo oxen-$((40+2))\r")?;
    q.expect(re(r"^(\x1b\[6n)?oxen-42$"), b.left())?;
    q.expect_prompt(re(PROMPT), b.left())?;
    q.send("poweroff\r")?;
    q.expect("reboot: Power down", b.left())?;
    q.expect_exit_code(0, b.left())
}
