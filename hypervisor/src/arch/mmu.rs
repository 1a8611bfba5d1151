//! The hypervisor's own EL2 stage-1 translation: an identity map, W^X.
//!
//! Built by the boot CPU with the MMU still off (so: no locks, no heap, only
//! aligned accesses — the softfloat target is strict-align), from the RAM
//! ranges of the host device tree. Each 1 GiB of the 39-bit address space is
//! one level-1 block: Normal write-back where it is RAM, Device-nGnRnE
//! otherwise; a gigabyte that is only partly RAM (the Raspberry Pi 4's last
//! one holds the peripherals) is split into 2 MiB level-2 blocks, and the
//! 2 MiB holding the hypervisor's code into 4 KiB pages: code is read-only
//! and executable, read-only data read-only, everything else (data, stacks,
//! heap, all other RAM, devices) never executable. All CPUs share the
//! tables. Guest memory is reached through this same map.

use core::arch::asm;

use aarch64_cpu::registers::{MAIR_EL2, SCTLR_EL2, TCR_EL2};
use oxen_mm::el2;
use oxen_types::PhysAddr;
use tock_registers::LocalRegisterCopy;
use tock_registers::interfaces::{ReadWriteable, Writeable};

use super::sysreg;

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
/// MAIR index of Device-nGnRnE memory.
const ATTR_DEVICE: u8 = 0;
/// MAIR index of Normal inner/outer write-back memory.
const ATTR_NORMAL: u8 = 1;
const L2_POOL: usize = 8;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut L1: Table = Table([0; 512]);
static mut L2: [Table; L2_POOL] = [const { Table([0; 512]) }; L2_POOL];
/// Level-3 tables for the 2 MiB blocks holding the hypervisor's code.
const L3_POOL: usize = 2;
static mut L3: [Table; L3_POOL] = [const { Table([0; 512]) }; L3_POOL];

/// Register values every CPU loads to turn its MMU on (written by the boot
/// CPU, cleaned to the point of coherency for the secondaries).
#[repr(C, align(64))]
struct MmuRegs {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
}
static mut MMU_REGS: MmuRegs = MmuRegs {
    mair: 0,
    tcr: 0,
    ttbr0: 0,
};

/// How a 2 MiB or 1 GiB span relates to RAM.
fn ram_overlap(ram: &[(u64, u64)], start: u64, size: u64) -> (bool, bool) {
    let end = start + size;
    let mut covered = 0u64;
    let mut any = false;
    for &(b, s) in ram {
        let e = b.saturating_add(s);
        let lo = b.max(start);
        let hi = e.min(end);
        if lo < hi {
            any = true;
            covered += hi - lo;
        }
    }
    (any, covered == size)
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
}

/// The hypervisor's own code and read-only data: `[start, text_end)` is
/// executable and read-only, `[text_end, rodata_end)` read-only; everything
/// else at EL2 is never executable (W^X).
#[derive(Clone, Copy)]
struct ImageLayout {
    start: u64,
    text_end: u64,
    rodata_end: u64,
}

impl ImageLayout {
    fn here() -> Self {
        Self {
            start: (&raw const __image_start) as u64,
            text_end: (&raw const __text_end) as u64,
            rodata_end: (&raw const __rodata_end) as u64,
        }
    }

    /// Whether `[base, base+size)` holds any code or read-only data.
    fn overlaps(&self, base: u64, size: u64) -> bool {
        base < self.rodata_end && self.start < base + size
    }

    /// Descriptor bits for the 4 KiB page at `pa` (RAM).
    fn page(&self, pa: u64) -> u64 {
        let (writable, exec) = if pa >= self.start && pa < self.text_end {
            (false, true)
        } else if pa >= self.text_end && pa < self.rodata_end {
            (false, false)
        } else {
            (true, false)
        };
        el2::page_desc(PhysAddr(pa), ATTR_NORMAL, writable, exec)
    }
}

/// Build the identity map for the given RAM ranges `(base, size)`.
///
/// # Safety
/// Boot CPU only, MMU off, before any other CPU runs.
pub unsafe fn build_tables(ram: &[(u64, u64)]) {
    let l1 = &raw mut L1;
    let l2 = &raw mut L2;
    let l3 = &raw mut L3;
    let img = ImageLayout::here();
    let mut next_l2 = 0usize;
    let mut next_l3 = 0usize;
    for i in 0..512u64 {
        let base = i * GIB;
        let (any, full) = ram_overlap(ram, base, GIB);
        let split = any && (!full || img.overlaps(base, GIB)) && next_l2 < L2_POOL;
        let desc = if !any {
            el2::block_desc(PhysAddr(base), ATTR_DEVICE, true, false)
        } else if !split {
            el2::block_desc(PhysAddr(base), ATTR_NORMAL, true, false)
        } else {
            // SAFETY: boot CPU, single-threaded; the pool index is in range.
            let t = unsafe { &mut (*l2)[next_l2].0 };
            next_l2 += 1;
            for (j, e) in t.iter_mut().enumerate() {
                let b = base + j as u64 * MIB2;
                let (any2, _) = ram_overlap(ram, b, MIB2);
                *e = if !any2 {
                    el2::block_desc(PhysAddr(b), ATTR_DEVICE, true, false)
                } else if img.overlaps(b, MIB2) && next_l3 < L3_POOL {
                    // SAFETY: boot CPU, single-threaded; the pool index is in range.
                    let p = unsafe { &mut (*l3)[next_l3].0 };
                    next_l3 += 1;
                    for (k, pe) in p.iter_mut().enumerate() {
                        *pe = img.page(b + k as u64 * 4096);
                    }
                    el2::table_desc(PhysAddr(p.as_ptr() as u64))
                } else if img.overlaps(b, MIB2) {
                    // No page table left: keep the code executable.
                    el2::block_desc(PhysAddr(b), ATTR_NORMAL, true, true)
                } else {
                    el2::block_desc(PhysAddr(b), ATTR_NORMAL, true, false)
                };
            }
            el2::table_desc(PhysAddr(t.as_ptr() as u64))
        };
        // SAFETY: boot CPU, single-threaded; i < 512.
        unsafe { (*l1).0[i as usize] = desc };
    }

    let mair: LocalRegisterCopy<u64, MAIR_EL2::Register> = LocalRegisterCopy::new(0);
    let mut mair = mair;
    mair.write(
        MAIR_EL2::Attr0_Device::nonGathering_nonReordering_noEarlyWriteAck
            + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
    );
    let parange = sysreg::id_aa64mmfr0_el1() & 0xf;
    let mut tcr: LocalRegisterCopy<u64, TCR_EL2::Register> = LocalRegisterCopy::new(0);
    tcr.write(
        TCR_EL2::T0SZ.val(25)
            + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::SH0::Inner
            + TCR_EL2::TG0::KiB_4
            + TCR_EL2::PS.val(parange.min(5)),
    );
    // RES1 bits 31 and 23 of TCR_EL2 (Arm ARM D23.2, non-VHE layout).
    let tcr = tcr.get() | (1 << 31) | (1 << 23);
    let regs = &raw mut MMU_REGS;
    // SAFETY: boot CPU, single-threaded.
    unsafe {
        (*regs).mair = mair.get();
        (*regs).tcr = tcr;
        (*regs).ttbr0 = l1 as u64;
    }
}

/// Check with the hardware walker (`AT S1E2W`) that the hypervisor's code
/// is not writable and its data is: returns `(code_writable, data_writable)`.
pub fn check_wx() -> (bool, bool) {
    let img = ImageLayout::here();
    let probe = |va: u64| {
        let par: u64;
        // SAFETY: AT only writes PAR_EL1, which holds no guest state at this
        // point of boot (no guest has run yet).
        unsafe {
            asm!("at s1e2w, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va, par = out(reg) par,
                options(nostack, preserves_flags));
        }
        par & 1 == 0
    };
    (probe(img.start), probe(img.rodata_end))
}

/// Turn on this CPU's MMU and caches with the shared tables.
///
/// # Safety
/// [`build_tables`] has run; the caller runs from identity-mapped memory.
pub unsafe fn enable() {
    let regs = &raw const MMU_REGS;
    // SAFETY: MMU_REGS was written before any CPU calls this and is never
    // written again.
    let (mair, tcr, ttbr0) = unsafe { ((*regs).mair, (*regs).tcr, (*regs).ttbr0) };
    MAIR_EL2.set(mair);
    TCR_EL2.set(tcr);
    // SAFETY: installs the identity map built by build_tables; the code
    // executing now is identity-mapped, so translation changes nothing for it.
    unsafe {
        asm!("msr ttbr0_el2, {}", "isb", "tlbi alle2", "ic iallu", "dsb ish", "isb", in(reg) ttbr0,
            options(nostack, preserves_flags));
    }
    SCTLR_EL2.modify(
        SCTLR_EL2::M::Enable
            + SCTLR_EL2::C::Cacheable
            + SCTLR_EL2::I::Cacheable
            + SCTLR_EL2::SA::Enable
            // Unaligned accesses to Normal memory allowed (copy_phys_unaligned).
            + SCTLR_EL2::A::Disable,
    );
    sysreg::isb();
}

/// Clean the MMU configuration and tables to the point of coherency so that
/// secondary CPUs, which read them with their MMU off, see them.
pub fn publish_for_secondaries() {
    clean_dcache_range(
        (&raw const MMU_REGS) as u64,
        core::mem::size_of::<MmuRegs>() as u64,
    );
    clean_dcache_range((&raw const L1) as u64, 4096);
    clean_dcache_range((&raw const L2) as u64, 4096 * L2_POOL as u64);
    clean_dcache_range((&raw const L3) as u64, 4096 * L3_POOL as u64);
}

/// Clean and invalidate the data cache lines covering `[start, start+len)`
/// to PoC (for memory another CPU first reads or writes with its MMU off).
pub fn clean_inval_dcache_range(start: u64, len: u64) {
    let line = 64u64;
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: cache maintenance by VA on identity-mapped memory; a clean
        // and invalidate writes dirty data back first, so no value changes.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    sysreg::dsb_sy();
}

/// Clean (write back) data cache lines covering `[start, start+len)` to PoC.
pub fn clean_dcache_range(start: u64, len: u64) {
    let line = 64u64;
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: cache maintenance by VA on identity-mapped memory has no
        // architectural effect on data values.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    sysreg::dsb_sy();
}
