//! The host's CPU identification registers, read once to build what guests
//! see (`oxen_trap::idreg` decides; this module only reads).
//!
//! Registers `aarch64-cpu` defines are read through it; the others (the
//! AArch32 feature registers, `ID_AA64ZFR0_EL1`, ...) by their generic
//! encoding `S3_0_C0_C<m>_<op2>`, which also needs no assembler feature
//! flag (`+sve`) for the SVE/SME ones.

use aarch64_cpu::registers::{
    ID_AA64AFR0_EL1, ID_AA64AFR1_EL1, ID_AA64DFR0_EL1, ID_AA64DFR1_EL1, ID_AA64ISAR0_EL1,
    ID_AA64ISAR1_EL1, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, ID_AA64MMFR2_EL1, ID_AA64PFR0_EL1,
    ID_AA64PFR1_EL1,
};
use core::arch::asm;
use oxen_trap::sysreg as key;
use tock_registers::interfaces::Readable;

/// Read the ID register op0 3, op1 0, CRn 0, CRm `CRM`, op2 `OP2`.
#[inline(always)]
fn id_reg<const CRM: u32, const OP2: u32>() -> u64 {
    let v: u64;
    // SAFETY: reading a register of the ID space (op0 3, op1 0, CRn 0,
    // CRm 1-7) at EL2 has no side effect; every encoding there is defined
    // on Armv8 (read-as-zero where the CPU has no such register).
    unsafe {
        asm!(
            "mrs {v}, s3_0_c0_c{crm}_{op2}",
            v = out(reg) v,
            crm = const CRM,
            op2 = const OP2,
            options(nomem, nostack, preserves_flags)
        )
    };
    v
}

/// This CPU's value of ID register `key` (a key of
/// `oxen_trap::idreg::HOST_REGS`); 0 for any other key.
pub fn host_id_reg(k: u32) -> u64 {
    match k {
        key::ID_PFR0_EL1 => id_reg::<1, 0>(),
        key::ID_PFR1_EL1 => id_reg::<1, 1>(),
        key::ID_DFR0_EL1 => id_reg::<1, 2>(),
        key::ID_AFR0_EL1 => id_reg::<1, 3>(),
        key::ID_MMFR0_EL1 => id_reg::<1, 4>(),
        key::ID_MMFR1_EL1 => id_reg::<1, 5>(),
        key::ID_MMFR2_EL1 => id_reg::<1, 6>(),
        key::ID_MMFR3_EL1 => id_reg::<1, 7>(),
        key::ID_ISAR0_EL1 => id_reg::<2, 0>(),
        key::ID_ISAR1_EL1 => id_reg::<2, 1>(),
        key::ID_ISAR2_EL1 => id_reg::<2, 2>(),
        key::ID_ISAR3_EL1 => id_reg::<2, 3>(),
        key::ID_ISAR4_EL1 => id_reg::<2, 4>(),
        key::ID_ISAR5_EL1 => id_reg::<2, 5>(),
        key::ID_MMFR4_EL1 => id_reg::<2, 6>(),
        key::ID_ISAR6_EL1 => id_reg::<2, 7>(),
        key::MVFR0_EL1 => id_reg::<3, 0>(),
        key::MVFR1_EL1 => id_reg::<3, 1>(),
        key::MVFR2_EL1 => id_reg::<3, 2>(),
        key::ID_PFR2_EL1 => id_reg::<3, 4>(),
        key::ID_DFR1_EL1 => id_reg::<3, 5>(),
        key::ID_MMFR5_EL1 => id_reg::<3, 6>(),
        key::ID_AA64PFR0_EL1 => ID_AA64PFR0_EL1.get(),
        key::ID_AA64PFR1_EL1 => ID_AA64PFR1_EL1.get(),
        key::ID_AA64ZFR0_EL1 => id_reg::<4, 4>(),
        key::ID_AA64SMFR0_EL1 => id_reg::<4, 5>(),
        key::ID_AA64DFR0_EL1 => ID_AA64DFR0_EL1.get(),
        key::ID_AA64DFR1_EL1 => ID_AA64DFR1_EL1.get(),
        key::ID_AA64AFR0_EL1 => ID_AA64AFR0_EL1.get(),
        key::ID_AA64AFR1_EL1 => ID_AA64AFR1_EL1.get(),
        key::ID_AA64ISAR0_EL1 => ID_AA64ISAR0_EL1.get(),
        key::ID_AA64ISAR1_EL1 => ID_AA64ISAR1_EL1.get(),
        key::ID_AA64ISAR2_EL1 => id_reg::<6, 2>(),
        key::ID_AA64MMFR0_EL1 => ID_AA64MMFR0_EL1.get(),
        key::ID_AA64MMFR1_EL1 => ID_AA64MMFR1_EL1.get(),
        key::ID_AA64MMFR2_EL1 => ID_AA64MMFR2_EL1.get(),
        _ => 0,
    }
}

/// Whether this CPU implements the activity monitors (`ID_AA64PFR0_EL1.AMU`),
/// so that `CPTR_EL2.TAM` exists.
pub fn has_amu() -> bool {
    ID_AA64PFR0_EL1.read(ID_AA64PFR0_EL1::AMU) != 0
}
