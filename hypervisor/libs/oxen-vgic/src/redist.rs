//! GICv3 redistributor MMIO emulation: one RD_base frame and one SGI_base
//! frame (64 KiB each) per vCPU, laid out contiguously in the guest's GICR
//! region with stride [`crate::GICV3_REDIST_STRIDE`].
//!
//! Register map: IHI 0069 §12.10/§12.11. Linux (`gic_populate_rdist`)
//! walks the frames reading `GICR_PIDR2` and the 64-bit `GICR_TYPER`
//! until the affinity matches its MPIDR or `TYPER.Last` is set, then does
//! the `GICR_WAKER` handshake (clear ProcessorSleep, poll ChildrenAsleep
//! until 0) and programs the SGI_base registers.
//!
//! No LPIs: `GICR_TYPER.PLPIS = 0`, `GICR_CTLR` is RAZ/WI, and the LPI
//! registers (PROPBASER, PENDBASER, SETLPIR, …) are reserved here.
//!
//! # Compared with Xen 4.17 (`vgic-v3.c`, no ITS)
//!
//! As on Xen: `GICR_WAKER` is RAZ/WI (no power management: the
//! redistributor is awake from reset, so the guest's ChildrenAsleep poll
//! ends whether or not it wrote ProcessorSleep first); `GICR_CTLR`,
//! `GICR_STATUSR`, `GICR_IGRPMODR0`, `GICR_NSACR`, PROPBASER/PENDBASER
//! RAZ/WI; `GICR_IIDR` 0x34c; `GICR_PIDR2` 0x30 and every other ID
//! register RAZ/WI; `GICR_TYPER` = affinity of the vCPU in \[63:32\],
//! Processor_Number = vCPU id, Last on the last vCPU's frame, nothing
//! else; the SGI_base registers as the distributor's (see `dist.rs`,
//! including its list of differences: groups, pending/active reads,
//! priority bits, SGI ICFGR reading as edge).
//!
//! Different on purpose: the write-only LPI registers (SETLPIR, CLRLPIR,
//! INVLPIR, INVALLR) read 0 (Xen: 0xdeadbeaf pattern) and `GICR_SYNCR`
//! reads 0, not busy (Xen returns 1, which architecturally means busy);
//! frames past the last vCPU read as zero (Xen: data abort).

use crate::dist::{Access, BitReg, IIDR_V3, V3_PIDR2, V3_PIDR2_VAL};
use alloc::vec::Vec;

use crate::{GicVersion, NR_PRIVATE, Vgic, VgicError, Width, WriteEffect, vcpu_affinity32};

/// Offset of the SGI_base frame within one redistributor.
pub const SGI_BASE: u64 = 0x1_0000;

/// GICR_TYPER.Last.
const TYPER_LAST: u64 = 1 << 4;
/// GICR_WAKER.ProcessorSleep.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RReg {
    Ctlr,
    Iidr,
    Typer,
    Waker,
    RazWi,
    Id,
    Bits(BitReg),
    Priority,
    Icfgr(u32),
}

fn decode_redist(offset: u64) -> Option<(RReg, Access)> {
    use Access::*;
    let word = offset & !3;
    Some(match word {
        0x0000 => (RReg::Ctlr, Word),
        0x0004 => (RReg::Iidr, Word),
        0x0008 | 0x000c => (RReg::Typer, WordOrDword),
        0x0010 => (RReg::RazWi, Word), // GICR_STATUSR
        0x0014 => (RReg::Waker, Word),
        // The other ID registers are implementation defined: RAZ/WI at
        // any width (Unhandled), as on Xen.
        V3_PIDR2 => (RReg::Id, Word),
        // SGI_base frame: only the registers for INTIDs 0..31 exist.
        0x10080..0x10400 => {
            let (kind, first) = BitReg::decode(word - SGI_BASE)?;
            if first != 0 {
                return None;
            }
            (RReg::Bits(kind), Word)
        }
        0x10400..0x10420 => (RReg::Priority, ByteOrWord),
        0x10c00 | 0x10c04 => (RReg::Icfgr(((word - 0x10c00) * 4) as u32), Word),
        0x10d00 | 0x10e00 => (RReg::RazWi, Word), // GICR_IGRPMODR0, GICR_NSACR
        _ => return None,
    })
}

impl Vgic {
    /// Emulate a guest load at `offset` (0..0x20000) in the redistributor
    /// of vCPU `vcpu_of_frame` (any vCPU may access any redistributor).
    /// Frames beyond the last vCPU and reserved offsets are
    /// [`VgicError::Unhandled`] (RAZ); on a GICv2 vGIC everything is.
    pub fn redist_read(
        &mut self,
        vcpu_of_frame: usize,
        offset: u64,
        width: Width,
    ) -> Result<u64, VgicError> {
        let unhandled = VgicError::Unhandled {
            offset,
            write: false,
        };
        if self.version != GicVersion::V3 || vcpu_of_frame >= self.nr_vcpus {
            return Err(unhandled);
        }
        let v = vcpu_of_frame;
        let (reg, access) = decode_redist(offset).ok_or(unhandled)?;
        access.check(offset, width)?;
        let val = match reg {
            // GICR_WAKER is RAZ/WI like Xen's (no power management): the
            // redistributor is awake from reset, so a guest that polls
            // ChildrenAsleep without writing ProcessorSleep gets through.
            RReg::Ctlr | RReg::RazWi | RReg::Waker => 0,
            RReg::Iidr => u64::from(IIDR_V3),
            RReg::Typer => {
                let t = self.gicr_typer(v);
                match width {
                    Width::Dword => t,
                    _ if offset & 4 != 0 => t >> 32,
                    _ => t & 0xffff_ffff,
                }
            }
            RReg::Id => u64::from(V3_PIDR2_VAL),
            RReg::Bits(kind) => u64::from(self.bitreg_read(v, kind, 0)),
            RReg::Priority => (0..width.bytes()).fold(0, |acc, i| {
                let intid = (offset + i - SGI_BASE - 0x400) as u32;
                acc | (u64::from(self.private_priority_byte(v, intid)) << (8 * i))
            }),
            RReg::Icfgr(first) => u64::from(self.icfgr_read_banked(v, first)),
        };
        Ok(val & width.mask())
    }

    /// Emulate a guest store at `offset` in the redistributor of vCPU
    /// `vcpu_of_frame`; `kick` in the result names that vCPU if one of its
    /// private interrupts may have become deliverable. Errors as for
    /// [`Vgic::redist_read`].
    pub fn redist_write(
        &mut self,
        vcpu_of_frame: usize,
        offset: u64,
        width: Width,
        value: u64,
    ) -> Result<WriteEffect, VgicError> {
        let unhandled = VgicError::Unhandled {
            offset,
            write: true,
        };
        if self.version != GicVersion::V3 || vcpu_of_frame >= self.nr_vcpus {
            return Err(unhandled);
        }
        let v = vcpu_of_frame;
        let (reg, access) = decode_redist(offset).ok_or(unhandled)?;
        access.check(offset, width)?;
        let value = value & width.mask();
        match reg {
            RReg::Ctlr | RReg::RazWi | RReg::Iidr | RReg::Typer | RReg::Id => {}
            // Write-ignored (the register reads 0); only noted for
            // `redist_awake`.
            RReg::Waker => self.vcpus[v].sleep = value as u32 & WAKER_PROCESSOR_SLEEP != 0,
            RReg::Bits(kind) => self.bitreg_write(v, kind, 0, value as u32),
            RReg::Priority => {
                for i in 0..width.bytes() {
                    let intid = (offset + i - SGI_BASE - 0x400) as u32;
                    self.set_private_priority_byte(v, intid, (value >> (8 * i)) as u8);
                }
            }
            RReg::Icfgr(first) => self.icfgr_write_banked(v, first, value as u32),
        }
        let kick = match reg {
            RReg::Bits(_) | RReg::Icfgr(_) => self.kicks(v, 0, NR_PRIVATE),
            _ => Vec::new(),
        };
        Ok(WriteEffect { sgis: None, kick })
    }

    /// GICR_TYPER: affinity \[63:32\], Processor_Number \[23:8\], Last \[4\];
    /// no physical or virtual LPIs.
    fn gicr_typer(&self, vcpu: usize) -> u64 {
        let mut t = (u64::from(vcpu_affinity32(vcpu)) << 32) | (((vcpu as u64) & 0xffff) << 8);
        if vcpu + 1 == self.nr_vcpus {
            t |= TYPER_LAST;
        }
        t
    }

    /// Whether the guest has not asked the redistributor of `vcpu` to sleep:
    /// false until it first writes `GICR_WAKER` with ProcessorSleep = 0,
    /// then the ProcessorSleep value it last wrote, inverted. Informational
    /// only: the register itself reads 0 (awake) whatever was written, and
    /// delivery does not depend on it.
    pub fn redist_awake(&self, vcpu: usize) -> bool {
        self.vcpus.get(vcpu).is_some_and(|v| !v.sleep)
    }
}
