//! oxen: a Type-1 hypervisor for arm64 that speaks Xen's guest ABI.
//!
//! This binary is the EL2 part: boot, the architecture layer (`arch`, the
//! only place with assembly, system registers and MMIO) and the wiring of
//! the host-tested libraries under `hypervisor/libs`. Built for
//! `aarch64-unknown-none-softfloat` so the hypervisor never touches the
//! FP/SIMD registers that belong to guests.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("oxen is a bare-metal binary: build it with `make build`");
}

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod debugkeys;
#[cfg(target_os = "none")]
mod domain;
#[cfg(target_os = "none")]
mod domain_build;
#[cfg(target_os = "none")]
mod guest_mem;
#[cfg(target_os = "none")]
mod hypercall;
#[cfg(target_os = "none")]
mod idregs;
#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
mod mem;
#[cfg(target_os = "none")]
mod sched;
#[cfg(target_os = "none")]
mod shutdown;
#[cfg(target_os = "none")]
mod sync;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod vgic;
#[cfg(target_os = "none")]
mod virq;
#[cfg(target_os = "none")]
mod vpsci;
#[cfg(target_os = "none")]
mod vuart;
#[cfg(target_os = "none")]
mod xen;

/// A broken hypervisor invariant: report it without taking locks and stop
/// this CPU (guests never reach here: their errors are handled).
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::emergency_print(format_args!(
        "\n(oxen) ERROR: hypervisor panic on CPU{}: {info}\n",
        arch::sysreg::tpidr_el2()
    ));
    arch::head::park()
}
