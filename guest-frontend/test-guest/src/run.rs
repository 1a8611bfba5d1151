//! The scenario runner: reads the DTB, prints `TEST-GUEST <name> start`,
//! then performs the scenario (docs/design.md "Test guest scenarios").
//!
//! Every line goes out through `console_io` (one hypercall per line). Lines
//! beyond the ones design.md lists only appear when something unexpected
//! happens (an access that should have been stopped returned, a shutdown
//! failed) so that tests see why.

use core::fmt::{self, Write};

use oxen_types::Ipa;
use xen_guest::dt::GuestDt;
use xen_guest::{Console, Hvc, Hypercall, ShutdownReason};

use crate::rt;
use crate::scenario::{self, Scenario};

/// Delay between `tick` lines of the `count` scenario.
const TICK_MS: u64 = 100;
/// What `touch` writes ("OXEN" in ASCII).
const TOUCH_VALUE: u32 = 0x4f58_454e;

/// Print one line through `console_io`.
pub(crate) fn line(args: fmt::Arguments<'_>) {
    let mut h = Hvc;
    let mut c = Console::new(&mut h);
    let _ = c.write_fmt(args);
    let _ = c.write_str("\n");
}

macro_rules! say {
    ($($t:tt)*) => { line(format_args!($($t)*)) };
}

/// Shut the domain down with `reason` and never come back. If the
/// hypervisor refuses a poweroff, PSCI SYSTEM_OFF is tried as well.
fn finish(reason: ShutdownReason) -> ! {
    let mut h = Hvc;
    if let Err(e) = xen_guest::sched_shutdown(&mut h, reason) {
        say!(
            "TEST-GUEST shutdown({}) failed: {}",
            reason.name(),
            e.name()
        );
        if reason == ShutdownReason::Poweroff {
            let e = xen_guest::psci_system_off(&mut h);
            say!("TEST-GUEST PSCI SYSTEM_OFF failed: {e}");
        }
    }
    rt::halt()
}

/// Report an error and crash.
pub(crate) fn fail(what: fmt::Arguments<'_>) -> ! {
    say!("TEST-GUEST error: {what}");
    finish(ShutdownReason::Crash)
}

/// Busy-wait `ms` milliseconds on the virtual counter.
fn delay_ms(ms: u64) {
    let ticks = rt::counter_freq().saturating_mul(ms) / 1000;
    let start = rt::counter();
    while rt::counter().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Entered from the boot code with the DTB's IPA; never returns.
pub extern "C" fn rust_main(dtb: usize) -> ! {
    let Some(blob) = rt::dtb(dtb) else {
        fail(format_args!("no valid DTB at {dtb:#x}"))
    };
    let dt = match GuestDt::new(blob) {
        Ok(dt) => dt,
        Err(e) => fail(format_args!("DTB at {dtb:#x}: {e}")),
    };
    let cmdline = dt.bootargs().unwrap_or("");
    let name = match scenario::name(cmdline) {
        Ok(n) => n,
        Err(e) => fail(format_args!("{e}")),
    };
    say!("TEST-GUEST {name} start");
    match scenario::parse(cmdline) {
        Ok(s) => run(s, &dt),
        Err(e) => fail(format_args!("{e}")),
    }
}

fn run(s: Scenario, dt: &GuestDt<'_>) -> ! {
    match s {
        Scenario::Hello => {
            say!("hello from test guest");
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Count(n) => {
            let mut i = 0u64;
            while n.is_none_or(|n| i < n) {
                say!("tick {i}");
                i += 1;
                if n.is_none_or(|n| i < n) {
                    delay_ms(TICK_MS);
                }
            }
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Oob => {
            let end: Ipa = match dt.ram_end() {
                Ok(e) => e,
                Err(e) => fail(format_args!("{e}")),
            };
            // SAFETY: `end` is the first byte past RAM: no Rust object lives
            // there, and a fault is what the scenario is for.
            let v = unsafe { rt::read_u8(end.as_u64()) };
            say!("read {end} = {v:#x}");
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Touch(addr) => {
            if addr.is_multiple_of(4) {
                // SAFETY: the tester chose `addr` as a target outside this
                // guest's own memory; a fault is what the scenario is for.
                unsafe { rt::write_u32(addr, TOUCH_VALUE) };
            } else {
                // SAFETY: as above (a byte store, as the address is unaligned).
                unsafe { rt::write_u8(addr, TOUCH_VALUE as u8) };
            }
            say!("wrote {addr:#x}");
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Gicd(addr) => {
            if !addr.is_multiple_of(4) {
                fail(format_args!("oxen.addr={addr:#x} is not 4-byte aligned"));
            }
            // SAFETY: a 32-bit read of a GIC distributor register has no side
            // effects; if the address is not mapped the fault is the test.
            let v = unsafe { rt::read_u32(addr) };
            say!("GICD_TYPER {addr:#x} = {v:#x}");
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Ldp(addr) => {
            if !addr.is_multiple_of(8) {
                fail(format_args!("oxen.addr={addr:#x} is not 8-byte aligned"));
            }
            // SAFETY: a pair load from a device register block; a fault is the test.
            let (a, b) = unsafe { rt::read_pair_u32(addr) };
            say!("ldp {addr:#x} = {a:#x} {b:#x}");
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Work {
            report_ms,
            stop_ms,
            busy_us,
            idle_us,
        } => work(report_ms, stop_ms, busy_us.zip(idle_us)),
        Scenario::Spin => loop {
            core::hint::spin_loop();
        },
        Scenario::Enosys => {
            // SAFETY: hypercall 63 is unassigned in Xen; all arguments are 0,
            // so no memory is named even if a hypervisor implements it.
            let ret = unsafe { Hvc.hypercall(63, [0; 5]) };
            say!("hypercall 63 returned {ret}");
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Crash => finish(ShutdownReason::Crash),
        Scenario::Vgic(g) => {
            crate::vgic::run(g);
            finish(ShutdownReason::Poweroff)
        }
        Scenario::CpuFeatures => {
            cpu_features();
            finish(ShutdownReason::Poweroff)
        }
        Scenario::Hostile { seed, calls, peer } => {
            crate::hostile_run::run(dt, seed, calls, peer);
            finish(ShutdownReason::Poweroff)
        }
    }
}

/// Print one probe: `cpufeatures: <what> = <value>` if the instruction
/// ran, `cpufeatures: <what> undefined (ESR <esr>)` if it was UNDEFINED.
fn probe(what: &str, r: Result<u64, u64>) {
    match r {
        Ok(v) => say!("cpufeatures: {what} = {v:#x}"),
        Err(esr) => say!("cpufeatures: {what} undefined (ESR {esr:#x})"),
    }
}

/// The `cpufeatures` scenario (docs/design.md "Test guest scenarios").
/// Generic encodings (`s3_0_c0_c4_0` is `ID_AA64PFR0_EL1`) need no
/// assembler feature flags.
fn cpu_features() {
    probe("ID_AA64PFR0_EL1", rt::try_insn!("mrs {v}, s3_0_c0_c4_0"));
    probe("ID_AA64PFR1_EL1", rt::try_insn!("mrs {v}, s3_0_c0_c4_1"));
    probe("ID_AA64ZFR0_EL1", rt::try_insn!("mrs {v}, s3_0_c0_c4_4"));
    probe("ID_AA64SMFR0_EL1", rt::try_insn!("mrs {v}, s3_0_c0_c4_5"));
    probe("ID_AA64ISAR1_EL1", rt::try_insn!("mrs {v}, s3_0_c0_c6_1"));
    // The ID registers are read-only.
    probe(
        "write ID_AA64PFR0_EL1",
        rt::try_insn!("msr s3_0_c0_c4_0, {v}"),
    );
    // With CPACR_EL1 letting SVE and SME through, only EL2 stops them.
    rt::enable_sve_sme_at_el1();
    probe("ZCR_EL1", rt::try_insn!("mrs {v}, s3_0_c1_c2_0"));
    // rdvl x0, #1
    probe("RDVL", rt::try_insn!(".inst 0x04bf5020" => x0));
    probe("SMCR_EL1", rt::try_insn!("mrs {v}, s3_0_c1_c2_6"));
}

/// Iterations between looks at the counter in the `work` scenario.
const WORK_CHUNK: u64 = 1000;

/// The `work` scenario: count loop iterations, print `work <ms> <n>` at
/// every `report_ms` boundary of counter time, power off at `stop_ms`.
/// With `duty = (busy µs, idle µs)`, alternate working and sleeping (WFI
/// with the virtual timer armed for the end of the sleep), and after each
/// report print `lat <ms> <max µs> <sleeps>`: the largest wake-up latency
/// (counter past the timer deadline when the guest runs again) and the
/// number of sleeps since the previous report.
fn work(report_ms: u64, stop_ms: Option<u64>, duty: Option<(u64, u64)>) -> ! {
    let f = rt::counter_freq();
    let ms = |t: u64| t / (f / 1000).max(1);
    let period = f.saturating_mul(report_ms) / 1000;
    let mut n = 0u64;
    let mut next = (rt::counter() / period + 1) * period;
    let mut phase_end = duty.map(|(b, _)| rt::counter() + f * b / 1_000_000);
    // Wake-up latency of the sleeps (counter ticks past the deadline):
    // the largest since the last report, and how many sleeps that took.
    let (mut lat_max, mut sleeps) = (0u64, 0u64);
    loop {
        for _ in 0..WORK_CHUNK {
            n = core::hint::black_box(n + 1);
        }
        let now = rt::counter();
        if now >= next {
            say!("work {} {n}", ms(now));
            if duty.is_some() {
                say!("lat {} {} {sleeps}", ms(now), lat_max * 1_000_000 / f);
                (lat_max, sleeps) = (0, 0);
            }
            next = (now / period + 1) * period;
            if stop_ms.is_some_and(|s| ms(now) >= s) {
                finish(ShutdownReason::Poweroff)
            }
        }
        if let (Some((busy, idle)), Some(end)) = (duty, phase_end)
            && now >= end
        {
            let wake = now + f * idle / 1_000_000;
            rt::sleep_until(wake);
            let woke = rt::counter();
            lat_max = lat_max.max(woke.saturating_sub(wake));
            sleeps += 1;
            phase_end = Some(woke + f * busy / 1_000_000);
        }
    }
}
