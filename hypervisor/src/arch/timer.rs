//! The EL2 physical timer (CNTHP_*), used for scheduler ticks, and the
//! timer controls oxen sets up for guests (CNTHCTL_EL2).

use aarch64_cpu::registers::CNTHCTL_EL2;
use tock_registers::interfaces::Writeable;

use super::sysreg;

/// CNTHP_CTL_EL2.ENABLE.
const CTL_ENABLE: u64 = 1 << 0;

/// Counter frequency in Hz.
pub fn freq() -> u64 {
    sysreg::cntfrq_el0().max(1)
}

/// The physical count.
pub fn now() -> u64 {
    sysreg::isb();
    sysreg::cntpct_el0()
}

/// Convert nanoseconds to counter ticks.
pub fn ns_to_ticks(ns: u64) -> u64 {
    match whole_ns_per_tick() {
        Some(k) => ns / k,
        None => ((u128::from(ns) * u128::from(freq())) / 1_000_000_000) as u64,
    }
}

/// Convert counter ticks to nanoseconds.
pub fn ticks_to_ns(t: u64) -> u64 {
    match whole_ns_per_tick() {
        Some(k) => t.saturating_mul(k),
        None => ((u128::from(t) * 1_000_000_000) / u128::from(freq())) as u64,
    }
}

/// Nanoseconds per tick when the counter runs at a whole number of them
/// (QEMU's 62.5 MHz: 16), so the conversions on the scheduler's paths need
/// no 128-bit division.
fn whole_ns_per_tick() -> Option<u64> {
    let f = freq();
    (1_000_000_000 % f == 0).then_some(1_000_000_000 / f)
}

/// Fire the EL2 timer interrupt at absolute count `deadline`.
pub fn arm_at(deadline: u64) {
    // SAFETY: programming this CPU's EL2 timer only affects its interrupts.
    unsafe {
        sysreg::set_cnthp_cval_el2(deadline);
        sysreg::set_cnthp_ctl_el2(CTL_ENABLE);
    }
    sysreg::isb();
}

/// Stop the EL2 timer.
pub fn disarm() {
    // SAFETY: as in arm_at.
    unsafe { sysreg::set_cnthp_ctl_el2(0) };
}

/// Per-CPU guest timer controls: EL1 may read the physical counter
/// (CNTPCT_EL0) but its physical *timer* traps (guests use the virtual one).
pub fn init_cpu() {
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::CLEAR);
    // SAFETY: the virtual counter is offset by nothing: guests see the
    // physical count, as on Xen.
    unsafe { sysreg::set_cntvoff_el2(0) };
    disarm();
}
