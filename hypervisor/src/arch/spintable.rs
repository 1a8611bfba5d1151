//! Starting a CPU through a spin table (`enable-method = "spin-table"`):
//! the CPU waits with its MMU and caches off in a `wfe` loop reading its
//! `cpu-release-addr` until that holds an entry point (the Raspberry Pi
//! firmware's armstub and QEMU raspi's boot stub do this).

use core::arch::asm;

use super::mmu;

/// Store `entry` (a physical address) at `release_addr`, push it to the
/// point of coherency and wake the waiting CPU.
///
/// # Safety
/// `release_addr` is the 8-byte-aligned `cpu-release-addr` the device tree
/// gives for that CPU (RAM the firmware reserved, identity mapped), and
/// `entry` is where that CPU may start.
pub unsafe fn release(release_addr: u64, entry: u64) {
    // SAFETY: per this function's contract the address is the spin table
    // slot, which nothing else in oxen uses.
    unsafe { core::ptr::write_volatile(release_addr as *mut u64, entry) };
    mmu::clean_inval_dcache_range(release_addr, 8);
    // SAFETY: an event to the waiting CPUs; no memory effects.
    unsafe { asm!("sev", options(nomem, nostack, preserves_flags)) };
}
