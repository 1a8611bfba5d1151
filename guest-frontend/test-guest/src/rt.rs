//! Bare-metal runtime of the test guest: arm64 `Image` header, entry code,
//! self-relocation, exception vectors, panic handler, and the few register
//! and raw-memory accesses the scenarios need. The only module with asm.
//!
//! Boot contract (Linux arm64 boot protocol, as oxen and QEMU provide it):
//! entered at offset 0 of the image at EL1h, MMU and D-cache off, DAIF
//! masked, x0 = IPA of the DTB. The image is linked at 0 as a static PIE;
//! the entry code adds its run-time address to every `R_AARCH64_RELATIVE`
//! entry of `.rela.dyn` before any Rust code runs, so it runs wherever it is
//! loaded (a 1:1 Dom0 sits at host RAM base + text_offset).
//!
//! The MMU stays off: all data accesses are Device-nGnRnE, so unaligned
//! accesses fault (the target is strict-align, so Rust never emits them)
//! and exclusives are avoided (no atomics RMW, no locks). VA == IPA, which
//! is what hypercall pointer arguments must be.
//!
//! Image header: text_offset 0x8_0000 (the value design.md assumes for
//! kernels without a header, and what QEMU honours for `-kernel`), flags =
//! little endian, 4 KiB pages, "may be placed anywhere" (bit 3), and
//! image_size = file + .bss + stack (`__image_size` from the linker script).
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xen_guest::{Console, Hvc, ShutdownReason};

/// `R_AARCH64_RELATIVE` (ELF for the Arm 64-bit Architecture, table 4-18).
const R_AARCH64_RELATIVE: u64 = 1027;
/// `CPACR_EL1.FPEN = 0b11`: no FP/SIMD traps (the compiler uses NEON).
const CPACR_FPEN: u64 = 3 << 20;

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       0f                      // code0: branch to the entry code
    .long   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size, incl. .bss and stack
    .quad   0xa                     // flags: LE, 4K pages, anywhere in RAM
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5 (no PE header)

0:  msr     daifset, #0xf
    mov     x19, x0                 // x19 = DTB IPA, kept for rust_main
    adr     x20, _start             // x20 = load address = relocation bias

    // Apply .rela.dyn: *(bias + r_offset) = bias + r_addend.
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    3f
    ldp     x3, x4, [x1], #16       // r_offset, r_info
    ldr     x5, [x1], #8            // r_addend
    cmp     x4, #{r_relative}       // type RELATIVE, symbol 0
    b.ne    2f
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
2:  wfe                             // unsupported relocation: cannot run
    b       2b

    // Zero .bss (16-byte aligned at both ends by the linker script).
3:  adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
4:  cmp     x1, x2
    b.hs    5f
    stp     xzr, xzr, [x1], #16
    b       4b

5:  adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    mov     x1, #{cpacr}
    msr     cpacr_el1, x1
    adrp    x1, __vectors
    add     x1, x1, :lo12:__vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      {main}
    b       2b

    // EL1 exception vectors: 16 entries of 0x80 bytes. Every exception is
    // fatal (x0 = entry index, and the handler runs on a fresh stack),
    // except an UNDEFINED instruction (EC 0) at EL1h while `UNDEF_ARMED`
    // is set (see `try_insn`) and an IRQ at EL1h while `IRQ_ARMED` is set
    // (see `wait_irq`).
    .section .text.vectors, "ax"
    .balign 2048
    .global __vectors
__vectors:
    .set    .Lvec_index, 0
    .rept   4
    .balign 0x80
    mov     x0, #.Lvec_index
    b       6f
    .set    .Lvec_index, .Lvec_index + 1
    .endr
    .balign 0x80                    // 4: sync, current EL with SP_ELx
    b       7f
    .balign 0x80                    // 5: irq, current EL with SP_ELx
    b       11f
    .set    .Lvec_index, 6
    .rept   10
    .balign 0x80
    mov     x0, #.Lvec_index
    b       6f
    .set    .Lvec_index, .Lvec_index + 1
    .endr

    // Expected IRQ (see `wait_irq`): note it, disarm, and return with
    // PSTATE.I set, so the interrupt stays unacknowledged in the CPU
    // interface for the scenario to acknowledge; x0/x1 preserved.
11: stp     x0, x1, [sp, #-16]!
    adrp    x0, {irq_armed}
    add     x0, x0, :lo12:{irq_armed}
    ldr     x1, [x0]
    cbz     x1, 12f
    str     xzr, [x0]
    adrp    x0, {irq_taken}
    add     x0, x0, :lo12:{irq_taken}
    mov     x1, #1
    str     x1, [x0]
    mrs     x1, spsr_el1
    orr     x1, x1, #0x80
    msr     spsr_el1, x1
    ldp     x0, x1, [sp], #16
    eret
12: ldp     x0, x1, [sp], #16
    mov     x0, #5
    b       6f

    // Recoverable UNDEF: record ESR/ELR, disarm, resume after the HVC the
    // test issued if ELR points at it, or after the instruction at
    // `UNDEF_SKIP` if ELR is that address (else at ELR), x0/x1 preserved.
7:  stp     x0, x1, [sp, #-16]!
    adrp    x0, {armed}
    add     x0, x0, :lo12:{armed}
    ldr     x1, [x0]
    cbz     x1, 9f
    mrs     x1, esr_el1
    lsr     x1, x1, #26
    cbnz    x1, 9f
    str     xzr, [x0]
    mrs     x1, esr_el1
    adrp    x0, {seen_esr}
    add     x0, x0, :lo12:{seen_esr}
    str     x1, [x0]
    mrs     x1, elr_el1
    adrp    x0, {seen_elr}
    add     x0, x0, :lo12:{seen_elr}
    str     x1, [x0]
    ldr     w0, [x1]
    movz    w1, #{hvc_lo}
    movk    w1, #{hvc_hi}, lsl #16
    cmp     w0, w1
    b.eq    10f
    adrp    x0, {skip}
    add     x0, x0, :lo12:{skip}
    ldr     x0, [x0]
    mrs     x1, elr_el1
    cmp     x0, x1
    b.ne    8f
10: mrs     x1, elr_el1
    add     x1, x1, #4
    msr     elr_el1, x1
8:  ldp     x0, x1, [sp], #16
    eret
9:  ldp     x0, x1, [sp], #16
    mov     x0, #4
6:  adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      {exception}
    b       2b
    "#,
    r_relative = const R_AARCH64_RELATIVE,
    cpacr = const CPACR_FPEN,
    main = sym crate::run::rust_main,
    exception = sym exception,
    armed = sym UNDEF_ARMED,
    seen_esr = sym UNDEF_ESR,
    seen_elr = sym UNDEF_ELR,
    skip = sym UNDEF_SKIP,
    irq_armed = sym IRQ_ARMED,
    irq_taken = sym IRQ_TAKEN,
    hvc_lo = const HVC_BAD_IMM_INSN & 0xffff,
    hvc_hi = const HVC_BAD_IMM_INSN >> 16,
);

/// The immediate of [`hvc_bad_imm`]: neither Xen's 0xEA1 nor SMCCC's 0.
pub const BAD_HVC_IMM: u32 = 0x1234;
/// The encoding of `hvc #0x1234` (`0xd4000002 | imm16 << 5`).
const HVC_BAD_IMM_INSN: u32 = 0xd400_0002 | (BAD_HVC_IMM << 5);

/// Non-zero while an UNDEF is expected (plain loads/stores only: the MMU is
/// off, so no exclusives).
static UNDEF_ARMED: AtomicU64 = AtomicU64::new(0);
/// ESR_EL1 of the last expected UNDEF.
static UNDEF_ESR: AtomicU64 = AtomicU64::new(0);
/// Address of the instruction an expected UNDEF skips (see [`try_insn`]).
static UNDEF_SKIP: AtomicU64 = AtomicU64::new(0);
/// ELR_EL1 of the last expected UNDEF.
static UNDEF_ELR: AtomicU64 = AtomicU64::new(0);

/// Non-zero while an IRQ is expected (see [`wait_irq`]).
static IRQ_ARMED: AtomicU64 = AtomicU64::new(0);
/// Set by the IRQ vector when it took an expected IRQ.
static IRQ_TAKEN: AtomicU64 = AtomicU64::new(0);

/// Unmask IRQs until one is taken or `ticks` of the virtual counter have
/// passed, then mask them again. Returns whether an IRQ was taken. The
/// vector leaves the interrupt unacknowledged (the caller reads the
/// interrupt acknowledge register) and returns with IRQs masked.
pub fn wait_irq(ticks: u64) -> bool {
    IRQ_TAKEN.store(0, Ordering::Relaxed);
    IRQ_ARMED.store(1, Ordering::Relaxed);
    let start = counter();
    // SAFETY: unmasking IRQs only lets the armed vector above run, which
    // preserves every register and the stack below SP it uses. Not `nomem`:
    // the flags are read after this.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack, preserves_flags)) };
    while IRQ_TAKEN.load(Ordering::Relaxed) == 0 && counter().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
    // SAFETY: masking IRQs has no other effect.
    unsafe { asm!("msr daifset, #2", "isb", options(nostack, preserves_flags)) };
    IRQ_ARMED.store(0, Ordering::Relaxed);
    IRQ_TAKEN.load(Ordering::Relaxed) != 0
}

/// `MPIDR_EL1`.
pub fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// Enable the GICv3 CPU interface's system registers and Group 1 the way
/// Linux and XTF do: `ICC_SRE_EL1` = SRE|DFB|DIB, `ICC_PMR_EL1` = 0xf0,
/// `ICC_BPR1_EL1` = 0, `ICC_CTLR_EL1` = 0 (EOI also deactivates),
/// `ICC_IGRPEN1_EL1` = 1. Returns `ICC_SRE_EL1` as read back. Generic
/// `s3_...` encodings need no assembler feature flags.
pub fn gicv3_cpu_init() -> u64 {
    let sre: u64;
    // SAFETY: these writes only configure this CPU's virtual GIC interface
    // (the scenario's purpose); no memory is touched.
    unsafe {
        asm!(
            "msr s3_0_c12_c12_5, {sre_in}",   // ICC_SRE_EL1
            "isb",
            "mrs {sre}, s3_0_c12_c12_5",
            "msr s3_0_c4_c6_0, {pmr}",        // ICC_PMR_EL1
            "msr s3_0_c12_c12_3, xzr",        // ICC_BPR1_EL1
            "msr s3_0_c12_c12_4, xzr",        // ICC_CTLR_EL1
            "msr s3_0_c12_c12_7, {one}",      // ICC_IGRPEN1_EL1
            "isb",
            sre_in = in(reg) 7u64,
            pmr = in(reg) 0xf0u64,
            one = in(reg) 1u64,
            sre = out(reg) sre,
            options(nomem, nostack)
        )
    };
    sre
}

/// Write `ICC_SGI1R_EL1` (generate a Group 1 SGI).
pub fn icc_sgi1r(v: u64) {
    // SAFETY: generating an SGI has no memory effects.
    unsafe { asm!("msr s3_0_c12_c11_5, {}", "isb", in(reg) v, options(nomem, nostack)) };
}

/// Read `ICC_IAR1_EL1` (acknowledge the highest priority Group 1 interrupt).
pub fn icc_iar1() -> u64 {
    let v: u64;
    // SAFETY: acknowledging changes only the GIC's state, which the
    // scenario then completes with `icc_eoir1`.
    unsafe { asm!("mrs {}, s3_0_c12_c12_0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Write `ICC_EOIR1_EL1` (end of interrupt `intid`).
pub fn icc_eoir1(intid: u64) {
    // SAFETY: completes an interrupt this CPU acknowledged; no memory.
    unsafe { asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) intid, options(nomem, nostack)) };
}

/// What an `hvc #0x1234` led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvcOutcome {
    /// The ESR_EL1 of the UNDEF taken, if one was.
    pub undef_esr: Option<u64>,
    /// Whether ELR_EL1 pointed at the HVC itself (the architectural UNDEF
    /// return address) rather than after it.
    pub elr_at_hvc: bool,
}

/// Execute `hvc #0x1234` with an UNDEF handler armed.
pub fn hvc_bad_imm() -> HvcOutcome {
    UNDEF_ESR.store(u64::MAX, Ordering::Relaxed);
    UNDEF_ELR.store(0, Ordering::Relaxed);
    UNDEF_ARMED.store(1, Ordering::Relaxed);
    let at: u64;
    // SAFETY: a hypervisor either injects an UNDEF (handled by the vector
    // above, which resumes after the HVC with x0/x1 preserved) or treats it
    // as a call of its own and returns to the next instruction, possibly
    // changing x0..x17 (all declared clobbered). The stack below SP is only
    // used by the handler, which restores SP.
    unsafe {
        asm!(
            "adr {at}, 1f",
            "1: hvc #0x1234",
            at = out(reg) at,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _,
            out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
            out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
            out("x15") _, out("x16") _, out("x17") _,
        )
    };
    UNDEF_ARMED.store(0, Ordering::Relaxed);
    let esr = UNDEF_ESR.load(Ordering::Relaxed);
    HvcOutcome {
        undef_esr: (esr != u64::MAX).then_some(esr),
        elr_at_hvc: UNDEF_ELR.load(Ordering::Relaxed) == at,
    }
}

/// Execute one instruction, `$insn`, with an UNDEF handler armed:
/// `Ok(v)` if it ran, `Err(ESR_EL1)` if it was UNDEFINED (execution then
/// resumes after it). `$insn` names its register `{v}` (zero beforehand,
/// its value afterwards); with `=> x0` the instruction uses `x0` instead
/// (for `.inst` encodings the assembler would not take).
///
/// Callers pass only instructions whose one effect is on that register (a
/// system register read or write, `rdvl`, ...).
macro_rules! try_insn {
    ($insn:literal) => {{
        $crate::rt::arm_undef();
        let v: u64;
        // SAFETY: the instruction only reads or writes `{v}` (see above);
        // its address is stored in UNDEF_SKIP before it runs, so an UNDEF
        // resumes right after it (the handler preserves every register and
        // restores the stack below SP it uses).
        unsafe {
            core::arch::asm!(
                "mov {v}, xzr",
                "adr {t}, 1f",
                "str {t}, [{skip}]",
                concat!("1: ", $insn),
                t = out(reg) _,
                skip = in(reg) $crate::rt::undef_skip_slot(),
                v = out(reg) v,
                options(nostack),
            )
        };
        $crate::rt::disarm_undef().map_or(Ok(v), Err)
    }};
    ($insn:literal => x0) => {{
        $crate::rt::arm_undef();
        let v: u64;
        // SAFETY: as above, with x0 as the instruction's register.
        unsafe {
            core::arch::asm!(
                "mov x0, xzr",
                "adr {t}, 1f",
                "str {t}, [{skip}]",
                concat!("1: ", $insn),
                t = out(reg) _,
                skip = in(reg) $crate::rt::undef_skip_slot(),
                out("x0") v,
                options(nostack),
            )
        };
        $crate::rt::disarm_undef().map_or(Ok(v), Err)
    }};
}
pub(crate) use try_insn;

/// Arm the UNDEF handler for [`try_insn`].
pub fn arm_undef() {
    UNDEF_ESR.store(u64::MAX, Ordering::Relaxed);
    UNDEF_SKIP.store(0, Ordering::Relaxed);
    UNDEF_ARMED.store(1, Ordering::Relaxed);
}

/// Where [`try_insn`] stores the address of its instruction.
pub fn undef_skip_slot() -> *const AtomicU64 {
    &UNDEF_SKIP
}

/// Disarm the UNDEF handler: the ESR_EL1 of the UNDEF taken, if one was.
pub fn disarm_undef() -> Option<u64> {
    UNDEF_ARMED.store(0, Ordering::Relaxed);
    UNDEF_SKIP.store(0, Ordering::Relaxed);
    let esr = UNDEF_ESR.load(Ordering::Relaxed);
    (esr != u64::MAX).then_some(esr)
}

/// Enable SVE and SME at EL1 and EL0 in `CPACR_EL1` (ZEN and SMEN = 0b11,
/// keeping FPEN), so that their use is decided by EL2 (`CPTR_EL2`) rather
/// than trapped to EL1. The bits are RES0 on CPUs without SVE/SME.
pub fn enable_sve_sme_at_el1() {
    const CPACR_ZEN: u64 = 3 << 16;
    const CPACR_SMEN: u64 = 3 << 24;
    // SAFETY: only changes which SVE/SME accesses trap; the guest does not
    // use SVE/SME otherwise (the compiler targets plain AArch64).
    unsafe {
        asm!(
            "msr cpacr_el1, {v}",
            "isb",
            v = in(reg) CPACR_FPEN | CPACR_ZEN | CPACR_SMEN,
            options(nomem, nostack)
        )
    };
}

/// Set while a fatal report is being written, so a fault inside the report
/// (e.g. `hvc` without a hypervisor) parks the CPU instead of recursing.
/// Plain load/store only: no exclusives with the MMU off.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Claim the right to report a fatal event; false if one is in progress.
fn begin_report() -> bool {
    if REPORTING.load(Ordering::Relaxed) {
        return false;
    }
    REPORTING.store(true, Ordering::Relaxed);
    true
}

const VECTOR_NAMES: [&str; 16] = [
    "sync (EL1t)",
    "irq (EL1t)",
    "fiq (EL1t)",
    "serror (EL1t)",
    "sync",
    "irq",
    "fiq",
    "serror",
    "sync (EL0)",
    "irq (EL0)",
    "fiq (EL0)",
    "serror (EL0)",
    "sync (EL0 AArch32)",
    "irq (EL0 AArch32)",
    "fiq (EL0 AArch32)",
    "serror (EL0 AArch32)",
];

/// Every EL1 exception ends here: report it and crash the domain.
extern "C" fn exception(index: u64, esr: u64, elr: u64, far: u64) -> ! {
    if begin_report() {
        let name = VECTOR_NAMES
            .get(index as usize)
            .copied()
            .unwrap_or("unknown");
        let mut h = Hvc;
        let mut c = Console::new(&mut h);
        let _ = writeln!(
            c,
            "TEST-GUEST exception: {name} ESR={esr:#x} ELR={elr:#x} FAR={far:#x}"
        );
        drop(c);
        let _ = xen_guest::sched_shutdown(&mut h, ShutdownReason::Crash);
    }
    halt()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if begin_report() {
        let mut h = Hvc;
        let mut c = Console::new(&mut h);
        let _ = write!(c, "TEST-GUEST panic: {}", info.message());
        if let Some(l) = info.location() {
            let _ = write!(c, " at {}:{}", l.file(), l.line());
        }
        let _ = writeln!(c);
        drop(c);
        let _ = xen_guest::sched_shutdown(&mut h, ShutdownReason::Crash);
    }
    halt()
}

/// Park the CPU for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: `wfe` only waits for an event; no memory or register
        // effects visible to Rust.
        unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
}

/// The virtual counter (`CNTVCT_EL0`, readable at EL1).
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects; `isb` orders it
    // after earlier instructions so delays are measured from now.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Wait in WFI until the virtual counter reaches `deadline`: the virtual
/// timer is armed for it (its interrupt stays masked in PSTATE; a pending
/// one still ends WFI), then disarmed.
pub fn sleep_until(deadline: u64) {
    // SAFETY: programming this vCPU's own virtual timer and waiting for
    // it; interrupts stay masked (DAIF), so no handler runs.
    unsafe {
        asm!("msr cntv_cval_el0, {}", "mov {t}, #1", "msr cntv_ctl_el0, {t}", "isb",
             in(reg) deadline, t = out(reg) _, options(nomem, nostack));
    }
    while counter() < deadline {
        // SAFETY: `wfi` only waits for an interrupt.
        unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
    }
    // SAFETY: disarming this vCPU's own virtual timer.
    unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}

/// The counter frequency in Hz (`CNTFRQ_EL0`), or 62.5 MHz (QEMU's value)
/// if firmware left it 0.
pub fn counter_freq() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    if v == 0 { 62_500_000 } else { v }
}

/// One byte load from `addr` (`ldrb`: a single access with a valid ISS, so
/// a hypervisor can decode the fault).
///
/// # Safety
///
/// `addr` must be safe to read for the caller's purpose: either readable
/// memory/MMIO or an address whose fault is the point of the test (the
/// exception vectors turn an EL1 fault into a crash report).
pub unsafe fn read_u8(addr: u64) -> u8 {
    let v: u32;
    // SAFETY: per the contract above; one `ldrb`, no other effects.
    unsafe {
        asm!("ldrb {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, readonly))
    };
    v as u8
}

/// One 32-bit load from `addr` (`ldr w`), for MMIO registers.
///
/// # Safety
///
/// As [`read_u8`]; `addr` must also be 4-byte aligned.
pub unsafe fn read_u32(addr: u64) -> u32 {
    let v: u32;
    // SAFETY: per the contract above; one `ldr`, no other effects.
    unsafe {
        asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, readonly))
    };
    v
}

/// Two 32-bit loads from `addr` in one `ldp` instruction.
///
/// # Safety
///
/// As [`read_u32`]; `addr` must be 8-byte aligned.
pub unsafe fn read_pair_u32(addr: u64) -> (u32, u32) {
    let (a, b): (u32, u32);
    // SAFETY: per the contract above; one `ldp`, no other effects.
    unsafe {
        asm!("ldp {a:w}, {b:w}, [{p}]", p = in(reg) addr, a = out(reg) a, b = out(reg) b,
            options(nostack, readonly))
    };
    (a, b)
}

/// One 32-bit store of `val` to `addr` (`str w`).
///
/// # Safety
///
/// `addr` must be 4-byte aligned and must not be memory any Rust object
/// (image, stack, DTB in use) lives in, unless the fault is the test.
pub unsafe fn write_u32(addr: u64, val: u32) {
    // SAFETY: per the contract above; one `str`.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) val, options(nostack)) };
}

/// One byte store of `val` to `addr` (`strb`).
///
/// # Safety
///
/// As [`write_u32`], without the alignment requirement.
pub unsafe fn write_u8(addr: u64, val: u8) {
    // SAFETY: per the contract above; one `strb`.
    unsafe {
        asm!("strb {v:w}, [{a}]", a = in(reg) addr, v = in(reg) u32::from(val), options(nostack))
    };
}

/// The DTB handed over in x0, as a byte slice bounded by its header's
/// `totalsize`; `None` if the pointer is null, misaligned or no DTB.
pub fn dtb(addr: usize) -> Option<&'static [u8]> {
    if addr == 0 || !addr.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot protocol puts an 8-byte aligned DTB at `addr` in
    // guest RAM, outside the image, never written afterwards; its first 8
    // bytes are readable (checked non-null above).
    let head: [u8; 8] = unsafe { core::ptr::read(addr as *const [u8; 8]) };
    let size = xen_guest::dt::dtb_size(head).ok()?;
    // SAFETY: as above, and `totalsize` bytes form the blob (magic checked,
    // size bounded by MAX_DTB_SIZE); it lives for the rest of the run.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, size) })
}
