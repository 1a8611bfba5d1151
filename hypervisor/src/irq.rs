//! Physical interrupts taken by the hypervisor: its timer tick and the
//! "kick" SGI one CPU sends another to make it reschedule.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::{gic, timer};
use crate::sched;

/// SGI used to make another CPU reschedule.
pub const SGI_KICK: u32 = 0;

static HYP_TIMER_INTID: AtomicU32 = AtomicU32::new(26);

/// Set the EL2 timer's INTID (from the device tree) and enable our
/// interrupts on this CPU.
pub fn init_cpu(cpu: usize, hyp_timer_intid: u32) {
    HYP_TIMER_INTID.store(hyp_timer_intid, Ordering::Relaxed);
    gic::enable_private(cpu, hyp_timer_intid);
    gic::enable_private(cpu, SGI_KICK);
}

/// Send the reschedule SGI to `cpu`.
pub fn send_kick(cpu: usize, mpidr: u64) {
    gic::send_sgi(cpu, mpidr, SGI_KICK);
}

/// Acknowledge and handle every pending interrupt on this CPU.
pub fn handle_pending(cpu: usize) {
    let timer_id = HYP_TIMER_INTID.load(Ordering::Relaxed);
    while let Some(id) = gic::ack() {
        if id == timer_id {
            timer::disarm();
            sched::request_resched(cpu);
        } else if id == SGI_KICK {
            sched::request_resched(cpu);
        } else {
            log::debug!("CPU{cpu}: unexpected interrupt {id}");
        }
        gic::eoi(id);
    }
}
