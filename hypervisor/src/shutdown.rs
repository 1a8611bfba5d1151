//! Domain shutdown and crash, powering the machine off when Dom0 goes
//! (as Xen does) or when the last domain of a Dom0-less machine is gone,
//! and ending the boot on a fatal error ([`fatal`], Xen's `panic()`).
//!
//! A domain that shuts down stops running and stays listed with its reason
//! until the toolstack destroys it (`xl` applies `on_poweroff` & co.); Dom0
//! hears of it through `VIRQ_DOM_EXC`. Without a Dom0 nobody could destroy
//! it, so it is destroyed at once.
//!
//! A fatal boot error (Dom0 cannot be built, no domain at all) is one
//! `(oxen) fatal: <why>: <what to do>` line, then as Xen after a panic:
//! "Reboot in five seconds..." and a reset the board's way, or with Xen's
//! `noreboot` option "Manual reset required ('noreboot' specified)" and a
//! halt (PSCI SYSTEM_OFF or the board's power-off, then a WFI loop, as
//! Xen's `machine_halt`). Only the boot CPU runs at that point.

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::hypercall::ShutdownReason;

use crate::arch::{sysreg, timer};
use crate::board;
use crate::domain::{self, Domain};
use crate::{console, sched};

/// Xen's `noreboot`: halt instead of rebooting after a fatal error.
static NOREBOOT: AtomicBool = AtomicBool::new(false);
/// The boot CPU's GIC and timer interrupt are set up: a delay may sleep in
/// WFI until the EL2 timer fires instead of spinning.
static TIMER_IRQ_READY: AtomicBool = AtomicBool::new(false);
/// Xen waits this long after a panic before it resets the machine.
const REBOOT_DELAY_NS: u64 = 5_000_000_000;

/// Record Xen's `noreboot` option (from the command line).
pub fn set_noreboot(on: bool) {
    NOREBOOT.store(on, Ordering::Relaxed);
}

/// The boot CPU's EL2 timer interrupt can wake it from WFI from now on.
pub fn timer_irq_ready() {
    TIMER_IRQ_READY.store(true, Ordering::Release);
}

/// End the boot: say why in one line, then reboot in five seconds or, with
/// `noreboot`, halt (see the module docs). Boot CPU only.
pub fn fatal(why: core::fmt::Arguments<'_>) -> ! {
    console::print(format_args!("(oxen) fatal: {why}\n"));
    if NOREBOOT.load(Ordering::Relaxed) {
        console::print(format_args!(
            "(oxen) Manual reset required ('noreboot' specified)\n"
        ));
        machine_halt()
    }
    console::print(format_args!("(oxen) Reboot in five seconds...\n"));
    delay(REBOOT_DELAY_NS);
    machine_reset()
}

/// Wait `ns` of counter time: asleep in WFI with the EL2 timer armed once
/// its interrupt is set up (QEMU's `-icount sleep=off` then skips ahead),
/// spinning on the counter before that.
fn delay(ns: u64) {
    let deadline = timer::now().saturating_add(timer::ns_to_ticks(ns));
    let sleep = TIMER_IRQ_READY.load(Ordering::Acquire);
    if sleep {
        timer::arm_at(deadline);
    }
    while timer::now() < deadline {
        if sleep {
            sysreg::wfi();
        } else {
            core::hint::spin_loop();
        }
    }
    timer::disarm();
}

/// Halt as Xen's `machine_halt`: power off the board's way (QEMU exits),
/// else stop here.
fn machine_halt() -> ! {
    log::info!("halting");
    board::power_off();
    crate::arch::head::park()
}

/// The domain stops itself (sched_op shutdown, PSCI SYSTEM_OFF/RESET), or
/// Dom0 stops it (`remote_shutdown`).
pub fn domain_shutdown(dom: &Arc<Domain>, reason: ShutdownReason) {
    dom.console.lock().flush_if_pending(dom.id.0);
    if !dom.mark_shutdown(reason as u8) {
        return;
    }
    log::info!("{}: shutdown ({})", dom.id, reason.name());
    after_shutdown(dom, reason);
}

/// The hypervisor stops a misbehaving domain; `why` has already been logged.
pub fn domain_crash(dom: &Arc<Domain>) {
    dom.console.lock().flush_if_pending(dom.id.0);
    if !dom.mark_shutdown(ShutdownReason::Crash as u8) {
        return;
    }
    after_shutdown(dom, ShutdownReason::Crash);
}

fn after_shutdown(dom: &Arc<Domain>, reason: ShutdownReason) {
    sched::kick_all();
    if dom.is_dom0 {
        match reason {
            ShutdownReason::Reboot => machine_reset(),
            ShutdownReason::Poweroff => machine_off(),
            _ => {
                log::info!("Dom0 {}: rebooting the machine", reason.name());
                machine_reset();
            }
        }
    }
    let dom0 = domain::get(oxen_types::DomId::DOM0);
    if dom0.is_some() {
        domain::notify_dom0_exc();
        return;
    }
    domain::destroy(dom);
    if domain::alive_count() == 0 {
        log::info!("no domain left: powering off");
        machine_off();
    }
}

/// Power the machine off the board's way (PSCI SYSTEM_OFF, the Pi's PM
/// watchdog). QEMU exits with status 0.
pub fn machine_off() -> ! {
    crate::trap::log_exit_stats();
    sched::log_stats();
    log::info!("powering off");
    board::power_off();
    crate::arch::head::park()
}

/// Reset the machine the board's way (PSCI SYSTEM_RESET, the Pi's PM
/// watchdog).
pub fn machine_reset() -> ! {
    log::info!("rebooting");
    board::reset();
    crate::arch::head::park()
}
