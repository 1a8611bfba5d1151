//! Distributor (GICD) MMIO emulation, and the per-interrupt register
//! helpers shared with the GICv3 redistributor's SGI_base frame (whose
//! layout repeats the distributor's first registers).
//!
//! Register map: IHI 0048B §4.1.2 (GICv2 "Distributor register map") and
//! IHI 0069 §12.8/§12.9 (GICv3 "The GIC Distributor register map"). With
//! GICv3 affinity routing always on, the distributor's SGI/PPI fields
//! (IGROUPR0, ISENABLER0, …, IPRIORITYR0-7, ICFGR0-1), ITARGETSR, SGIR and
//! C/SPENDSGIR are RES0 and handled as RAZ/WI without a note.
//!
//! # Compared with Xen 4.17 (`vgic-v2.c`, `vgic-v3.c`, `vgic.c`)
//!
//! Guests written for Xen see the same reset values and write behaviour
//! for: GICD_TYPER (ITLinesNumber, CPUNumber = min(vCPUs, 8) - 1, v3
//! IDbits = 9, no LPIs/MBIs/security), GICD_IIDR (v2 0x43b, v3 0x34c),
//! GICD_PIDR2 (v3 0x30; every other ID register RAZ/WI), TYPER2/STATUSR/
//! NSACR/IGRPMODR and the reserved ranges (RAZ/WI), ISENABLER/ICENABLER,
//! IPRIORITYR (byte or word), ICFGR of SPIs, ITARGETSR of SGIs/PPIs (the
//! reader's own bit, write-ignored), ICFGR0/1 write-ignored on v2 (SGIs
//! read-only; PPIs read-only by Xen's implementation-defined choice), v3
//! IROUTER reset 0 (vCPU 0), v3 SGIR/C/SPENDSGIR RAZ/WI. The redistributor
//! is compared in `redist.rs`. oxen differs where listed here, on purpose
//! (each is architecturally allowed, and harmless to guests that program
//! what they use, as Linux does; the reset defaults a guest may rely on
//! are Xen's); the `xen_regs` tests pin both lists:
//!
//! * Groups. oxen models interrupt groups: IGROUPR is read/write and
//!   GICD_CTLR has EnableGrp0 (bit 0) and EnableGrp1 (bit 1); v3 presents
//!   a single security state (`DS` and `ARE` read as 1, so CTLR reads 0x50
//!   out of reset). Xen makes IGROUPR RAZ/WI, keeps only bit 0 of v2 CTLR
//!   and only EnableGrp1A (bit 1) of v3 CTLR (reset ARE_NS = 0x10), and
//!   lists every v3 interrupt as Group 1. oxen resets every v3 interrupt
//!   to Group 1 (v2: Group 0), so a guest that never writes IGROUPR gets
//!   what it gets on Xen; IGROUPR then reads all ones where Xen reads 0.
//! * Pending/active state. ISPENDR/ICPENDR/ISACTIVER/ICACTIVER read the
//!   real state and ISACTIVER/ICACTIVER writes work; Xen reads them as 0
//!   and injects a data abort for a non-zero ISACTIVER write. On v2,
//!   CPENDSGIR/SPENDSGIR work too (Xen: RAZ, abort on write).
//! * Priorities keep [`crate::PRIORITY_BITS`] bits (0xff reads back 0xf8),
//!   what the list registers can carry; Xen stores all 8 bits.
//! * ICFGR: SGIs read as edge (0b10 per field, as the architecture
//!   says) where Xen reads 0; only Int_config\[1\] is stored (Xen keeps
//!   whatever is written).
//! * v2 ITARGETSR of SPIs resets to vCPU 0, as on Xen. Writes keep
//!   every valid target bit (Xen keeps the lowest, and ignores a write
//!   naming no existing vCPU). v3 IROUTER keeps the written fields (Xen
//!   reads back the target vCPU's affinity: IRM reads 0).
//! * GICD_SGIR reads 0 (Xen 0xdeadbeef: the register is write-only);
//!   v2 ICPIDR2 reads 0x2b (Xen injects a data abort).
//! * v3 distributor SGI/PPI registers are RES0 (affinity routing); Xen
//!   lets them reach the reader's banked state.

use alloc::vec::Vec;

use crate::{
    GicVersion, IROUTER_IRM, NR_PRIVATE, NR_SGIS, PRIORITY_MASK, Vgic, VgicError, Width,
    WriteEffect,
};

/// GICD_CTLR / GICR: EnableGrp0 | EnableGrp1 (writable bits).
const CTLR_ENABLE_MASK: u32 = 0b11;
/// GICv3 GICD_CTLR.ARE (affinity routing, RAO/WI here).
const CTLR_ARE: u32 = 1 << 4;
/// GICv3 GICD_CTLR.DS (single security state, RAO/WI here).
const CTLR_DS: u32 = 1 << 6;
/// GICv2 GICD_IIDR: Xen 4.17's value (Implementer 0x43B, everything else 0).
pub(crate) const IIDR_V2: u32 = 0x0000_043b;
/// GICv3 GICD_IIDR and GICR_IIDR: Xen 4.17's value (Implementer field
/// 0x34C, revision/variant/product 0). No IIDR-keyed GIC quirk of Linux
/// matches it (Linux's Cavium erratum entry also needs ProductID 0xa0).
pub(crate) const IIDR_V3: u32 = 0x0000_034c;
/// GICD_TYPER.IDbits for 10 INTID bits (no LPIs).
const TYPER_IDBITS_10: u32 = 9 << 19;
/// Writable bits of GICD_IROUTER: Aff3, IRM, Aff2, Aff1, Aff0.
const IROUTER_MASK: u64 = (0xff << 32) | IROUTER_IRM | 0xff_ffff;
/// Offset of GICD_IROUTER<0> (GICv3).
const IROUTER_BASE: u64 = 0x6000;
/// End of the GICD_IROUTER array (INTID 1023 + 1).
const IROUTER_END: u64 = IROUTER_BASE + 8 * 1024;

/// Which per-interrupt one-bit register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitReg {
    /// The register at `word` (offset rounded down to 4) in the
    /// 0x080..0x400 block, with the first INTID it covers.
    pub(crate) fn decode(word: u64) -> Option<(BitReg, u32)> {
        let kind = match word {
            0x080..0x100 => BitReg::Group,
            0x100..0x180 => BitReg::SetEnable,
            0x180..0x200 => BitReg::ClearEnable,
            0x200..0x280 => BitReg::SetPending,
            0x280..0x300 => BitReg::ClearPending,
            0x300..0x380 => BitReg::SetActive,
            0x380..0x400 => BitReg::ClearActive,
            _ => return None,
        };
        Some((kind, ((word & 0x7f) * 8) as u32))
    }
}

/// Accesses a register accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// 32-bit, aligned.
    Word,
    /// 8-bit, or 32-bit aligned.
    ByteOrWord,
    /// 32-bit aligned (either half) or 64-bit aligned.
    WordOrDword,
}

impl Access {
    pub(crate) fn check(self, offset: u64, width: Width) -> Result<(), VgicError> {
        let ok = offset.is_multiple_of(width.bytes())
            && match self {
                Access::Word => width == Width::Word,
                Access::ByteOrWord => matches!(width, Width::Byte | Width::Word),
                Access::WordOrDword => matches!(width, Width::Word | Width::Dword),
            };
        if ok {
            Ok(())
        } else {
            Err(VgicError::BadAccess { offset, width })
        }
    }
}

/// A decoded distributor register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DReg {
    Ctlr,
    Typer,
    Iidr,
    /// Architecturally defined but RAZ/WI in this model.
    RazWi,
    Bits(BitReg, u32),
    Priority,
    Targets,
    Icfgr(u32),
    Sgir,
    SgiPending {
        set: bool,
    },
    Irouter,
    Id,
}

/// Offset of GICD_PIDR2 / GICR_PIDR2 in a 64 KiB GICv3 frame.
pub(crate) const V3_PIDR2: u64 = 0xffe8;
/// GICv3 GICD_PIDR2 / GICR_PIDR2: ArchRev = 3 and nothing else, as Xen
/// 4.17 (the other bits are implementation defined, RES0 there).
pub(crate) const V3_PIDR2_VAL: u32 = 0x30;
/// Offset of GICD_ICPIDR2 in the 4 KiB GICv2 distributor.
const V2_PIDR2: u64 = 0xfe8;
/// GICv2 GICD_ICPIDR2: ArchRev = 2 plus the JEP106 bits of an Arm GIC.
/// Xen 4.17 has no value (its read injects a data abort).
const V2_PIDR2_VAL: u32 = 0x2b;

impl Vgic {
    fn decode_dist(&self, offset: u64) -> Option<(DReg, Access)> {
        use Access::*;
        let v3 = self.version == GicVersion::V3;
        let word = offset & !3;
        let pidr2 = if v3 { V3_PIDR2 } else { V2_PIDR2 };
        Some(match word {
            0x000 => (DReg::Ctlr, Word),
            0x004 => (DReg::Typer, Word),
            0x008 => (DReg::Iidr, Word),
            // GICD_TYPER2 and GICD_STATUSR (v3 only).
            0x00c | 0x010 if v3 => (DReg::RazWi, Word),
            0x080..0x400 => {
                let (kind, first) = BitReg::decode(word)?;
                if v3 && first < NR_PRIVATE {
                    (DReg::RazWi, Word)
                } else {
                    (DReg::Bits(kind, first), Word)
                }
            }
            0x400..0x800 => (DReg::Priority, ByteOrWord),
            0x800..0xc00 if v3 => (DReg::RazWi, ByteOrWord),
            0x800..0xc00 => (DReg::Targets, ByteOrWord),
            0xc00..0xd00 => (DReg::Icfgr(((word - 0xc00) * 4) as u32), Word),
            // GICD_IGRPMODR (v3, RAZ/WI with DS=1).
            0xd00..0xd80 if v3 => (DReg::RazWi, Word),
            // GICD_NSACR: RAZ/WI without two security states.
            0xe00..0xf00 => (DReg::RazWi, Word),
            0xf00 if v3 => (DReg::RazWi, Word),
            0xf00 => (DReg::Sgir, Word),
            0xf10..0xf30 if v3 => (DReg::RazWi, ByteOrWord),
            0xf10..0xf20 => (DReg::SgiPending { set: false }, ByteOrWord),
            0xf20..0xf30 => (DReg::SgiPending { set: true }, ByteOrWord),
            IROUTER_BASE..IROUTER_END if v3 => (DReg::Irouter, WordOrDword),
            // The other ID registers are implementation defined: RAZ/WI
            // at any width (Unhandled), as on Xen.
            w if w == pidr2 => (DReg::Id, Word),
            _ => return None,
        })
    }

    /// Emulate a guest load from the distributor frame at `offset`, issued
    /// by `vcpu` (which selects the banked SGI/PPI view on GICv2).
    ///
    /// Errors: [`VgicError::BadAccess`] for a width/alignment the register
    /// does not support, [`VgicError::Unhandled`] for reserved offsets
    /// (complete as RAZ), [`VgicError::BadVcpu`] if `vcpu` is out of range.
    pub fn dist_read(&mut self, vcpu: usize, offset: u64, width: Width) -> Result<u64, VgicError> {
        self.check_vcpu(vcpu)?;
        let unhandled = VgicError::Unhandled {
            offset,
            write: false,
        };
        let (reg, access) = self.decode_dist(offset).ok_or(unhandled)?;
        access.check(offset, width)?;
        let v3 = self.version == GicVersion::V3;
        let val: u64 = match reg {
            DReg::Ctlr => u64::from(if v3 {
                self.ctlr | CTLR_ARE | CTLR_DS
            } else {
                self.ctlr
            }),
            DReg::Typer => u64::from(self.gicd_typer()),
            DReg::Iidr => u64::from(if v3 { IIDR_V3 } else { IIDR_V2 }),
            DReg::RazWi => 0,
            DReg::Bits(kind, first) => u64::from(self.bitreg_read(vcpu, kind, first)),
            DReg::Priority => self.read_bytes(offset, width, |s, o| {
                s.priority_byte(vcpu, (o - 0x400) as u32)
            }),
            DReg::Targets => self.read_bytes(offset, width, |s, o| {
                s.target_byte(vcpu, (o - 0x800) as u32)
            }),
            DReg::Icfgr(first) => u64::from(self.icfgr_read(vcpu, first)),
            DReg::Sgir => 0, // write-only
            DReg::SgiPending { set } => {
                let base = if set { 0xf20 } else { 0xf10 };
                self.read_bytes(offset, width, |s, o| {
                    s.vcpus[vcpu].sgi_sources[(o - base) as usize]
                })
            }
            DReg::Irouter => {
                let intid = ((offset - IROUTER_BASE) / 8) as u32;
                let r = self.irouter(intid);
                match width {
                    Width::Dword => r,
                    _ if offset & 4 != 0 => r >> 32,
                    _ => r & 0xffff_ffff,
                }
            }
            DReg::Id => u64::from(if v3 { V3_PIDR2_VAL } else { V2_PIDR2_VAL }),
        };
        Ok(val & width.mask())
    }

    /// Emulate a guest store to the distributor frame at `offset`, issued
    /// by `vcpu`. The [`WriteEffect`] lists the SGIs a GICv2 `GICD_SGIR`
    /// write generated (already pending in the model) and the vCPUs that
    /// may now have a deliverable interrupt (to be kicked).
    ///
    /// Errors as for [`Vgic::dist_read`].
    pub fn dist_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        width: Width,
        value: u64,
    ) -> Result<WriteEffect, VgicError> {
        self.check_vcpu(vcpu)?;
        let unhandled = VgicError::Unhandled {
            offset,
            write: true,
        };
        let (reg, access) = self.decode_dist(offset).ok_or(unhandled)?;
        access.check(offset, width)?;
        let value = value & width.mask();
        let w32 = value as u32;
        // Interrupts whose deliverability may have grown: (first, count).
        let mut affected: Option<(u32, u32)> = None;
        match reg {
            DReg::Ctlr => {
                self.ctlr = w32 & CTLR_ENABLE_MASK;
                affected = Some((0, self.nr_lines()));
            }
            DReg::Typer | DReg::Iidr | DReg::RazWi | DReg::Id => {}
            DReg::Bits(kind, first) => {
                self.bitreg_write(vcpu, kind, first, w32);
                affected = Some((first, 32));
            }
            DReg::Priority => self.write_bytes(offset, width, value, |s, o, b| {
                s.set_priority_byte(vcpu, (o - 0x400) as u32, b)
            }),
            DReg::Targets => {
                self.write_bytes(offset, width, value, |s, o, b| {
                    s.set_target_byte((o - 0x800) as u32, b)
                });
                affected = Some(((offset - 0x800) as u32, width.bytes() as u32));
            }
            DReg::Icfgr(first) => {
                self.icfgr_write(vcpu, first, w32);
                affected = Some((first, 16));
            }
            DReg::Sgir => {
                let sgis = self.sgir_v2_write(vcpu, w32);
                let kick = sgis.targets.to_vec();
                return Ok(WriteEffect {
                    sgis: Some(sgis),
                    kick,
                });
            }
            DReg::SgiPending { set } => {
                let base = if set { 0xf20 } else { 0xf10 };
                let valid = self.cpu_mask_all();
                self.write_bytes(offset, width, value, |s, o, b| {
                    let src = &mut s.vcpus[vcpu].sgi_sources[(o - base) as usize];
                    if set {
                        *src |= b & valid;
                    } else {
                        *src &= !b;
                    }
                });
                if set {
                    affected = Some(((offset - base) as u32, width.bytes() as u32));
                }
            }
            DReg::Irouter => {
                let intid = ((offset - IROUTER_BASE) / 8) as u32;
                let old = self.irouter(intid);
                let new = match width {
                    Width::Dword => value,
                    _ if offset & 4 != 0 => (old & 0xffff_ffff) | (value << 32),
                    _ => (old & !0xffff_ffff) | value,
                };
                if intid >= NR_PRIVATE
                    && intid < self.nr_lines()
                    && let Some(spi) = self.spis.get_mut((intid - NR_PRIVATE) as usize)
                {
                    spi.irouter = new & IROUTER_MASK;
                }
                affected = Some((intid, 1));
            }
        }
        let kick = affected.map_or_else(Vec::new, |(first, n)| self.kicks(vcpu, first, n));
        Ok(WriteEffect { sgis: None, kick })
    }

    /// vCPUs to which one of `first..first+n` (banked to `vcpu`) is now
    /// deliverable, ascending, without duplicates.
    pub(crate) fn kicks(&self, vcpu: usize, first: u32, n: u32) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let end = first.saturating_add(n).min(self.nr_lines());
        for intid in first..end {
            if intid < NR_PRIVATE && n == self.nr_lines() {
                // A global change (GICD_CTLR): every vCPU's private view.
                for v in 0..self.nr_vcpus {
                    if self.deliverable_to(v, intid) {
                        out.push(v);
                    }
                }
            } else if let Some(t) = self.kick_for(vcpu, intid) {
                out.push(t);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// GICD_TYPER: ITLinesNumber, CPUNumber (+ IDbits on v3). No security
    /// extensions, no LPIs, no MBIs, 1-of-N routing supported, Aff3 = 0.
    fn gicd_typer(&self) -> u32 {
        let lines = (NR_PRIVATE + self.nr_spis) / 32 - 1;
        let cpus = (self.nr_vcpus.min(8) - 1) as u32;
        let mut t = lines | (cpus << 5);
        if self.version == GicVersion::V3 {
            t |= TYPER_IDBITS_10;
        }
        t
    }

    fn irouter(&self, intid: u32) -> u64 {
        if intid < NR_PRIVATE || intid >= self.nr_lines() {
            return 0;
        }
        self.spis
            .get((intid - NR_PRIVATE) as usize)
            .map_or(0, |s| s.irouter)
    }

    fn read_bytes(&self, offset: u64, width: Width, f: impl Fn(&Self, u64) -> u8) -> u64 {
        (0..width.bytes()).fold(0u64, |acc, i| {
            acc | (u64::from(f(self, offset + i)) << (8 * i))
        })
    }

    fn write_bytes(
        &mut self,
        offset: u64,
        width: Width,
        value: u64,
        mut f: impl FnMut(&mut Self, u64, u8),
    ) {
        for i in 0..width.bytes() {
            f(self, offset + i, (value >> (8 * i)) as u8);
        }
    }

    /// GICv2 ITARGETSR byte for `intid`: the accessing CPU's own bit for
    /// SGIs/PPIs (read-only), the routing mask for SPIs.
    fn target_byte(&self, vcpu: usize, intid: u32) -> u8 {
        if intid < NR_PRIVATE {
            1 << (vcpu & 7)
        } else if intid < self.nr_lines() {
            self.spis
                .get((intid - NR_PRIVATE) as usize)
                .map_or(0, |s| s.targets)
        } else {
            0
        }
    }

    fn set_target_byte(&mut self, intid: u32, b: u8) {
        let valid = self.cpu_mask_all();
        if intid >= NR_PRIVATE
            && intid < self.nr_lines()
            && let Some(s) = self.spis.get_mut((intid - NR_PRIVATE) as usize)
        {
            s.targets = b & valid;
        }
    }

    /// One distributor priority byte. On GICv3 the distributor's SGI/PPI
    /// bytes are RES0 (they live in the redistributor).
    pub(crate) fn priority_byte(&self, vcpu: usize, intid: u32) -> u8 {
        if self.version == GicVersion::V3 && intid < NR_PRIVATE {
            return 0;
        }
        self.irq(vcpu, intid).map_or(0, |i| i.priority)
    }

    pub(crate) fn set_priority_byte(&mut self, vcpu: usize, intid: u32, b: u8) {
        if self.version == GicVersion::V3 && intid < NR_PRIVATE {
            return;
        }
        if let Some(i) = self.irq_mut(vcpu, intid) {
            i.priority = b & PRIORITY_MASK;
        }
    }

    /// Priority of a private interrupt through the redistributor.
    pub(crate) fn private_priority_byte(&self, vcpu: usize, intid: u32) -> u8 {
        self.vcpus[vcpu]
            .private
            .get(intid as usize)
            .map_or(0, |i| i.priority)
    }

    pub(crate) fn set_private_priority_byte(&mut self, vcpu: usize, intid: u32, b: u8) {
        if let Some(i) = self.vcpus[vcpu].private.get_mut(intid as usize) {
            i.priority = b & PRIORITY_MASK;
        }
    }

    /// Read a one-bit-per-interrupt register covering `first..first+32`.
    pub(crate) fn bitreg_read(&self, vcpu: usize, kind: BitReg, first: u32) -> u32 {
        let mut val = 0u32;
        for bit in 0..32 {
            let intid = first + bit;
            let Some(irq) = self.irq(vcpu, intid) else {
                continue;
            };
            let set = match kind {
                BitReg::Group => irq.group1,
                BitReg::SetEnable | BitReg::ClearEnable => irq.enabled,
                BitReg::SetPending | BitReg::ClearPending => {
                    self.is_pending(vcpu, intid)
                        || self.listed_state(irq).is_some_and(|s| s.is_pending())
                }
                BitReg::SetActive | BitReg::ClearActive => irq.active,
            };
            val |= u32::from(set) << bit;
        }
        val
    }

    /// Write a one-bit-per-interrupt register covering `first..first+32`.
    pub(crate) fn bitreg_write(&mut self, vcpu: usize, kind: BitReg, first: u32, val: u32) {
        for bit in 0..32 {
            let intid = first + bit;
            let one = val & (1 << bit) != 0;
            // GICv2 SGI pending bits are read-only here (use C/SPENDSGIR).
            let v2_sgi = self.is_v2_sgi(intid);
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            match kind {
                BitReg::Group => irq.group1 = one,
                BitReg::SetEnable if one => irq.enabled = true,
                BitReg::ClearEnable if one => irq.enabled = false,
                BitReg::SetPending if one && !v2_sgi => irq.latch = true,
                BitReg::ClearPending if one && !v2_sgi => irq.latch = false,
                BitReg::SetActive if one => irq.active = true,
                BitReg::ClearActive if one => irq.active = false,
                _ => {}
            }
            if one && matches!(kind, BitReg::SetEnable | BitReg::ClearEnable) {
                self.note_enable(vcpu, intid, kind == BitReg::SetEnable);
            }
        }
    }

    /// Read ICFGR covering `first..first+16` (2 bits each, bit 1 = edge).
    pub(crate) fn icfgr_read(&self, vcpu: usize, first: u32) -> u32 {
        if self.version == GicVersion::V3 && first < NR_PRIVATE {
            return 0;
        }
        self.icfgr_read_banked(vcpu, first)
    }

    pub(crate) fn icfgr_read_banked(&self, vcpu: usize, first: u32) -> u32 {
        let mut val = 0;
        for i in 0..16 {
            if self.irq(vcpu, first + i).is_some_and(|irq| irq.edge) {
                val |= 2 << (2 * i);
            }
        }
        val
    }

    /// Distributor ICFGR store. Ignored for INTIDs 0..31: on GICv3 they
    /// are RES0 with affinity routing; on GICv2 the SGI fields are
    /// read-only and the PPI fields (ICFGR1) are not writable either
    /// (implementation defined; Xen 4.17 chose read-only too).
    pub(crate) fn icfgr_write(&mut self, vcpu: usize, first: u32, val: u32) {
        if first < NR_PRIVATE {
            return;
        }
        self.icfgr_write_banked(vcpu, first, val);
    }

    /// SGIs are always edge-triggered (their fields are read-only).
    pub(crate) fn icfgr_write_banked(&mut self, vcpu: usize, first: u32, val: u32) {
        for i in 0..16 {
            let intid = first + i;
            if intid < NR_SGIS {
                continue;
            }
            if let Some(irq) = self.irq_mut(vcpu, intid) {
                irq.edge = val & (2 << (2 * i)) != 0;
            }
        }
    }
}
