//! The BCM2835/BCM2711 power-management block's watchdog: how a Raspberry Pi
//! resets or halts (Linux `drivers/watchdog/bcm2835_wdt.c`, Xen
//! `xen/arch/arm/platforms/brcm-raspberry-pi.c`). Every write carries the
//! 0x5a password in bits 31:24. On QEMU `raspi4b` (`bcm2835_powermgt.c`) the
//! reset ends the run (exit status 0 under `-no-reboot`), and a reset with
//! the "halt" partition in `RSTS` (0x555, as Linux's `poweroff` writes) is a
//! shutdown.

use core::ptr::{read_volatile, write_volatile};

const PASSWORD: u32 = 0x5a00_0000;
/// Reset control.
const RSTC: usize = 0x1c;
/// Reset status (boot partition; 0x555 = halt).
const RSTS: usize = 0x20;
/// Watchdog timeout (16 µs ticks).
const WDOG: usize = 0x24;
const RSTC_WRCFG_CLR: u32 = 0xffff_ffcf;
const RSTC_WRCFG_FULL_RESET: u32 = 0x20;
const RSTS_HALT: u32 = 0x555;

/// Read one PM register.
///
/// # Safety
/// `base` is the identity-mapped PM block, owned by the hypervisor.
unsafe fn read(base: u64, off: usize) -> u32 {
    // SAFETY: per the caller's contract; `off` is a PM register.
    unsafe { read_volatile((base as usize + off) as *const u32) }
}

/// Write one PM register.
///
/// # Safety
/// As [`read`].
unsafe fn write(base: u64, off: usize, v: u32) {
    // SAFETY: per the caller's contract; `off` is a PM register.
    unsafe { write_volatile((base as usize + off) as *mut u32, v) }
}

/// Reset the machine through the watchdog (fires after ~160 µs).
///
/// # Safety
/// `base` is the PM block named by the board's `power-device`, which Dom0
/// does not see.
pub unsafe fn reset(base: u64) {
    // SAFETY: per this function's contract.
    unsafe {
        write(base, WDOG, PASSWORD | 10);
        let rstc = read(base, RSTC) & RSTC_WRCFG_CLR;
        write(base, RSTC, PASSWORD | rstc | RSTC_WRCFG_FULL_RESET);
    }
}

/// Halt: mark the "halt" partition in `RSTS`, then reset (the firmware then
/// stays halted; QEMU shuts down).
///
/// # Safety
/// As [`reset`].
pub unsafe fn power_off(base: u64) {
    // SAFETY: per this function's contract.
    unsafe {
        let rsts = read(base, RSTS) & !0xfff;
        write(base, RSTS, PASSWORD | rsts | RSTS_HALT);
        reset(base);
    }
}
