//! Host tests of `VcpuState::maybe_waiting` and `Vgic::spi_maybe_waiting`,
//! the hints that narrow the scans for waiting interrupts: under random
//! guest and hypervisor traffic (SGIs, PPIs, SPIs: enables, pends, lines,
//! groups, routing, SGI writes, LR fills and completions), the scan with
//! the hints finds exactly what a full scan finds, for GICv3 and GICv2.
//! The same traffic checks `Vgic::sync_lrs_exact`: keeping the LRs when
//! the sync says they need no refill gives the guest the same LRs, every
//! run, as refilling them.

use super::*;

use Width::Word;

/// What the scan with the hint lists for `vcpu`, and what a full scan
/// (the hint set to "anything may be waiting") lists, restoring the hint.
/// (priority, INTID) pairs a scan lists, sorted.
type Listing = Vec<(u8, u32)>;

fn scans(g: &Vgic, vcpu: usize) -> (Listing, Listing) {
    let collect = |g: &Vgic| {
        let mut w = Vec::new();
        g.for_each_waiting(vcpu, |intid, prio| {
            w.push((prio, intid));
            true
        });
        w.sort_unstable();
        w
    };
    let v = &g.vcpus[vcpu];
    let saved = v.maybe_waiting.replace(u32::MAX);
    let saved_spis: Vec<u32> = g
        .spi_maybe_waiting
        .iter()
        .map(|w| w.replace(u32::MAX))
        .collect();
    let full = collect(g);
    v.maybe_waiting.set(saved);
    for (w, s) in g.spi_maybe_waiting.iter().zip(saved_spis) {
        w.set(s);
    }
    let hinted = collect(g);
    (hinted, full)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One random step of guest and hypervisor traffic on `g` (`nr_vcpus`
/// vCPUs, GICv3 or v2) from the random number `r`, or, for a fifth of the
/// numbers, `Some((vcpu, bits))`: that vCPU runs, and `bits` says what the
/// guest does to each LR (left to the caller).
fn poke(g: &mut Vgic, r: u64, nr_vcpus: usize, v3: bool) -> Option<(usize, u32)> {
    let vcpu = (r % nr_vcpus as u64) as usize;
    let intid = ((r >> 8) % 32) as u32;
    let spi = 32 + ((r >> 40) % 64) as u32;
    let bits = (r >> 32) as u32;
    match (r >> 16) % 12 {
        9 => {
            let _ = g.inject(spi, None);
        }
        10 => {
            let _ = g.set_level(spi, 0, bits & 2 == 2);
        }
        11 => {
            // SPI enables, pends and routing through the distributor.
            let word = u64::from(spi / 32) * 4;
            let _ = match bits % 6 {
                0 => g.dist_write(0, 0x100 + word, Word, u64::from(bits)),
                1 => g.dist_write(0, 0x180 + word, Word, u64::from(bits >> 3)),
                2 => g.dist_write(0, 0x200 + word, Word, u64::from(bits >> 5)),
                3 => g.dist_write(0, 0x280 + word, Word, u64::from(bits >> 7)),
                4 => g.dist_write(0, 0x080 + word, Word, u64::from(bits.rotate_left(3))),
                _ if v3 => g.dist_write(
                    0,
                    0x6000 + u64::from(spi) * 8,
                    Width::Dword,
                    u64::from(bits % 3),
                ),
                _ => g.dist_write(0, 0x800 + u64::from(spi), Width::Byte, u64::from(bits & 7)),
            };
        }
        0 => {
            let _ = g.inject(intid, Some(vcpu));
        }
        1 if intid >= NR_SGIS => {
            let _ = g.set_level(intid, vcpu, bits & 1 == 1);
        }
        // Private enables, pends, groups: v3 through the redistributor's
        // SGI frame, v2 through the banked distributor registers.
        2..=4 => {
            let reg = [0x100u64, 0x180, 0x200, 0x280, 0x080][(bits % 5) as usize];
            let val = u64::from(bits.rotate_left(7));
            if v3 {
                let _ = g.redist_write(vcpu, 0x1_0000 + reg, Word, val);
            } else {
                let _ = g.dist_write(vcpu, reg, Word, val);
            }
        }
        5 => {
            // Group enables come and go (GICD_CTLR).
            let _ = g.dist_write(
                0,
                0,
                Word,
                u64::from(bits % 4) | if v3 { 1 << 4 } else { 0 },
            );
        }
        6 if v3 => {
            // ICC_SGI1R_EL1: INTID, target list (Aff0 bits), IRM.
            let val = (u64::from(intid % 16) << 24)
                | u64::from(bits & 0xf)
                | if bits & 0x100 != 0 { 1 << 40 } else { 0 };
            g.sgi1r_write(vcpu, val);
        }
        6 => {
            // GICD_SGIR: target list filter, CPU list, INTID.
            let _ = g.dist_write(
                vcpu,
                0xf00,
                Word,
                u64::from((bits & 0x30_ff_00_0f) | (intid % 16)),
            );
        }
        _ => return Some((vcpu, bits)),
    }
    None
}

/// What the guest does to the LRs it was given: per slot (two bits of
/// `bits`), completes it, acknowledges it (pending -> active) or leaves it.
fn guest(lrs: &[Option<LrEntry>], bits: u32) -> Vec<Option<LrEntry>> {
    lrs.iter()
        .enumerate()
        .map(|(i, e)| {
            e.and_then(|e| match (bits >> (2 * i)) & 3 {
                0 => None,
                1 => Some(LrEntry {
                    state: LrState::Active,
                    ..e
                }),
                _ => Some(e),
            })
        })
        .collect()
}

/// Random traffic on `g` (`nr_vcpus` vCPUs); after every step both scans
/// agree for every vCPU.
fn traffic(mut g: Vgic, nr_vcpus: usize, v3: bool, seed: u64) {
    let mut rng = Rng(seed);
    let mut nonempty = 0;
    for step in 0..20_000 {
        if let Some((vcpu, bits)) = poke(&mut g, rng.next(), nr_vcpus, v3) {
            // The vCPU runs: fill, the guest takes or completes some.
            let mut out = [None; 4];
            let _ = g.fill_lrs_maint(vcpu, 4, &mut out);
            g.sync_lrs(vcpu, &guest(&out, bits)).unwrap();
        }
        for v in 0..nr_vcpus {
            let (hinted, full) = scans(&g, v);
            assert_eq!(
                hinted, full,
                "step {step}: vCPU {v}: the hint hid a waiting interrupt"
            );
            nonempty += usize::from(!full.is_empty());
        }
    }
    // The traffic must actually make interrupts wait, or the test proves nothing.
    assert!(nonempty > 1000, "only {nonempty} non-empty scans");
}

/// `sync_lrs_exact` against refilling every time: two models
/// get the same random traffic; one refills a vCPU's LRs on every entry,
/// the other keeps them when the last sync was exact, nothing waits and no
/// traffic came since (as `vgic::sync_from_hw` and `load_to_hw` do, the
/// generation standing in for "no traffic"). The guest must be given the
/// same LRs every time, so every interrupt is delivered as often with
/// either, and a store that clears a pending interrupt clears it in both.
fn keep_matches_refill(g: Vgic, nr_vcpus: usize, v3: bool, seed: u64) {
    let mut rng = Rng(seed);
    let (mut slow, mut fast) = (g.clone(), g);
    let mut hw = vec![[None; 4]; nr_vcpus];
    let mut keep = vec![false; nr_vcpus];
    let mut keeps = 0;
    for step in 0..20_000 {
        let r = rng.next();
        // Runs three times in four, so that runs follow runs.
        let (a, b) = if r >> 62 != 0 {
            let run = Some(((r % nr_vcpus as u64) as usize, (r >> 32) as u32));
            (run, run)
        } else {
            (
                poke(&mut slow, r, nr_vcpus, v3),
                poke(&mut fast, r, nr_vcpus, v3),
            )
        };
        assert_eq!(a, b);
        let Some((vcpu, bits)) = a else {
            // Something changed: every entry refills (the generation).
            keep.iter_mut().for_each(|k| *k = false);
            continue;
        };
        let mut want = [None; 4];
        let want_maint = slow.fill_lrs_maint(vcpu, 4, &mut want).unwrap();
        if keep[vcpu] {
            keeps += 1;
        } else {
            let maint = fast.fill_lrs_maint(vcpu, 4, &mut hw[vcpu]).unwrap();
            assert_eq!(maint, want_maint, "step {step}");
        }
        assert_eq!(hw[vcpu], want, "step {step}: vCPU {vcpu} given other LRs");
        let back = guest(&want, bits);
        slow.sync_lrs(vcpu, &back).unwrap();
        let synced = fast.sync_lrs_exact(vcpu, &back).unwrap();
        keep[vcpu] = synced.exact && !fast.needs_maintenance(vcpu);
        if keep[vcpu] {
            for (i, e) in back.iter().enumerate() {
                hw[vcpu][i] = if synced.completed & (1 << i) == 0 {
                    *e
                } else {
                    None
                };
            }
        }
    }
    assert!(keeps > 500, "only {keeps} entries kept the LRs");
}

#[test]
fn hint_never_hides_a_waiting_interrupt_v3() {
    traffic(
        Vgic::new(GicVersion::V3, 3, 64).unwrap(),
        3,
        true,
        0x9e37_79b9_7f4a_7c15,
    );
}

#[test]
fn keeping_exact_lrs_delivers_as_refilling_v3() {
    keep_matches_refill(
        Vgic::new(GicVersion::V3, 3, 64).unwrap(),
        3,
        true,
        0x9e37_79b9_7f4a_7c15,
    );
}

#[test]
fn keeping_exact_lrs_delivers_as_refilling_v2() {
    keep_matches_refill(
        Vgic::new(GicVersion::V2, 3, 64).unwrap(),
        3,
        false,
        0x2545_f491_4f6c_dd1d,
    );
}

#[test]
fn hint_never_hides_a_waiting_interrupt_v2() {
    traffic(
        Vgic::new(GicVersion::V2, 3, 64).unwrap(),
        3,
        false,
        0x2545_f491_4f6c_dd1d,
    );
}

/// The event-channel upcall as Xen injects it: Linux configures PPI 31 as
/// level, the hypervisor forces it edge-like; an injection while the first
/// is active is delivered after it, and no LR asks for an EOI maintenance
/// interrupt (which would cost the guest an exit per upcall).
#[test]
fn forced_edge_ppi_is_latched_and_needs_no_eoi_maintenance() {
    let mut g = Vgic::new(GicVersion::V3, 1, 32).unwrap();
    g.dist_write(0, 0, Word, 0b10 | 1 << 4).unwrap(); // EnableGrp1, ARE
    g.redist_write(0, 0x1_0080, Word, 1 << 31).unwrap(); // IGROUPR0: group 1
    g.redist_write(0, 0x1_0c04, Word, 0).unwrap(); // ICFGR1: PPIs level
    g.redist_write(0, 0x1_0100, Word, 1 << 31).unwrap(); // ISENABLER0
    assert_eq!(g.force_edge(31), Ok(()));
    assert!(g.force_edge(5).is_err(), "SGIs have no trigger to force");
    g.inject(31, Some(0)).unwrap();
    let mut out = [None; 2];
    g.fill_lrs_maint(0, 2, &mut out).unwrap();
    let e = out[0].expect("listed");
    assert_eq!(
        (e.intid, e.state, e.eoi_maintenance),
        (31, LrState::Pending, false)
    );
    // Acknowledged; another event arrives meanwhile.
    g.sync_lrs(
        0,
        &[
            Some(LrEntry {
                state: LrState::Active,
                ..e
            }),
            None,
        ],
    )
    .unwrap();
    g.inject(31, Some(0)).unwrap();
    g.fill_lrs_maint(0, 2, &mut out).unwrap();
    assert_eq!(out[0].map(|e| e.state), Some(LrState::PendingActive));
    assert_eq!(out[1], None, "never listed twice");
    // Completed, taken again, completed: nothing left.
    g.sync_lrs(
        0,
        &[
            Some(LrEntry {
                state: LrState::Pending,
                ..e
            }),
            None,
        ],
    )
    .unwrap();
    g.fill_lrs_maint(0, 2, &mut out).unwrap();
    g.sync_lrs(0, &[None, None]).unwrap();
    assert!(!g.has_pending(0));
}
