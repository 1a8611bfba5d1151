//! Driver for the host interrupt controller, GICv2 (GIC-400) and GICv3.
//!
//! oxen uses the GIC for its own interrupts only so far: the EL2 physical
//! timer PPI (scheduler tick) and SGIs between physical CPUs. All interrupts
//! are Group 1, priority 0xa0, EOImode 0. Register offsets: GICv2 from IHI
//! 0048B §4, GICv3 from IHI 0069 §12.

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use super::head::MAX_CPUS;
use super::sysreg;

// Distributor (both versions).
const GICD_CTLR: usize = 0x000;
const GICD_TYPER: usize = 0x004;
const GICD_IGROUPR: usize = 0x080;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ICPENDR: usize = 0x280;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_SGIR: usize = 0xf00;
/// GICD_CTLR.RWP (v3): register write pending.
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR value enabling affinity routing and Group 1 (v3; Linux writes the same).
const GICD_CTLR_V3_ENABLE: u32 = (1 << 4) | (1 << 1) | (1 << 0);

// GICv2 CPU interface.
const GICC_CTLR: usize = 0x00;
const GICC_DIR: usize = 0x1000;
/// GICC_CTLR.EnableGrp0 and EOImodeNS (split priority drop / deactivate).
const GICC_CTLR_EN_EOIMODE: u32 = (1 << 0) | (1 << 9);
const GICD_IROUTER: usize = 0x6000;
const GICC_PMR: usize = 0x04;
const GICC_BPR: usize = 0x08;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;

// GICv3 redistributor: RD_base frame then SGI_base frame (64 KiB each).
const GICR_FRAME: usize = 0x20000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_SGI_BASE: usize = 0x10000;

const DEFAULT_PRIORITY: u8 = 0xa0;
/// INTIDs 1020-1023 are special ("spurious") acknowledgements.
const SPURIOUS: u32 = 1020;

/// Which GIC this machine has.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    /// GICv2 (memory-mapped CPU interface).
    V2,
    /// GICv3 (system-register CPU interface, redistributors).
    V3,
}

static VERSION: AtomicU8 = AtomicU8::new(0);
static GICD: AtomicUsize = AtomicUsize::new(0);
static GICC: AtomicUsize = AtomicUsize::new(0);
static GICR: AtomicUsize = AtomicUsize::new(0);
static GICR_SIZE: AtomicUsize = AtomicUsize::new(0);
/// Per physical CPU: its redistributor (v3) or its CPU-interface mask (v2).
static CPU_ID: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn rd32(a: usize) -> u32 {
    // SAFETY: `a` is a GIC register inside a region given by the device tree
    // and identity-mapped as Device memory.
    unsafe { read_volatile(a as *const u32) }
}
fn wr32(a: usize, v: u32) {
    // SAFETY: as in rd32.
    unsafe { write_volatile(a as *mut u32, v) }
}
fn wr8(a: usize, v: u8) {
    // SAFETY: as in rd32; GICD/GICR_IPRIORITYR and ITARGETSR are byte-accessible.
    unsafe { write_volatile(a as *mut u8, v) }
}
fn rd64(a: usize) -> u64 {
    // SAFETY: as in rd32.
    unsafe { read_volatile(a as *const u64) }
}

/// The GIC version found at init.
pub fn version() -> Version {
    if VERSION.load(Ordering::Relaxed) == 3 {
        Version::V3
    } else {
        Version::V2
    }
}

fn v3_wait_rwp() {
    let d = GICD.load(Ordering::Relaxed);
    for _ in 0..1_000_000 {
        if rd32(d + GICD_CTLR) & GICD_CTLR_RWP == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Configure the distributor (boot CPU, once): every SPI Group 1, disabled,
/// default priority.
///
/// # Safety
/// The addresses are the host GIC's, from the device tree; nothing else drives it.
pub unsafe fn init_distributor(v: Version, gicd: usize, gicc_or_gicr: usize, gicr_size: usize) {
    VERSION.store(if v == Version::V3 { 3 } else { 2 }, Ordering::Relaxed);
    GICD.store(gicd, Ordering::Relaxed);
    match v {
        Version::V2 => GICC.store(gicc_or_gicr, Ordering::Relaxed),
        Version::V3 => {
            GICR.store(gicc_or_gicr, Ordering::Relaxed);
            GICR_SIZE.store(gicr_size, Ordering::Relaxed);
        }
    }
    wr32(gicd + GICD_CTLR, 0);
    if v == Version::V3 {
        v3_wait_rwp();
    }
    let lines = ((rd32(gicd + GICD_TYPER) & 0x1f) as usize + 1) * 32;
    for i in (32..lines).step_by(32) {
        if v == Version::V3 {
            wr32(gicd + GICD_IGROUPR + i / 8, !0);
        }
        wr32(gicd + GICD_ICENABLER + i / 8, !0);
        wr32(gicd + GICD_ICPENDR + i / 8, !0);
    }
    for i in 32..lines {
        wr8(gicd + GICD_IPRIORITYR + i, DEFAULT_PRIORITY);
    }
    match v {
        Version::V2 => wr32(gicd + GICD_CTLR, 1),
        Version::V3 => {
            wr32(gicd + GICD_CTLR, GICD_CTLR_V3_ENABLE);
            v3_wait_rwp();
        }
    }
}

/// Bring up this CPU's interface (and redistributor on v3).
///
/// # Safety
/// Called once per CPU after [`init_distributor`].
pub unsafe fn init_cpu(cpu: usize, mpidr: u64) {
    match version() {
        Version::V2 => {
            let d = GICD.load(Ordering::Relaxed);
            let c = GICC.load(Ordering::Relaxed);
            // ITARGETSR0 reads as this CPU's own interface mask (banked).
            let mask = rd32(d + GICD_ITARGETSR) & 0xff;
            CPU_ID[cpu].store(u64::from(mask), Ordering::Relaxed);
            wr32(d + GICD_ICENABLER, !0);
            for i in 0..32 {
                wr8(d + GICD_IPRIORITYR + i, DEFAULT_PRIORITY);
            }
            wr32(c + GICC_PMR, 0xff);
            wr32(c + GICC_BPR, 0);
            wr32(c + GICC_CTLR, GICC_CTLR_EN_EOIMODE);
        }
        Version::V3 => {
            let rd = find_redistributor(mpidr).unwrap_or(0);
            CPU_ID[cpu].store(rd as u64, Ordering::Relaxed);
            if rd != 0 {
                let w = rd32(rd + GICR_WAKER) & !GICR_WAKER_PROCESSOR_SLEEP;
                wr32(rd + GICR_WAKER, w);
                for _ in 0..1_000_000 {
                    if rd32(rd + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP == 0 {
                        break;
                    }
                }
                let sgi = rd + GICR_SGI_BASE;
                wr32(sgi + GICD_IGROUPR, !0);
                wr32(sgi + GICD_ICENABLER, !0);
                for i in 0..32 {
                    wr8(sgi + GICD_IPRIORITYR + i, DEFAULT_PRIORITY);
                }
            }
            // SAFETY: enabling the system-register CPU interface at EL2 and
            // for EL1 (SRE|Enable), then programming priority mask, binary
            // point, EOI mode 0 and Group 1 enable: the documented sequence.
            unsafe {
                asm!("mrs {t}, icc_sre_el2", "orr {t}, {t}, #0x1", "orr {t}, {t}, #0x8", "msr icc_sre_el2, {t}", "isb",
                    t = out(reg) _, options(nostack));
                asm!("msr icc_pmr_el1, {v}", v = in(reg) 0xffu64, options(nostack));
                // ICC_CTLR_EL1.EOImode (bit 1): split priority drop and deactivation.
                asm!("msr icc_bpr1_el1, xzr", "msr icc_ctlr_el1, {v}", v = in(reg) 2u64, options(nostack));
                asm!("msr icc_igrpen1_el1, {v}", "isb", v = in(reg) 1u64, options(nostack));
            }
        }
    }
}

fn find_redistributor(mpidr: u64) -> Option<usize> {
    let base = GICR.load(Ordering::Relaxed);
    let size = GICR_SIZE.load(Ordering::Relaxed);
    let aff = (mpidr & 0xff_ffff) | ((mpidr >> 32) & 0xff) << 24;
    let mut off = 0;
    while off + GICR_FRAME <= size {
        let typer = rd64(base + off + GICR_TYPER);
        if (typer >> 32) == aff {
            return Some(base + off);
        }
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
        off += GICR_FRAME;
    }
    None
}

/// Enable a private interrupt (SGI/PPI) on this CPU.
pub fn enable_private(cpu: usize, intid: u32) {
    let bit = 1u32 << (intid % 32);
    match version() {
        Version::V2 => wr32(GICD.load(Ordering::Relaxed) + GICD_ISENABLER, bit),
        Version::V3 => {
            let rd = CPU_ID[cpu].load(Ordering::Relaxed) as usize;
            if rd != 0 {
                wr32(rd + GICR_SGI_BASE + GICD_ISENABLER, bit);
            }
        }
    }
}

/// Acknowledge the highest-priority pending interrupt, if any.
pub fn ack() -> Option<u32> {
    let id = match version() {
        Version::V2 => rd32(GICC.load(Ordering::Relaxed) + GICC_IAR) & 0x3ff,
        Version::V3 => {
            let v: u64;
            // SAFETY: reading IAR1 acknowledges an interrupt; the caller EOIs it.
            unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) v, options(nostack)) };
            (v & 0xff_ffff) as u32
        }
    };
    if id >= SPURIOUS { None } else { Some(id) }
}

/// Priority drop only (EOImode 1): the interrupt stays active until
/// [`deactivate`] or a guest's EOI of a hardware-mapped virtual interrupt.
pub fn priority_drop(intid: u32) {
    match version() {
        Version::V2 => wr32(GICC.load(Ordering::Relaxed) + GICC_EOIR, intid),
        Version::V3 => {
            // SAFETY: EOI of an interrupt acknowledged by ack().
            unsafe {
                asm!("msr icc_eoir1_el1, {}", "isb", in(reg) u64::from(intid), options(nostack))
            };
        }
    }
}

/// Deactivate an interrupt (EOImode 1).
pub fn deactivate(intid: u32) {
    match version() {
        Version::V2 => wr32(GICC.load(Ordering::Relaxed) + GICC_DIR, intid),
        Version::V3 => {
            // SAFETY: deactivating an interrupt this CPU acknowledged.
            unsafe {
                asm!("msr icc_dir_el1, {}", "isb", in(reg) u64::from(intid), options(nostack))
            };
        }
    }
}

/// Finish an interrupt the hypervisor consumed: drop and deactivate.
pub fn eoi(intid: u32) {
    priority_drop(intid);
    deactivate(intid);
}

/// Number of interrupt lines (SGIs + PPIs + SPIs) the distributor has.
pub fn nr_lines() -> u32 {
    ((rd32(GICD.load(Ordering::Relaxed) + GICD_TYPER) & 0x1f) + 1) * 32
}

/// Route SPI `intid` to physical CPU `cpu` (MPIDR `mpidr`) and enable it.
pub fn route_and_enable_spi(intid: u32, cpu: usize, mpidr: u64) {
    let d = GICD.load(Ordering::Relaxed);
    let i = intid as usize;
    match version() {
        Version::V2 => {
            let mask = CPU_ID[cpu].load(Ordering::Relaxed) as u8;
            wr8(d + GICD_ITARGETSR + i, if mask == 0 { 1 } else { mask });
        }
        Version::V3 => {
            let aff = (mpidr & 0xff_ffff) | (((mpidr >> 32) & 0xff) << 32);
            // SAFETY: as in rd32; IROUTER<n> is a 64-bit register.
            unsafe { write_volatile((d + GICD_IROUTER + 8 * i) as *mut u64, aff) };
        }
    }
    wr32(d + GICD_ISENABLER + (i / 32) * 4, 1 << (i % 32));
}

/// Disable SPI `intid`.
pub fn disable_spi(intid: u32) {
    let i = intid as usize;
    wr32(
        GICD.load(Ordering::Relaxed) + GICD_ICENABLER + (i / 32) * 4,
        1 << (i % 32),
    );
}

/// Send SGI `sgi` to physical CPU `cpu` (whose MPIDR is `mpidr`).
pub fn send_sgi(cpu: usize, mpidr: u64, sgi: u32) {
    match version() {
        Version::V2 => {
            let mask = CPU_ID[cpu].load(Ordering::Relaxed) as u32;
            wr32(
                GICD.load(Ordering::Relaxed) + GICD_SGIR,
                (mask << 16) | (sgi & 0xf),
            );
        }
        Version::V3 => {
            // ICC_SGI1R_EL1: Aff3 [55:48], Aff2 [39:32], INTID [27:24], Aff1 [23:16], TargetList [15:0].
            let aff0 = mpidr & 0xf;
            let v = (((mpidr >> 32) & 0xff) << 48)
                | (((mpidr >> 16) & 0xff) << 32)
                | (u64::from(sgi & 0xf) << 24)
                | (((mpidr >> 8) & 0xff) << 16)
                | (1 << aff0);
            sysreg::dsb_ish();
            // SAFETY: generating an SGI has no effect beyond the interrupt.
            unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nostack)) };
        }
    }
}
