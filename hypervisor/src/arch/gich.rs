//! The GIC virtual CPU interface control registers, GICv2 (memory-mapped
//! GICH, IHI 0048B §5.3) and GICv3 (ICH_*_EL2 system registers, IHI 0069
//! §12.4): list registers, the virtual interface control and state that is
//! switched with each vCPU.

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::gic::{self, Version};
use super::head::MAX_CPUS;

const GICH_HCR: usize = 0x00;
const GICH_VTR: usize = 0x04;
const GICH_VMCR: usize = 0x08;
const GICH_APR: usize = 0xf0;
const GICH_LR0: usize = 0x100;
/// GICH_HCR / ICH_HCR_EL2.En: virtual CPU interface enabled.
pub const HCR_EN: u64 = 1 << 0;
/// GICH_HCR / ICH_HCR_EL2.UIE: maintenance interrupt when at most one LR is valid.
pub const HCR_UIE: u64 = 1 << 1;
/// Most list registers oxen uses (GICv3 allows 16, GICv2 64; the Arm
/// cores' CPU interfaces and the GIC-400 implement 4): the per-exit LR
/// arrays are this long.
pub const MAX_LRS: usize = 8;

static GICH: AtomicUsize = AtomicUsize::new(0);

/// Record the GICv2 GICH base (identity-mapped).
pub fn set_gich_base(base: usize) {
    GICH.store(base, Ordering::Relaxed);
}

fn gich_rd(off: usize) -> u32 {
    // SAFETY: GICH is the hypervisor-owned virtual interface control block
    // named by the device tree (GICv2 only), identity-mapped as Device.
    unsafe { read_volatile((GICH.load(Ordering::Relaxed) + off) as *const u32) }
}
fn gich_wr(off: usize, v: u32) {
    // SAFETY: as in gich_rd.
    unsafe { write_volatile((GICH.load(Ordering::Relaxed) + off) as *mut u32, v) }
}

macro_rules! ich_lr {
    ($n:expr, $v:ident, $dir:ident) => {
        match $n {
            0 => ich_lr!(@ $dir, "ich_lr0_el2", $v),
            1 => ich_lr!(@ $dir, "ich_lr1_el2", $v),
            2 => ich_lr!(@ $dir, "ich_lr2_el2", $v),
            3 => ich_lr!(@ $dir, "ich_lr3_el2", $v),
            4 => ich_lr!(@ $dir, "ich_lr4_el2", $v),
            5 => ich_lr!(@ $dir, "ich_lr5_el2", $v),
            6 => ich_lr!(@ $dir, "ich_lr6_el2", $v),
            7 => ich_lr!(@ $dir, "ich_lr7_el2", $v),
            8 => ich_lr!(@ $dir, "ich_lr8_el2", $v),
            9 => ich_lr!(@ $dir, "ich_lr9_el2", $v),
            10 => ich_lr!(@ $dir, "ich_lr10_el2", $v),
            11 => ich_lr!(@ $dir, "ich_lr11_el2", $v),
            12 => ich_lr!(@ $dir, "ich_lr12_el2", $v),
            13 => ich_lr!(@ $dir, "ich_lr13_el2", $v),
            14 => ich_lr!(@ $dir, "ich_lr14_el2", $v),
            _ => ich_lr!(@ $dir, "ich_lr15_el2", $v),
        }
    };
    (@ read, $name:literal, $v:ident) => {
        // SAFETY: reading a list register of this CPU's virtual interface.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) $v, options(nomem, nostack)) }
    };
    (@ write, $name:literal, $v:ident) => {
        // SAFETY: list registers only affect the vCPU loaded on this CPU,
        // which is the one whose state is being written.
        unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) $v, options(nomem, nostack)) }
    };
}

/// Per CPU: its number of list registers, once read (0: not yet).
static NR_LRS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Number of list registers `cpu` (this CPU) implements, up to [`MAX_LRS`]
/// (read from the hardware once).
pub fn nr_lrs(cpu: usize) -> usize {
    let Some(slot) = NR_LRS.get(cpu) else {
        return read_nr_lrs();
    };
    match slot.load(Ordering::Relaxed) {
        0 => {
            let n = read_nr_lrs();
            slot.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

fn read_nr_lrs() -> usize {
    let n = match gic::version() {
        Version::V2 => (gich_rd(GICH_VTR) & 0x3f) as usize + 1,
        Version::V3 => {
            let v: u64;
            // SAFETY: reading ICH_VTR_EL2 (ListRegs in bits [4:0]).
            unsafe { asm!("mrs {}, ich_vtr_el2", out(reg) v, options(nomem, nostack)) };
            (v & 0x1f) as usize + 1
        }
    };
    n.min(MAX_LRS)
}

/// Read list register `n` (GICv2 values are zero-extended).
pub fn read_lr(n: usize) -> u64 {
    match gic::version() {
        Version::V2 => u64::from(gich_rd(GICH_LR0 + 4 * n)),
        Version::V3 => {
            let v: u64;
            ich_lr!(n, v, read);
            v
        }
    }
}

/// Write list register `n`.
pub fn write_lr(n: usize, v: u64) {
    match gic::version() {
        Version::V2 => gich_wr(GICH_LR0 + 4 * n, v as u32),
        Version::V3 => ich_lr!(n, v, write),
    }
}

/// Write the virtual interface control register (GICH_HCR / ICH_HCR_EL2).
pub fn write_hcr(v: u64) {
    match gic::version() {
        Version::V2 => gich_wr(GICH_HCR, v as u32),
        Version::V3 => {
            // SAFETY: controls this CPU's virtual interface only.
            unsafe { asm!("msr ich_hcr_el2, {}", "isb", in(reg) v, options(nomem, nostack)) }
        }
    }
}

/// The per-vCPU virtual interface state switched with the vCPU.
#[derive(Clone, Copy, Default, Debug)]
pub struct VifState {
    /// GICH_VMCR / ICH_VMCR_EL2 (the guest's PMR, BPR, group enables).
    pub vmcr: u64,
    /// Active priorities (GICH_APR / ICH_AP1R0_EL2).
    pub apr: u64,
    /// ICH_AP0R0_EL2 (v3 only).
    pub ap0r: u64,
}

impl VifState {
    /// Capture this CPU's virtual interface state.
    pub fn save(&mut self) {
        match gic::version() {
            Version::V2 => {
                self.vmcr = u64::from(gich_rd(GICH_VMCR));
                self.apr = u64::from(gich_rd(GICH_APR));
            }
            Version::V3 => {
                // SAFETY: reading this CPU's virtual interface registers.
                unsafe {
                    asm!("mrs {}, ich_vmcr_el2", out(reg) self.vmcr, options(nomem, nostack));
                    asm!("mrs {}, ich_ap1r0_el2", out(reg) self.apr, options(nomem, nostack));
                    asm!("mrs {}, ich_ap0r0_el2", out(reg) self.ap0r, options(nomem, nostack));
                }
            }
        }
    }

    /// Load this state into the virtual interface.
    pub fn restore(&self) {
        match gic::version() {
            Version::V2 => {
                gich_wr(GICH_VMCR, self.vmcr as u32);
                gich_wr(GICH_APR, self.apr as u32);
            }
            Version::V3 => {
                // SAFETY: the vCPU owning this state is being loaded.
                unsafe {
                    asm!("msr ich_vmcr_el2, {}", in(reg) self.vmcr, options(nomem, nostack));
                    asm!("msr ich_ap1r0_el2, {}", in(reg) self.apr, options(nomem, nostack));
                    asm!("msr ich_ap0r0_el2, {}", in(reg) self.ap0r, options(nomem, nostack));
                }
            }
        }
    }
}

/// ICC_SRE_EL1 for guests on GICv3: system-register interface enabled.
pub fn set_guest_sre() {
    if gic::version() == Version::V3 {
        // SAFETY: ICC_SRE_EL1.SRE=1 selects the system-register interface for
        // EL1 (the only one oxen offers); it affects only EL1 accesses.
        unsafe { asm!("msr icc_sre_el1, {}", "isb", in(reg) 1u64, options(nomem, nostack)) };
    }
}
