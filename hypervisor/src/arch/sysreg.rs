//! Raw system-register access for registers the hypervisor moves around as
//! opaque values (guest EL1 context, GIC virtual interface, timers).
//!
//! Registers with fields the hypervisor *configures* (HCR_EL2, SCTLR_EL2,
//! TCR_EL2, MAIR_EL2, CNTHCTL_EL2, …) are written through `aarch64-cpu`'s
//! typed fields in the modules that configure them; this module only holds
//! the `mrs`/`msr` plumbing for the rest. Reads are safe. Writes are `unsafe`
//! when they change translation or exception state, which is the case for
//! almost every register here, so all writes are `unsafe fn`s.

// Not every accessor is used yet; the set mirrors the architecture.
#![allow(dead_code)]

use core::arch::asm;

macro_rules! sysreg {
    ($read:ident, $write:ident, $name:literal) => {
        #[doc = concat!("Read `", $name, "`.")]
        #[inline(always)]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading this system register at EL2 has no side effects.
            unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }

        #[doc = concat!("Write `", $name, "`.")]
        ///
        /// # Safety
        /// The caller knows what the new value does to the current translation
        /// regime, exception handling or guest state.
        #[inline(always)]
        pub unsafe fn $write(v: u64) {
            // SAFETY: per this function's contract.
            unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

// Guest EL1 context (saved/restored on every vCPU switch).
/// Read `DCZID_EL0` (the `DC ZVA` block size; read-only, not in aarch64-cpu).
#[inline(always)]
pub fn dczid_el0() -> u64 {
    let v: u64;
    // SAFETY: reading an identification register has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

sysreg!(sctlr_el1, set_sctlr_el1, "sctlr_el1");
sysreg!(ttbr0_el1, set_ttbr0_el1, "ttbr0_el1");
sysreg!(ttbr1_el1, set_ttbr1_el1, "ttbr1_el1");
sysreg!(tcr_el1, set_tcr_el1, "tcr_el1");
sysreg!(mair_el1, set_mair_el1, "mair_el1");
sysreg!(amair_el1, set_amair_el1, "amair_el1");
sysreg!(esr_el1, set_esr_el1, "esr_el1");
sysreg!(far_el1, set_far_el1, "far_el1");
sysreg!(afsr0_el1, set_afsr0_el1, "afsr0_el1");
sysreg!(afsr1_el1, set_afsr1_el1, "afsr1_el1");
sysreg!(par_el1, set_par_el1, "par_el1");
sysreg!(vbar_el1, set_vbar_el1, "vbar_el1");
sysreg!(contextidr_el1, set_contextidr_el1, "contextidr_el1");
sysreg!(tpidr_el0, set_tpidr_el0, "tpidr_el0");
sysreg!(tpidrro_el0, set_tpidrro_el0, "tpidrro_el0");
sysreg!(tpidr_el1, set_tpidr_el1, "tpidr_el1");
sysreg!(sp_el0, set_sp_el0, "sp_el0");
sysreg!(sp_el1, set_sp_el1, "sp_el1");
sysreg!(elr_el1, set_elr_el1, "elr_el1");
sysreg!(spsr_el1, set_spsr_el1, "spsr_el1");
sysreg!(cpacr_el1, set_cpacr_el1, "cpacr_el1");
sysreg!(cntkctl_el1, set_cntkctl_el1, "cntkctl_el1");
sysreg!(csselr_el1, set_csselr_el1, "csselr_el1");
sysreg!(mdscr_el1, set_mdscr_el1, "mdscr_el1");
sysreg!(cntv_ctl_el0, set_cntv_ctl_el0, "cntv_ctl_el0");
sysreg!(cntv_cval_el0, set_cntv_cval_el0, "cntv_cval_el0");

// Per-vCPU / per-domain EL2 controls.
sysreg!(vmpidr_el2, set_vmpidr_el2, "vmpidr_el2");
sysreg!(vpidr_el2, set_vpidr_el2, "vpidr_el2");
sysreg!(vttbr_el2, set_vttbr_el2, "vttbr_el2");
sysreg!(vtcr_el2, set_vtcr_el2, "vtcr_el2");
sysreg!(hcr_el2, set_hcr_el2, "hcr_el2");
sysreg!(cntvoff_el2, set_cntvoff_el2, "cntvoff_el2");
sysreg!(cptr_el2, set_cptr_el2, "cptr_el2");
sysreg!(tpidr_el2, set_tpidr_el2, "tpidr_el2");

// Trap information.
sysreg!(esr_el2, set_esr_el2, "esr_el2");
sysreg!(far_el2, set_far_el2, "far_el2");
sysreg!(hpfar_el2, set_hpfar_el2, "hpfar_el2");

// Identification and time.
sysreg!(midr_el1, set_midr_el1_unused, "midr_el1");
sysreg!(mpidr_el1, set_mpidr_el1_unused, "mpidr_el1");
sysreg!(
    id_aa64mmfr0_el1,
    set_id_aa64mmfr0_unused,
    "id_aa64mmfr0_el1"
);
sysreg!(cntfrq_el0, set_cntfrq_el0_unused, "cntfrq_el0");
sysreg!(cntpct_el0, set_cntpct_el0_unused, "cntpct_el0");
sysreg!(cnthp_ctl_el2, set_cnthp_ctl_el2, "cnthp_ctl_el2");
sysreg!(cnthp_cval_el2, set_cnthp_cval_el2, "cnthp_cval_el2");

/// Instruction synchronization barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier has no effect besides ordering.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Full-system data synchronization barrier.
#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: a barrier has no effect besides ordering.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Inner-shareable data synchronization barrier.
#[inline(always)]
pub fn dsb_ish() {
    // SAFETY: a barrier has no effect besides ordering.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// Wait for an interrupt (IRQs stay masked at EL2: a pending one still wakes the CPU).
#[inline(always)]
pub fn wfi() {
    // SAFETY: waiting has no effect on memory.
    unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
}

/// Invalidate all stage-1 and stage-2 TLB entries of the VMID currently in
/// VTTBR_EL2, on every CPU of the inner-shareable domain.
///
/// # Safety
/// VTTBR_EL2 must hold the VMID whose entries are to be dropped.
pub unsafe fn tlbi_vmalls12e1is() {
    // SAFETY: per this function's contract.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Invalidate all EL2 stage-1 TLB entries on this CPU.
///
/// # Safety
/// Only called while changing the hypervisor's own page tables.
pub unsafe fn tlbi_alle2() {
    // SAFETY: per this function's contract.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi alle2",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Translate a guest virtual address through the guest's current stage 1 and
/// stage 2 (`AT S12E1R`/`AT S12E1W`), returning the raw PAR_EL1 result.
/// The guest's own PAR_EL1 is preserved.
///
/// # Safety
/// The guest whose translation is wanted must be the one loaded (its EL1
/// registers and VTTBR_EL2).
pub unsafe fn at_s12e1(va: u64, write: bool) -> u64 {
    let saved = par_el1();
    // SAFETY: AT only writes PAR_EL1, which is restored below.
    unsafe {
        if write {
            asm!("at s12e1w, {}", in(reg) va, options(nostack, preserves_flags));
        } else {
            asm!("at s12e1r, {}", in(reg) va, options(nostack, preserves_flags));
        }
    }
    isb();
    let par = par_el1();
    // SAFETY: restoring the guest's value.
    unsafe { set_par_el1(saved) };
    par
}
