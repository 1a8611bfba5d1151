//! The thin architecture layer: everything that touches assembly, system
//! registers or MMIO lives below this module. The rest of the hypervisor
//! calls these functions and never writes `asm!` itself.

pub mod bcm2835_aux_uart;
pub mod bcm2835_pm;
pub mod context;
pub mod cpuid;
pub mod gic;
pub mod gich;
pub mod head;
pub mod mem;
pub mod mmu;
pub mod pl011;
pub mod smc;
pub mod spintable;
pub mod sysreg;
pub mod timer;

use core::arch::asm;

use aarch64_cpu::registers::{CPTR_EL2, HCR_EL2};
use tock_registers::LocalRegisterCopy;

/// HCR_EL2 while a guest runs: stage 2 on; physical IRQ/FIQ/SError routed
/// to EL2; WFI, SMC, set/way cache maintenance, ACTLR, implementation
/// defined registers and the ID registers (TID3: guests read
/// `oxen_trap::idreg`'s sanitised values, as on Xen) trapped; TLB/cache
/// maintenance broadcast; EL1 is AArch64 (Arm ARM D23.2.48). API/APK stay
/// clear: pointer authentication is hidden from guests and trapped.
pub fn guest_hcr() -> u64 {
    let mut h: LocalRegisterCopy<u64, HCR_EL2::Register> = LocalRegisterCopy::new(0);
    h.write(
        HCR_EL2::VM::Enable
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FMO::EnableVirtualFIQ
            + HCR_EL2::IMO::EnableVirtualIRQ
            + HCR_EL2::AMO::SET
            + HCR_EL2::FB::SET
            + HCR_EL2::BSU::InnerShareable
            + HCR_EL2::TWI::SET
            + HCR_EL2::TSC::SET
            + HCR_EL2::TSW::SET
            + HCR_EL2::TACR::SET
            + HCR_EL2::TIDCP::SET
            + HCR_EL2::TID3::SET
            + HCR_EL2::RW::EL1IsAarch64,
    );
    h.get()
}

/// Make this CPU's guest WFI trap to EL2 or not (`HCR_EL2.TWI`), from the
/// next guest entry on; the rest of HCR_EL2 stays [`guest_hcr`].
pub fn set_wfi_trap(trap: bool) {
    let mut h: LocalRegisterCopy<u64, HCR_EL2::Register> = LocalRegisterCopy::new(guest_hcr());
    if !trap {
        h.modify(HCR_EL2::TWI::CLEAR);
    }
    // SAFETY: only the WFI trap changes; the exception return into the
    // guest synchronises the write.
    unsafe { sysreg::set_hcr_el2(h.get()) };
}

// CPTR_EL2 fields (non-VHE layout, Arm ARM "CPTR_EL2, Architectural
// Feature Trap Register (EL2)"); `aarch64-cpu` only names TAM.
/// `CPTR_EL2.TTA`, bit 20: trap system register accesses to trace registers.
const CPTR_TTA: u64 = 1 << 20;
/// `CPTR_EL2.TSM`, bit 12: trap SME (RES1 without FEAT_SME).
const CPTR_TSM: u64 = 1 << 12;
/// `CPTR_EL2.TZ`, bit 8: trap SVE (RES1 without FEAT_SVE).
const CPTR_TZ: u64 = 1 << 8;
/// RES1 bits 13, 9 and 7:0.
const CPTR_RES1: u64 = (1 << 13) | (1 << 9) | 0xff;

/// CPTR_EL2 while guests run, as on Xen: FP/SIMD belongs to the guest (oxen
/// is soft-float: TFP, bit 10, clear); SVE (TZ) and SME (TSM) trapped — guests do
/// not see them in the ID registers and get an UNDEFINED exception if they
/// try —, and trace (TTA) and, where the CPU has them, the activity
/// monitors (TAM) too.
fn guest_cptr() -> u64 {
    let mut c: LocalRegisterCopy<u64, CPTR_EL2::Register> =
        LocalRegisterCopy::new(CPTR_RES1 | CPTR_TZ | CPTR_TSM | CPTR_TTA);
    if cpuid::has_amu() {
        c.modify(CPTR_EL2::TAM::SET);
    }
    c.get()
}

/// Per-CPU EL2 configuration for running guests.
///
/// # Safety
/// Called once per CPU during bring-up, before the first guest entry.
pub unsafe fn init_cpu_for_guests(vtcr: u64) {
    // SAFETY: configures this CPU's guest traps and stage-2 format; no
    // guest is running yet.
    unsafe {
        sysreg::set_hcr_el2(guest_hcr());
        sysreg::set_cptr_el2(guest_cptr());
        sysreg::set_vtcr_el2(vtcr);
        sysreg::set_vpidr_el2(sysreg::midr_el1());
    }
    sysreg::isb();
    timer::init_cpu();
}

/// Load a domain's stage-2 translation (VTTBR_EL2 = VMID | root).
///
/// # Safety
/// `vttbr` holds a valid stage-2 root for the domain about to run.
pub unsafe fn load_stage2(vttbr: u64) {
    // SAFETY: per this function's contract.
    unsafe { sysreg::set_vttbr_el2(vttbr) };
    sysreg::isb();
}

/// Drop every TLB entry of the VMID in `vttbr` on all CPUs, then restore
/// the previously loaded VTTBR_EL2.
pub fn flush_guest_tlb(vttbr: u64) {
    let old = sysreg::vttbr_el2();
    // SAFETY: temporarily selects the VMID to flush; the previous value is
    // put back before any guest runs again on this CPU.
    unsafe {
        sysreg::set_vttbr_el2(vttbr);
        sysreg::isb();
        sysreg::tlbi_vmalls12e1is();
        sysreg::set_vttbr_el2(old);
    }
    sysreg::isb();
}

/// Copy `len` bytes between identity-mapped physical addresses.
///
/// # Safety
/// Both ranges are RAM owned by the caller's purpose (a domain being built,
/// a guest buffer validated by `guest_mem`), mapped Normal in the EL2 map,
/// and do not overlap.
pub unsafe fn copy_phys(dst: u64, src: u64, len: usize) {
    // SAFETY: per this function's contract.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) };
}

/// Copy `len` bytes between identity-mapped physical addresses whose
/// alignments differ: 16 bytes per load/store pair, the destination aligned
/// and the source read unaligned (allowed on Normal memory: SCTLR_EL2.A is
/// clear). The generic copy would move single bytes, as the target is built
/// for strict alignment.
///
/// # Safety
/// As for [`copy_phys`].
pub unsafe fn copy_phys_unaligned(dst: u64, src: u64, len: usize) {
    let head = ((16 - (dst & 15)) & 15).min(len as u64) as usize;
    // SAFETY: per this function's contract; the pieces tile the ranges.
    unsafe {
        core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, head);
        let (mut d, mut s) = (dst + head as u64, src + head as u64);
        let end = d + ((len - head) as u64 & !15);
        while d < end {
            core::arch::asm!(
                "ldp {a}, {b}, [{s}]",
                "stp {a}, {b}, [{d}]",
                s = in(reg) s,
                d = in(reg) d,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack, preserves_flags),
            );
            d += 16;
            s += 16;
        }
        let tail = (dst + len as u64 - d) as usize;
        core::ptr::copy_nonoverlapping(s as *const u8, d as *mut u8, tail);
    }
}

/// Fill `len` bytes at identity-mapped physical address `dst` with zero.
///
/// # Safety
/// As for [`copy_phys`].
pub unsafe fn zero_phys(dst: u64, len: usize) {
    // Whole blocks with DC ZVA (one instruction per block, typically 64
    // bytes: what makes populating a DomU's RAM cheap), the ragged ends with
    // ordinary stores.
    let block = dc_zva_block();
    let start = dst.next_multiple_of(block as u64);
    let end = (dst + len as u64) & !(block as u64 - 1);
    if block == 0 || end <= start {
        // SAFETY: per this function's contract.
        unsafe { core::ptr::write_bytes(dst as *mut u8, 0, len) };
        return;
    }
    // SAFETY: per this function's contract; the three pieces tile the range.
    unsafe {
        core::ptr::write_bytes(dst as *mut u8, 0, (start - dst) as usize);
        let mut a = start;
        while a < end {
            dc_zva(a);
            a += block as u64;
        }
        core::ptr::write_bytes(end as *mut u8, 0, (dst + len as u64 - end) as usize);
    }
}

/// Bytes `DC ZVA` zeroes (DCZID_EL0.BS, in words, log2), or 0 when the
/// instruction is prohibited (DCZID_EL0.DZP).
fn dc_zva_block() -> usize {
    let id = sysreg::dczid_el0();
    if id & (1 << 4) != 0 {
        0
    } else {
        4 << (id & 0xf)
    }
}

/// Zero the `DC ZVA` block at `va`.
///
/// # Safety
/// `va` is block-aligned, identity-mapped Normal memory the caller may
/// overwrite.
#[inline(always)]
unsafe fn dc_zva(va: u64) {
    // SAFETY: per this function's contract.
    unsafe { core::arch::asm!("dc zva, {}", in(reg) va, options(nostack, preserves_flags)) };
}

/// Clean and invalidate the data cache to the point of coherency over the
/// identity-mapped physical range `[pa, pa+len)`, so that a guest running
/// with its caches off sees what the hypervisor or Dom0 wrote through
/// cacheable mappings (Xen's `flush_page_to_ram`).
///
/// # Safety
/// The range is mapped in the EL2 map (host RAM).
pub unsafe fn clean_inval_dcache(pa: u64, len: u64) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    // CTR_EL0.DminLine: log2 of the smallest data cache line in words.
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut a = pa & !(line - 1);
    while a < pa.saturating_add(len) {
        // SAFETY: per this function's contract the line is mapped; cleaning
        // and invalidating it does not change memory contents.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    sysreg::dsb_sy();
}

/// Invalidate every instruction cache to the point of unification on all
/// CPUs (after guest code was written through the data side).
pub fn icache_inval_all() {
    // SAFETY: invalidating instruction caches only costs refetches.
    unsafe { asm!("ic ialluis", options(nostack, preserves_flags)) };
    sysreg::dsb_ish();
    sysreg::isb();
}

/// A mutable view of an identity-mapped physical page (translation tables).
///
/// # Safety
/// `pa` is a page the caller owns exclusively (a table page it allocated).
pub unsafe fn phys_page_mut<'a>(pa: u64) -> &'a mut [u64; 512] {
    // SAFETY: per this function's contract; pages are 4 KiB-aligned.
    unsafe { &mut *(pa as *mut [u64; 512]) }
}

/// This CPU's MPIDR affinity value (Aff3..Aff0).
pub fn mpidr() -> u64 {
    sysreg::mpidr_el1() & 0xff_00ff_ffff
}
