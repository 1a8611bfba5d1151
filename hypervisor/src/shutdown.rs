//! Domain shutdown and crash, and powering the machine off when the last
//! domain (or Dom0) is gone — as Xen does when Dom0 shuts down.

extern crate alloc;

use alloc::sync::Arc;

use xen_abi::hypercall::ShutdownReason;

use crate::arch::smc;
use crate::domain::{self, Domain};
use crate::sched;

/// The domain stops itself (sched_op shutdown, PSCI SYSTEM_OFF/RESET).
pub fn domain_shutdown(dom: &Arc<Domain>, reason: ShutdownReason) {
    dom.console.lock().flush_if_pending(dom.id.0);
    if !dom.kill() {
        return;
    }
    log::info!("{}: shutdown ({})", dom.id, reason.name());
    after_death(dom, reason);
}

/// The hypervisor stops a misbehaving domain; `why` has already been logged.
pub fn domain_crash(dom: &Arc<Domain>) {
    dom.console.lock().flush_if_pending(dom.id.0);
    if !dom.kill() {
        return;
    }
    after_death(dom, ShutdownReason::Crash);
}

fn after_death(dom: &Arc<Domain>, reason: ShutdownReason) {
    // Release event channels and grant mappings (and the references they
    // hold on other domains), then tell Dom0 (VIRQ_DOM_EXC) as Xen does.
    crate::xen::domain_destroyed(dom);
    if !dom.is_dom0
        && let Some(d0) = domain::get(oxen_types::DomId::DOM0)
    {
        crate::xen::raise_virq(&d0, xen_abi::event_channel::VIRQ_DOM_EXC);
    }
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
    } else if domain::alive_count() == 0 {
        log::info!("no domain left: powering off");
        machine_off();
    }
}

/// Power the machine off (PSCI SYSTEM_OFF). QEMU exits with status 0.
pub fn machine_off() -> ! {
    crate::trap::log_exit_stats();
    log::info!("powering off");
    smc::system_off();
    crate::arch::head::park()
}

/// Reset the machine (PSCI SYSTEM_RESET).
pub fn machine_reset() -> ! {
    log::info!("rebooting");
    smc::system_reset();
    crate::arch::head::park()
}
