//! Guest side of the Xen ABI for oxen's bare-metal guests.
//!
//! Everything that talks to the hypervisor goes through the [`Hypercall`]
//! and [`Smccc`] traits: the typed wrappers ([`console_write`],
//! [`sched_shutdown`], [`psci_system_off`], ...) build the arguments, and the
//! conduit only executes the trap. On the bare-metal target the conduit is
//! [`Hvc`] (`hvc #0xEA1` for Xen hypercalls, `hvc #0` for SMCCC/PSCI); host
//! tests plug in a fake that records calls, so every wrapper's register
//! contract is checked without a hypervisor.
//!
//! The crate also parses what a guest gets at boot: the command line in
//! `/chosen/bootargs` ([`bootargs`]) and the RAM banks of its device tree
//! ([`dt`]).
//!
//! Invariants: pointer arguments are the guest's own *virtual* addresses of
//! live Rust objects; the bare-metal test guest runs with its MMU off, so
//! they equal its IPAs, which is what the hypervisor expects.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch;
pub mod bootargs;
pub mod dt;
pub mod hypercall;
pub mod psci;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use arch::Hvc;
pub use hypercall::{
    CONSOLE_CHUNK, Console, Hypercall, XenVersion, console_write, sched_shutdown, sched_yield,
    xen_version,
};
pub use psci::{PsciError, PsciVersion, Smccc, psci_system_off, psci_version};
pub use xen_abi::Errno;
pub use xen_abi::hypercall::ShutdownReason;
