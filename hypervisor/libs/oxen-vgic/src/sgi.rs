//! Software Generated Interrupts: GICv2 `GICD_SGIR` (a distributor write)
//! and GICv3 `ICC_SGI1R_EL1` (a system-register write oxen traps).
//!
//! GICD_SGIR (IHI 0048B §4.3.15): TargetListFilter \[25:24\] (0 = the CPU
//! target list, 1 = all but the requester, 2 = the requester only,
//! 3 = reserved), CPUTargetList \[23:16\], NSATT \[15\], SGIINTID \[3:0\].
//!
//! ICC_SGI1R_EL1 (IHI 0069 §12.2.23): TargetList \[15:0\], Aff1 \[23:16\],
//! INTID \[27:24\], Aff2 \[39:32\], IRM \[40\] (1 = all but self),
//! RS \[47:44\] (target list covers Aff0 = RS*16 + bit), Aff3 \[55:48\].
//!
//! Both calls mark the SGIs pending in the model and return the targets so
//! the hypervisor can kick them. SGIs are delivered whatever their group
//! (the group checks of `ICC_SGI0R`/`ICC_SGI1R` are not modelled).

use smallvec::SmallVec;

use crate::{GicVersion, NR_SGIS, Vgic, affinity_to_vcpu};

/// The SGIs one SGI-generating write produced.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SgiTargets {
    /// SGI number (0..15).
    pub intid: u32,
    /// Requesting vCPU.
    pub source: usize,
    /// Target vCPUs, ascending, each at most once.
    pub targets: Targets,
}

/// Target vCPUs of one SGI write: inline up to 8 (no allocation on the
/// usual IPI to one or a few vCPUs), on the heap beyond.
pub type Targets = SmallVec<[usize; 8]>;

impl SgiTargets {
    /// The deliveries as `(target vcpu, sgi, source vcpu)`.
    pub fn iter(&self) -> impl Iterator<Item = (usize, u32, usize)> + '_ {
        self.targets.iter().map(|&t| (t, self.intid, self.source))
    }

    /// Whether the write targeted nobody.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// GICD_SGIR.TargetListFilter values.
const FILTER_LIST: u32 = 0;
const FILTER_OTHERS: u32 = 1;
const FILTER_SELF: u32 = 2;

/// ICC_SGI1R_EL1.IRM.
const SGI1R_IRM: u64 = 1 << 40;

/// Decode an `ICC_SGI1R_EL1` value written by vCPU `from` in a domain of
/// `nr_vcpus` vCPUs (affinities per [`crate::vcpu_mpidr`]). Targets that
/// match no vCPU are dropped.
pub fn decode_sgi1r(value: u64, from: usize, nr_vcpus: usize) -> SgiTargets {
    let intid = ((value >> 24) & 0xf) as u32;
    let mut targets = Targets::new();
    if value & SGI1R_IRM != 0 {
        targets.extend((0..nr_vcpus).filter(|&v| v != from));
    } else {
        let aff1 = (value >> 16) as u8;
        let aff2 = (value >> 32) as u8;
        let aff3 = (value >> 48) as u8;
        let rs = ((value >> 44) & 0xf) as u8;
        // Only the set bits of the target list (usually one).
        let mut list = (value & 0xffff) as u16;
        while list != 0 {
            let bit = list.trailing_zeros() as u8;
            list &= list - 1;
            // RS*16 + bit fits in u8 (RS <= 15).
            let aff0 = rs * 16 + bit;
            if let Some(v) = affinity_to_vcpu(aff3, aff2, aff1, aff0, nr_vcpus) {
                targets.push(v);
            }
        }
    }
    SgiTargets {
        intid,
        source: from,
        targets,
    }
}

impl Vgic {
    /// A GICv2 `GICD_SGIR` write by `from`: decode, mark pending (per
    /// source), return the targets. Reserved filter 3 targets nobody.
    pub(crate) fn sgir_v2_write(&mut self, from: usize, value: u32) -> SgiTargets {
        let intid = value & 0xf;
        let all = u32::from(self.cpu_mask_all());
        let mask = match (value >> 24) & 3 {
            FILTER_LIST => (value >> 16) & 0xff & all,
            FILTER_OTHERS => all & !(1 << from),
            FILTER_SELF => 1 << from,
            _ => 0,
        };
        let targets: Targets = (0..self.nr_vcpus)
            .filter(|&v| mask & (1 << v) != 0)
            .collect();
        for &t in &targets {
            self.vcpus[t].sgi_sources[intid as usize] |= 1 << from;
        }
        SgiTargets {
            intid,
            source: from,
            targets,
        }
    }

    /// A trapped write of `value` to `ICC_SGI1R_EL1` by vCPU `from` (GICv3;
    /// on a GICv2 vGIC nothing happens and the result is empty). The SGIs
    /// are marked pending; kick the returned targets.
    pub fn sgi1r_write(&mut self, from: usize, value: u64) -> SgiTargets {
        if self.version != GicVersion::V3 || from >= self.nr_vcpus {
            return SgiTargets {
                intid: ((value >> 24) & 0xf) as u32,
                source: from,
                targets: Targets::new(),
            };
        }
        let t = decode_sgi1r(value, from, self.nr_vcpus);
        debug_assert!(t.intid < NR_SGIS);
        for &v in &t.targets {
            self.vcpus[v].private[t.intid as usize].latch = true;
            self.note_maybe_waiting(v, t.intid);
        }
        t
    }
}
