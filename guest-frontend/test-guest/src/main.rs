//! Bare-metal EL1 test guest for oxen.
//!
//! Booted like an arm64 Linux kernel (flat `Image` with header, x0 = DTB),
//! it reads `oxen.test=<name>` from `/chosen/bootargs` and runs one
//! scenario from docs/design.md "Test guest scenarios", printing through
//! Xen's `console_io` and ending with `sched_op(shutdown)`.
//!
//! Only the `aarch64-unknown-none` build is the guest (see `rt` for the
//! boot contract and `linker/test-guest.ld` for the layout); on the host
//! the crate compiles to an empty `main` so that workspace builds and the
//! unit tests of the scenario parser work.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod hostile;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)]
mod hostile_run;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod rt;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)]
mod run;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod scenario;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)]
mod vgic;

/// Host stub: the guest only runs bare-metal.
#[cfg(not(target_os = "none"))]
fn main() {}
