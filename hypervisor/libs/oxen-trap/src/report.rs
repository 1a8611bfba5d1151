//! Crash-report text: a trap's registers rendered as `(oxen) ...` lines.
//!
//! No I/O happens here: [`TrapReport::write_to`] writes into any
//! `core::fmt::Write`, and [`TrapReport::for_each_line`] hands each line to
//! a callback (for a logger that adds its own prefix). Both produce the same
//! lines from one emitter, so the text tested here is what the console shows.
//!
//! `SPSR_EL2` fields: Arm ARM (DDI 0487), "SPSR_EL2, Saved Program Status
//! Register (EL2)", layouts "When exception taken from AArch64 state" and
//! "... from AArch32 state".

use core::fmt;

use crate::esr::{Esr, ExceptionClass};
use crate::fault::fault_ipa;

/// `SPSR.M[4]`, bit \[4\]: 1 = the exception came from AArch32 state.
const SPSR_M4_AARCH32: u64 = 1 << 4;
/// `SPSR.M[3:0]` (AArch64): exception level in \[3:2\], SP select in \[0\].
const SPSR_M_AARCH64_MASK: u64 = 0xf;
/// `SPSR.M[4:0]` (AArch32): the processor mode.
const SPSR_M_AARCH32_MASK: u64 = 0x1f;
/// `SPSR.F`, bit \[6\]: FIQ masked.
const SPSR_F: u64 = 1 << 6;
/// `SPSR.I`, bit \[7\]: IRQ masked.
const SPSR_I: u64 = 1 << 7;
/// `SPSR.A`, bit \[8\]: SError masked.
const SPSR_A: u64 = 1 << 8;
/// `SPSR.D`, bit \[9\]: debug exceptions masked (AArch64 only).
const SPSR_D: u64 = 1 << 9;
/// `SPSR.V`, bit \[28\]: overflow flag.
const SPSR_V: u64 = 1 << 28;
/// `SPSR.C`, bit \[29\]: carry flag.
const SPSR_C: u64 = 1 << 29;
/// `SPSR.Z`, bit \[30\]: zero flag.
const SPSR_Z: u64 = 1 << 30;
/// `SPSR.N`, bit \[31\]: negative flag.
const SPSR_N: u64 = 1 << 31;

/// The prefix of every hypervisor console line (docs/design.md).
const LINE_PREFIX: &str = "(oxen) ";

/// Name of the mode saved in `SPSR_EL2.M`: `EL0t`, `EL1t`, `EL1h`, `EL2t`,
/// `EL2h`, `EL3t`, `EL3h` for AArch64; `usr32`, `svc32`, ... for AArch32;
/// `invalid` for reserved encodings.
pub fn spsr_mode_name(spsr: u64) -> &'static str {
    if spsr & SPSR_M4_AARCH32 != 0 {
        match spsr & SPSR_M_AARCH32_MASK {
            0x10 => "usr32",
            0x11 => "fiq32",
            0x12 => "irq32",
            0x13 => "svc32",
            0x16 => "mon32",
            0x17 => "abt32",
            0x1a => "hyp32",
            0x1b => "und32",
            0x1f => "sys32",
            _ => "invalid32",
        }
    } else {
        match spsr & SPSR_M_AARCH64_MASK {
            0b0000 => "EL0t",
            0b0100 => "EL1t",
            0b0101 => "EL1h",
            0b1000 => "EL2t",
            0b1001 => "EL2h",
            0b1100 => "EL3t",
            0b1101 => "EL3h",
            _ => "invalid",
        }
    }
}

/// A saved PSTATE (`SPSR_EL2` value), displayed as `EL1h nZCv DaIF`: mode,
/// then each flag and mask bit upper-case when set, lower-case when clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pstate(pub u64);

impl fmt::Display for Pstate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |mask: u64, set: char| {
            if self.0 & mask != 0 {
                set
            } else {
                set.to_ascii_lowercase()
            }
        };
        write!(
            f,
            "{} {}{}{}{} {}{}{}{}",
            spsr_mode_name(self.0),
            bit(SPSR_N, 'N'),
            bit(SPSR_Z, 'Z'),
            bit(SPSR_C, 'C'),
            bit(SPSR_V, 'V'),
            bit(SPSR_D, 'D'),
            bit(SPSR_A, 'A'),
            bit(SPSR_I, 'I'),
            bit(SPSR_F, 'F'),
        )
    }
}

/// Register labels, in `TrapReport::regs` order followed by SP.
const REG_NAMES: [&str; 32] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30", "sp",
];
/// Registers per dump line.
const REGS_PER_LINE: usize = 4;

/// Everything known about a trap, for a crash dump.
#[derive(Clone, Copy, Debug)]
pub struct TrapReport<'a> {
    /// Physical CPU the trap was taken on.
    pub cpu: u32,
    /// Who trapped: `"d1v0"` for a guest vCPU, `"hypervisor"` for EL2 itself.
    pub context: &'a str,
    /// `ESR_EL2`.
    pub esr: u64,
    /// `ELR_EL2`: the faulting (or trapped) instruction's address.
    pub elr: u64,
    /// `SPSR_EL2`: the interrupted PSTATE.
    pub spsr: u64,
    /// `FAR_EL2`.
    pub far: u64,
    /// `HPFAR_EL2`, when the trap was a stage-2 abort.
    pub hpfar: Option<u64>,
    /// x0..x30.
    pub regs: &'a [u64; 31],
    /// The interrupted stack pointer (`SP_EL1`/`SP_EL0` for a guest).
    pub sp: u64,
}

impl TrapReport<'_> {
    /// Write the report as complete console lines, each starting with
    /// `(oxen) ` and ending with `\n`.
    pub fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        self.emit(&mut |line| {
            w.write_str(LINE_PREFIX)?;
            w.write_fmt(line)?;
            w.write_char('\n')
        })
    }

    /// Hand each line (without prefix or newline) to `f`, e.g. to log it.
    pub fn for_each_line(&self, mut f: impl FnMut(fmt::Arguments<'_>)) {
        // The callback cannot fail, so neither can `emit`.
        let _ = self.emit(&mut |line| {
            f(line);
            Ok(())
        });
    }

    /// The single source of the report's lines.
    fn emit(&self, out: &mut dyn FnMut(fmt::Arguments<'_>) -> fmt::Result) -> fmt::Result {
        let esr = Esr(self.esr);
        out(format_args!("{} on CPU{}: {}", self.context, self.cpu, esr))?;

        if let Some(da) = esr.data_abort() {
            out(format_args!("  data abort: {da}"))?;
        } else if let Some(ia) = esr.instr_abort() {
            out(format_args!("  instruction abort: {ia}"))?;
        } else if let Some(wfx) = esr.wfx() {
            let timed = if esr.wfx_timed() { "T" } else { "" };
            out(format_args!("  instruction: {wfx}{timed}"))?;
        } else if let Some(sr) = esr.sysreg() {
            out(format_args!("  instruction: {sr}"))?;
        } else {
            match esr.class() {
                ExceptionClass::Hvc64 => {
                    out(format_args!("  instruction: HVC #{:#x}", esr.hvc_imm()))?
                }
                ExceptionClass::Smc64 => {
                    out(format_args!("  instruction: SMC #{:#x}", esr.hvc_imm()))?
                }
                _ => {}
            }
        }

        out(format_args!(
            "  ELR {:#018x}  SPSR {:#010x} ({})",
            self.elr,
            self.spsr,
            Pstate(self.spsr)
        ))?;
        match self.hpfar {
            Some(hpfar) => out(format_args!(
                "  FAR {:#018x}  HPFAR {:#018x} (IPA {:#x})",
                self.far,
                hpfar,
                fault_ipa(hpfar, self.far)
            ))?,
            None => out(format_args!("  FAR {:#018x}", self.far))?,
        }

        let value = |i: usize| self.regs.get(i).copied().unwrap_or(self.sp);
        for first in (0..REG_NAMES.len()).step_by(REGS_PER_LINE) {
            let (a, b, c, d) = (first, first + 1, first + 2, first + 3);
            out(format_args!(
                "  {:<3} {:016x}  {:<3} {:016x}  {:<3} {:016x}  {:<3} {:016x}",
                REG_NAMES[a],
                value(a),
                REG_NAMES[b],
                value(b),
                REG_NAMES[c],
                value(c),
                REG_NAMES[d],
                value(d),
            ))?;
        }
        Ok(())
    }
}
