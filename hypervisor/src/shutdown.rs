//! Domain shutdown and crash, and powering the machine off when Dom0 goes
//! (as Xen does) or when the last domain of a Dom0-less machine is gone.
//!
//! A domain that shuts down stops running and stays listed with its reason
//! until the toolstack destroys it (`xl` applies `on_poweroff` & co.); Dom0
//! hears of it through `VIRQ_DOM_EXC`. Without a Dom0 nobody could destroy
//! it, so it is destroyed at once.

extern crate alloc;

use alloc::sync::Arc;

use xen_abi::hypercall::ShutdownReason;

use crate::board;
use crate::domain::{self, Domain};
use crate::sched;

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
