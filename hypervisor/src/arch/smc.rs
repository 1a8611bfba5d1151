//! Calls to the firmware (PSCI over SMC) made by the hypervisor itself.

use core::arch::asm;

/// PSCI 0.2+ function ids used by oxen (DEN0022).
pub const PSCI_CPU_ON_64: u64 = 0xC400_0003;
/// PSCI SYSTEM_OFF.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// PSCI SYSTEM_RESET.
pub const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;

/// Issue an SMCCC call through `smc #0` (QEMU virt with virtualization=on and
/// no EL3 implements PSCI on the SMC conduit).
pub fn smc(fid: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let r: u64;
    // SAFETY: an SMCCC call; per SMCCC 1.1 only x0-x17 may be clobbered,
    // which we declare.
    unsafe {
        asm!("smc #0",
            inlateout("x0") fid => r, inlateout("x1") a1 => _, inlateout("x2") a2 => _,
            inlateout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
            out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack));
    }
    r as i64
}

/// Start a physical CPU at `entry` (a physical address) with x0 = `context`.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    smc(PSCI_CPU_ON_64, mpidr, entry, context)
}

/// Power the machine off. Returns only if the firmware refuses.
pub fn system_off() {
    smc(PSCI_SYSTEM_OFF, 0, 0, 0);
}

/// Reset the machine. Returns only if the firmware refuses.
pub fn system_reset() {
    smc(PSCI_SYSTEM_RESET, 0, 0, 0);
}
