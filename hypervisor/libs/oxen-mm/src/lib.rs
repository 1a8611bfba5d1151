//! Memory management building blocks for oxen: a heap-free physical range
//! allocator ([`PhysAllocator`]) with the bank planning of 1:1 domain RAM
//! ([`BankRequest`]), the stage-2 translation table builder
//! ([`Stage2`], VMSAv8-64 with the 4 KiB granule) with its `VTCR_EL2`
//! configuration ([`Stage2Config`]), and descriptor helpers for the
//! hypervisor's own EL2 stage-1 identity map ([`el2`]).
//!
//! Why a separate crate: everything here is pure bookkeeping over numbers and
//! table pages, so it is host-testable. The hypervisor supplies the only
//! things that touch real memory — table page allocation and access — through
//! the [`TableMemory`] trait, and does the TLB maintenance itself.
//!
//! Arm architecture references are to the Arm Architecture Reference Manual
//! for A-profile (DDI 0487), chapter D8 (VMSAv8-64 translation table formats)
//! and chapter D23 (system register descriptions).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod banks;
pub mod el2;
mod phys;
mod stage2;
#[cfg(test)]
mod tests;

pub use banks::{BankError, BankRequest};
pub use phys::{AllocError, PhysAllocator};
pub use stage2::{MemType, MmError, S2Attrs, Stage2, Stage2Config, TableMemory};
