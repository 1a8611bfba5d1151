//! List registers: a version-independent [`LrEntry`], its GICv2/GICv3
//! hardware encodings, and the fill/sync policy.
//!
//! `GICH_LR<n>` (IHI 0048B §5.3.11): VirtualID \[9:0\]; with HW = 0,
//! CPUID \[12:10\] (SGI source) and EOI \[19\] (maintenance interrupt on
//! EOI); with HW = 1, PhysicalID \[19:10\]; Priority \[27:23\] (the top five
//! bits of the 8-bit priority); State \[29:28\] (0 invalid, 1 pending,
//! 2 active, 3 pending and active); Grp1 \[30\]; HW \[31\].
//!
//! `ICH_LR<n>_EL2` (IHI 0069 §12.4.6): vINTID \[31:0\]; with HW = 0, EOI
//! \[41\]; with HW = 1, pINTID \[44:32\]; Priority \[55:48\]; Group \[60\];
//! HW \[61\]; State \[63:62\]. GICv3 LRs carry no SGI source.
//!
//! Policy ([`Vgic::fill_lrs`]): slots still holding an interrupt keep it
//! (their state is refreshed from the model: new pending merged in, cleared
//! pending/active dropped, an entry with nothing left is freed); free slots
//! take the best deliverable interrupts by (priority, INTID); then, while a
//! waiting interrupt has strictly higher priority than the worst
//! pending-only entry, that entry is handed back to the model and replaced.
//! A HW-mapped interrupt is never listed pending-and-active (its pending
//! state waits in the model), as the architecture requires.

use crate::{LrRef, MAX_LRS, Vgic, VgicError};

/// State of a valid list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    /// Pending, not yet acknowledged by the guest.
    Pending,
    /// Acknowledged, not yet deactivated.
    Active,
    /// Active, and pending again.
    PendingActive,
}

impl LrState {
    /// Whether the pending bit is set.
    pub const fn is_pending(self) -> bool {
        matches!(self, LrState::Pending | LrState::PendingActive)
    }

    /// Whether the active bit is set.
    pub const fn is_active(self) -> bool {
        matches!(self, LrState::Active | LrState::PendingActive)
    }

    /// From the two state bits; `None` for invalid (neither).
    pub const fn from_bits(pending: bool, active: bool) -> Option<Self> {
        match (pending, active) {
            (true, false) => Some(LrState::Pending),
            (false, true) => Some(LrState::Active),
            (true, true) => Some(LrState::PendingActive),
            (false, false) => None,
        }
    }

    /// The 2-bit State field value (same in both GIC versions).
    const fn field(self) -> u32 {
        match self {
            LrState::Pending => 1,
            LrState::Active => 2,
            LrState::PendingActive => 3,
        }
    }

    const fn from_field(f: u32) -> Option<Self> {
        Self::from_bits(f & 1 != 0, f & 2 != 0)
    }
}

/// What [`Vgic::sync_lrs_exact`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synced {
    /// The hardware LRs, with the `completed` slots cleared, are what a
    /// fill would write now if nothing waits to be listed.
    pub exact: bool,
    /// Slots (bit per slot) the guest completed: invalid in the hardware,
    /// free in the model.
    pub completed: u64,
}

/// One valid list register, independent of the GIC version. An invalid
/// (empty) list register is `None` wherever `Option<LrEntry>` is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrEntry {
    /// Virtual INTID the guest sees.
    pub intid: u32,
    /// Physical INTID for hardware-mapped interrupts (sets the HW bit, so
    /// the guest's deactivation deactivates the physical interrupt).
    pub pintid: Option<u32>,
    /// Pending/active state.
    pub state: LrState,
    /// Priority (8-bit; GICv2 keeps the top five bits).
    pub priority: u8,
    /// Group 1 (else Group 0).
    pub group1: bool,
    /// GICv2 SGIs: the requesting vCPU (the guest reads it from GICC_IAR).
    pub source_cpu: Option<u8>,
    /// Request a maintenance interrupt when the guest EOIs this entry
    /// (only possible without `pintid`): set when more work for the same
    /// interrupt waits (another SGI source, a level line to re-sample).
    pub eoi_maintenance: bool,
}

const V2_HW: u32 = 1 << 31;
const V2_GRP1: u32 = 1 << 30;
const V2_EOI: u32 = 1 << 19;
const V2_STATE_SHIFT: u32 = 28;
const V2_PRIO_SHIFT: u32 = 23;
const V2_ID_MASK: u32 = 0x3ff;
const V2_PHYS_SHIFT: u32 = 10;
const V2_CPUID_MASK: u32 = 0x7;

const V3_HW: u64 = 1 << 61;
const V3_GROUP: u64 = 1 << 60;
const V3_EOI: u64 = 1 << 41;
const V3_STATE_SHIFT: u32 = 62;
const V3_PRIO_SHIFT: u32 = 48;
const V3_PHYS_SHIFT: u32 = 32;
const V3_PHYS_MASK: u64 = 0x1fff;

/// Encode `e` as a GICv2 `GICH_LR<n>` value.
pub fn encode_lr_v2(e: &LrEntry) -> u32 {
    let mut v = e.intid & V2_ID_MASK;
    if let Some(p) = e.pintid {
        v |= V2_HW | ((p & V2_ID_MASK) << V2_PHYS_SHIFT);
    } else {
        if let Some(src) = e.source_cpu {
            v |= (u32::from(src) & V2_CPUID_MASK) << V2_PHYS_SHIFT;
        }
        if e.eoi_maintenance {
            v |= V2_EOI;
        }
    }
    v |= u32::from(e.priority >> 3) << V2_PRIO_SHIFT;
    v |= e.state.field() << V2_STATE_SHIFT;
    if e.group1 {
        v |= V2_GRP1;
    }
    v
}

/// Decode a GICv2 `GICH_LR<n>` value; `None` if its state is invalid.
/// `source_cpu` is reported for SGIs (VirtualID < 16) without HW.
pub fn decode_lr_v2(v: u32) -> Option<LrEntry> {
    let state = LrState::from_field((v >> V2_STATE_SHIFT) & 3)?;
    let intid = v & V2_ID_MASK;
    let hw = v & V2_HW != 0;
    Some(LrEntry {
        intid,
        pintid: hw.then_some((v >> V2_PHYS_SHIFT) & V2_ID_MASK),
        state,
        priority: (((v >> V2_PRIO_SHIFT) & 0x1f) << 3) as u8,
        group1: v & V2_GRP1 != 0,
        source_cpu: (!hw && intid < crate::NR_SGIS)
            .then_some(((v >> V2_PHYS_SHIFT) & V2_CPUID_MASK) as u8),
        eoi_maintenance: !hw && v & V2_EOI != 0,
    })
}

/// Encode `e` as a GICv3 `ICH_LR<n>_EL2` value (`source_cpu` is dropped:
/// GICv3 LRs have no such field).
pub fn encode_lr_v3(e: &LrEntry) -> u64 {
    let mut v = u64::from(e.intid);
    if let Some(p) = e.pintid {
        v |= V3_HW | ((u64::from(p) & V3_PHYS_MASK) << V3_PHYS_SHIFT);
    } else if e.eoi_maintenance {
        v |= V3_EOI;
    }
    v |= u64::from(e.priority) << V3_PRIO_SHIFT;
    if e.group1 {
        v |= V3_GROUP;
    }
    v |= u64::from(e.state.field()) << V3_STATE_SHIFT;
    v
}

/// Decode a GICv3 `ICH_LR<n>_EL2` value; `None` if its state is invalid.
pub fn decode_lr_v3(v: u64) -> Option<LrEntry> {
    let state = LrState::from_field((v >> V3_STATE_SHIFT) as u32 & 3)?;
    let hw = v & V3_HW != 0;
    Some(LrEntry {
        intid: v as u32,
        pintid: hw.then_some(((v >> V3_PHYS_SHIFT) & V3_PHYS_MASK) as u32),
        state,
        priority: (v >> V3_PRIO_SHIFT) as u8,
        group1: v & V3_GROUP != 0,
        source_cpu: None,
        eoi_maintenance: !hw && v & V3_EOI != 0,
    })
}

impl Vgic {
    /// State of the LR holding `irq`, as last filled or synced.
    pub(crate) fn listed_state(&self, irq: &crate::Irq) -> Option<LrState> {
        let r = irq.lr?;
        self.vcpus
            .get(r.vcpu)?
            .lrs
            .get(r.slot)
            .copied()
            .flatten()
            .map(|e| e.state)
    }

    /// Choose the list-register contents for `vcpu` before entering it,
    /// writing slots `0..nr_lrs` of `out` (`None` = write an invalid LR).
    /// Write every slot to the hardware (or only those that changed).
    /// See the module docs for the policy. `nr_lrs` is the hardware count
    /// (`ICH_VTR_EL2.ListRegs + 1`, `GICH_VTR.ListRegs + 1`).
    pub fn fill_lrs(
        &mut self,
        vcpu: usize,
        nr_lrs: usize,
        out: &mut [Option<LrEntry>],
    ) -> Result<(), VgicError> {
        self.fill_lrs_maint(vcpu, nr_lrs, out).map(|_| ())
    }

    /// [`Vgic::fill_lrs`], returning what [`Vgic::needs_maintenance`] would
    /// right after it (whether deliverable interrupts are left out of the
    /// LRs), known from the fill itself: one scan of the model, not two.
    pub fn fill_lrs_maint(
        &mut self,
        vcpu: usize,
        nr_lrs: usize,
        out: &mut [Option<LrEntry>],
    ) -> Result<bool, VgicError> {
        self.check_vcpu(vcpu)?;
        if nr_lrs > MAX_LRS || out.len() < nr_lrs {
            return Err(VgicError::BadLrCount(nr_lrs));
        }
        // Filled again without a sync: the hardware still holds what was
        // handed out, so fold that back first (nothing changed).
        if self.vcpus[vcpu].lrs_loaded {
            self.sync_lrs(vcpu, &[])?;
        }
        // Hand back entries beyond the LR count (only if it shrank).
        for slot in nr_lrs..self.vcpus[vcpu].lrs.len() {
            if let Some(e) = self.vcpus[vcpu].lrs[slot] {
                self.fold(vcpu, slot, e, Some(e.state));
                self.release(vcpu, slot, e.intid);
            }
        }
        self.vcpus[vcpu].lrs.resize(nr_lrs, None);

        // Refresh listed entries from the model.
        for slot in 0..nr_lrs {
            if let Some(e) = self.vcpus[vcpu].lrs[slot] {
                let new = self.compose(vcpu, e.intid, e.source_cpu);
                self.vcpus[vcpu].lrs[slot] = new;
                if new.is_none() {
                    self.release(vcpu, slot, e.intid);
                }
            }
        }

        // Fill free slots, then displace worse pending-only entries.
        let mut waiting = crate::Waiting::default();
        self.collect_waiting(vcpu, &mut waiting);
        let mut displaced = false;
        for slot in 0..nr_lrs {
            if self.vcpus[vcpu].lrs[slot].is_some() {
                continue;
            }
            let Some(intid) = waiting.next() else { break };
            self.load(vcpu, slot, intid);
        }
        while let Some(intid) = waiting.peek() {
            let prio = self.irq(vcpu, intid).map_or(u8::MAX, |i| i.priority);
            let worst = self.vcpus[vcpu]
                .lrs
                .iter()
                .enumerate()
                .filter_map(|(s, e)| {
                    e.filter(|e| e.state == LrState::Pending)
                        .map(|e| (e.priority, s, e))
                })
                .max_by_key(|&(p, s, _)| (p, s));
            match worst {
                Some((p, slot, e)) if prio < p => {
                    self.fold(vcpu, slot, e, Some(e.state));
                    self.release(vcpu, slot, e.intid);
                    self.load(vcpu, slot, intid);
                    waiting.next();
                    displaced = true;
                }
                _ => break,
            }
        }
        out[..nr_lrs].copy_from_slice(&self.vcpus[vcpu].lrs);
        self.vcpus[vcpu].lrs_loaded = true;
        // Left waiting: what did not fit (the scan above saw every other
        // deliverable interrupt and listed it), and what was displaced if
        // still deliverable (it may have been disabled while listed).
        let maint = waiting.peek().is_some() || (displaced && self.any_waiting(vcpu));
        debug_assert_eq!(maint, self.needs_maintenance(vcpu));
        Ok(maint)
    }

    /// Fold the LR state read back from the hardware after `vcpu` ran
    /// (`lrs[i]` = decoded slot `i`, `None` = invalid) into the model:
    /// an entry that went invalid is complete (its interrupt can be listed
    /// again, a level one re-pends if its line is still high); pending and
    /// active states move back into the model. Slots not covered by `lrs`
    /// or holding another INTID than oxen put there are taken as unchanged.
    pub fn sync_lrs(&mut self, vcpu: usize, lrs: &[Option<LrEntry>]) -> Result<(), VgicError> {
        self.sync_lrs_exact(vcpu, lrs).map(|_| ())
    }

    /// [`Vgic::sync_lrs`], telling whether the hardware LRs still hold what
    /// a fill would write now, once the slots in [`Synced::completed`] are
    /// cleared: true when every listed entry was completed or is active
    /// without a pending state (acknowledged since the fill, or already
    /// active then), for edge-like, software-injected interrupts (not GICv2
    /// SGIs, not HW-mapped, not level: their refresh can change the entry).
    /// Such a sync moves no pending state back into the model, so a refill
    /// would only compose the same active entries again. Then, if nothing
    /// else waits ([`Vgic::needs_maintenance`]) and nothing changed in the
    /// model before the entry (the caller's generation count), the refill
    /// can be skipped. An entry still pending is never exact: its pending
    /// state goes back into the model (where a store may clear it) and only
    /// a refill lists it again.
    pub fn sync_lrs_exact(
        &mut self,
        vcpu: usize,
        lrs: &[Option<LrEntry>],
    ) -> Result<Synced, VgicError> {
        self.check_vcpu(vcpu)?;
        let mut out = Synced {
            exact: true,
            completed: 0,
        };
        for slot in 0..self.vcpus[vcpu].lrs.len() {
            let hw = lrs.get(slot).copied();
            let Some(e) = self.vcpus[vcpu].lrs[slot] else {
                out.exact &= matches!(hw, None | Some(None));
                continue;
            };
            let state = match hw {
                Some(None) => None,
                Some(Some(h)) if h.intid == e.intid => Some(h.state),
                _ => Some(e.state),
            };
            match (hw, state) {
                (Some(None), _) if slot < 64 => out.completed |= 1 << slot,
                // Edge-like and software-injected: no EOI maintenance and
                // no physical INTID (compose sets those from the trigger
                // and the mapping, which only an MMIO store changes, and
                // that bumps the generation: then a fill happens anyway).
                (Some(Some(h)), Some(LrState::Active))
                    if e.pintid.is_none()
                        && !e.eoi_maintenance
                        && e.state != LrState::PendingActive
                        && LrEntry {
                            state: e.state,
                            ..h
                        } == e
                        && !self.is_v2_sgi(e.intid) => {}
                _ => out.exact = false,
            }
            self.fold(vcpu, slot, e, state);
            match state {
                None => self.release(vcpu, slot, e.intid),
                Some(s) => self.vcpus[vcpu].lrs[slot] = Some(LrEntry { state: s, ..e }),
            }
        }
        self.vcpus[vcpu].lrs_loaded = false;
        Ok(out)
    }

    /// The LR contents oxen believes are loaded for `vcpu` (as last
    /// filled/synced), for debug dumps and tests.
    pub fn listed(&self, vcpu: usize) -> &[Option<LrEntry>] {
        self.vcpus.get(vcpu).map_or(&[], |v| &v.lrs)
    }

    /// Put `intid` into free `slot` of `vcpu`.
    fn load(&mut self, vcpu: usize, slot: usize, intid: u32) {
        let source = if self.is_v2_sgi(intid) {
            let srcs = self.vcpus[vcpu].sgi_sources[intid as usize];
            (srcs != 0).then(|| srcs.trailing_zeros() as u8)
        } else {
            None
        };
        let e = self.compose(vcpu, intid, source);
        self.vcpus[vcpu].lrs[slot] = e;
        if e.is_some()
            && let Some(irq) = self.irq_mut(vcpu, intid)
        {
            irq.lr = Some(LrRef { vcpu, slot });
        }
    }

    /// Forget that `intid` is in `slot` of `vcpu`.
    fn release(&mut self, vcpu: usize, slot: usize, intid: u32) {
        self.vcpus[vcpu].lrs[slot] = None;
        if let Some(irq) = self.irq_mut(vcpu, intid)
            && irq.lr == Some(LrRef { vcpu, slot })
        {
            irq.lr = None;
        }
    }

    /// Build the LR for `intid` from the model, moving latched pending
    /// state into it. `None` if there is nothing to list.
    fn compose(&mut self, vcpu: usize, intid: u32, source: Option<u8>) -> Option<LrEntry> {
        if self.is_v2_sgi(intid) {
            let src = source.unwrap_or(0) & 7;
            let v = &mut self.vcpus[vcpu];
            let srcs = &mut v.sgi_sources[intid as usize];
            let pending = *srcs & (1 << src) != 0;
            *srcs &= !(1 << src);
            let more = *srcs != 0;
            let irq = &v.private[intid as usize];
            return Some(LrEntry {
                intid,
                pintid: None,
                state: LrState::from_bits(pending, irq.active)?,
                priority: irq.priority,
                group1: irq.group1,
                source_cpu: Some(src),
                eoi_maintenance: more,
            });
        }
        let irq = self.irq_mut(vcpu, intid)?;
        let pending = if irq.latch_style() {
            if irq.hw.is_some() && irq.active {
                false
            } else {
                core::mem::take(&mut irq.latch)
            }
        } else {
            irq.latch || irq.line
        };
        Some(LrEntry {
            intid,
            pintid: irq.hw,
            state: LrState::from_bits(pending, irq.active)?,
            priority: irq.priority,
            group1: irq.group1,
            source_cpu: None,
            eoi_maintenance: !irq.latch_style(),
        })
    }

    /// Move LR state `state` of entry `e` (slot `slot`) back into the model.
    fn fold(&mut self, vcpu: usize, _slot: usize, e: LrEntry, state: Option<LrState>) {
        let pending = state.is_some_and(LrState::is_pending);
        let active = state.is_some_and(LrState::is_active);
        if self.is_v2_sgi(e.intid) {
            let v = &mut self.vcpus[vcpu];
            if pending {
                v.sgi_sources[e.intid as usize] |= 1 << (e.source_cpu.unwrap_or(0) & 7);
            }
            v.private[e.intid as usize].active = active;
            return;
        }
        if let Some(irq) = self.irq_mut(vcpu, e.intid) {
            irq.active = active;
            if irq.latch_style() {
                irq.latch |= pending;
            } else if !pending {
                // A level interrupt's software-pending latch is consumed
                // when the guest acknowledges it.
                irq.latch = false;
            }
        }
    }
}
