//! The hypervisor's own EL2 stage-1 translation: an identity map.
//!
//! Built by the boot CPU with the MMU still off (so: no locks, no heap, only
//! aligned accesses — the softfloat target is strict-align), from the RAM
//! ranges of the host device tree. Each 1 GiB of the 39-bit address space is
//! one level-1 block: Normal write-back where it is RAM, Device-nGnRnE
//! otherwise; a gigabyte that is only partly RAM (the Raspberry Pi 4's last
//! one holds the peripherals) is split into 2 MiB level-2 blocks. All CPUs
//! share the tables. Guest memory is reached through this same map.

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

/// Build the identity map for the given RAM ranges `(base, size)`.
///
/// # Safety
/// Boot CPU only, MMU off, before any other CPU runs.
pub unsafe fn build_tables(ram: &[(u64, u64)]) {
    let l1 = &raw mut L1;
    let l2 = &raw mut L2;
    let mut next_l2 = 0usize;
    for i in 0..512u64 {
        let base = i * GIB;
        let (any, full) = ram_overlap(ram, base, GIB);
        let desc = if !any {
            el2::block_desc(PhysAddr(base), ATTR_DEVICE, true, false)
        } else if full || next_l2 == L2_POOL {
            el2::block_desc(PhysAddr(base), ATTR_NORMAL, true, true)
        } else {
            // SAFETY: boot CPU, single-threaded; the pool index is in range.
            let t = unsafe { &mut (*l2)[next_l2].0 };
            next_l2 += 1;
            for (j, e) in t.iter_mut().enumerate() {
                let b = base + j as u64 * MIB2;
                let (any2, _) = ram_overlap(ram, b, MIB2);
                *e = if any2 {
                    el2::block_desc(PhysAddr(b), ATTR_NORMAL, true, true)
                } else {
                    el2::block_desc(PhysAddr(b), ATTR_DEVICE, true, false)
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
        asm!("msr ttbr0_el2, {}", "isb", "tlbi alle2", "dsb ish", "isb", in(reg) ttbr0,
            options(nostack, preserves_flags));
    }
    SCTLR_EL2.modify(
        SCTLR_EL2::M::Enable
            + SCTLR_EL2::C::Cacheable
            + SCTLR_EL2::I::Cacheable
            + SCTLR_EL2::SA::Enable,
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
