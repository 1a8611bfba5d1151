//! Host tests of `VcpuState::maybe_waiting` and `Vgic::spi_maybe_waiting`,
//! the hints that narrow the scans for waiting interrupts: under random
//! guest and hypervisor traffic (SGIs, PPIs, SPIs: enables, pends, lines,
//! groups, routing, SGI writes, LR fills and completions), the scan with
//! the hints finds exactly what a full scan finds, for GICv3 and GICv2.
//! The same traffic checks `Vgic::sync_lrs_exact`: whenever it says the
//! LRs need no refill, a refill writes exactly what they hold.

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

/// Random traffic on `g` (`nr_vcpus` vCPUs); after every step both scans
/// agree for every vCPU.
fn traffic(mut g: Vgic, nr_vcpus: usize, v3: bool, seed: u64) {
    let mut rng = Rng(seed);
    let mut nonempty = 0;
    let mut exact = 0;
    for step in 0..20_000 {
        let r = rng.next();
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
            _ => {
                // The vCPU runs: fill, the guest takes or completes some.
                let mut out = [None; 4];
                let _ = g.fill_lrs_maint(vcpu, 4, &mut out);
                let back: Vec<Option<LrEntry>> = out
                    .iter()
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
                    .collect();
                let synced = g.sync_lrs_exact(vcpu, &back).unwrap();
                if synced.exact && !g.needs_maintenance(vcpu) {
                    // The claim: a fill now writes what the hardware holds
                    // once the completed slots are cleared.
                    let mut refill = [None; 4];
                    let mut h = g.clone();
                    let maint = h.fill_lrs_maint(vcpu, 4, &mut refill).unwrap();
                    let mut hw = [None; 4];
                    for (i, e) in back.iter().enumerate() {
                        if synced.completed & (1 << i) == 0 {
                            hw[i] = *e;
                        }
                    }
                    assert_eq!(refill, hw, "step {step}: a skipped refill would differ");
                    assert!(!maint);
                    exact += 1;
                }
            }
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
    assert!(exact > 100, "only {exact} syncs found the LRs exact");
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
