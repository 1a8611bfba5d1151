//! Physical interrupts taken by the hypervisor: its own (timer tick, the
//! "kick" SGI between CPUs, the vGIC maintenance interrupt, console input),
//! the running vCPU's virtual timer, and device interrupts (SPIs) owned by
//! Dom0, which are forwarded to its virtual GIC.
//!
//! The host GIC runs with split priority drop and deactivation (EOImode 1):
//! interrupts the hypervisor consumes are dropped and deactivated here;
//! Dom0's SPIs are only dropped — they reach Dom0 through a hardware-mapped
//! list register, and Dom0's own EOI deactivates the physical interrupt, so
//! a level-triggered device cannot storm before its driver has run.

use core::sync::atomic::{AtomicU32, Ordering};

use oxen_types::DomId;

use crate::arch::{gic, sysreg, timer};
use crate::{console, domain, sched, vgic};

/// SGI used to make another CPU reschedule.
pub const SGI_KICK: u32 = 0;
/// Sentinel for "no such interrupt".
const NONE: u32 = u32::MAX;

static HYP_TIMER: AtomicU32 = AtomicU32::new(26);
static VIRT_TIMER: AtomicU32 = AtomicU32::new(27);
static MAINTENANCE: AtomicU32 = AtomicU32::new(NONE);
static UART_IRQ: AtomicU32 = AtomicU32::new(NONE);

/// The interrupts oxen uses, from the device tree.
pub struct IrqConfig {
    /// EL2 physical timer PPI (scheduler tick).
    pub hyp_timer: u32,
    /// EL1 virtual timer PPI (guests' timer).
    pub virt_timer: u32,
    /// vGIC maintenance PPI.
    pub maintenance: Option<u32>,
    /// Console UART SPI (input), if known.
    pub uart: Option<u32>,
}

/// Record the interrupt numbers (boot CPU, before any CPU enables them).
pub fn configure(c: &IrqConfig) {
    HYP_TIMER.store(c.hyp_timer, Ordering::Relaxed);
    VIRT_TIMER.store(c.virt_timer, Ordering::Relaxed);
    MAINTENANCE.store(c.maintenance.unwrap_or(NONE), Ordering::Relaxed);
    UART_IRQ.store(c.uart.unwrap_or(NONE), Ordering::Relaxed);
}

/// Enable this CPU's private interrupts.
pub fn init_cpu(cpu: usize) {
    gic::enable_private(cpu, HYP_TIMER.load(Ordering::Relaxed));
    gic::enable_private(cpu, VIRT_TIMER.load(Ordering::Relaxed));
    gic::enable_private(cpu, SGI_KICK);
    let m = MAINTENANCE.load(Ordering::Relaxed);
    if m != NONE {
        gic::enable_private(cpu, m);
    }
}

/// Send the reschedule SGI to `cpu`.
pub fn send_kick(cpu: usize, mpidr: u64) {
    gic::send_sgi(cpu, mpidr, SGI_KICK);
}

/// The console UART's interrupt, if the hypervisor takes console input by
/// interrupt.
pub fn uart_irq() -> Option<u32> {
    let u = UART_IRQ.load(Ordering::Relaxed);
    (u != NONE).then_some(u)
}

/// Acknowledge and handle every pending interrupt on this CPU; returns how
/// many there were.
pub fn handle_pending(cpu: usize) -> u32 {
    let mut n = 0u32;
    while let Some(id) = gic::ack() {
        n += 1;
        if n == 10_000 {
            log::error!("CPU{cpu}: interrupt {id} keeps firing");
        }
        if id >= 32 && Some(id) != uart_irq() {
            forward_spi(id);
            continue;
        }
        if id == HYP_TIMER.load(Ordering::Relaxed) {
            timer::disarm();
            sched::request_resched(cpu);
        } else if id == SGI_KICK {
            sched::kicked(cpu);
        } else if id == VIRT_TIMER.load(Ordering::Relaxed) {
            virt_timer_fired();
        } else if id == MAINTENANCE.load(Ordering::Relaxed) {
            // The maintenance interrupt is a level that stays high while its
            // condition holds: drop the request; the LRs are refilled (and
            // the request renewed if still needed) on the way back in.
            // With the interface disabled (En = 0) no maintenance interrupt
            // is signalled, whatever caused it (underflow, EOI of an LR
            // marked for it).
            vgic::maintenance();
        } else if Some(id) == uart_irq() {
            console::input_interrupt();
        } else {
            log::debug!("CPU{cpu}: unexpected interrupt {id}");
        }
        gic::eoi(id);
    }
    n
}

/// The running vCPU's virtual timer fired: mask it in the guest's own
/// CNTV_CTL (the guest unmasks it when it programs the next event, as Linux
/// does) and make the virtual timer PPI pending for that vCPU.
///
/// Only if the loaded timer really fired (enabled, condition met, not
/// masked): the PPI may have been raised by the previous vCPU's timer just
/// before it was switched out, and masking the new vCPU's timer for it
/// would silence that timer until its guest happens to reprogram it.
fn virt_timer_fired() {
    const CNTV_ENABLE: u64 = 1 << 0;
    const CNTV_IMASK: u64 = 1 << 1;
    const CNTV_ISTATUS: u64 = 1 << 2;
    let ctl = sysreg::cntv_ctl_el0();
    if ctl & (CNTV_ENABLE | CNTV_IMASK | CNTV_ISTATUS) != CNTV_ENABLE | CNTV_ISTATUS {
        return;
    }
    // SAFETY: masking the loaded vCPU's own timer output, which it observes
    // and controls; nothing else depends on it.
    unsafe { sysreg::set_cntv_ctl_el0(ctl | CNTV_IMASK) };
    if let Some((dom, vcpu)) = sched::current() {
        vgic::inject(&dom, VIRT_TIMER.load(Ordering::Relaxed), Some(vcpu));
    }
}

/// A device interrupt: Dom0 owns every SPI the hypervisor does not use.
fn forward_spi(id: u32) {
    gic::priority_drop(id);
    match domain::get(DomId::DOM0) {
        Some(d0) if d0.is_alive() => vgic::inject(&d0, id, None),
        _ => {
            gic::deactivate(id);
            gic::disable_spi(id);
            log::debug!("SPI {id} with no Dom0 to take it: disabled");
        }
    }
}
