//! A vCPU's EL1 system-register and FP/SIMD state, saved and restored on
//! every world switch (the general-purpose registers travel in the trap frame).

use core::arch::asm;

use super::sysreg as r;

/// Guest EL1 state that is not in the trap frame.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct El1Context {
    pub sctlr: u64,
    pub ttbr0: u64,
    pub ttbr1: u64,
    pub tcr: u64,
    pub mair: u64,
    pub amair: u64,
    pub esr: u64,
    pub far: u64,
    pub afsr0: u64,
    pub afsr1: u64,
    pub par: u64,
    pub vbar: u64,
    pub contextidr: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
    pub tpidr_el1: u64,
    pub sp_el0: u64,
    pub sp_el1: u64,
    pub elr_el1: u64,
    pub spsr_el1: u64,
    pub cpacr: u64,
    pub cntkctl: u64,
    pub csselr: u64,
    pub mdscr: u64,
    pub cntv_ctl: u64,
    pub cntv_cval: u64,
    pub vmpidr: u64,
}

/// FP/SIMD registers: q0..q31, FPCR, FPSR.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct FpContext {
    pub q: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

/// SCTLR_EL1 at reset for a guest: MMU and caches off, RES1 bits set
/// (bits 29, 28, 23, 22, 20, 11 of the Armv8.0 layout).
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

impl El1Context {
    /// The EL1 state a fresh vCPU starts with.
    pub fn reset(vmpidr: u64) -> Self {
        Self {
            sctlr: SCTLR_EL1_RESET,
            vmpidr,
            ..Self::default()
        }
    }

    /// Capture the live EL1 registers.
    pub fn save(&mut self) {
        self.sctlr = r::sctlr_el1();
        self.ttbr0 = r::ttbr0_el1();
        self.ttbr1 = r::ttbr1_el1();
        self.tcr = r::tcr_el1();
        self.mair = r::mair_el1();
        self.amair = r::amair_el1();
        self.esr = r::esr_el1();
        self.far = r::far_el1();
        self.afsr0 = r::afsr0_el1();
        self.afsr1 = r::afsr1_el1();
        self.par = r::par_el1();
        self.vbar = r::vbar_el1();
        self.contextidr = r::contextidr_el1();
        self.tpidr_el0 = r::tpidr_el0();
        self.tpidrro_el0 = r::tpidrro_el0();
        self.tpidr_el1 = r::tpidr_el1();
        self.sp_el0 = r::sp_el0();
        self.sp_el1 = r::sp_el1();
        self.elr_el1 = r::elr_el1();
        self.spsr_el1 = r::spsr_el1();
        self.cpacr = r::cpacr_el1();
        self.cntkctl = r::cntkctl_el1();
        self.csselr = r::csselr_el1();
        self.mdscr = r::mdscr_el1();
        self.cntv_ctl = r::cntv_ctl_el0();
        self.cntv_cval = r::cntv_cval_el0();
        self.vmpidr = r::vmpidr_el2();
    }

    /// Load this state into the EL1 registers.
    ///
    /// # Safety
    /// Only while switching to the vCPU that owns this state (its stage 2
    /// is, or is about to be, loaded).
    pub unsafe fn restore(&self) {
        // SAFETY: per this function's contract; EL1 registers do not affect EL2.
        unsafe {
            r::set_sctlr_el1(self.sctlr);
            r::set_ttbr0_el1(self.ttbr0);
            r::set_ttbr1_el1(self.ttbr1);
            r::set_tcr_el1(self.tcr);
            r::set_mair_el1(self.mair);
            r::set_amair_el1(self.amair);
            r::set_esr_el1(self.esr);
            r::set_far_el1(self.far);
            r::set_afsr0_el1(self.afsr0);
            r::set_afsr1_el1(self.afsr1);
            r::set_par_el1(self.par);
            r::set_vbar_el1(self.vbar);
            r::set_contextidr_el1(self.contextidr);
            r::set_tpidr_el0(self.tpidr_el0);
            r::set_tpidrro_el0(self.tpidrro_el0);
            r::set_tpidr_el1(self.tpidr_el1);
            r::set_sp_el0(self.sp_el0);
            r::set_sp_el1(self.sp_el1);
            r::set_elr_el1(self.elr_el1);
            r::set_spsr_el1(self.spsr_el1);
            r::set_cpacr_el1(self.cpacr);
            r::set_cntkctl_el1(self.cntkctl);
            r::set_csselr_el1(self.csselr);
            r::set_mdscr_el1(self.mdscr);
            r::set_cntv_cval_el0(self.cntv_cval);
            r::set_cntv_ctl_el0(self.cntv_ctl);
            r::set_vmpidr_el2(self.vmpidr);
        }
    }
}

impl FpContext {
    /// Capture the live FP/SIMD registers. The hypervisor itself never
    /// touches them (it is built soft-float), so they hold the guest's values.
    pub fn save(&mut self) {
        let p = self as *mut Self;
        // SAFETY: stores 32 × 16 bytes + 16 bytes into `self`, which is
        // 16-aligned and large enough (repr(C): q first, then fpcr, fpsr).
        unsafe {
            asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "stp q0, q1, [{p}, #0]", "stp q2, q3, [{p}, #32]",
                "stp q4, q5, [{p}, #64]", "stp q6, q7, [{p}, #96]",
                "stp q8, q9, [{p}, #128]", "stp q10, q11, [{p}, #160]",
                "stp q12, q13, [{p}, #192]", "stp q14, q15, [{p}, #224]",
                "stp q16, q17, [{p}, #256]", "stp q18, q19, [{p}, #288]",
                "stp q20, q21, [{p}, #320]", "stp q22, q23, [{p}, #352]",
                "stp q24, q25, [{p}, #384]", "stp q26, q27, [{p}, #416]",
                "stp q28, q29, [{p}, #448]", "stp q30, q31, [{p}, #480]",
                "mrs {t}, fpcr", "str {t}, [{p}, #512]",
                "mrs {t}, fpsr", "str {t}, [{p}, #520]",
                p = in(reg) p, t = out(reg) _, options(nostack));
        }
    }

    /// Load these FP/SIMD registers.
    pub fn restore(&self) {
        let p = self as *const Self;
        // SAFETY: loads from `self` (layout as in save); FP registers are
        // guest state the hypervisor does not use.
        unsafe {
            asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "ldp q0, q1, [{p}, #0]", "ldp q2, q3, [{p}, #32]",
                "ldp q4, q5, [{p}, #64]", "ldp q6, q7, [{p}, #96]",
                "ldp q8, q9, [{p}, #128]", "ldp q10, q11, [{p}, #160]",
                "ldp q12, q13, [{p}, #192]", "ldp q14, q15, [{p}, #224]",
                "ldp q16, q17, [{p}, #256]", "ldp q18, q19, [{p}, #288]",
                "ldp q20, q21, [{p}, #320]", "ldp q22, q23, [{p}, #352]",
                "ldp q24, q25, [{p}, #384]", "ldp q26, q27, [{p}, #416]",
                "ldp q28, q29, [{p}, #448]", "ldp q30, q31, [{p}, #480]",
                "ldr {t}, [{p}, #512]", "msr fpcr, {t}",
                "ldr {t}, [{p}, #520]", "msr fpsr, {t}",
                p = in(reg) p, t = out(reg) _, options(nostack));
        }
    }
}

const _: () = assert!(core::mem::offset_of!(FpContext, fpcr) == 512);
