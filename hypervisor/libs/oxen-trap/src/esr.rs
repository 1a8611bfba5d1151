//! `ESR_EL2` decoding: exception class, instruction length and the ISS
//! encodings the hypervisor acts on (aborts, HVC/SMC, WFx, system register
//! traps).
//!
//! Source: Arm ARM (DDI 0487), register description "ESR_EL2, Exception
//! Syndrome Register (EL2)" and its sub-sections "ISS encoding for an
//! exception from ...". The same layout is shared by `ESR_EL1`/`ESR_EL3`.

use core::fmt;

use crate::fault::FaultStatus;
use crate::sysreg::SysRegAccess;

// ---- ESR_EL2 top-level fields ("ESR_EL2, Exception Syndrome Register") ----

/// `ESR_EL2.EC`, bits \[31:26\]: exception class.
const EC_SHIFT: u32 = 26;
/// Width mask of `ESR_EL2.EC` (6 bits).
const EC_MASK: u64 = 0x3f;
/// `ESR_EL2.IL`, bit \[25\]: 1 = trapped instruction was 32 bits, 0 = 16 bits.
const IL_BIT: u64 = 1 << 25;
/// `ESR_EL2.ISS`, bits \[24:0\]: instruction specific syndrome.
const ISS_MASK: u64 = (1 << 25) - 1;

// ---- "ISS encoding for an exception from HVC or SVC instruction execution" /
// ---- "... from SMC instruction execution in AArch64 state" ----

/// `ISS.imm16`, bits \[15:0\]: the immediate of `HVC #imm` / `SMC #imm`.
const IMM16_MASK: u32 = 0xffff;

// ---- "ISS encoding for an exception from a WF* instruction" ----

/// `ISS.TI`, bits \[1:0\]: 0b00 WFI, 0b01 WFE, 0b10 WFIT, 0b11 WFET.
/// Bit 0 alone tells WFI-like (0) from WFE-like (1).
const WFX_TI_WFE_BIT: u32 = 1 << 0;
/// `ISS.TI` bit 1: the instruction was a timed variant (WFIT/WFET, FEAT_WFxT).
const WFX_TI_TIMED_BIT: u32 = 1 << 1;

// ---- "ISS encoding for an exception from a Data Abort" (DA) and
// ---- "ISS encoding for an exception from an Instruction Abort" (IA) ----

/// DA `ISS.ISV`, bit \[24\]: bits \[23:14\] hold a valid instruction syndrome.
const DA_ISV: u32 = 1 << 24;
/// DA `ISS.SAS`, bits \[23:22\]: access size, log2 of bytes (0 = byte .. 3 = doubleword).
const DA_SAS_SHIFT: u32 = 22;
/// Width mask of DA `ISS.SAS` (2 bits).
const DA_SAS_MASK: u32 = 0x3;
/// DA `ISS.SSE`, bit \[21\]: the load sign-extends.
const DA_SSE: u32 = 1 << 21;
/// DA `ISS.SRT`, bits \[20:16\]: transfer register Xt/Wt (31 = XZR/WZR).
const DA_SRT_SHIFT: u32 = 16;
/// Width mask of DA `ISS.SRT` (5 bits).
const DA_SRT_MASK: u32 = 0x1f;
/// DA `ISS.SF`, bit \[15\]: the transfer register is 64-bit (Xt) rather than Wt.
const DA_SF: u32 = 1 << 15;
/// DA `ISS.AR`, bit \[14\]: acquire/release semantics.
const DA_AR: u32 = 1 << 14;
/// DA/IA `ISS.FnV`, bit \[10\]: FAR is *not* valid.
const ABT_FNV: u32 = 1 << 10;
/// DA `ISS.CM`, bit \[8\]: the fault came from a cache maintenance or address
/// translation instruction.
const DA_CM: u32 = 1 << 8;
/// DA/IA `ISS.S1PTW`, bit \[7\]: stage-2 fault taken on a stage-1 table walk.
const ABT_S1PTW: u32 = 1 << 7;
/// DA `ISS.WnR`, bit \[6\]: 1 = write, 0 = read.
const DA_WNR: u32 = 1 << 6;
/// DA `ISS.DFSC` / IA `ISS.IFSC`, bits \[5:0\]: fault status code.
const ABT_FSC_MASK: u32 = 0x3f;

/// Architectural exception classes the hypervisor names (`ESR_EL2.EC`).
///
/// Values are from the `EC` field table of "ESR_EL2, Exception Syndrome
/// Register (EL2)". Any other class is `Other(ec)`;
/// [`Esr::class_name`] still names most of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    /// EC 0x00: unknown reason (e.g. an UNDEFINED instruction).
    Unknown,
    /// EC 0x01: trapped WFI/WFE (`HCR_EL2.TWI`/`TWE`).
    WfxTrap,
    /// EC 0x07: access to SVE, Advanced SIMD or FP trapped (`CPTR_EL2`).
    FpAccess,
    /// EC 0x09: pointer authentication instruction or key register access
    /// trapped (`HCR_EL2.API`/`APK` clear).
    PAuthTrap,
    /// EC 0x16: `HVC` from AArch64.
    Hvc64,
    /// EC 0x17: `SMC` from AArch64 trapped (`HCR_EL2.TSC`).
    Smc64,
    /// EC 0x18: trapped `MSR`, `MRS` or system instruction from AArch64.
    SysReg,
    /// EC 0x19: access to SVE functionality trapped (`CPTR_EL2.TZ`).
    SveAccess,
    /// EC 0x1D: access to SME functionality trapped (`CPTR_EL2.TSM`).
    SmeAccess,
    /// EC 0x20: instruction abort from a lower exception level.
    InstrAbortLower,
    /// EC 0x21: instruction abort taken without a change of exception level.
    InstrAbortSame,
    /// EC 0x22: PC alignment fault.
    PcAlignment,
    /// EC 0x24: data abort from a lower exception level.
    DataAbortLower,
    /// EC 0x25: data abort taken without a change of exception level.
    DataAbortSame,
    /// EC 0x26: SP alignment fault.
    SpAlignment,
    /// EC 0x2F: SError exception.
    SError,
    /// EC 0x30: breakpoint from a lower exception level.
    BreakpointLower,
    /// EC 0x32: software step from a lower exception level.
    SoftwareStepLower,
    /// EC 0x34: watchpoint from a lower exception level.
    WatchpointLower,
    /// EC 0x3C: `BRK` instruction in AArch64 state.
    Brk,
    /// Any other exception class, with its raw 6-bit EC value.
    Other(u8),
}

impl ExceptionClass {
    /// Classify a raw 6-bit EC value (higher bits are ignored).
    pub const fn from_ec(ec: u8) -> Self {
        match ec & EC_MASK as u8 {
            0x00 => Self::Unknown,
            0x01 => Self::WfxTrap,
            0x07 => Self::FpAccess,
            0x09 => Self::PAuthTrap,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::SysReg,
            0x19 => Self::SveAccess,
            0x1d => Self::SmeAccess,
            0x20 => Self::InstrAbortLower,
            0x21 => Self::InstrAbortSame,
            0x22 => Self::PcAlignment,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            0x26 => Self::SpAlignment,
            0x2f => Self::SError,
            0x30 => Self::BreakpointLower,
            0x32 => Self::SoftwareStepLower,
            0x34 => Self::WatchpointLower,
            0x3c => Self::Brk,
            other => Self::Other(other),
        }
    }

    /// The raw EC value of this class.
    pub const fn ec(self) -> u8 {
        match self {
            Self::Unknown => 0x00,
            Self::WfxTrap => 0x01,
            Self::FpAccess => 0x07,
            Self::PAuthTrap => 0x09,
            Self::Hvc64 => 0x16,
            Self::Smc64 => 0x17,
            Self::SysReg => 0x18,
            Self::SveAccess => 0x19,
            Self::SmeAccess => 0x1d,
            Self::InstrAbortLower => 0x20,
            Self::InstrAbortSame => 0x21,
            Self::PcAlignment => 0x22,
            Self::DataAbortLower => 0x24,
            Self::DataAbortSame => 0x25,
            Self::SpAlignment => 0x26,
            Self::SError => 0x2f,
            Self::BreakpointLower => 0x30,
            Self::SoftwareStepLower => 0x32,
            Self::WatchpointLower => 0x34,
            Self::Brk => 0x3c,
            Self::Other(ec) => ec,
        }
    }
}

/// Human name of a raw EC value, for logs ("HVC from AArch64", ...).
pub(crate) const fn ec_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE trap",
        0x03 => "MCR/MRC (coproc 15) from AArch32",
        0x04 => "MCRR/MRRC (coproc 15) from AArch32",
        0x05 => "MCR/MRC (coproc 14) from AArch32",
        0x06 => "LDC/STC from AArch32",
        0x07 => "SVE/SIMD/FP access trap",
        0x09 => "pointer authentication trap",
        0x0a => "LD64B/ST64B trap",
        0x0c => "MRRC (coproc 14) from AArch32",
        0x0d => "branch target exception",
        0x0e => "illegal execution state",
        0x11 => "SVC from AArch32",
        0x12 => "HVC from AArch32",
        0x13 => "SMC from AArch32",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "MSR/MRS/system instruction trap",
        0x19 => "SVE access trap",
        0x1a => "ERET trap",
        0x1c => "pointer authentication failure",
        0x1d => "SME access trap",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort from the same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort from the same EL",
        0x26 => "SP alignment fault",
        0x27 => "memory copy/set exception",
        0x28 => "FP exception from AArch32",
        0x2c => "FP exception from AArch64",
        0x2f => "SError",
        0x30 => "breakpoint from a lower EL",
        0x31 => "breakpoint from the same EL",
        0x32 => "software step from a lower EL",
        0x33 => "software step from the same EL",
        0x34 => "watchpoint from a lower EL",
        0x35 => "watchpoint from the same EL",
        0x38 => "BKPT from AArch32",
        0x3a => "vector catch from AArch32",
        0x3c => "BRK from AArch64",
        _ => "reserved exception class",
    }
}

/// A raw `ESR_EL2` value.
///
/// Every accessor is total: any 64-bit value decodes. Bits \[63:32\] (ISS2,
/// RES0 without FEAT_LS64/FEAT_GCS and friends) are ignored by the decoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    /// The exception class (`EC`, bits \[31:26\]).
    pub fn class(&self) -> ExceptionClass {
        ExceptionClass::from_ec(self.ec())
    }

    /// The raw exception class value (`EC`, bits \[31:26\]).
    pub fn ec(&self) -> u8 {
        ((self.0 >> EC_SHIFT) & EC_MASK) as u8
    }

    /// The instruction specific syndrome (`ISS`, bits \[24:0\]).
    pub fn iss(&self) -> u32 {
        (self.0 & ISS_MASK) as u32
    }

    /// `IL`, bit \[25\]: the trapped instruction was 32 bits long (always the
    /// case for A64; 16-bit only for T32).
    pub fn il32(&self) -> bool {
        self.0 & IL_BIT != 0
    }

    /// Bytes to add to `ELR_EL2` to step over the trapped instruction (4 or 2).
    pub fn instr_len(&self) -> u64 {
        if self.il32() { 4 } else { 2 }
    }

    /// Human name of the exception class, e.g. "HVC from AArch64".
    pub fn class_name(&self) -> &'static str {
        ec_name(self.ec())
    }

    /// `ISS.imm16` (bits \[15:0\]) of an `HVC`/`SMC`: e.g. 0xEA1 for a Xen
    /// hypercall, 0 for an SMCCC call. Meaningless for other classes.
    pub fn hvc_imm(&self) -> u16 {
        (self.iss() & IMM16_MASK) as u16
    }

    /// The data-abort syndrome, for [`ExceptionClass::DataAbortLower`] and
    /// [`ExceptionClass::DataAbortSame`]; `None` for any other class.
    pub fn data_abort(&self) -> Option<DataAbort> {
        match self.class() {
            ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame => {
                Some(DataAbort::from_iss(self.iss()))
            }
            _ => None,
        }
    }

    /// The instruction-abort syndrome, for [`ExceptionClass::InstrAbortLower`]
    /// and [`ExceptionClass::InstrAbortSame`]; `None` for any other class.
    pub fn instr_abort(&self) -> Option<InstrAbort> {
        match self.class() {
            ExceptionClass::InstrAbortLower | ExceptionClass::InstrAbortSame => {
                Some(InstrAbort::from_iss(self.iss()))
            }
            _ => None,
        }
    }

    /// WFI or WFE, for [`ExceptionClass::WfxTrap`]; `None` otherwise.
    ///
    /// The timed variants WFIT/WFET (FEAT_WFxT) report as `Wfi`/`Wfe`; see
    /// [`Esr::wfx_timed`] to tell them apart.
    pub fn wfx(&self) -> Option<Wfx> {
        if self.class() != ExceptionClass::WfxTrap {
            return None;
        }
        Some(if self.iss() & WFX_TI_WFE_BIT == 0 {
            Wfx::Wfi
        } else {
            Wfx::Wfe
        })
    }

    /// Whether a trapped WFx was the timed WFIT/WFET form (`ISS.TI` bit 1),
    /// whose timeout the guest expects to be honoured. `false` for other
    /// classes.
    pub fn wfx_timed(&self) -> bool {
        self.class() == ExceptionClass::WfxTrap && self.iss() & WFX_TI_TIMED_BIT != 0
    }

    /// The trapped system register access, for [`ExceptionClass::SysReg`]
    /// (EC 0x18); `None` otherwise.
    pub fn sysreg(&self) -> Option<SysRegAccess> {
        match self.class() {
            ExceptionClass::SysReg => Some(SysRegAccess::from_iss(self.iss())),
            _ => None,
        }
    }
}

impl fmt::Display for Esr {
    /// `data abort from a lower EL (ESR 0x93c08006: EC 0x24, IL 32, ISS 0x1c08006)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (ESR {:#010x}: EC {:#04x}, IL {}, ISS {:#x})",
            self.class_name(),
            self.0,
            self.ec(),
            if self.il32() { 32 } else { 16 },
            self.iss()
        )
    }
}

/// Which wait instruction a WFx trap came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wfx {
    /// `WFI` (or `WFIT`): wait for interrupt.
    Wfi,
    /// `WFE` (or `WFET`): wait for event.
    Wfe,
}

impl fmt::Display for Wfx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wfx::Wfi => "WFI",
            Wfx::Wfe => "WFE",
        })
    }
}

/// Decoded "ISS encoding for an exception from a Data Abort".
///
/// The instruction-syndrome fields (`access_size`, `sign_extend`, `reg`,
/// `sixty_four`, `acquire_release`) are only meaningful when `isv` is set;
/// when it is clear they are reported as 0/false, and the access can only be
/// emulated by decoding the instruction at `ELR_EL2` (or refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// `ISV`: the syndrome fields below describe the access.
    pub isv: bool,
    /// Access size in bytes (1, 2, 4 or 8) from `SAS`; 0 when `!isv`.
    pub access_size: u8,
    /// `SSE`: a load sign-extends the value to the register width.
    pub sign_extend: bool,
    /// `SRT`: the transfer register number; 31 means XZR/WZR.
    pub reg: u8,
    /// `SF`: the transfer register is 64-bit (Xt); `false` means Wt.
    pub sixty_four: bool,
    /// `AR`: the instruction had acquire/release semantics.
    pub acquire_release: bool,
    /// `WnR`: the access was a write (for cache maintenance and AT
    /// instructions the architecture reports 1).
    pub write: bool,
    /// `S1PTW`: a stage-2 fault on the stage-1 translation table walk.
    pub s1ptw: bool,
    /// `!FnV`: `FAR_EL2` holds the faulting virtual address.
    pub far_valid: bool,
    /// `CM`: the fault came from a cache maintenance or AT instruction.
    pub cache_maint: bool,
    /// `DFSC`: what kind of fault this was.
    pub fault: FaultStatus,
}

impl DataAbort {
    /// Decode a data-abort ISS (bits \[24:0\] of `ESR_EL2`).
    pub fn from_iss(iss: u32) -> Self {
        let isv = iss & DA_ISV != 0;
        let sas = (iss >> DA_SAS_SHIFT) & DA_SAS_MASK;
        DataAbort {
            isv,
            access_size: if isv { 1 << sas } else { 0 },
            sign_extend: isv && iss & DA_SSE != 0,
            reg: if isv {
                ((iss >> DA_SRT_SHIFT) & DA_SRT_MASK) as u8
            } else {
                0
            },
            sixty_four: isv && iss & DA_SF != 0,
            acquire_release: isv && iss & DA_AR != 0,
            write: iss & DA_WNR != 0,
            s1ptw: iss & ABT_S1PTW != 0,
            far_valid: iss & ABT_FNV == 0,
            cache_maint: iss & DA_CM != 0,
            fault: FaultStatus::from_fsc((iss & ABT_FSC_MASK) as u8),
        }
    }

    /// The value to write into the transfer register after emulating a load
    /// that returned `raw` (see [`crate::mmio::load_value`]).
    pub fn load_result(&self, raw: u64) -> u64 {
        crate::mmio::load_value(raw, self.access_size, self.sign_extend, self.sixty_four)
    }

    /// The data a store writes, given the transfer register's value (see
    /// [`crate::mmio::store_value`]).
    pub fn store_data(&self, reg_value: u64) -> u64 {
        crate::mmio::store_value(reg_value, self.access_size)
    }
}

/// Writes the name of transfer register `reg` (`x3`, `w3`, `xzr`, `wzr`).
pub(crate) struct RegName {
    pub reg: u8,
    pub sixty_four: bool,
}

impl fmt::Display for RegName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.sixty_four { 'x' } else { 'w' };
        if self.reg >= 31 {
            write!(f, "{prefix}zr")
        } else {
            write!(f, "{prefix}{}", self.reg)
        }
    }
}

impl fmt::Display for DataAbort {
    /// `read 8 bytes into x0; translation fault, level 2 (FSC 0x06)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = if self.write { "write" } else { "read" };
        if self.isv {
            let reg = RegName {
                reg: self.reg,
                sixty_four: self.sixty_four,
            };
            let (unit, prep) = (
                if self.access_size == 1 {
                    "byte"
                } else {
                    "bytes"
                },
                if self.write { "from" } else { "into" },
            );
            write!(f, "{dir} {} {unit} {prep} {reg}", self.access_size)?;
            if self.sign_extend {
                f.write_str(", sign-extended")?;
            }
            if self.acquire_release {
                f.write_str(", acquire/release")?;
            }
        } else {
            write!(f, "{dir}, no instruction syndrome (ISV=0)")?;
        }
        write!(f, "; {}", self.fault)?;
        if self.s1ptw {
            f.write_str("; on stage-1 table walk")?;
        }
        if self.cache_maint {
            f.write_str("; cache maintenance")?;
        }
        if !self.far_valid {
            f.write_str("; FAR not valid")?;
        }
        Ok(())
    }
}

/// Decoded "ISS encoding for an exception from an Instruction Abort".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrAbort {
    /// `S1PTW`: a stage-2 fault on the stage-1 translation table walk.
    pub s1ptw: bool,
    /// `!FnV`: `FAR_EL2` holds the faulting virtual address.
    pub far_valid: bool,
    /// `IFSC`: what kind of fault this was.
    pub fault: FaultStatus,
}

impl InstrAbort {
    /// Decode an instruction-abort ISS (bits \[24:0\] of `ESR_EL2`).
    pub fn from_iss(iss: u32) -> Self {
        InstrAbort {
            s1ptw: iss & ABT_S1PTW != 0,
            far_valid: iss & ABT_FNV == 0,
            fault: FaultStatus::from_fsc((iss & ABT_FSC_MASK) as u8),
        }
    }
}

impl fmt::Display for InstrAbort {
    /// `translation fault, level 3 (FSC 0x07); on stage-1 table walk`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.fault)?;
        if self.s1ptw {
            f.write_str("; on stage-1 table walk")?;
        }
        if !self.far_valid {
            f.write_str("; FAR not valid")?;
        }
        Ok(())
    }
}
