//! Trapped system register accesses (EC 0x18) and sysreg keys.
//!
//! A key ([`key`]) packs `op0:op1:CRn:CRm:op2` into 16 bits in the order
//! they appear in bits \[20:5\] of the `MRS`/`MSR` instruction encoding, so
//! `SysRegAccess::encoding()` can be matched against the constants below:
//!
//! ```
//! use oxen_trap::{Esr, sysreg};
//! let esr = Esr(0x623a_3036); // MSR ICC_SGI1R_EL1, x1
//! match esr.sysreg().map(|a| a.encoding()) {
//!     Some(sysreg::ICC_SGI1R_EL1) => {}
//!     _ => unreachable!(),
//! }
//! ```
//!
//! Field positions: Arm ARM (DDI 0487), "ISS encoding for an exception from
//! MSR, MRS, or System instruction execution in AArch64 state". Register
//! encodings: each register's "Accessing ..." section in Arm ARM part D
//! (Generic Timer, ID and debug registers) and, for the `ICC_*` registers,
//! the GICv3/v4 architecture specification (IHI 0069), chapter "GIC System
//! register descriptions".

use core::fmt;

use crate::esr::RegName;

/// `ISS.Op0`, bits \[21:20\].
const ISS_OP0_SHIFT: u32 = 20;
/// Width mask of `ISS.Op0` (2 bits).
const ISS_OP0_MASK: u32 = 0x3;
/// `ISS.Op2`, bits \[19:17\].
const ISS_OP2_SHIFT: u32 = 17;
/// `ISS.Op1`, bits \[16:14\].
const ISS_OP1_SHIFT: u32 = 14;
/// Width mask of `ISS.Op1`/`ISS.Op2` (3 bits).
const ISS_OP12_MASK: u32 = 0x7;
/// `ISS.CRn`, bits \[13:10\].
const ISS_CRN_SHIFT: u32 = 10;
/// `ISS.Rt`, bits \[9:5\].
const ISS_RT_SHIFT: u32 = 5;
/// Width mask of `ISS.Rt` (5 bits).
const ISS_RT_MASK: u32 = 0x1f;
/// `ISS.CRm`, bits \[4:1\].
const ISS_CRM_SHIFT: u32 = 1;
/// Width mask of `ISS.CRn`/`ISS.CRm` (4 bits).
const ISS_CR_MASK: u32 = 0xf;
/// `ISS.Direction`, bit \[0\]: 1 = read (`MRS`/`SYSL`), 0 = write (`MSR`/`SYS`).
const ISS_DIR_READ: u32 = 1 << 0;

/// Key layout, as `MRS` bits \[20:5\]: op0 at \[15:14\], op1 \[13:11\],
/// CRn \[10:7\], CRm \[6:3\], op2 \[2:0\].
const KEY_OP0_SHIFT: u32 = 14;
const KEY_OP1_SHIFT: u32 = 11;
const KEY_CRN_SHIFT: u32 = 7;
const KEY_CRM_SHIFT: u32 = 3;

/// Pack a system register encoding into a match key (see module docs).
/// Out-of-range inputs are masked to their field widths.
pub const fn key(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> u32 {
    ((op0 as u32 & ISS_OP0_MASK) << KEY_OP0_SHIFT)
        | ((op1 as u32 & ISS_OP12_MASK) << KEY_OP1_SHIFT)
        | ((crn as u32 & ISS_CR_MASK) << KEY_CRN_SHIFT)
        | ((crm as u32 & ISS_CR_MASK) << KEY_CRM_SHIFT)
        | (op2 as u32 & ISS_OP12_MASK)
}

macro_rules! sysregs {
    ($($name:ident = ($op0:literal, $op1:literal, $crn:literal, $crm:literal, $op2:literal);)*) => {
        $(
            #[doc = concat!("Key of `", stringify!($name), "`: op0 ", stringify!($op0),
                ", op1 ", stringify!($op1), ", CRn ", stringify!($crn), ", CRm ",
                stringify!($crm), ", op2 ", stringify!($op2), ".")]
            pub const $name: u32 = key($op0, $op1, $crn, $crm, $op2);
        )*
        /// Every named key with its name, for [`name`].
        pub(crate) const NAMES: &[(u32, &str)] = &[$(($name, stringify!($name))),*];
    };
}

sysregs! {
    // GICv3 CPU interface (IHI 0069, "GIC System register descriptions").
    ICC_PMR_EL1 = (3, 0, 4, 6, 0);
    ICC_IAR0_EL1 = (3, 0, 12, 8, 0);
    ICC_EOIR0_EL1 = (3, 0, 12, 8, 1);
    ICC_HPPIR0_EL1 = (3, 0, 12, 8, 2);
    ICC_BPR0_EL1 = (3, 0, 12, 8, 3);
    ICC_AP0R0_EL1 = (3, 0, 12, 8, 4);
    ICC_AP1R0_EL1 = (3, 0, 12, 9, 0);
    ICC_DIR_EL1 = (3, 0, 12, 11, 1);
    ICC_RPR_EL1 = (3, 0, 12, 11, 3);
    ICC_SGI1R_EL1 = (3, 0, 12, 11, 5);
    ICC_ASGI1R_EL1 = (3, 0, 12, 11, 6);
    ICC_SGI0R_EL1 = (3, 0, 12, 11, 7);
    ICC_IAR1_EL1 = (3, 0, 12, 12, 0);
    ICC_EOIR1_EL1 = (3, 0, 12, 12, 1);
    ICC_HPPIR1_EL1 = (3, 0, 12, 12, 2);
    ICC_BPR1_EL1 = (3, 0, 12, 12, 3);
    ICC_CTLR_EL1 = (3, 0, 12, 12, 4);
    ICC_SRE_EL1 = (3, 0, 12, 12, 5);
    ICC_IGRPEN0_EL1 = (3, 0, 12, 12, 6);
    ICC_IGRPEN1_EL1 = (3, 0, 12, 12, 7);
    // Generic Timer (Arm ARM part D, "Generic Timer registers").
    CNTFRQ_EL0 = (3, 3, 14, 0, 0);
    CNTPCT_EL0 = (3, 3, 14, 0, 1);
    CNTVCT_EL0 = (3, 3, 14, 0, 2);
    CNTPCTSS_EL0 = (3, 3, 14, 0, 5);
    CNTVCTSS_EL0 = (3, 3, 14, 0, 6);
    CNTKCTL_EL1 = (3, 0, 14, 1, 0);
    CNTP_TVAL_EL0 = (3, 3, 14, 2, 0);
    CNTP_CTL_EL0 = (3, 3, 14, 2, 1);
    CNTP_CVAL_EL0 = (3, 3, 14, 2, 2);
    CNTV_TVAL_EL0 = (3, 3, 14, 3, 0);
    CNTV_CTL_EL0 = (3, 3, 14, 3, 1);
    CNTV_CVAL_EL0 = (3, 3, 14, 3, 2);
    // Identification (Arm ARM part D, "General system control registers").
    MIDR_EL1 = (3, 0, 0, 0, 0);
    MPIDR_EL1 = (3, 0, 0, 0, 5);
    REVIDR_EL1 = (3, 0, 0, 0, 6);
    // The AArch32 feature registers, as seen from AArch64 (trapped by HCR_EL2.TID3).
    ID_PFR0_EL1 = (3, 0, 0, 1, 0);
    ID_PFR1_EL1 = (3, 0, 0, 1, 1);
    ID_DFR0_EL1 = (3, 0, 0, 1, 2);
    ID_AFR0_EL1 = (3, 0, 0, 1, 3);
    ID_MMFR0_EL1 = (3, 0, 0, 1, 4);
    ID_MMFR1_EL1 = (3, 0, 0, 1, 5);
    ID_MMFR2_EL1 = (3, 0, 0, 1, 6);
    ID_MMFR3_EL1 = (3, 0, 0, 1, 7);
    ID_ISAR0_EL1 = (3, 0, 0, 2, 0);
    ID_ISAR1_EL1 = (3, 0, 0, 2, 1);
    ID_ISAR2_EL1 = (3, 0, 0, 2, 2);
    ID_ISAR3_EL1 = (3, 0, 0, 2, 3);
    ID_ISAR4_EL1 = (3, 0, 0, 2, 4);
    ID_ISAR5_EL1 = (3, 0, 0, 2, 5);
    ID_MMFR4_EL1 = (3, 0, 0, 2, 6);
    ID_ISAR6_EL1 = (3, 0, 0, 2, 7);
    MVFR0_EL1 = (3, 0, 0, 3, 0);
    MVFR1_EL1 = (3, 0, 0, 3, 1);
    MVFR2_EL1 = (3, 0, 0, 3, 2);
    ID_PFR2_EL1 = (3, 0, 0, 3, 4);
    ID_DFR1_EL1 = (3, 0, 0, 3, 5);
    ID_MMFR5_EL1 = (3, 0, 0, 3, 6);
    // The AArch64 feature registers.
    ID_AA64PFR0_EL1 = (3, 0, 0, 4, 0);
    ID_AA64PFR1_EL1 = (3, 0, 0, 4, 1);
    ID_AA64ZFR0_EL1 = (3, 0, 0, 4, 4);
    ID_AA64SMFR0_EL1 = (3, 0, 0, 4, 5);
    ID_AA64DFR0_EL1 = (3, 0, 0, 5, 0);
    ID_AA64DFR1_EL1 = (3, 0, 0, 5, 1);
    ID_AA64AFR0_EL1 = (3, 0, 0, 5, 4);
    ID_AA64AFR1_EL1 = (3, 0, 0, 5, 5);
    ID_AA64ISAR0_EL1 = (3, 0, 0, 6, 0);
    ID_AA64ISAR1_EL1 = (3, 0, 0, 6, 1);
    ID_AA64ISAR2_EL1 = (3, 0, 0, 6, 2);
    ID_AA64MMFR0_EL1 = (3, 0, 0, 7, 0);
    ID_AA64MMFR1_EL1 = (3, 0, 0, 7, 1);
    ID_AA64MMFR2_EL1 = (3, 0, 0, 7, 2);
    // Virtual-memory control, trapped by HCR_EL2.TVM/TRVM.
    SCTLR_EL1 = (3, 0, 1, 0, 0);
    ACTLR_EL1 = (3, 0, 1, 0, 1);
    TTBR0_EL1 = (3, 0, 2, 0, 0);
    TTBR1_EL1 = (3, 0, 2, 0, 1);
    TCR_EL1 = (3, 0, 2, 0, 2);
    AFSR0_EL1 = (3, 0, 5, 1, 0);
    AFSR1_EL1 = (3, 0, 5, 1, 1);
    ESR_EL1 = (3, 0, 5, 2, 0);
    FAR_EL1 = (3, 0, 6, 0, 0);
    MAIR_EL1 = (3, 0, 10, 2, 0);
    AMAIR_EL1 = (3, 0, 10, 3, 0);
    CONTEXTIDR_EL1 = (3, 0, 13, 0, 1);
    // Debug and PMU (trapped by MDCR_EL2).
    MDSCR_EL1 = (2, 0, 0, 2, 2);
    OSLAR_EL1 = (2, 0, 1, 0, 4);
    OSLSR_EL1 = (2, 0, 1, 1, 4);
    OSDLR_EL1 = (2, 0, 1, 3, 4);
    PMCR_EL0 = (3, 3, 9, 12, 0);
    PMUSERENR_EL0 = (3, 3, 9, 14, 0);
    // Set/way cache maintenance (op0 = 1), trapped by HCR_EL2.TSW.
    DC_ISW = (1, 0, 7, 6, 2);
    DC_CSW = (1, 0, 7, 10, 2);
    DC_CISW = (1, 0, 7, 14, 2);
}

/// The name of a key from the table above ("ICC_SGI1R_EL1"), if known.
pub fn name(key: u32) -> Option<&'static str> {
    NAMES.iter().find(|(k, _)| *k == key).map(|(_, n)| *n)
}

/// A decoded trapped `MSR`/`MRS`/system instruction (EC 0x18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    /// `Op0` (2 bits): 3 = system registers, 2 = debug, 1 = system instructions.
    pub op0: u8,
    /// `Op1` (3 bits).
    pub op1: u8,
    /// `CRn` (4 bits).
    pub crn: u8,
    /// `CRm` (4 bits).
    pub crm: u8,
    /// `Op2` (3 bits).
    pub op2: u8,
    /// `Rt`: the general-purpose register transferred; 31 = XZR.
    pub rt: u8,
    /// `Direction`: `true` for a read (`MRS`), `false` for a write (`MSR`).
    pub read: bool,
}

impl SysRegAccess {
    /// Decode the ISS of an EC 0x18 exception.
    pub fn from_iss(iss: u32) -> Self {
        SysRegAccess {
            op0: ((iss >> ISS_OP0_SHIFT) & ISS_OP0_MASK) as u8,
            op1: ((iss >> ISS_OP1_SHIFT) & ISS_OP12_MASK) as u8,
            crn: ((iss >> ISS_CRN_SHIFT) & ISS_CR_MASK) as u8,
            crm: ((iss >> ISS_CRM_SHIFT) & ISS_CR_MASK) as u8,
            op2: ((iss >> ISS_OP2_SHIFT) & ISS_OP12_MASK) as u8,
            rt: ((iss >> ISS_RT_SHIFT) & ISS_RT_MASK) as u8,
            read: iss & ISS_DIR_READ != 0,
        }
    }

    /// The key of the register accessed, comparable with this module's
    /// constants (e.g. [`ICC_SGI1R_EL1`]).
    pub fn encoding(&self) -> u32 {
        key(self.op0, self.op1, self.crn, self.crm, self.op2)
    }

    /// The register's name if it is in this module's table.
    pub fn name(&self) -> Option<&'static str> {
        name(self.encoding())
    }
}

/// Writes a register's name, or its generic `S<op0>_<op1>_C<n>_C<m>_<op2>` form.
struct SysRegName<'a>(&'a SysRegAccess);

impl fmt::Display for SysRegName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        match a.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "S{}_{}_C{}_C{}_{}", a.op0, a.op1, a.crn, a.crm, a.op2),
        }
    }
}

impl fmt::Display for SysRegAccess {
    /// `MRS x1, CNTP_CTL_EL0`, `MSR ICC_SGI1R_EL1, x2`, `SYS DC_ISW, x0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reg = RegName {
            reg: self.rt,
            sixty_four: true,
        };
        let name = SysRegName(self);
        let sys = self.op0 == 1;
        match (self.read, sys) {
            (true, false) => write!(f, "MRS {reg}, {name}"),
            (false, false) => write!(f, "MSR {name}, {reg}"),
            (true, true) => write!(f, "SYSL {reg}, {name}"),
            (false, true) => write!(f, "SYS {name}, {reg}"),
        }
    }
}
