//! Host tests: Linux's GIC init sequences replayed as MMIO scripts, LR
//! policy, SGI decoding, encodings and robustness sweeps.

use super::*;

use Width::{Byte, Dword, Half, Word};

/// One step of an MMIO script.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Distributor read expecting a value.
    Rd(u64, Width, u64),
    /// Distributor write.
    Wd(u64, Width, u64),
    /// Redistributor (frame, offset) read expecting a value.
    Rr(usize, u64, Width, u64),
    /// Redistributor write.
    Wr(usize, u64, Width, u64),
}

fn run(g: &mut Vgic, vcpu: usize, script: &[Op]) {
    for (i, op) in script.iter().enumerate() {
        match *op {
            Op::Rd(off, w, want) => {
                let got = g
                    .dist_read(vcpu, off, w)
                    .unwrap_or_else(|e| panic!("step {i} {op:?}: {e}"));
                assert_eq!(got, want, "step {i}: {op:?} read {got:#x}");
            }
            Op::Wd(off, w, v) => {
                g.dist_write(vcpu, off, w, v)
                    .unwrap_or_else(|e| panic!("step {i} {op:?}: {e}"));
            }
            Op::Rr(f, off, w, want) => {
                let got = g
                    .redist_read(f, off, w)
                    .unwrap_or_else(|e| panic!("step {i} {op:?}: {e}"));
                assert_eq!(got, want, "step {i}: {op:?} read {got:#x}");
            }
            Op::Wr(f, off, w, v) => {
                g.redist_write(f, off, w, v)
                    .unwrap_or_else(|e| panic!("step {i} {op:?}: {e}"));
            }
        }
    }
}

/// Linux `gic_dist_config(base, lines)`: level for all SPIs, priority
/// 0xa0, deactivate and disable.
fn dist_config(lines: u64) -> Vec<Op> {
    let mut s = Vec::new();
    for i in (32..lines).step_by(16) {
        s.push(Op::Wd(0xc00 + i / 4, Word, 0));
    }
    for i in (32..lines).step_by(4) {
        s.push(Op::Wd(0x400 + i, Word, 0xa0a0_a0a0));
    }
    for i in (32..lines).step_by(32) {
        s.push(Op::Wd(0x380 + i / 8, Word, 0xffff_ffff));
        s.push(Op::Wd(0x180 + i / 8, Word, 0xffff_ffff));
    }
    s
}

/// GICv2 bring-up as `irq-gic.c` does it, on both CPUs.
fn linux_v2_boot(nr_vcpus: usize, nr_spis: u32) -> Vgic {
    let mut g = Vgic::new(GicVersion::V2, nr_vcpus, nr_spis).unwrap();
    let typer = g.dist_read(0, 0x004, Word).unwrap();
    assert_eq!(typer & 0x1f, u64::from((32 + nr_spis) / 32 - 1));
    assert_eq!((typer >> 5) & 7, nr_vcpus as u64 - 1);
    let lines = (((typer & 0x1f) + 1) * 32).min(1020);
    assert_eq!(lines, u64::from(32 + nr_spis));
    // gic_dist_init
    let mut s = vec![Op::Wd(0x000, Word, 0), Op::Rd(0x800, Word, 0x0101_0101)];
    for i in (32..lines).step_by(4) {
        s.push(Op::Wd(0x800 + i, Word, 0x0101_0101));
    }
    s.extend(dist_config(lines));
    s.push(Op::Wd(0x000, Word, 1));
    run(&mut g, 0, &s);
    // gic_cpu_init on every CPU: find own mask, gic_cpu_config(dist, 32).
    for v in 0..nr_vcpus {
        let mask = 0x0101_0101u64 << v;
        let mut s = vec![
            Op::Rd(0x800, Word, mask),
            Op::Wd(0x380, Word, 0xffff_ffff),
            Op::Wd(0x180, Word, 0xffff_ffff),
        ];
        for i in (0..32).step_by(4) {
            s.push(Op::Wd(0x400 + i, Word, 0xa0a0_a0a0));
        }
        // SGIs enabled (older Linux writes this; newer enables per IPI).
        s.push(Op::Wd(0x100, Word, 0x0000_ffff));
        run(&mut g, v, &s);
    }
    g
}

/// GICv3 bring-up as `irq-gic-v3.c` does it (`gic_dist_init`,
/// `gic_populate_rdist`, `gic_enable_redist`, `gic_cpu_init`).
fn linux_v3_boot(nr_vcpus: usize, nr_spis: u32) -> Vgic {
    let mut g = Vgic::new(GicVersion::V3, nr_vcpus, nr_spis).unwrap();
    assert_eq!(g.dist_read(0, 0xffe8, Word).unwrap() & 0xf0, 0x30);
    let typer = g.dist_read(0, 0x004, Word).unwrap();
    let lines = (((typer & 0x1f) + 1) * 32).min(1020);
    assert_eq!(lines, u64::from(32 + nr_spis));
    assert_eq!((typer >> 19) & 0x1f, 9, "IDbits: 10 bits");
    assert_eq!(typer & (1 << 17), 0, "no LPIs");
    // Linux reads GICD_TYPER2 unconditionally: must be a quiet RAZ.
    assert_eq!(g.dist_read(0, 0x00c, Word), Ok(0));
    let mut s = vec![Op::Wd(0x000, Word, 0), Op::Rd(0x000, Word, 0x50)];
    for i in (32..lines).step_by(32) {
        s.push(Op::Wd(0x080 + i / 8, Word, 0xffff_ffff));
    }
    s.extend(dist_config(lines));
    s.push(Op::Wd(0x000, Word, 0x13)); // ARE_NS | ENABLE_G1A | ENABLE_G1
    s.push(Op::Rd(0x000, Word, 0x53)); // RWP clear
    for i in 32..lines {
        s.push(Op::Wd(0x6000 + i * 8, Dword, 0)); // boot CPU affinity
    }
    run(&mut g, 0, &s);
    for v in 0..nr_vcpus {
        // gic_populate_rdist: walk frames until the affinity matches.
        let want_aff = vcpu_affinity32(v) as u64;
        let mut frame = 0;
        loop {
            assert_eq!(g.redist_read(frame, 0xffe8, Word).unwrap() & 0xf0, 0x30);
            let t = g.redist_read(frame, 0x0008, Dword).unwrap();
            if t >> 32 == want_aff {
                assert_eq!((t >> 8) & 0xffff, frame as u64, "processor number");
                break;
            }
            assert_eq!(t & 0x10, 0, "Last set before vCPU {v} was found");
            frame += 1;
        }
        assert_eq!(frame, v);
        // gic_enable_redist(true)
        let waker = g.redist_read(v, 0x14, Word).unwrap();
        assert_eq!(waker, 0, "RAZ/WI as on Xen 4.17: awake out of reset");
        let mut s = vec![
            Op::Wr(v, 0x14, Word, waker & !0b10),
            Op::Rr(v, 0x14, Word, 0),
        ];
        // gic_cpu_init
        s.push(Op::Wr(v, 0x1_0080, Word, 0xffff_ffff));
        s.push(Op::Wr(v, 0x1_0380, Word, 0xffff_ffff));
        s.push(Op::Wr(v, 0x1_0180, Word, 0xffff_ffff));
        for i in (0..32).step_by(4) {
            s.push(Op::Wr(v, 0x1_0400 + i, Word, 0xa0a0_a0a0));
        }
        s.push(Op::Rr(v, 0x0000, Word, 0)); // GICR_CTLR.RWP
        s.push(Op::Wr(v, 0x1_0100, Word, 0xffff)); // enable SGIs
        s.push(Op::Rr(v, 0x1_0100, Word, 0xffff));
        s.push(Op::Rr(v, 0x1_0080, Word, 0xffff_ffff));
        s.push(Op::Rr(v, 0x1_041c, Word, 0xa0a0_a0a0));
        run(&mut g, v, &s);
        assert!(g.redist_awake(v));
    }
    g
}

fn lrs(g: &mut Vgic, vcpu: usize, n: usize) -> Vec<Option<LrEntry>> {
    let mut out = vec![None; n];
    g.fill_lrs(vcpu, n, &mut out).unwrap();
    out
}

fn intids(l: &[Option<LrEntry>]) -> Vec<u32> {
    l.iter().flatten().map(|e| e.intid).collect()
}

/// Enable SPI `intid` at priority `prio` through the distributor.
fn enable_spi(g: &mut Vgic, intid: u64, prio: u8) {
    g.dist_write(0, 0x400 + intid, Byte, u64::from(prio))
        .unwrap();
    g.dist_write(0, 0x100 + (intid / 32) * 4, Word, 1 << (intid % 32))
        .unwrap();
}

fn set_edge(g: &mut Vgic, intid: u64) {
    let off = 0xc00 + (intid / 16) * 4;
    let old = g.dist_read(0, off, Word).unwrap();
    g.dist_write(0, off, Word, old | (2 << (2 * (intid % 16))))
        .unwrap();
}

#[test]
fn linux_v2_init_script_reads_back() {
    let mut g = linux_v2_boot(2, 64);
    run(
        &mut g,
        1,
        &[
            Op::Rd(0x000, Word, 1),
            Op::Rd(0x004, Word, 0x22),
            Op::Rd(0xfe8, Word, 0x2b),
            Op::Rd(0x420, Word, 0xa0a0_a0a0),
            Op::Rd(0x45c, Word, 0xa0a0_a0a0),
            Op::Rd(0x41c, Word, 0xa0a0_a0a0), // banked PPIs of vCPU 1
            Op::Rd(0x820, Word, 0x0101_0101),
            Op::Rd(0x85c, Word, 0x0101_0101),
            Op::Rd(0x800, Word, 0x0202_0202), // own mask, read-only
            Op::Rd(0xc08, Word, 0),
            Op::Rd(0xc00, Word, 0xaaaa_aaaa), // SGIs are edge
            Op::Rd(0x104, Word, 0),
            Op::Rd(0x100, Word, 0xffff),
            Op::Rd(0x380, Word, 0),
        ],
    );
    // Beyond the implemented lines: quiet RAZ/WI.
    assert_eq!(g.dist_read(0, 0x10c, Word), Ok(0));
    assert_eq!(
        g.dist_write(0, 0x10c, Word, u64::MAX),
        Ok(WriteEffect::default())
    );
    assert_eq!(g.dist_read(0, 0x10c, Word), Ok(0));
    assert_eq!(g.dist_read(0, 0x860, Word), Ok(0));
    // Byte-wide ITARGETSR (Linux's gic_set_affinity) retargets one SPI.
    g.dist_write(0, 0x800 + 40, Byte, 0x02).unwrap();
    assert_eq!(g.dist_read(0, 0x828, Word), Ok(0x0101_0102));
    assert_eq!(g.route_of(40), Some(1));
    // Bits for CPUs that do not exist are RAZ/WI.
    g.dist_write(0, 0x800 + 41, Byte, 0xfc).unwrap();
    assert_eq!(g.dist_read(0, 0x829, Byte), Ok(0));
    assert_eq!(g.route_of(41), None);
}

#[test]
fn linux_v3_init_script_reads_back() {
    let mut g = linux_v3_boot(2, 256);
    run(
        &mut g,
        1,
        &[
            Op::Rd(0x004, Word, 0x0048_0028),
            Op::Rd(0x008, Word, 0x34c),
            Op::Rd(0x084, Word, 0xffff_ffff),
            Op::Rd(0x420, Word, 0xa0a0_a0a0),
            Op::Rd(0x51c, Word, 0xa0a0_a0a0),
            Op::Rd(0x520, Word, 0), // beyond 288 lines
            Op::Rd(0x6100, Dword, 0),
            // Distributor SGI/PPI registers are RES0 with ARE.
            Op::Rd(0x080, Word, 0),
            Op::Rd(0x400, Word, 0),
            Op::Rd(0x800, Word, 0),
            Op::Rd(0xf00, Word, 0),
            Op::Rr(0, 0x0004, Word, 0x34c),
            Op::Rr(0, 0x0008, Word, 0),
            Op::Rr(0, 0x000c, Word, 0),
            Op::Rr(1, 0x0008, Word, 0x110),
            Op::Rr(1, 0x000c, Word, 1),
            Op::Rr(1, 0x1_0c00, Word, 0xaaaa_aaaa),
            Op::Rr(1, 0x1_0c04, Word, 0),
        ],
    );
    // GICR_WAKER ignores ProcessorSleep writes (Xen 4.17: RAZ/WI).
    g.redist_write(1, 0x14, Word, 0b10).unwrap();
    assert_eq!(g.redist_read(1, 0x14, Word), Ok(0));
    // Distributor-side writes to SGI/PPI state are ignored with ARE.
    g.dist_write(0, 0x100, Word, 0xffff_0000).unwrap();
    assert!(!g.is_enabled(0, 16));
}

#[test]
fn v2_enable_inject_fill_encodes() {
    let mut g = linux_v2_boot(2, 64);
    // SPI 40, edge, priority 0x80, routed to CPU1.
    enable_spi(&mut g, 40, 0x80);
    set_edge(&mut g, 40);
    g.dist_write(0, 0x800 + 40, Byte, 0x02).unwrap();
    assert_eq!(g.inject(40, None), Ok(Some(1)));
    assert!(lrs(&mut g, 0, 4).iter().all(Option::is_none));
    let l = lrs(&mut g, 1, 4);
    let e = l[0].unwrap();
    assert_eq!(e.intid, 40);
    assert_eq!(e.state, LrState::Pending);
    assert!(!e.group1);
    assert!(!e.eoi_maintenance, "edge needs no EOI maintenance");
    // VirtualID 40, Priority 0x80>>3 = 16 at [27:23], State pending.
    assert_eq!(encode_lr_v2(&e), 40 | (16 << 23) | (1 << 28));
    assert!(!g.needs_maintenance(1));

    // IPI 1 from CPU0 to CPU1 via GICD_SGIR (target list).
    let fx = g.dist_write(0, 0xf00, Word, (0b10 << 16) | 1).unwrap();
    assert_eq!(fx.kick, vec![1]);
    let t = fx.sgis.unwrap();
    assert_eq!(t.iter().collect::<Vec<_>>(), vec![(1, 1, 0)]);
    let l = lrs(&mut g, 1, 4);
    let sgi = l.iter().flatten().find(|e| e.intid == 1).copied().unwrap();
    assert_eq!(sgi.source_cpu, Some(0));
    assert_eq!(encode_lr_v2(&sgi), 1 | (20 << 23) | (1 << 28));
    // Filled again without a sync in between: SPI 40 keeps its slot and
    // its pending state (priority 0x80 also beats the SGI's 0xa0).
    assert_eq!(intids(&l), vec![40, 1]);
    assert_eq!(l[0].map(|e| e.state), Some(LrState::Pending));
}

#[test]
fn v3_enable_inject_fill_encodes() {
    let mut g = linux_v3_boot(2, 256);
    // SGI 3 from vCPU0 to vCPU1 (TargetList bit 1, Aff1..3 = 0).
    let t = g.sgi1r_write(0, (3 << 24) | 0b10);
    assert_eq!(t.targets.to_vec(), vec![1]);
    let l = lrs(&mut g, 1, 4);
    let e = l[0].unwrap();
    assert_eq!(
        (e.intid, e.state, e.group1, e.priority),
        (3, LrState::Pending, true, 0xa0)
    );
    assert_eq!(encode_lr_v3(&e), 0x50a0_0000_0000_0003);
    assert_eq!(
        decode_lr_v3(encode_lr_v3(&e)).map(|d| LrEntry {
            source_cpu: None,
            ..d
        }),
        Some(LrEntry {
            source_cpu: None,
            ..e
        })
    );

    // SPI 100 routed by IROUTER (32-bit halves) to vCPU1.
    g.dist_write(0, 0x6000 + 100 * 8, Word, 1).unwrap();
    g.dist_write(0, 0x6000 + 100 * 8 + 4, Word, 0).unwrap();
    assert_eq!(g.dist_read(0, 0x6000 + 100 * 8, Dword), Ok(1));
    enable_spi(&mut g, 100, 0x20);
    assert_eq!(
        g.inject(100, Some(0)),
        Ok(Some(1)),
        "target is ignored for SPIs"
    );
    let l = lrs(&mut g, 1, 4);
    assert_eq!(intids(&l), vec![3, 100]);
    let spi = l[1].unwrap();
    assert!(spi.eoi_maintenance, "level SPI asks for EOI maintenance");
    assert_eq!(
        encode_lr_v3(&spi),
        (1 << 62) | (1 << 60) | (0x20 << 48) | (1 << 41) | 100
    );
}

#[test]
fn fill_orders_by_priority_then_intid() {
    let mut g = linux_v3_boot(1, 64);
    for (intid, prio) in [
        (40, 0x80),
        (41, 0x20),
        (42, 0x80),
        (43, 0x10),
        (44, 0xf0),
        (35, 0x80),
    ] {
        enable_spi(&mut g, intid, prio);
        g.inject(intid as u32, None).unwrap();
    }
    assert_eq!(
        g.pending_for(0).collect::<Vec<_>>(),
        vec![43, 41, 35, 40, 42, 44]
    );
    let l = lrs(&mut g, 0, 4);
    assert_eq!(intids(&l), vec![43, 41, 35, 40]);
    assert_eq!(g.pending_for(0).collect::<Vec<_>>(), vec![42, 44]);
}

#[test]
fn overflow_requests_maintenance_until_drained() {
    let mut g = linux_v3_boot(1, 64);
    for intid in 32..38 {
        enable_spi(&mut g, intid, 0xa0);
        set_edge(&mut g, intid);
        g.inject(intid as u32, None).unwrap();
    }
    let l = lrs(&mut g, 0, 4);
    assert_eq!(intids(&l), vec![32, 33, 34, 35]);
    assert!(g.needs_maintenance(0));
    // Guest took and completed 32 and 33 (LRs invalid), 34 still active.
    let mut back = l.clone();
    back[0] = None;
    back[1] = None;
    back[2] = Some(LrEntry {
        state: LrState::Active,
        ..l[2].unwrap()
    });
    g.sync_lrs(0, &back).unwrap();
    let l = lrs(&mut g, 0, 4);
    assert_eq!(intids(&l), vec![36, 37, 34, 35]);
    assert_eq!(l[2].unwrap().state, LrState::Active);
    assert!(!g.needs_maintenance(0));
}

#[test]
fn edge_lifecycle_and_edge_while_listed() {
    let mut g = linux_v3_boot(1, 64);
    enable_spi(&mut g, 50, 0xa0);
    set_edge(&mut g, 50);
    g.inject(50, None).unwrap();
    let l = lrs(&mut g, 0, 2);
    assert_eq!(l[0].unwrap().state, LrState::Pending);
    // While the vCPU runs (LR loaded), the device fires again.
    assert_eq!(g.inject(50, None), Ok(Some(0)), "kick the running vCPU");
    // Guest acknowledged the first one.
    g.sync_lrs(
        0,
        &[
            Some(LrEntry {
                state: LrState::Active,
                ..l[0].unwrap()
            }),
            None,
        ],
    )
    .unwrap();
    assert!(g.is_active(0, 50));
    let l = lrs(&mut g, 0, 2);
    assert_eq!(l[0].unwrap().state, LrState::PendingActive);
    assert_eq!(l[1], None, "never listed twice");
    // EOI of the first, second taken and completed too.
    g.sync_lrs(0, &[None, None]).unwrap();
    assert!(!g.is_active(0, 50));
    assert!(!g.has_pending(0));
    assert_eq!(lrs(&mut g, 0, 2), vec![None, None]);
}

#[test]
fn pending_not_taken_survives_sync() {
    let mut g = linux_v3_boot(1, 64);
    enable_spi(&mut g, 50, 0xa0);
    set_edge(&mut g, 50);
    g.inject(50, None).unwrap();
    let l = lrs(&mut g, 0, 1);
    // Guest had IRQs masked: the LR comes back still pending.
    g.sync_lrs(0, &l).unwrap();
    assert!(g.is_pending_in_model(0, 50));
    assert_eq!(g.dist_read(0, 0x204, Word), Ok(1 << 18));
    let l2 = lrs(&mut g, 0, 1);
    assert_eq!(l2, l);
    // Guest clears it with ICPENDR before taking it: the LR is dropped.
    g.sync_lrs(0, &l2).unwrap();
    g.dist_write(0, 0x284, Word, 1 << 18).unwrap();
    assert_eq!(lrs(&mut g, 0, 1), vec![None]);
}

#[test]
fn level_repends_while_line_high() {
    let mut g = linux_v2_boot(1, 32);
    enable_spi(&mut g, 33, 0xa0);
    assert_eq!(g.set_level(33, 0, true), Ok(Some(0)));
    let l = lrs(&mut g, 0, 2);
    let e = l[0].unwrap();
    assert!(e.eoi_maintenance);
    assert_eq!(encode_lr_v2(&e) & (1 << 19), 1 << 19, "EOI bit");
    // Guest handled and EOI'd, but the device still asserts the line.
    g.sync_lrs(0, &[None, None]).unwrap();
    assert!(g.has_pending(0));
    let l = lrs(&mut g, 0, 2);
    assert_eq!(l[0].map(|e| e.state), Some(LrState::Pending));
    // Guest acked; line dropped by the device handler; then EOI.
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
    g.set_level(33, 0, false).unwrap();
    assert_eq!(lrs(&mut g, 0, 2)[0].map(|e| e.state), Some(LrState::Active));
    g.sync_lrs(0, &[None, None]).unwrap();
    assert_eq!(lrs(&mut g, 0, 2), vec![None, None]);
    // Line dropped before the guest ever took it: the LR is withdrawn.
    g.set_level(33, 0, true).unwrap();
    let l = lrs(&mut g, 0, 2);
    g.sync_lrs(0, &l).unwrap();
    g.set_level(33, 0, false).unwrap();
    assert_eq!(lrs(&mut g, 0, 2), vec![None, None]);
    assert!(!g.has_pending(0));
}

#[test]
fn level_software_pend_is_consumed_by_ack() {
    let mut g = linux_v3_boot(1, 32);
    enable_spi(&mut g, 33, 0xa0);
    g.inject(33, None).unwrap(); // like ISPENDR on a level interrupt
    let l = lrs(&mut g, 0, 1);
    g.sync_lrs(
        0,
        &[Some(LrEntry {
            state: LrState::Active,
            ..l[0].unwrap()
        })],
    )
    .unwrap();
    assert!(!g.is_pending_in_model(0, 33));
    assert_eq!(lrs(&mut g, 0, 1)[0].map(|e| e.state), Some(LrState::Active));
}

#[test]
fn disabling_keeps_loaded_lr() {
    let mut g = linux_v3_boot(1, 32);
    enable_spi(&mut g, 40, 0xa0);
    set_edge(&mut g, 40);
    g.inject(40, None).unwrap();
    let l = lrs(&mut g, 0, 2);
    g.sync_lrs(0, &l).unwrap();
    g.dist_write(0, 0x184, Word, 1 << 8).unwrap();
    assert!(!g.is_enabled(0, 40));
    assert_eq!(intids(&lrs(&mut g, 0, 2)), vec![40]);
    // But a disabled interrupt is not newly listed.
    g.sync_lrs(0, &[None, None]).unwrap();
    g.inject(40, None).unwrap();
    assert_eq!(lrs(&mut g, 0, 2), vec![None, None]);
    // Distributor disabled: not forwarded either, inject reports no kick.
    g.dist_write(0, 0x104, Word, 1 << 8).unwrap();
    g.dist_write(0, 0x000, Word, 0).unwrap();
    assert_eq!(g.inject(40, None), Ok(None));
    assert!(!g.has_pending(0));
    g.dist_write(0, 0x000, Word, 0x2).unwrap();
    assert!(g.has_pending(0));
}

#[test]
fn spi_in_at_most_one_lr_across_vcpus() {
    let mut g = linux_v2_boot(2, 32);
    enable_spi(&mut g, 40, 0xa0);
    set_edge(&mut g, 40);
    g.inject(40, None).unwrap();
    let l0 = lrs(&mut g, 0, 4);
    assert_eq!(intids(&l0), vec![40]);
    // Retarget to CPU1 while listed on CPU0, and pend again.
    g.sync_lrs(
        0,
        &[Some(LrEntry {
            state: LrState::Active,
            ..l0[0].unwrap()
        })],
    )
    .unwrap();
    g.dist_write(0, 0x828, Byte, 0x02).unwrap();
    assert_eq!(g.inject(40, None), Ok(Some(1)));
    assert_eq!(lrs(&mut g, 1, 4), vec![None; 4]);
    // Completed on CPU0: now it goes to CPU1.
    g.sync_lrs(0, &[None]).unwrap();
    let l0 = lrs(&mut g, 0, 4);
    assert!(l0.iter().all(Option::is_none));
    assert_eq!(intids(&lrs(&mut g, 1, 4)), vec![40]);
}

#[test]
fn higher_priority_displaces_pending_only_entry() {
    let mut g = linux_v3_boot(1, 32);
    for intid in [33, 34, 35] {
        enable_spi(&mut g, intid, 0xa0);
        set_edge(&mut g, intid);
    }
    g.dist_write(0, 0x400 + 35, Byte, 0x10).unwrap();
    g.inject(33, None).unwrap();
    g.inject(34, None).unwrap();
    let l = lrs(&mut g, 0, 2);
    assert_eq!(intids(&l), vec![33, 34]);
    g.sync_lrs(
        0,
        &[
            Some(LrEntry {
                state: LrState::Active,
                ..l[0].unwrap()
            }),
            l[1],
        ],
    )
    .unwrap();
    g.inject(35, None).unwrap();
    let l = lrs(&mut g, 0, 2);
    assert_eq!(
        intids(&l),
        vec![33, 35],
        "active 33 kept, pending 34 displaced"
    );
    assert!(
        g.is_pending_in_model(0, 34),
        "displaced interrupt stays pending"
    );
    assert!(g.needs_maintenance(0));
}

#[test]
fn hw_mapped_timer_ppi() {
    let mut g = linux_v3_boot(2, 32);
    // Virtual timer PPI 27 on vCPU 1, level in DT, enabled by the guest.
    g.redist_write(1, 0x1_0100, Word, 1 << 27).unwrap();
    g.set_hw_mapping(27, 1, Some(27)).unwrap();
    assert_eq!(
        g.inject(27, None),
        Err(VgicError::BadIntid(27)),
        "PPI needs a vCPU"
    );
    assert_eq!(g.inject(27, Some(1)), Ok(Some(1)));
    assert!(!g.has_pending(0), "banked: vCPU 0 unaffected");
    let l = lrs(&mut g, 1, 2);
    let e = l[0].unwrap();
    assert_eq!(e.pintid, Some(27));
    assert!(!e.eoi_maintenance);
    assert_eq!(
        encode_lr_v3(&e),
        (1 << 62) | (1 << 61) | (1 << 60) | (27 << 32) | (0xa0 << 48) | 27
    );
    assert_eq!(
        encode_lr_v2(&e),
        (1 << 31) | (1 << 30) | (27 << 10) | (20 << 23) | (1 << 28) | 27
    );
    // Active HW interrupt with a new pend: never pending+active in the LR.
    g.sync_lrs(
        1,
        &[Some(LrEntry {
            state: LrState::Active,
            ..e
        })],
    )
    .unwrap();
    g.inject(27, Some(1)).unwrap();
    assert_eq!(lrs(&mut g, 1, 2)[0].map(|e| e.state), Some(LrState::Active));
    g.sync_lrs(1, &[None]).unwrap();
    assert_eq!(
        lrs(&mut g, 1, 2)[0].map(|e| e.state),
        Some(LrState::Pending)
    );
}

#[test]
fn sgir_v2_filters() {
    let mut g = linux_v2_boot(4, 32);
    let t = |r: WriteEffect| r.sgis.map(|t| (t.intid, t.source, t.targets.to_vec()));
    // Target list, with bits for CPUs that do not exist dropped.
    assert_eq!(
        t(g.dist_write(1, 0xf00, Word, (0xf5 << 16) | 2).unwrap()),
        Some((2, 1, vec![0, 2]))
    );
    // All but self.
    assert_eq!(
        t(g.dist_write(1, 0xf00, Word, (1 << 24) | 3).unwrap()),
        Some((3, 1, vec![0, 2, 3]))
    );
    // Self only (Linux's single-CPU self-IPI).
    assert_eq!(
        t(g.dist_write(2, 0xf00, Word, (2 << 24) | 4).unwrap()),
        Some((4, 2, vec![2]))
    );
    // Reserved filter: nobody.
    assert_eq!(
        t(g.dist_write(2, 0xf00, Word, (3 << 24) | 0xff_0005).unwrap()),
        Some((5, 2, vec![]))
    );
    // SGIR is write-only.
    assert_eq!(g.dist_read(0, 0xf00, Word), Ok(0));
    // SPENDSGIR shows sources per SGI for the reading CPU.
    assert_eq!(g.dist_read(0, 0xf20, Word), Ok(0x0202_0000));
    assert_eq!(g.dist_read(2, 0xf24, Byte), Ok(0x04));
    assert_eq!(
        g.dist_read(0, 0x200, Word),
        Ok(0b1100),
        "ISPENDR0 shows SGIs 2, 3"
    );
    // Writes to ISPENDR0/ICPENDR0 SGI bits are ignored on v2.
    g.dist_write(0, 0x280, Word, 0xffff).unwrap();
    assert_eq!(g.dist_read(0, 0x200, Word), Ok(0b1100));
    // CPENDSGIR clears one source.
    g.dist_write(0, 0xf12, Byte, 0x02).unwrap();
    assert_eq!(g.dist_read(0, 0x200, Word), Ok(0b1000));
    // SPENDSGIR sets sources (only for existing CPUs).
    g.dist_write(3, 0xf2c, Word, 0xff << 24).unwrap();
    assert_eq!(g.dist_read(3, 0xf2c, Word), Ok(0x0f << 24));
}

#[test]
fn v2_sgi_sources_delivered_one_by_one() {
    let mut g = linux_v2_boot(3, 32);
    g.dist_write(0, 0xf00, Word, (0b010 << 16) | 5).unwrap();
    g.dist_write(2, 0xf00, Word, (0b010 << 16) | 5).unwrap();
    let l = lrs(&mut g, 1, 4);
    assert_eq!(intids(&l), vec![5], "one LR per interrupt");
    let e = l[0].unwrap();
    assert_eq!(e.source_cpu, Some(0));
    assert!(e.eoi_maintenance, "another source waits");
    assert_eq!(encode_lr_v2(&e) & (7 << 10), 0);
    assert!(!g.needs_maintenance(1));
    g.sync_lrs(1, &[None]).unwrap();
    let l = lrs(&mut g, 1, 4);
    let e = l[0].unwrap();
    assert_eq!((e.source_cpu, e.eoi_maintenance), (Some(2), false));
    assert_eq!((encode_lr_v2(&e) >> 10) & 7, 2);
    // Decode gives the source back.
    assert_eq!(decode_lr_v2(encode_lr_v2(&e)), Some(e));
    g.sync_lrs(1, &[None]).unwrap();
    assert!(!g.has_pending(1));
}

#[test]
fn sgi1r_decoding() {
    let n = 20; // vCPU 17 = Aff1 1, Aff0 1
    let d = |v: u64, from| decode_sgi1r(v, from, n);
    assert_eq!(d((7 << 24) | 0b1011, 0).targets.to_vec(), vec![0, 1, 3]);
    assert_eq!(d((7 << 24) | 0b1011, 0).intid, 7);
    assert_eq!(d((1 << 16) | 0b11, 0).targets.to_vec(), vec![16, 17]);
    assert_eq!(
        d((1 << 16) | 0xffff, 0).targets.to_vec(),
        vec![16, 17, 18, 19]
    );
    // Broadcast excludes the sender.
    let all: Vec<usize> = (0..n).filter(|&v| v != 5).collect();
    assert_eq!(d((1 << 40) | (2 << 24) | 0xffff, 5).targets.to_vec(), all);
    // "Self" through the target list.
    assert_eq!(d(1 << 5, 5).targets.to_vec(), vec![5]);
    // Range selector, Aff2/Aff3 pointing nowhere.
    assert!(d((1 << 44) | 1, 0).is_empty());
    assert!(d((1 << 48) | 1, 0).is_empty());
    assert!(d((1 << 32) | 1, 0).is_empty());
    // Aff1 = 2 would be vCPUs 32..47: none here.
    assert!(d((2 << 16) | 1, 0).is_empty());

    let mut g = linux_v3_boot(3, 32);
    let t = g.sgi1r_write(1, (1 << 40) | (6 << 24));
    assert_eq!(t.iter().collect::<Vec<_>>(), vec![(0, 6, 1), (2, 6, 1)]);
    assert!(g.has_pending(0) && g.has_pending(2) && !g.has_pending(1));
    assert_eq!(g.redist_read(0, 0x1_0200, Word), Ok(1 << 6));
    // On a v2 vGIC the register does nothing.
    let mut g2 = Vgic::new(GicVersion::V2, 2, 32).unwrap();
    assert!(g2.sgi1r_write(0, 1 << 40).is_empty());
    assert!(!g2.has_pending(1));
}

#[test]
fn byte_wide_ipriorityr() {
    let mut g = Vgic::new(GicVersion::V2, 2, 32).unwrap();
    g.dist_write(0, 0x400 + 33, Byte, 0xff).unwrap();
    assert_eq!(
        g.dist_read(0, 0x420, Word),
        Ok(0x0000_f800),
        "5 priority bits"
    );
    assert_eq!(g.dist_read(0, 0x421, Byte), Ok(0xf8));
    assert_eq!(g.priority(0, 33), Some(0xf8));
    // Banked SGI/PPI priorities.
    g.dist_write(1, 0x41b, Byte, 0x47).unwrap();
    assert_eq!(g.dist_read(1, 0x418, Word), Ok(0x4000_0000));
    assert_eq!(g.dist_read(0, 0x418, Word), Ok(0));
    // Word write, byte reads.
    g.dist_write(0, 0x424, Word, 0x1122_3344).unwrap();
    assert_eq!(
        (0..4)
            .map(|i| g.dist_read(0, 0x424 + i, Byte).unwrap())
            .collect::<Vec<_>>(),
        vec![0x40, 0x30, 0x20, 0x10]
    );
    let mut g3 = Vgic::new(GicVersion::V3, 2, 32).unwrap();
    g3.redist_write(1, 0x1_0400 + 27, Byte, 0x80).unwrap();
    assert_eq!(g3.redist_read(1, 0x1_0418, Word), Ok(0x8000_0000));
    assert_eq!(g3.redist_read(0, 0x1_0418, Word), Ok(0));
    assert_eq!(g3.priority(1, 27), Some(0x80));
}

#[test]
fn widths_and_reserved_offsets() {
    let mut g = Vgic::new(GicVersion::V2, 1, 32).unwrap();
    for w in [Byte, Half, Dword] {
        assert_eq!(
            g.dist_read(0, 0, w),
            Err(VgicError::BadAccess {
                offset: 0,
                width: w
            })
        );
        assert_eq!(
            g.dist_write(0, 0, w, 1),
            Err(VgicError::BadAccess {
                offset: 0,
                width: w
            })
        );
    }
    assert_eq!(
        g.dist_read(0, 0x402, Half),
        Err(VgicError::BadAccess {
            offset: 0x402,
            width: Half
        })
    );
    assert_eq!(
        g.dist_read(0, 0x402, Word),
        Err(VgicError::BadAccess {
            offset: 0x402,
            width: Word
        })
    );
    assert_eq!(
        g.dist_read(0, 0x6000, Dword),
        Err(VgicError::Unhandled {
            offset: 0x6000,
            write: false
        })
    );
    let e = g.dist_write(0, 0xd00, Word, 1).unwrap_err();
    assert!(e.is_raz_wi());
    assert_eq!(
        g.dist_read(0, 0x1000, Word),
        Err(VgicError::Unhandled {
            offset: 0x1000,
            write: false
        })
    );
    assert_eq!(g.dist_read(1, 0, Word), Err(VgicError::BadVcpu(1)));
    // RO registers ignore writes.
    g.dist_write(0, 0x004, Word, 0xffff_ffff).unwrap();
    assert_eq!(g.dist_read(0, 0x004, Word), Ok(0x01));
    let mut g3 = Vgic::new(GicVersion::V3, 2, 32).unwrap();
    assert_eq!(
        g3.dist_read(0, 0x6104, Dword),
        Err(VgicError::BadAccess {
            offset: 0x6104,
            width: Dword
        })
    );
    assert_eq!(
        g3.dist_read(0, 0x6100, Byte),
        Err(VgicError::BadAccess {
            offset: 0x6100,
            width: Byte
        })
    );
    assert_eq!(
        g3.redist_read(2, 0x8, Dword),
        Err(VgicError::Unhandled {
            offset: 0x8,
            write: false
        })
    );
    assert_eq!(
        g3.redist_read(0, 0x1_0104, Word),
        Err(VgicError::Unhandled {
            offset: 0x1_0104,
            write: false
        })
    );
    assert_eq!(
        g3.redist_read(0, 0x70, Dword),
        Err(VgicError::Unhandled {
            offset: 0x70,
            write: false
        })
    );
    assert!(
        g.redist_read(0, 0x8, Word).unwrap_err().is_raz_wi(),
        "no redistributors on v2"
    );
    // IROUTER keeps only the architected fields.
    g3.dist_write(0, 0x6000 + 33 * 8, Dword, u64::MAX).unwrap();
    assert_eq!(
        g3.dist_read(0, 0x6000 + 33 * 8, Dword),
        Ok(0xff_8000_0000 | 0xff_ffff)
    );
    assert_eq!(g3.route_of(33), Some(0), "IRM: any vCPU");
}

#[test]
fn bad_config_and_bad_arguments() {
    assert_eq!(
        Vgic::new(GicVersion::V2, 9, 32).unwrap_err(),
        VgicError::BadConfig
    );
    assert_eq!(
        Vgic::new(GicVersion::V2, 0, 32).unwrap_err(),
        VgicError::BadConfig
    );
    assert_eq!(
        Vgic::new(GicVersion::V3, 2, 33).unwrap_err(),
        VgicError::BadConfig
    );
    assert_eq!(
        Vgic::new(GicVersion::V3, 2, MAX_SPIS + 32).unwrap_err(),
        VgicError::BadConfig
    );
    let mut g = Vgic::new(GicVersion::V3, 2, MAX_SPIS).unwrap();
    assert_eq!(g.nr_lines(), 1020);
    assert_eq!(g.dist_read(0, 4, Word).unwrap() & 0x1f, 31);
    assert_eq!(g.inject(1020, None), Err(VgicError::BadIntid(1020)));
    assert_eq!(g.inject(1019, None), Ok(None));
    assert_eq!(g.inject(5, Some(2)), Err(VgicError::BadVcpu(2)));
    assert_eq!(g.set_level(3, 0, true), Err(VgicError::BadIntid(3)));
    let mut out = [None; 2];
    assert_eq!(g.fill_lrs(0, 3, &mut out), Err(VgicError::BadLrCount(3)));
    assert_eq!(
        g.fill_lrs(0, MAX_LRS + 1, &mut [None; 80]),
        Err(VgicError::BadLrCount(MAX_LRS + 1))
    );
    assert_eq!(g.fill_lrs(2, 2, &mut out), Err(VgicError::BadVcpu(2)));
    assert_eq!(g.sync_lrs(2, &out), Err(VgicError::BadVcpu(2)));
    assert_eq!(g.pending_for(7).count(), 0);
}

#[test]
fn lr_encodings_round_trip() {
    let e = LrEntry {
        intid: 1019,
        pintid: None,
        state: LrState::PendingActive,
        priority: 0xf8,
        group1: true,
        source_cpu: None,
        eoi_maintenance: true,
    };
    assert_eq!(
        encode_lr_v2(&e),
        1019 | (1 << 19) | (0x1f << 23) | (3 << 28) | (1 << 30)
    );
    assert_eq!(decode_lr_v2(encode_lr_v2(&e)), Some(e));
    assert_eq!(
        encode_lr_v3(&e),
        (3 << 62) | (1 << 60) | (0xf8 << 48) | (1 << 41) | 1019
    );
    assert_eq!(decode_lr_v3(encode_lr_v3(&e)), Some(e));
    let hw = LrEntry {
        intid: 48,
        pintid: Some(80),
        state: LrState::Active,
        priority: 0x08,
        group1: false,
        source_cpu: None,
        eoi_maintenance: false,
    };
    assert_eq!(
        encode_lr_v2(&hw),
        (1 << 31) | (80 << 10) | (1 << 23) | (2 << 28) | 48
    );
    assert_eq!(decode_lr_v2(encode_lr_v2(&hw)), Some(hw));
    assert_eq!(decode_lr_v3(encode_lr_v3(&hw)), Some(hw));
    // Invalid LRs decode to None, whatever else is set.
    assert_eq!(decode_lr_v2(0xcfff_ffff), None);
    assert_eq!(decode_lr_v3(0x3fff_ffff_ffff_ffff), None);
    // Priority 0xa7 keeps its top five bits in GICH_LR.
    assert_eq!(
        decode_lr_v2(encode_lr_v2(&LrEntry {
            priority: 0xa7,
            ..e
        }))
        .unwrap()
        .priority,
        0xa0
    );
}

#[test]
fn lr_count_shrink_hands_back_state() {
    let mut g = linux_v3_boot(1, 32);
    for intid in [33, 34] {
        enable_spi(&mut g, intid, 0xa0);
        set_edge(&mut g, intid);
        g.inject(intid as u32, None).unwrap();
    }
    assert_eq!(intids(&lrs(&mut g, 0, 2)), vec![33, 34]);
    g.sync_lrs(0, &[]).unwrap(); // nothing read back: unchanged
    assert_eq!(intids(&lrs(&mut g, 0, 1)), vec![33]);
    assert!(g.is_pending_in_model(0, 34));
    assert_eq!(g.listed(0).len(), 1);
}

/// Every offset of both frames, every width, reads and writes of junk:
/// never a panic, only the documented outcomes.
#[test]
fn sweep_offsets_and_widths_never_panics() {
    for version in [GicVersion::V2, GicVersion::V3] {
        let mut g = Vgic::new(version, 3, 64).unwrap();
        for off in 0..0x1_0000u64 {
            for w in Width::ALL {
                for r in [
                    g.dist_read(2, off, w).map(|_| ()),
                    g.dist_write(2, off, w, 0xdead_beef_a5a5_5a5a).map(|_| ()),
                ] {
                    assert!(
                        matches!(
                            r,
                            Ok(()) | Err(VgicError::BadAccess { .. } | VgicError::Unhandled { .. })
                        ),
                        "{version:?} {off:#x} {w:?}: {r:?}"
                    );
                }
            }
        }
        for off in (0..0x2_0000u64).chain([0x2_0000, u64::MAX - 7, u64::MAX]) {
            for w in Width::ALL {
                for f in [0, 2, 3, usize::MAX] {
                    let r = g.redist_read(f, off, w).map(|_| ());
                    let wr = g.redist_write(f, off, w, u64::MAX).map(|_| ());
                    for r in [r, wr] {
                        assert!(matches!(
                            r,
                            Ok(()) | Err(VgicError::BadAccess { .. } | VgicError::Unhandled { .. })
                        ));
                    }
                }
            }
        }
        for off in [0x1_0000, 0xffff_ffff, u64::MAX - 3, u64::MAX] {
            assert!(g.dist_read(0, off, Word).unwrap_err().is_raz_wi());
        }
        // The junk left the model usable: LR fill/sync still consistent.
        for v in 0..3 {
            let l = lrs(&mut g, v, 4);
            g.sync_lrs(v, &[None; 4]).unwrap();
            let listed: Vec<u32> = l.iter().flatten().map(|e| e.intid).collect();
            let mut dedup = listed.clone();
            dedup.dedup();
            assert_eq!(listed, dedup);
        }
    }
}

/// Pseudo-random injections/fills/syncs across vCPUs never list an
/// interrupt twice (the core LR invariant).
#[test]
fn random_traffic_keeps_single_listing() {
    let mut g = linux_v3_boot(3, 64);
    for intid in 32..96u64 {
        enable_spi(&mut g, intid, ((intid * 37) % 256) as u8);
        if intid % 2 == 0 {
            set_edge(&mut g, intid);
        }
        g.dist_write(0, 0x6000 + intid * 8, Dword, intid % 3)
            .unwrap();
    }
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..5000 {
        let r = rnd();
        let intid = 32 + (r % 64) as u32;
        match (r >> 8) % 6 {
            0 => {
                g.inject(intid, None).unwrap();
            }
            1 => {
                g.set_level(intid, 0, (r >> 16) & 1 == 1).unwrap();
            }
            2 => {
                g.dist_write(0, 0x6000 + u64::from(intid) * 8, Dword, (r >> 20) % 3)
                    .unwrap();
            }
            _ => {
                let v = ((r >> 24) % 3) as usize;
                let l = lrs(&mut g, v, 4);
                // Guest: takes some, completes some.
                let back: Vec<Option<LrEntry>> = l
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        e.and_then(|e| match (r >> (32 + 2 * i)) & 3 {
                            0 => None,
                            1 => Some(LrEntry {
                                state: LrState::Active,
                                ..e
                            }),
                            _ => Some(e),
                        })
                    })
                    .collect();
                g.sync_lrs(v, &back).unwrap();
            }
        }
        let mut seen = std::collections::HashSet::new();
        for v in 0..3 {
            for e in g.listed(v).iter().flatten() {
                assert!(seen.insert(e.intid), "INTID {} listed twice", e.intid);
            }
        }
    }
}

#[test]
fn writes_report_vcpus_to_kick() {
    let mut g = linux_v3_boot(3, 32);
    // Level SPI 40 routed to vCPU 2, line already high, still disabled.
    g.dist_write(0, 0x6000 + 40 * 8, Dword, 2).unwrap();
    assert_eq!(
        g.set_level(40, 0, true),
        Ok(None),
        "disabled: nobody to kick"
    );
    // vCPU 0 enables it: vCPU 2 must be kicked.
    assert_eq!(g.dist_write(0, 0x104, Word, 1 << 8).unwrap().kick, vec![2]);
    // Retarget to vCPU 1 (32-bit write of the low half).
    assert_eq!(
        g.dist_write(0, 0x6000 + 40 * 8, Word, 1).unwrap().kick,
        vec![1]
    );
    // Disabling the distributor and enabling it again kicks again; a
    // pending private interrupt of vCPU 2 shows up too.
    g.redist_write(2, 0x1_0200, Word, 1 << 20).unwrap(); // ISPENDR0: PPI 20 (disabled)
    assert_eq!(
        g.dist_write(0, 0x000, Word, 0).unwrap().kick,
        Vec::<usize>::new()
    );
    let fx = g.redist_write(2, 0x1_0100, Word, 1 << 20).unwrap();
    assert_eq!(fx.kick, Vec::<usize>::new(), "distributor still disabled");
    assert_eq!(g.dist_write(0, 0x000, Word, 0x3).unwrap().kick, vec![1, 2]);
    // Priority writes cannot make anything deliverable.
    assert!(g.dist_write(0, 0x428, Word, 0).unwrap().kick.is_empty());
    // Redistributor enable of a pending PPI kicks its owner.
    g.redist_write(0, 0x1_0200, Word, 1 << 21).unwrap();
    assert_eq!(
        g.redist_write(0, 0x1_0100, Word, 1 << 21).unwrap().kick,
        vec![0]
    );
}
