//! The virtual GIC of each domain, wired to the hardware: distributor and
//! redistributor MMIO emulation (from stage-2 data aborts), SGIs, list
//! registers around every guest entry and exit, and interrupt injection.
//!
//! The register model is the host-tested `oxen-vgic` crate. Protocol per
//! trap: [`sync_from_hw`] right after the exit (hardware LR state folded
//! into the model), handle the exit, then [`load_to_hw`] right before
//! entering whichever vCPU runs next (model → LRs, maintenance request).

extern crate alloc;

use alloc::sync::Arc;

use oxen_trap::DataAbort;
use oxen_types::{Ipa, IpaRange};
use oxen_vgic::{
    GICV3_REDIST_STRIDE, GicVersion, LrEntry, NR_PRIVATE, Synced, Vgic, VgicError, Width,
    decode_lr_v2, decode_lr_v3, encode_lr_v2, encode_lr_v3,
};

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::gich::{self, MAX_LRS};
use crate::arch::head::{MAX_CPUS, TrapFrame};
use crate::domain::Domain;
use crate::sched;

/// Where a domain's virtual GIC sits in its IPA space.
#[derive(Clone, Copy, Debug)]
pub struct VgicLayout {
    /// GICv2 or GICv3.
    pub version: GicVersion,
    /// Distributor frame (emulated).
    pub gicd: IpaRange,
    /// GICv3: redistributor frames, one stride per vCPU (emulated).
    pub gicr: Option<IpaRange>,
}

/// Build a domain's vGIC model: `nr_spis` shared interrupts (a multiple of 32).
pub fn new_model(layout: &VgicLayout, nr_vcpus: usize, nr_spis: u32) -> Option<Vgic> {
    match Vgic::new(layout.version, nr_vcpus, nr_spis) {
        Ok(mut v) => {
            // Xen injects the upcall once per 0 -> 1 change of
            // evtchn_upcall_pending, whatever trigger the guest programs.
            let _ = v.force_edge(crate::virq::EVTCHN_UPCALL_INTID);
            Some(v)
        }
        Err(e) => {
            log::error!("vGIC for {nr_vcpus} vCPUs / {nr_spis} SPIs: {e}");
            None
        }
    }
}

/// Per physical CPU, what its list registers hold, so that an exit which
/// changed no interrupt state does no list-register work at all:
/// - `LR_CTX`: the vCPU register context whose LRs are loaded;
/// - `LR_BUSY`: whether any LR was valid (or an underflow maintenance
///   interrupt requested) after the last fill: only then can the guest
///   have changed them, and only then does an exit sync them;
/// - `LR_GEN`: the generation of the vCPU's interrupt state the fill saw
///   ([`generation`]);
/// - `LR_DIRTY`: the hardware LRs were folded into the model (or the
///   maintenance interrupt disabled the interface) since the last fill, so
///   the next entry must fill again (a sync moves listed pending state back
///   into the model, and only a fill lists it again). Not when the sync
///   found every LR completed and nothing waiting: the LRs are cleared
///   there and then, which is all a fill would do;
/// - `LR_UIE`: the last fill asked for the underflow maintenance interrupt.
///
/// Only this CPU touches its own slots (relaxed atomics, no locks).
static LR_CTX: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LR_BUSY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static LR_GEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LR_DIRTY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(true) }; MAX_CPUS];
static LR_UIE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU, bit `i` clear: list register `i` holds 0 (this CPU wrote 0
/// there, and the hardware never validates an LR by itself), so a sync need
/// not read it and a fill need not clear it. All set at first: the LRs'
/// reset contents are unknown until the first fill writes them.
static LR_LIVE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];

/// Forget which vCPU's list registers `cpu` holds (a vCPU that ran
/// elsewhere since is coming back): its next entry syncs and fills afresh.
pub fn forget_loaded(cpu: usize) {
    if let Some(c) = LR_CTX.get(cpu) {
        c.store(0, Ordering::Relaxed);
    }
}

/// Something in `dom`'s vGIC model may have become deliverable to any of its
/// vCPUs. Not needed for changes that make nothing deliverable (a line
/// going low, an interrupt pended while disabled: enabling it is an MMIO
/// store, which counts): a vCPU whose LRs the guest changed refills them
/// anyway, so an unchanged generation only ever skips an empty refill.
fn changed(dom: &Domain) {
    dom.vgic_gen.fetch_add(1, Ordering::AcqRel);
}

/// As [`changed`], for a change that concerns `vcpu` only.
fn changed_for(dom: &Domain, vcpu: usize) {
    match dom.vgic_vcpu_gen.get(vcpu) {
        Some(g) => {
            g.fetch_add(1, Ordering::AcqRel);
        }
        None => changed(dom),
    }
}

/// After interrupt `intid` may have become deliverable to `target`: a
/// private interrupt concerns that vCPU only; an SPI bumps the domain-wide
/// generation (whoever it is routed to when a fill looks at it).
fn changed_by(dom: &Domain, intid: u32, target: usize) {
    if intid < NR_PRIVATE {
        changed_for(dom, target);
    } else {
        changed(dom);
    }
}

/// The generation of `vcpu`'s interrupt state: the domain-wide and the
/// per-vCPU counters summed (both only grow, so any bump changes the sum).
fn generation(dom: &Domain, vcpu: usize) -> u64 {
    dom.vgic_gen.load(Ordering::Acquire).wrapping_add(
        dom.vgic_vcpu_gen
            .get(vcpu)
            .map_or(0, |g| g.load(Ordering::Acquire)),
    )
}

/// The maintenance interrupt fired on this CPU: disable the virtual CPU
/// interface (the interrupt is a level that holds while its condition
/// does) and make the next entry refill the LRs (which renews the request
/// if still needed).
pub fn maintenance() {
    gich::write_hcr(0);
    LR_DIRTY[sched::this_cpu()].store(true, Ordering::Relaxed);
}

/// Fold the hardware list registers of `vcpu` (just exited) into its model.
pub fn sync_from_hw(dom: &Domain, vcpu: usize) {
    let cpu = sched::this_cpu();
    let ctx = sched::current_ctx();
    if LR_CTX[cpu].load(Ordering::Relaxed) == ctx && !LR_BUSY[cpu].load(Ordering::Relaxed) {
        // No LR was valid: the guest cannot have changed any.
        return;
    }
    let n = gich::nr_lrs(cpu);
    let mut raw = [0u64; MAX_LRS];
    let mut lrs: [Option<LrEntry>; MAX_LRS] = [None; MAX_LRS];
    let v2 = matches!(dom.vgic_layout.version, GicVersion::V2);
    let live = LR_LIVE[cpu].load(Ordering::Relaxed);
    for (i, (r, slot)) in raw.iter_mut().zip(lrs.iter_mut()).enumerate().take(n) {
        if live & (1 << i) == 0 {
            continue;
        }
        *r = gich::read_lr(i);
        *slot = if v2 {
            decode_lr_v2(*r as u32)
        } else {
            decode_lr_v3(*r)
        };
    }
    let (synced, waiting) = {
        let mut g = dom.vgic.lock();
        let synced = g.sync_lrs_exact(vcpu, &lrs[..n]).unwrap_or_else(|e| {
            log::error!("{}v{vcpu}: vGIC sync: {e}", dom.id);
            Synced {
                exact: false,
                completed: 0,
            }
        });
        // (Only an exact sync can skip the refill, which finds out itself.)
        (synced, synced.exact && g.needs_maintenance(vcpu))
    };
    if synced.exact && !waiting {
        // The guest only acknowledged or completed what was listed and
        // nothing else waits: a fill would write what the LRs hold, minus
        // the completed entries. Clear those here (an LR left invalid with
        // its EOI bit set keeps the maintenance interrupt asserted) and
        // drop an underflow request.
        let mut live = LR_LIVE[cpu].load(Ordering::Relaxed);
        for (i, &r) in raw.iter().enumerate().take(n) {
            if synced.completed & (1 << i) != 0 {
                if r != 0 {
                    gich::write_lr(i, 0);
                }
                live &= !(1 << i);
            }
        }
        LR_LIVE[cpu].store(live, Ordering::Relaxed);
        if LR_UIE[cpu].swap(false, Ordering::Relaxed) {
            gich::write_hcr(gich::HCR_EN);
        }
        // (A completed slot decoded as invalid: only live entries remain.)
        let busy = lrs[..n].iter().any(Option::is_some);
        LR_BUSY[cpu].store(busy, Ordering::Relaxed);
    } else {
        // LR_CTX still names this vCPU: its LRs are now in the model.
        LR_DIRTY[cpu].store(true, Ordering::Relaxed);
    }
}

/// Load the list registers for `vcpu` (about to be entered).
pub fn load_to_hw(dom: &Domain, vcpu: usize) {
    let cpu = sched::this_cpu();
    let ctx = sched::current_ctx();
    let generation = generation(dom, vcpu);
    if LR_CTX[cpu].load(Ordering::Relaxed) == ctx
        && !LR_DIRTY[cpu].load(Ordering::Relaxed)
        && LR_GEN[cpu].load(Ordering::Relaxed) == generation
    {
        // The LRs and the interface control are as the last fill left
        // them, and nothing new is deliverable.
        return;
    }
    let n = gich::nr_lrs(cpu);
    let mut lrs: [Option<LrEntry>; MAX_LRS] = [None; MAX_LRS];
    let v2 = matches!(dom.vgic_layout.version, GicVersion::V2);
    let maint = {
        let mut g = dom.vgic.lock();
        g.fill_lrs_maint(vcpu, n, &mut lrs[..n])
            .unwrap_or_else(|e| {
                log::error!("{}v{vcpu}: vGIC fill: {e}", dom.id);
                false
            })
    };
    let mut busy = false;
    let live = LR_LIVE[cpu].load(Ordering::Relaxed);
    let mut now_live = 0;
    for (i, e) in lrs.iter().enumerate().take(n) {
        let raw = match e {
            None => 0,
            Some(e) if v2 => u64::from(encode_lr_v2(e)),
            Some(e) => encode_lr_v3(e),
        };
        busy |= e.is_some();
        if raw != 0 {
            now_live |= 1 << i;
        }
        if raw != 0 || live & (1 << i) != 0 {
            gich::write_lr(i, raw);
        }
    }
    LR_LIVE[cpu].store(now_live, Ordering::Relaxed);
    gich::write_hcr(gich::HCR_EN | if maint { gich::HCR_UIE } else { 0 });
    LR_CTX[cpu].store(ctx, Ordering::Relaxed);
    LR_BUSY[cpu].store(busy || maint, Ordering::Relaxed);
    LR_UIE[cpu].store(maint, Ordering::Relaxed);
    LR_GEN[cpu].store(generation, Ordering::Relaxed);
    LR_DIRTY[cpu].store(false, Ordering::Relaxed);
}

/// Let `vcpu` of `dom` notice a newly deliverable interrupt: wake it if it
/// is blocked (waking kicks its CPU), interrupt its physical CPU if it runs
/// there now. Nothing else: a vCPU that is current here, or waits in a run
/// queue, fills its list registers from the model before it next runs
/// (the model was changed before this call; the vCPU lock orders that
/// against `sched::load` setting `running`).
pub fn kick(dom: &Arc<Domain>, vcpu: usize) {
    if vcpu >= dom.vcpus.len() || sched::wake(dom, vcpu) {
        return;
    }
    let (pcpu, running) = {
        let v = dom.vcpus[vcpu].lock();
        (v.pcpu, v.running)
    };
    if running && pcpu != sched::this_cpu() {
        sched::kick(pcpu);
    }
}

/// Latch private interrupt `intid` of `vcpu` pending and kick the vCPU
/// (woken if blocked, interrupted if it runs elsewhere), whether or not the
/// guest has enabled the interrupt yet: one model update, at most one IPI.
pub fn raise_private(dom: &Arc<Domain>, intid: u32, vcpu: usize) {
    if let Err(e) = dom.vgic.lock().inject(intid, Some(vcpu)) {
        log::debug!("{}: raise {intid}: {e}", dom.id);
    }
    changed_for(dom, vcpu);
    kick(dom, vcpu);
}

/// Make `intid` pending for `dom` (`vcpu` names the target of an SGI/PPI).
pub fn inject(dom: &Arc<Domain>, intid: u32, vcpu: Option<usize>) {
    let r = dom.vgic.lock().inject(intid, vcpu);
    match r {
        Ok(Some(t)) => {
            changed_by(dom, intid, t);
            kick(dom, t);
        }
        Ok(None) => {}
        Err(e) => log::debug!("{}: inject {intid}: {e}", dom.id),
    }
}

/// Drive the line of private interrupt `intid` of `vcpu` (level semantics).
pub fn set_level(dom: &Arc<Domain>, intid: u32, vcpu: usize, high: bool) {
    let r = dom.vgic.lock().set_level(intid, vcpu, high);
    match r {
        Ok(Some(t)) => {
            changed_by(dom, intid, t);
            kick(dom, t);
        }
        Ok(None) => {}
        Err(e) => log::debug!("{}: line {intid}: {e}", dom.id),
    }
}

/// Whether `vcpu` has an interrupt to take (WFI wake-up condition).
pub fn has_pending(dom: &Domain, vcpu: usize) -> bool {
    dom.vgic.lock().has_pending(vcpu)
}

/// [`has_pending`] for the vCPU running on this CPU (a WFI exit), without
/// the vGIC lock when this CPU's LR state answers it: no LR valid, nothing
/// synced or disabled since the last fill (or a sync that found nothing
/// waiting), and no new injection since (the generation).
pub fn current_has_pending(dom: &Domain, vcpu: usize) -> bool {
    let cpu = sched::this_cpu();
    if LR_CTX[cpu].load(Ordering::Relaxed) == sched::current_ctx()
        && !LR_BUSY[cpu].load(Ordering::Relaxed)
        && !LR_DIRTY[cpu].load(Ordering::Relaxed)
        && LR_GEN[cpu].load(Ordering::Relaxed) == generation(dom, vcpu)
    {
        return false;
    }
    has_pending(dom, vcpu)
}

/// Emulate a guest access to the vGIC at `ipa`. Returns false when the
/// address is not a vGIC frame.
pub fn mmio(
    dom: &Arc<Domain>,
    vcpu: usize,
    ipa: Ipa,
    da: &DataAbort,
    frame: &mut TrapFrame,
) -> bool {
    let l = dom.vgic_layout;
    let (is_dist, frame_vcpu, off) = if l.gicd.contains(ipa) {
        (true, vcpu, ipa.as_u64() - l.gicd.start.as_u64())
    } else if let Some(r) = l.gicr.filter(|r| r.contains(ipa)) {
        let rel = ipa.as_u64() - r.start.as_u64();
        (
            false,
            (rel / GICV3_REDIST_STRIDE) as usize,
            rel % GICV3_REDIST_STRIDE,
        )
    } else {
        return false;
    };
    let mut effect = None;
    crate::trap::emulate_mmio(dom, vcpu, "vGIC", ipa, da, frame, |store| {
        let width = Width::from_bytes(da.access_size)?;
        let result: Result<u64, VgicError> = {
            let mut g = dom.vgic.lock();
            if frame_vcpu >= g.nr_vcpus() {
                Err(VgicError::BadVcpu(frame_vcpu))
            } else if let Some(val) = store {
                let r = if is_dist {
                    g.dist_write(vcpu, off, width, val)
                } else {
                    g.redist_write(frame_vcpu, off, width, val)
                };
                r.map(|e| {
                    effect = Some(e);
                    0
                })
            } else if is_dist {
                g.dist_read(vcpu, off, width)
            } else {
                g.redist_read(frame_vcpu, off, width)
            }
        };
        if store.is_some() {
            changed(dom);
        }
        Some(result.unwrap_or_else(|e| {
            log::debug!(
                "{}v{vcpu}: vGIC {}: {e}",
                dom.id,
                if is_dist { "GICD" } else { "GICR" }
            );
            0
        }))
    });
    if let Some(e) = effect {
        for t in e.kick {
            if t != vcpu {
                kick(dom, t);
            }
        }
        if let Some(sgis) = e.sgis {
            for (t, _, _) in sgis.iter() {
                if t != vcpu {
                    kick(dom, t);
                }
            }
        }
    }
    true
}

/// A trapped write of ICC_SGI1R_EL1 (GICv3 SGI generation).
pub fn sgi1r(dom: &Arc<Domain>, vcpu: usize, value: u64) {
    let targets = dom.vgic.lock().sgi1r_write(vcpu, value);
    for (t, _, _) in targets.iter() {
        changed_for(dom, t);
    }
    for (t, _, _) in targets.iter() {
        if t != vcpu {
            kick(dom, t);
        }
    }
}
