//! Trap decoding: ESR classes, data-abort syndromes, SMCCC/PSCI calls,
//! crash-report text and the guest view of the ID registers.
//!
//! Why a separate crate: everything the hypervisor learns about a trap comes
//! from a handful of 64-bit register values (`ESR_EL2`, `FAR_EL2`,
//! `HPFAR_EL2`, `SPSR_EL2` and the guest's GPRs). Decoding them is pure bit
//! arithmetic, so it lives here, away from the registers, and is unit-tested
//! on the host. The `arch` layer of the hypervisor reads the registers and
//! hands the raw values to the functions below.
//!
//! Invariants:
//! * No function touches a register, and none can panic on any input: every
//!   `u64` a guest can put into a syndrome or a GPR decodes to *something*
//!   (unknown encodings become `Other(..)`/`Unknown { .. }` variants).
//! * Field positions are named constants, each citing the Arm Architecture
//!   Reference Manual (DDI 0487) by register and by the heading of its ISS
//!   encoding. Headings are cited rather than section numbers because the
//!   numbers move between releases of the manual.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod esr;
mod fault;
pub mod idreg;
pub mod mmio;
pub mod psci;
mod report;
pub mod smccc;
pub mod sysreg;

pub use esr::{DataAbort, Esr, ExceptionClass, InstrAbort, Wfx};
pub use fault::{FaultStatus, fault_ipa, stage2_fault_ipa};
pub use report::{Pstate, TrapReport, spsr_mode_name};
pub use sysreg::SysRegAccess;

#[cfg(test)]
mod tests;
