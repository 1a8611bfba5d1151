//! Virtual GIC (v2/v3) distributor and redistributor models, and the
//! list-register (LR) policy that turns their state into what the hardware
//! virtual CPU interface shows a guest.
//!
//! # Why a model crate
//!
//! A guest's GIC has two halves. The CPU interface is virtualised by the
//! hardware (GICv2: the GICV frame mapped at the guest's GICC address;
//! GICv3: the `ICC_*` system registers backed by `ICH_*_EL2`), fed through a
//! handful of list registers. The distributor (and for v3 the
//! redistributors) is plain MMIO that oxen traps at stage 2 and emulates.
//! Both halves meet in the list registers: the hypervisor decides, before
//! each entry to a vCPU, which pending interrupts go into the LRs
//! ([`Vgic::fill_lrs`]) and folds what the guest did to them back after each
//! exit ([`Vgic::sync_lrs`]). All of that is pure state manipulation, so it
//! lives here, with no registers and no `unsafe`, and is tested on the host.
//! The `arch` layer reads/writes `GICH_LR<n>` / `ICH_LR<n>_EL2` with
//! [`encode_lr_v2`]/[`encode_lr_v3`] and the matching decoders.
//!
//! # Calling protocol (per vCPU)
//!
//! ```text
//!   exit from guest ─► read LRs ─► sync_lrs(v, lrs)
//!                      handle the exit (MMIO via dist_*/redist_*, sgi1r_write, inject, set_level …)
//!   entry to guest ◄─ write LRs ◄─ fill_lrs(v, n, out); UIE = needs_maintenance(v)
//! ```
//!
//! Between `sync_lrs` and `fill_lrs` the model is authoritative for every
//! interrupt of that vCPU. While the vCPU runs, the hardware owns the state
//! of what is in its LRs; new events for those interrupts (another
//! injection, another SGI source) accumulate in the model and are merged at
//! the next `fill_lrs`. `inject`/`set_level` return the vCPU that should be
//! kicked (made to exit, or woken from WFI) so that happens soon; MMIO
//! stores return a [`WriteEffect`] whose `kick` list serves the same
//! purpose (e.g. vCPU 0 enabling an SPI routed to vCPU 1), and
//! `sgi1r_write` returns its targets.
//!
//! Limitation: a guest write that clears the pending/active state of an
//! interrupt currently loaded in the LR of *another, running* vCPU only
//! takes effect for what the model holds; the LR copy wins at that vCPU's
//! next sync. Linux does not rely on this.
//!
//! # Invariants
//!
//! * An interrupt is in at most one LR across all vCPUs of the domain
//!   (tracked per interrupt; `fill_lrs` never loads an interrupt that is
//!   already listed). A v2 SGI pending from several sources is therefore
//!   delivered one source at a time; the LR asks for an EOI maintenance
//!   interrupt so the next source follows promptly.
//! * Disabling an interrupt (ICENABLER), clearing a distributor group
//!   enable or retargeting an SPI does not remove it from an LR already
//!   loaded; only completion (the LR going invalid) or clearing its
//!   pending/active state does.
//! * Edge-style pending state ("latch": edge-triggered interrupts, software
//!   pends via ISPENDR/`inject`, HW-mapped interrupts) is *moved* into the
//!   LR when loaded and moved back on sync, so an edge that arrives while
//!   the vCPU runs is never lost. Level-triggered interrupts are pending
//!   while their line ([`Vgic::set_level`]) is high; a level interrupt that
//!   completes with its line still high is re-pended at the next fill.
//! * No guest-controlled input can panic: bad MMIO offsets are RAZ/WI
//!   ([`VgicError::Unhandled`]), bad widths are [`VgicError::BadAccess`],
//!   and every index is bounds-checked.
//!
//! # What is presented to the guest
//!
//! * GICv2: a GIC without Security Extensions (GICD_CTLR EnableGrp0/1,
//!   readable/writable IGROUPR), up to 8 vCPUs, priorities with 5 bits.
//! * GICv3: a single security state (`GICD_CTLR.DS = 1`), affinity routing
//!   always on (`ARE` RAO/WI), no LPIs/ITS, no extended SPI/PPI ranges,
//!   10 INTID bits, priorities with 5 bits. vCPU `n` has affinity
//!   Aff0 = n & 0xf, Aff1 = (n >> 4) & 0xff, Aff2 = (n >> 12) & 0xff, like
//!   Xen's vMPIDR (see [`vcpu_mpidr`]); the hypervisor must program
//!   `VMPIDR_EL2` the same way.
//!
//! Facts come from the GIC architecture specifications (Arm IHI 0048B for
//! GICv2, IHI 0069 for GICv3) and from which registers Linux's
//! `irq-gic.c`/`irq-gic-v3.c` drivers touch.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod dist;
mod lr;
mod redist;
mod sgi;

#[cfg(test)]
mod hint_tests;
mod xen_regs;

use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;

pub use lr::{LrEntry, LrState, Synced, decode_lr_v2, decode_lr_v3, encode_lr_v2, encode_lr_v3};
pub use sgi::{SgiTargets, decode_sgi1r};

/// Number of Software Generated Interrupts (INTID 0..15).
pub const NR_SGIS: u32 = 16;
/// Number of private interrupts (SGIs + PPIs, INTID 0..31) per vCPU.
pub const NR_PRIVATE: u32 = 32;
/// First INTID of the special range (1020..1023); no interrupt exists there.
pub const SPECIAL_INTID_BASE: u32 = 1020;
/// Largest `nr_spis` accepted by [`Vgic::new`] (`ITLinesNumber` = 31).
pub const MAX_SPIS: u32 = 992;
const _: () = assert!(
    MAX_SPIS / 32 <= 32,
    "the SPI enable words fit a u32 summary"
);
/// Most vCPUs a GICv2 can address (8-bit CPU target masks).
pub const MAX_VCPUS_V2: usize = 8;
/// Most vCPUs the GICv3 model gives distinct affinities to (Aff2.Aff1.Aff0
/// with 16 per cluster, see [`vcpu_mpidr`]).
pub const MAX_VCPUS_V3: usize = 4096;
/// Most list registers any implementation has (GICv2 `GICH_LR0..63`).
pub const MAX_LRS: usize = 64;
/// Size of the GICv2 distributor frame.
pub const GICV2_DIST_SIZE: u64 = 0x1000;
/// Size of the GICv3 distributor frame.
pub const GICV3_DIST_SIZE: u64 = 0x1_0000;
/// Size of one GICv3 redistributor (RD_base + SGI_base frames, no VLPI
/// frames) — the stride between vCPUs in the guest's GICR region.
pub const GICV3_REDIST_STRIDE: u64 = 0x2_0000;
/// Bits of priority implemented (the rest read as zero), matching what a
/// GICv2 list register can carry (`GICH_LR.Priority` is 5 bits).
pub const PRIORITY_BITS: u32 = 5;
/// Mask applied to every priority value stored.
pub const PRIORITY_MASK: u8 = !((1u8 << (8 - PRIORITY_BITS)) - 1);

/// Which GIC architecture version the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (GIC-400 on Raspberry Pi 4, QEMU virt `gic-version=2`).
    V2,
    /// GICv3 (QEMU virt `gic-version=3`).
    V3,
}

/// Width of an MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8 bits.
    Byte,
    /// 16 bits (never valid on a GIC).
    Half,
    /// 32 bits.
    Word,
    /// 64 bits.
    Dword,
}

impl Width {
    /// All widths, for sweeps.
    pub const ALL: [Width; 4] = [Width::Byte, Width::Half, Width::Word, Width::Dword];

    /// The access size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Width::Byte => 1,
            Width::Half => 2,
            Width::Word => 4,
            Width::Dword => 8,
        }
    }

    /// From a size in bytes (as a data-abort syndrome gives it).
    pub const fn from_bytes(n: u8) -> Option<Width> {
        match n {
            1 => Some(Width::Byte),
            2 => Some(Width::Half),
            4 => Some(Width::Word),
            8 => Some(Width::Dword),
            _ => None,
        }
    }

    /// Mask of the bits an access of this width carries.
    pub const fn mask(self) -> u64 {
        match self {
            Width::Dword => u64::MAX,
            w => (1u64 << (w.bytes() * 8)) - 1,
        }
    }
}

/// Errors of the vGIC model.
///
/// How the hypervisor handles them: [`BadAccess`](Self::BadAccess) becomes
/// a data abort injected into the guest (it is what real hardware may do for
/// an unsupported access width); [`Unhandled`](Self::Unhandled) completes
/// the access as RAZ/WI (loads return 0) with a debug-level log line; the
/// other variants are hypervisor bugs (bad arguments from oxen itself) and
/// deserve an error log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicError {
    /// The access width/alignment is not allowed for this register.
    BadAccess {
        /// Offset within the frame.
        offset: u64,
        /// Width attempted.
        width: Width,
    },
    /// Reserved or unimplemented offset: RAZ/WI, nothing changed.
    Unhandled {
        /// Offset within the frame.
        offset: u64,
        /// Whether the access was a write.
        write: bool,
    },
    /// vCPU index out of range.
    BadVcpu(usize),
    /// INTID out of range for this vGIC (or needs a vCPU that was not given).
    BadIntid(u32),
    /// Invalid construction parameters.
    BadConfig,
    /// List-register count or output slice unusable.
    BadLrCount(usize),
}

impl VgicError {
    /// Whether the access should simply be completed as RAZ/WI.
    pub const fn is_raz_wi(&self) -> bool {
        matches!(self, VgicError::Unhandled { .. })
    }
}

impl fmt::Display for VgicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VgicError::BadAccess { offset, width } => {
                write!(
                    f,
                    "bad {}-byte access at offset {:#x}",
                    width.bytes(),
                    offset
                )
            }
            VgicError::Unhandled { offset, write } => write!(
                f,
                "unhandled {} at offset {:#x} (RAZ/WI)",
                if *write { "write" } else { "read" },
                offset
            ),
            VgicError::BadVcpu(v) => write!(f, "vCPU {v} out of range"),
            VgicError::BadIntid(i) => write!(f, "INTID {i} out of range"),
            VgicError::BadConfig => write!(f, "invalid vGIC configuration"),
            VgicError::BadLrCount(n) => write!(f, "bad list-register count {n}"),
        }
    }
}

/// What a distributor/redistributor store did besides changing state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteEffect {
    /// SGIs generated by a GICv2 `GICD_SGIR` write (already pending).
    pub sgis: Option<SgiTargets>,
    /// vCPUs that may now have a deliverable interrupt, ascending: kick
    /// them (IPI if running, wake if blocked). May include the writer,
    /// which needs nothing (it refills its LRs before resuming).
    pub kick: Vec<usize>,
}

/// The MPIDR affinity fields (Aff0 bits \[7:0\], Aff1 \[15:8\], Aff2
/// \[23:16\], Aff3 \[39:32\]) oxen gives vCPU `vcpu`: 16 vCPUs per Aff0
/// cluster, because an `ICC_SGI1R_EL1` target list addresses 16 PEs (the
/// same layout as Xen's vMPIDR). Program `VMPIDR_EL2` with this (plus bit 31).
pub const fn vcpu_mpidr(vcpu: usize) -> u64 {
    let v = vcpu as u64;
    (v & 0xf) | (((v >> 4) & 0xff) << 8) | (((v >> 12) & 0xff) << 16)
}

/// Packed affinity `Aff3.Aff2.Aff1.Aff0` (one byte each, Aff3 in the top
/// byte) as used by `GICR_TYPER[63:32]`.
pub(crate) const fn vcpu_affinity32(vcpu: usize) -> u32 {
    let m = vcpu_mpidr(vcpu);
    ((m & 0xff_ffff) | (((m >> 32) & 0xff) << 24)) as u32
}

/// vCPU with affinity (aff3, aff2, aff1, aff0), if any.
pub(crate) fn affinity_to_vcpu(
    aff3: u8,
    aff2: u8,
    aff1: u8,
    aff0: u8,
    nr_vcpus: usize,
) -> Option<usize> {
    if aff3 != 0 || aff0 > 0xf {
        return None;
    }
    let v = (usize::from(aff2) << 12) | (usize::from(aff1) << 4) | usize::from(aff0);
    (v < nr_vcpus).then_some(v)
}

/// Where an interrupt is listed: vCPU and LR slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LrRef {
    pub vcpu: usize,
    pub slot: usize,
}

/// State of one interrupt (private: per vCPU; SPI: shared).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Irq {
    pub enabled: bool,
    /// Edge/software pending latch (not used for v2 SGIs: see `sgi_sources`).
    pub latch: bool,
    /// Input line level (meaningful for level-triggered interrupts).
    pub line: bool,
    pub active: bool,
    pub priority: u8,
    pub group1: bool,
    /// Edge-triggered (ICFGR Int_config\[1\]).
    pub edge: bool,
    /// Physical INTID when the interrupt is hardware-mapped (LR HW bit).
    pub hw: Option<u32>,
    /// The LR holding this interrupt, if any.
    pub lr: Option<LrRef>,
    /// Injected by the hypervisor as an edge whatever the guest programmed
    /// in ICFGR ([`Vgic::force_edge`]).
    pub forced_edge: bool,
}

impl Irq {
    const fn new(edge: bool) -> Self {
        Irq {
            enabled: false,
            latch: false,
            line: false,
            active: false,
            priority: 0,
            group1: false,
            edge,
            hw: None,
            lr: None,
            forced_edge: false,
        }
    }

    /// Pending latch semantics apply (rather than line level).
    pub(crate) fn latch_style(&self) -> bool {
        self.edge || self.forced_edge || self.hw.is_some()
    }

    /// Pending as far as the model knows (excluding v2 SGI sources).
    pub(crate) fn pending(&self) -> bool {
        self.latch || (!self.latch_style() && self.line)
    }
}

/// Per-vCPU state: banked private interrupts, v2 SGI sources, LR shadow.
#[derive(Clone, Debug)]
pub(crate) struct VcpuState {
    pub private: [Irq; NR_PRIVATE as usize],
    /// Enabled private interrupts, bit n = INTID n (mirrors `enabled`).
    pub private_enabled: u32,
    /// Private interrupts that may be waiting (pending and not listed), bit
    /// n = INTID n: a superset the scans for deliverable interrupts narrow
    /// down. Every change to a private interrupt sets its bit (all go
    /// through [`Vgic::irq_mut`] or [`Vgic::note_maybe_waiting`]); a scan
    /// clears the bits of those it finds not pending or listed (listing
    /// and releasing an LR go through `irq_mut` again). GICv2 SGIs, whose
    /// pending state is `sgi_sources`, are always scanned.
    pub maybe_waiting: Cell<u32>,
    /// GICv2: per SGI, bit mask of source vCPUs with a pending request.
    pub sgi_sources: [u8; NR_SGIS as usize],
    /// What oxen last put into / read back from each LR slot.
    pub lrs: Vec<Option<LrEntry>>,
    /// `lrs` were handed out by `fill_lrs` and not synced since.
    pub lrs_loaded: bool,
    /// GICR_WAKER.ProcessorSleep (v3).
    pub sleep: bool,
}

/// One SPI: its state plus routing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spi {
    pub irq: Irq,
    /// GICv2 ITARGETSR byte (CPU mask).
    pub targets: u8,
    /// GICv3 GICD_IROUTER (Aff0-3 + IRM).
    pub irouter: u64,
}

/// GICD_IROUTER.IRM: route to any participating PE (1 of N).
pub(crate) const IROUTER_IRM: u64 = 1 << 31;

/// A virtual GIC for one domain.
#[derive(Clone, Debug)]
pub struct Vgic {
    pub(crate) version: GicVersion,
    pub(crate) nr_vcpus: usize,
    pub(crate) nr_spis: u32,
    /// GICD_CTLR group enables: bit 0 EnableGrp0, bit 1 EnableGrp1.
    pub(crate) ctlr: u32,
    pub(crate) vcpus: Vec<VcpuState>,
    pub(crate) spis: Vec<Spi>,
    /// Enabled SPIs, one bit each, 32 per word (word 0 = INTIDs 32..63):
    /// the scans for deliverable interrupts visit only these.
    pub(crate) spi_enabled: Vec<u32>,
    /// SPIs that may be pending and not listed, laid out as `spi_enabled`:
    /// a superset the scans narrow down, like `VcpuState::maybe_waiting`
    /// (every change to an SPI goes through [`Vgic::irq_mut`], which sets
    /// its bit; a scan clears the bits of SPIs it finds not pending or
    /// listed, whatever their target, so rerouting needs no bit).
    pub(crate) spi_maybe_waiting: Vec<Cell<u32>>,
    /// Bit w set when word w of `spi_enabled` is not 0 (at most 31 words:
    /// [`MAX_SPIS`]), so a scan skips the words with nothing enabled.
    pub(crate) spi_enabled_words: u32,
}

/// What [`Vgic::pending_for`] lists: (priority, INTID) pairs, kept inline
/// while few (the usual case: no heap allocation on a guest entry).
#[derive(Default)]
pub(crate) struct Waiting {
    small: [(u8, u32); WAITING_INLINE],
    len: usize,
    big: Vec<(u8, u32)>,
    next: usize,
}

const WAITING_INLINE: usize = 8;

impl Waiting {
    fn push(&mut self, e: (u8, u32)) {
        if self.len < WAITING_INLINE {
            self.small[self.len] = e;
            self.len += 1;
        } else {
            if self.big.is_empty() {
                self.big.extend_from_slice(&self.small);
            }
            self.big.push(e);
        }
    }

    fn entries(&mut self) -> &mut [(u8, u32)] {
        if self.big.is_empty() {
            &mut self.small[..self.len]
        } else {
            &mut self.big
        }
    }

    fn sort(&mut self) {
        self.entries().sort_unstable();
    }

    fn peek(&mut self) -> Option<u32> {
        let i = self.next;
        self.entries().get(i).map(|&(_, intid)| intid)
    }
}

impl Iterator for Waiting {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let e = self.peek();
        if e.is_some() {
            self.next += 1;
        }
        e
    }
}

impl Vgic {
    /// Create a vGIC with all interrupts disabled, inactive, not pending,
    /// priority 0, SGIs edge and PPIs/SPIs level-triggered, SPIs routed to
    /// vCPU 0, as Xen 4.17 resets its vGIC: on GICv3 every interrupt is
    /// Group 1 (Xen delivers nothing else), on GICv2 Group 0.
    ///
    /// `nr_spis` must be a multiple of 32, at most [`MAX_SPIS`];
    /// `nr_vcpus` must be 1..=8 for v2 and 1..=[`MAX_VCPUS_V3`] for v3.
    pub fn new(version: GicVersion, nr_vcpus: usize, nr_spis: u32) -> Result<Self, VgicError> {
        let max_vcpus = match version {
            GicVersion::V2 => MAX_VCPUS_V2,
            GicVersion::V3 => MAX_VCPUS_V3,
        };
        if nr_vcpus == 0
            || nr_vcpus > max_vcpus
            || !nr_spis.is_multiple_of(32)
            || nr_spis > MAX_SPIS
        {
            return Err(VgicError::BadConfig);
        }
        let group1 = version == GicVersion::V3;
        let mut private = [Irq::new(false); NR_PRIVATE as usize];
        for (i, irq) in private.iter_mut().enumerate() {
            irq.edge = i < NR_SGIS as usize;
            irq.group1 = group1;
        }
        let vcpu = VcpuState {
            private,
            private_enabled: 0,
            maybe_waiting: Cell::new(u32::MAX),
            sgi_sources: [0; NR_SGIS as usize],
            lrs: Vec::new(),
            lrs_loaded: false,
            sleep: true,
        };
        let spi = Spi {
            irq: Irq {
                group1,
                ..Irq::new(false)
            },
            // GICv2: ITARGETSR names vCPU 0 (Xen's reset value); GICv3
            // routes by IROUTER, whose reset value names vCPU 0.
            targets: 1,
            irouter: 0,
        };
        let mut vcpus = Vec::new();
        vcpus.resize(nr_vcpus, vcpu);
        let mut spis = Vec::new();
        spis.resize(nr_spis as usize, spi);
        Ok(Vgic {
            version,
            nr_vcpus,
            nr_spis,
            ctlr: 0,
            vcpus,
            spis,
            spi_enabled: alloc::vec![0; nr_spis.div_ceil(32) as usize],
            spi_maybe_waiting: (0..nr_spis.div_ceil(32))
                .map(|_| Cell::new(u32::MAX))
                .collect(),
            spi_enabled_words: 0,
        })
    }

    /// Call `f(intid, priority)` for every interrupt deliverable to `vcpu`
    /// that is in no LR, in INTID order, until `f` returns false. Visits
    /// only the enabled interrupts (a disabled interrupt is never
    /// deliverable), from the per-vCPU and SPI enable bitmaps. The tests are those of
    /// [`Vgic::deliverable_to`] on the entry at hand: this runs on every
    /// guest entry that refills list registers.
    fn for_each_waiting(&self, vcpu: usize, mut f: impl FnMut(u32, u8) -> bool) {
        let Some(v) = self.vcpus.get(vcpu) else {
            return;
        };
        let v2 = self.version == GicVersion::V2;
        let v2_sgis = if v2 { (1 << NR_SGIS) - 1 } else { 0 };
        let mut rest = v.private_enabled & (v.maybe_waiting.get() | v2_sgis);
        // Bits of interrupts found not waiting (cleared below, also on an
        // early return: the bits not visited yet stay set).
        let mut idle = 0u32;
        while rest != 0 {
            let intid = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let irq = &v.private[intid];
            if irq.lr.is_some() {
                idle |= 1 << intid;
                continue;
            }
            if !self.group_enabled(irq.group1) {
                continue;
            }
            let pending = if v2 && intid < NR_SGIS as usize {
                v.sgi_sources[intid] != 0
            } else {
                irq.pending()
            };
            if !pending {
                idle |= 1 << intid;
            } else if !f(intid as u32, irq.priority) {
                v.maybe_waiting.set(v.maybe_waiting.get() & !idle);
                return;
            }
        }
        v.maybe_waiting.set(v.maybe_waiting.get() & !idle);
        let limit = self.nr_lines();
        let mut words = self.spi_enabled_words;
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            let Some(maybe) = self.spi_maybe_waiting.get(w) else {
                return;
            };
            let mut rest = self.spi_enabled.get(w).copied().unwrap_or(0) & maybe.get();
            let mut idle = 0u32;
            while rest != 0 {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                let intid = NR_PRIVATE + 32 * w as u32 + bit;
                let Some(spi) = self.spis.get((intid - NR_PRIVATE) as usize) else {
                    break;
                };
                if intid >= limit {
                    break;
                }
                let irq = &spi.irq;
                if irq.lr.is_some() || !irq.pending() {
                    idle |= 1 << bit;
                } else if irq.enabled
                    && self.group_enabled(irq.group1)
                    && self.spi_target(intid) == Some(vcpu)
                    && !f(intid, irq.priority)
                {
                    maybe.set(maybe.get() & !idle);
                    return;
                }
            }
            maybe.set(maybe.get() & !idle);
        }
    }

    /// Record that `intid` (banked to `vcpu` when private) was enabled or
    /// disabled, in the enable bitmaps.
    pub(crate) fn note_enable(&mut self, vcpu: usize, intid: u32, enabled: bool) {
        if intid < NR_PRIVATE {
            if let Some(v) = self.vcpus.get_mut(vcpu) {
                if enabled {
                    v.private_enabled |= 1 << intid;
                } else {
                    v.private_enabled &= !(1 << intid);
                }
            }
        } else if let Some(spi) = intid.checked_sub(NR_PRIVATE)
            && let Some(w) = self.spi_enabled.get_mut((spi / 32) as usize)
        {
            if enabled {
                *w |= 1 << (spi % 32);
            } else {
                *w &= !(1 << (spi % 32));
            }
            let bit = 1 << (spi / 32);
            if *w != 0 {
                self.spi_enabled_words |= bit;
            } else {
                self.spi_enabled_words &= !bit;
            }
        }
    }

    /// GIC version presented to the guest.
    pub fn version(&self) -> GicVersion {
        self.version
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.nr_vcpus
    }

    /// Number of SPIs (INTIDs 32..32+nr_spis, minus the special range).
    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    /// One past the highest implemented INTID.
    pub fn nr_lines(&self) -> u32 {
        (NR_PRIVATE + self.nr_spis).min(SPECIAL_INTID_BASE)
    }

    pub(crate) fn check_vcpu(&self, vcpu: usize) -> Result<(), VgicError> {
        if vcpu < self.nr_vcpus {
            Ok(())
        } else {
            Err(VgicError::BadVcpu(vcpu))
        }
    }

    pub(crate) fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        if intid < NR_PRIVATE {
            self.vcpus.get(vcpu).map(|v| &v.private[intid as usize])
        } else if intid < self.nr_lines() {
            self.spis.get((intid - NR_PRIVATE) as usize).map(|s| &s.irq)
        } else {
            None
        }
    }

    pub(crate) fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        if intid < NR_PRIVATE {
            self.note_maybe_waiting(vcpu, intid);
            self.vcpus
                .get_mut(vcpu)
                .map(|v| &mut v.private[intid as usize])
        } else if intid < self.nr_lines() {
            let spi = intid - NR_PRIVATE;
            if let Some(w) = self.spi_maybe_waiting.get((spi / 32) as usize) {
                w.set(w.get() | 1 << (spi % 32));
            }
            self.spis.get_mut(spi as usize).map(|s| &mut s.irq)
        } else {
            None
        }
    }

    /// Private interrupt `intid` of `vcpu` may have become waiting: the next
    /// scan looks at it (see `VcpuState::maybe_waiting`).
    pub(crate) fn note_maybe_waiting(&self, vcpu: usize, intid: u32) {
        if let Some(v) = self.vcpus.get(vcpu)
            && intid < NR_PRIVATE
        {
            v.maybe_waiting.set(v.maybe_waiting.get() | 1 << intid);
        }
    }

    /// Whether a GICv2 SGI (per-source pending state) is meant.
    pub(crate) fn is_v2_sgi(&self, intid: u32) -> bool {
        self.version == GicVersion::V2 && intid < NR_SGIS
    }

    /// Pending state of `intid` as seen by `vcpu` (banked for private).
    pub(crate) fn is_pending(&self, vcpu: usize, intid: u32) -> bool {
        if self.is_v2_sgi(intid) {
            return self
                .vcpus
                .get(vcpu)
                .is_some_and(|v| v.sgi_sources[intid as usize] != 0);
        }
        self.irq(vcpu, intid).is_some_and(Irq::pending)
    }

    /// Whether the distributor forwards interrupts of this group.
    pub(crate) fn group_enabled(&self, group1: bool) -> bool {
        self.ctlr & if group1 { 2 } else { 1 } != 0
    }

    /// The vCPU an SPI is currently routed to, if any.
    pub(crate) fn spi_target(&self, intid: u32) -> Option<usize> {
        let spi = self.spis.get(intid.checked_sub(NR_PRIVATE)? as usize)?;
        match self.version {
            GicVersion::V2 => {
                let m = spi.targets & self.cpu_mask_all();
                (m != 0).then(|| m.trailing_zeros() as usize)
            }
            GicVersion::V3 => {
                if spi.irouter & IROUTER_IRM != 0 {
                    return Some(0);
                }
                let r = spi.irouter;
                affinity_to_vcpu(
                    (r >> 32) as u8,
                    (r >> 16) as u8,
                    (r >> 8) as u8,
                    r as u8,
                    self.nr_vcpus,
                )
            }
        }
    }

    /// GICv2: mask of all implemented CPU interfaces.
    pub(crate) fn cpu_mask_all(&self) -> u8 {
        if self.nr_vcpus >= 8 {
            0xff
        } else {
            (1u8 << self.nr_vcpus) - 1
        }
    }

    /// Whether `intid` is pending, enabled and its group enabled, and
    /// routed to `vcpu` — i.e. the distributor would forward it there.
    pub(crate) fn deliverable_to(&self, vcpu: usize, intid: u32) -> bool {
        let Some(irq) = self.irq(vcpu, intid) else {
            return false;
        };
        if !irq.enabled || !self.group_enabled(irq.group1) || !self.is_pending(vcpu, intid) {
            return false;
        }
        intid < NR_PRIVATE || self.spi_target(intid) == Some(vcpu)
    }

    /// The vCPU to kick after `intid` (banked to `vcpu` when private) may
    /// have become deliverable.
    pub(crate) fn kick_for(&self, vcpu: usize, intid: u32) -> Option<usize> {
        let target = if intid < NR_PRIVATE {
            vcpu
        } else {
            self.spi_target(intid)?
        };
        self.deliverable_to(target, intid).then_some(target)
    }

    /// Make `intid` pending once (an edge, or a software "set pending").
    ///
    /// SPIs: `target` is ignored; routing follows ITARGETSR/IROUTER.
    /// SGIs and PPIs: `target` names the vCPU and is required. A GICv2 SGI
    /// injected this way has the target itself as its source. For
    /// level-triggered interrupts the pending state lasts until the guest
    /// acknowledges it (like a write to ISPENDR); use [`Vgic::set_level`]
    /// to model a line.
    ///
    /// Returns the vCPU that should be kicked (interrupted or woken) because
    /// it now has a deliverable interrupt, if any.
    pub fn inject(
        &mut self,
        intid: u32,
        target: Option<usize>,
    ) -> Result<Option<usize>, VgicError> {
        let vcpu = if intid < NR_PRIVATE {
            let v = target.ok_or(VgicError::BadIntid(intid))?;
            self.check_vcpu(v)?;
            v
        } else {
            0
        };
        if self.is_v2_sgi(intid) {
            self.vcpus[vcpu].sgi_sources[intid as usize] |= 1 << (vcpu & 7);
        } else {
            let irq = self
                .irq_mut(vcpu, intid)
                .ok_or(VgicError::BadIntid(intid))?;
            irq.latch = true;
        }
        Ok(self.kick_for(vcpu, intid))
    }

    /// Drive the input line of `intid` (banked to `vcpu` for PPIs; `vcpu`
    /// is ignored for SPIs). Level-triggered interrupts are pending while
    /// the line is high; edge-triggered ones latch pending on a rising edge.
    /// SGIs have no line. Returns the vCPU to kick, if any.
    pub fn set_level(
        &mut self,
        intid: u32,
        vcpu: usize,
        high: bool,
    ) -> Result<Option<usize>, VgicError> {
        if intid < NR_SGIS {
            return Err(VgicError::BadIntid(intid));
        }
        if intid < NR_PRIVATE {
            self.check_vcpu(vcpu)?;
        }
        let irq = self
            .irq_mut(vcpu, intid)
            .ok_or(VgicError::BadIntid(intid))?;
        if high && !irq.line && irq.edge {
            irq.latch = true;
        }
        irq.line = high;
        Ok(if high {
            self.kick_for(vcpu, intid)
        } else {
            None
        })
    }

    /// Make private interrupt `intid` edge-like on every vCPU whatever the
    /// guest programs as its trigger: each [`Vgic::inject`] latches one
    /// delivery, and completing it needs no maintenance interrupt. For the
    /// hypervisor's own interrupts that Xen injects once per 0 -> 1 change of
    /// a guest-visible flag (the event-channel upcall and
    /// `evtchn_upcall_pending`), so a guest that configures them as level
    /// (Linux does, from the `/hypervisor` node) still sees Xen's behaviour.
    pub fn force_edge(&mut self, intid: u32) -> Result<(), VgicError> {
        if !(NR_SGIS..NR_PRIVATE).contains(&intid) {
            return Err(VgicError::BadIntid(intid));
        }
        for v in 0..self.vcpus.len() {
            if let Some(irq) = self.irq_mut(v, intid) {
                irq.forced_edge = true;
            }
        }
        Ok(())
    }

    /// Map `intid` (banked to `vcpu` for PPIs) to physical interrupt
    /// `pintid`, so its LRs carry the HW bit and the guest's deactivation
    /// deactivates the physical interrupt (passthrough SPIs, the virtual
    /// timer PPI). `None` removes the mapping. A mapped interrupt uses
    /// latch (edge-style) pending state: the hypervisor calls
    /// [`Vgic::inject`] each time the physical interrupt fires.
    pub fn set_hw_mapping(
        &mut self,
        intid: u32,
        vcpu: usize,
        pintid: Option<u32>,
    ) -> Result<(), VgicError> {
        if intid < NR_SGIS {
            return Err(VgicError::BadIntid(intid));
        }
        if intid < NR_PRIVATE {
            self.check_vcpu(vcpu)?;
        }
        let irq = self
            .irq_mut(vcpu, intid)
            .ok_or(VgicError::BadIntid(intid))?;
        irq.hw = pintid;
        Ok(())
    }

    /// Interrupts the distributor would forward to `vcpu` that are not in
    /// any LR, highest priority (lowest value) first, ties by INTID.
    pub fn pending_for(&self, vcpu: usize) -> impl Iterator<Item = u32> + use<> {
        let mut w = Waiting::default();
        self.collect_waiting(vcpu, &mut w);
        w
    }

    /// [`Vgic::pending_for`] into `w` (empty), sorted.
    fn collect_waiting(&self, vcpu: usize, w: &mut Waiting) {
        self.for_each_waiting(vcpu, |intid, prio| {
            w.push((prio, intid));
            true
        });
        w.sort();
    }

    /// Whether `vcpu` has anything to take: a deliverable interrupt not yet
    /// listed, or a listed one in a pending state (for waking it from WFI;
    /// the guest's priority mask and PSTATE are not considered).
    pub fn has_pending(&self, vcpu: usize) -> bool {
        let Some(v) = self.vcpus.get(vcpu) else {
            return false;
        };
        v.lrs.iter().flatten().any(|e| e.state != LrState::Active) || self.any_waiting(vcpu)
    }

    /// Whether some interrupt [`Vgic::pending_for`] would list exists (an
    /// early-exit scan: no allocation, no sorting; used on hot paths).
    pub(crate) fn any_waiting(&self, vcpu: usize) -> bool {
        let mut any = false;
        self.for_each_waiting(vcpu, |_, _| {
            any = true;
            false
        });
        any
    }

    /// Whether the hypervisor should request an underflow maintenance
    /// interrupt (`GICH_HCR.UIE` / `ICH_HCR_EL2.UIE`) for `vcpu`: call it
    /// right after [`Vgic::fill_lrs`]; it is true when deliverable
    /// interrupts did not fit into the LRs, so oxen gets control back as
    /// soon as the guest drains them.
    pub fn needs_maintenance(&self, vcpu: usize) -> bool {
        self.any_waiting(vcpu)
    }

    /// Whether `intid` (banked to `vcpu`) is enabled — for tests and
    /// debug dumps.
    pub fn is_enabled(&self, vcpu: usize, intid: u32) -> bool {
        self.irq(vcpu, intid).is_some_and(|i| i.enabled)
    }

    /// Whether `intid` (banked to `vcpu`) is pending in the model (not
    /// counting a pending state currently held by a loaded LR).
    pub fn is_pending_in_model(&self, vcpu: usize, intid: u32) -> bool {
        self.is_pending(vcpu, intid)
    }

    /// Whether `intid` (banked to `vcpu`) is active in the model.
    pub fn is_active(&self, vcpu: usize, intid: u32) -> bool {
        self.irq(vcpu, intid).is_some_and(|i| i.active)
    }

    /// Priority of `intid` (banked to `vcpu`).
    pub fn priority(&self, vcpu: usize, intid: u32) -> Option<u8> {
        self.irq(vcpu, intid).map(|i| i.priority)
    }

    /// The vCPU an SPI is routed to now, if any.
    pub fn route_of(&self, intid: u32) -> Option<usize> {
        self.spi_target(intid)
    }
}

#[cfg(test)]
mod tests;
