//! The `vgic` scenario: bring the GIC up the way the Xen Test Framework's
//! arm64 port does and take one interrupt (docs/design.md "Test guest
//! scenarios").
//!
//! GICv3: walk the redistributor frames from `oxen.gicr` until
//! `GICR_TYPER`'s affinity matches `MPIDR_EL1` (or Last), then read
//! `GICR_WAKER` and poll until ChildrenAsleep (bit 2) is clear *without*
//! writing ProcessorSleep first (on Xen 4.17 the register is RAZ/WI, so
//! the first read says awake). The poll is bounded ([`WAKER_POLLS`]
//! reads): a redistributor that stays asleep is reported as an error line
//! and a crash instead of a hang. Then the SGI_base registers (Group 1,
//! byte-wide priority, enable), the distributor (`GICD_CTLR` =
//! ARE_NS|EnableGrp1A|EnableGrp1) and the `ICC_*` CPU interface are set
//! up, and SGI [`SGI`] is sent to self with `ICC_SGI1R_EL1`.
//!
//! GICv2: no redistributor (that part is skipped and said so); the
//! distributor and the CPU interface at `oxen.gicc` are set up and the
//! SGI is sent with `GICD_SGIR` (target filter "self").
//!
//! Either way the IRQ must be taken (the vector notes it and returns with
//! IRQs masked), the acknowledge register must name the SGI, and after
//! the EOI nothing else may be pending (spurious 1023). Output lines:
//! `vgic: ...` facts, then `vgic: ok`; failures are `TEST-GUEST error:`.

use crate::rt;
use crate::run::{fail, line};
use crate::scenario::GicSetup;

macro_rules! say {
    ($($t:tt)*) => { line(format_args!($($t)*)) };
}

/// The SGI sent to self.
const SGI: u32 = 5;
/// Priority given to it (byte-wide write, read back).
const SGI_PRIORITY: u8 = 0xa0;
/// Most `GICR_WAKER` reads before giving up on the wake.
pub const WAKER_POLLS: u32 = 10_000;
/// Most reads of an RWP bit before giving up.
const RWP_POLLS: u32 = 10_000;
/// Most redistributor frames walked.
const MAX_FRAMES: u64 = 256;
/// How long to wait for the IRQ, in milliseconds of the virtual counter.
const IRQ_WAIT_MS: u64 = 5_000;

// Distributor (both versions).
const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_IIDR: u64 = 0x008;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_SGIR: u64 = 0xf00;
const GICD_PIDR2_V3: u64 = 0xffe8;
/// GICD_CTLR.RWP (GICv3).
const GICD_CTLR_RWP: u32 = 1 << 31;
/// ARE_NS | EnableGrp1A | EnableGrp1, what Linux and XTF write.
const GICD_CTLR_V3_ENABLE: u32 = 0x13;

// Redistributor RD_base.
const GICR_CTLR: u64 = 0x0000;
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const GICR_PIDR2: u64 = 0xffe8;
const GICR_CTLR_RWP: u32 = 1 << 3;
const GICR_TYPER_LAST: u32 = 1 << 4;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_STRIDE: u64 = 0x2_0000;
// Redistributor SGI_base.
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x080;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x100;
const GICR_ICENABLER0: u64 = SGI_BASE + 0x180;
const GICR_ICACTIVER0: u64 = SGI_BASE + 0x380;
const GICR_IPRIORITYR: u64 = SGI_BASE + 0x400;

// GICv2 CPU interface.
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_BPR: u64 = 0x08;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;

/// The special INTID an acknowledge returns when nothing is pending.
const SPURIOUS: u32 = 1023;

fn rd(addr: u64) -> u32 {
    // SAFETY: `addr` is a 4-byte aligned register of the GIC frames the
    // tester named (4 KiB aligned bases, checked when parsing); reading
    // one has no effect on memory, and a fault is reported by the vectors.
    unsafe { rt::read_u32(addr) }
}

fn wr(addr: u64, v: u32) {
    // SAFETY: as `rd`; the GIC frames are device registers, not memory
    // any Rust object lives in.
    unsafe { rt::write_u32(addr, v) }
}

fn wr8(addr: u64, v: u8) {
    // SAFETY: as `wr` (a byte-wide priority register).
    unsafe { rt::write_u8(addr, v) }
}

fn rd8(addr: u64) -> u8 {
    // SAFETY: as `rd` (a byte-wide priority register).
    unsafe { rt::read_u8(addr) }
}

/// Poll `addr` until `bit` is clear, at most `max` reads: the number of
/// reads that still saw it set, or `Err(last value)`.
fn poll_clear(addr: u64, bit: u32, max: u32) -> Result<u32, u32> {
    let mut v = rd(addr);
    let mut n = 0;
    while v & bit != 0 {
        n += 1;
        if n >= max {
            return Err(v);
        }
        core::hint::spin_loop();
        v = rd(addr);
    }
    Ok(n)
}

/// Run the scenario; returns only on success.
pub fn run(g: GicSetup) {
    match g.version {
        3 => v3(g),
        _ => v2(g),
    }
    say!("vgic: ok");
}

fn v3(g: GicSetup) {
    let d = g.gicd;
    say!(
        "vgic: GICv3 GICD {d:#x} GICR {:#x}: GICD_PIDR2 {:#x} GICD_TYPER {:#x} GICD_IIDR {:#x}",
        g.gicr,
        rd(d + GICD_PIDR2_V3),
        rd(d + GICD_TYPER),
        rd(d + GICD_IIDR)
    );
    // Find this CPU's redistributor.
    let m = rt::mpidr();
    let aff = ((m & 0xff_ffff) | ((m >> 32) & 0xff) << 24) as u32;
    let mut frame = None;
    for i in 0..MAX_FRAMES {
        let base = g.gicr + i * GICR_STRIDE;
        let arch = (rd(base + GICR_PIDR2) >> 4) & 0xf;
        if arch != 3 && arch != 4 {
            fail(format_args!(
                "redistributor {i} at {base:#x}: GICR_PIDR2 ArchRev {arch}"
            ));
        }
        let (lo, hi) = (rd(base + GICR_TYPER), rd(base + GICR_TYPER + 4));
        if hi == aff {
            say!("vgic: redistributor {i} for MPIDR {m:#x}: GICR_TYPER {hi:#x}_{lo:08x}");
            frame = Some(base);
            break;
        }
        if lo & GICR_TYPER_LAST != 0 {
            break;
        }
    }
    let Some(rd_base) = frame else {
        fail(format_args!("no redistributor has affinity {aff:#x}"))
    };
    // XTF: wait for the redistributor to be awake, without asking for it.
    let waker = rd(rd_base + GICR_WAKER);
    match poll_clear(rd_base + GICR_WAKER, WAKER_CHILDREN_ASLEEP, WAKER_POLLS) {
        Ok(n) => say!("vgic: GICR_WAKER {waker:#x}, awake after {n} polls (never written)"),
        Err(v) => fail(format_args!(
            "GICR_WAKER still {v:#x} after {WAKER_POLLS} reads: ChildrenAsleep never cleared"
        )),
    }
    // Redistributor: all private interrupts Group 1, disabled and
    // inactive; the SGI at SGI_PRIORITY (byte write) and enabled.
    wr(rd_base + GICR_IGROUPR0, u32::MAX);
    wr(rd_base + GICR_ICENABLER0, u32::MAX);
    wr(rd_base + GICR_ICACTIVER0, u32::MAX);
    wr8(rd_base + GICR_IPRIORITYR + u64::from(SGI), SGI_PRIORITY);
    let prio = rd8(rd_base + GICR_IPRIORITYR + u64::from(SGI));
    if prio != SGI_PRIORITY {
        fail(format_args!(
            "GICR_IPRIORITYR byte {SGI} reads {prio:#x} after writing {SGI_PRIORITY:#x}"
        ));
    }
    if let Err(v) = poll_clear(rd_base + GICR_CTLR, GICR_CTLR_RWP, RWP_POLLS) {
        fail(format_args!("GICR_CTLR.RWP stuck: {v:#x}"));
    }
    wr(rd_base + GICR_ISENABLER0, 1 << SGI);
    // Distributor: affinity routing and Group 1.
    wr(d + GICD_CTLR, GICD_CTLR_V3_ENABLE);
    match poll_clear(d + GICD_CTLR, GICD_CTLR_RWP, RWP_POLLS) {
        Ok(_) => say!("vgic: GICD_CTLR {:#x}", rd(d + GICD_CTLR)),
        Err(v) => fail(format_args!("GICD_CTLR.RWP stuck: {v:#x}")),
    }
    // CPU interface, then the SGI to self.
    let sre = rt::gicv3_cpu_init();
    if sre & 1 == 0 {
        fail(format_args!("ICC_SRE_EL1.SRE reads 0 ({sre:#x})"));
    }
    let aff0 = m & 0xff;
    let sgi1r = (u64::from(SGI) << 24)
        | (((m >> 8) & 0xff) << 16)
        | (((m >> 16) & 0xff) << 32)
        | (((m >> 32) & 0xff) << 48)
        | ((aff0 >> 4) << 44)
        | (1 << (aff0 & 0xf));
    rt::icc_sgi1r(sgi1r);
    take(
        || rt::icc_iar1() as u32,
        |iar| rt::icc_eoir1(u64::from(iar)),
        0xff_ffff,
    );
}

fn v2(g: GicSetup) {
    let (d, c) = (g.gicd, g.gicc);
    say!(
        "vgic: GICv2 GICD {d:#x} GICC {c:#x}: GICD_TYPER {:#x} GICD_IIDR {:#x}",
        rd(d + GICD_TYPER),
        rd(d + GICD_IIDR)
    );
    say!("vgic: GICv2: no redistributor to wake");
    wr(d + GICD_CTLR, 0);
    wr(d + GICD_ICENABLER, u32::MAX);
    wr8(d + GICD_IPRIORITYR + u64::from(SGI), SGI_PRIORITY);
    let prio = rd8(d + GICD_IPRIORITYR + u64::from(SGI));
    if prio != SGI_PRIORITY {
        fail(format_args!(
            "GICD_IPRIORITYR byte {SGI} reads {prio:#x} after writing {SGI_PRIORITY:#x}"
        ));
    }
    wr(d + GICD_ISENABLER, 1 << SGI);
    wr(d + GICD_CTLR, 1);
    say!("vgic: GICD_CTLR {:#x}", rd(d + GICD_CTLR));
    wr(c + GICC_PMR, 0xf0);
    wr(c + GICC_BPR, 0);
    wr(c + GICC_CTLR, 1);
    // TargetListFilter 2: this CPU only.
    wr(d + GICD_SGIR, (2 << 24) | SGI);
    take(|| rd(c + GICC_IAR), |iar| wr(c + GICC_EOIR, iar), 0x3ff);
}

/// Wait for the IRQ, acknowledge it (`ack`, INTID in `id_mask`), check it
/// is the SGI, EOI it (`eoi`) and check nothing else is pending.
fn take(ack: impl Fn() -> u32, eoi: impl Fn(u32), id_mask: u32) {
    let ticks = rt::counter_freq().saturating_mul(IRQ_WAIT_MS) / 1000;
    if !rt::wait_irq(ticks) {
        fail(format_args!("SGI {SGI} sent to self: no IRQ taken"));
    }
    let iar = ack();
    if iar & id_mask != SGI {
        fail(format_args!(
            "IRQ taken but the acknowledge register reads {iar:#x}, not SGI {SGI}"
        ));
    }
    eoi(iar);
    say!("vgic: SGI {SGI} taken (IAR {iar:#x})");
    let again = ack();
    if again & id_mask != SPURIOUS {
        fail(format_args!(
            "after the EOI, the acknowledge register reads {again:#x}, not 1023"
        ));
    }
}
