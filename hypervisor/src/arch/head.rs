//! Entry code, exception vectors and the guest entry/exit path (assembly).
//!
//! Layout contract with Rust: a [`TrapFrame`] is pushed on the EL2 stack by
//! every exception from a lower EL; Rust gets a `&mut TrapFrame` and may
//! rewrite it completely (a vCPU switch copies another vCPU's registers into
//! it). Returning from the handler restores the frame and `eret`s. The frame
//! offsets are computed with `offset_of!` and passed to the assembly as
//! constants, so the two sides cannot drift apart.

use core::arch::global_asm;
use core::mem::{offset_of, size_of};

/// Guest (EL1/EL0) general-purpose state saved on every trap to EL2.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct TrapFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// Where the guest resumes (ELR_EL2).
    pub elr: u64,
    /// Guest PSTATE to restore (SPSR_EL2).
    pub spsr: u64,
    _pad: u64,
}

/// Size of one CPU's EL2 stack.
pub const STACK_SIZE: usize = 64 * 1024;
/// Most physical CPUs oxen drives.
pub const MAX_CPUS: usize = 8;

#[repr(C, align(4096))]
pub struct Stacks(pub [[u8; STACK_SIZE]; MAX_CPUS]);

/// EL2 stacks, one per physical CPU (in .bss, zeroed by the entry code).
#[unsafe(no_mangle)]
pub static mut OXEN_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

/// MPIDR (Aff3..Aff0) of each CPU index, `u64::MAX` where there is none:
/// how a secondary CPU entering [`oxen_secondary_entry`] finds its index.
/// Written by the boot CPU and cleaned to the point of coherency before any
/// secondary starts (it reads this with its MMU off).
#[unsafe(no_mangle)]
pub static mut OXEN_CPU_MPIDR: [u64; MAX_CPUS] = [u64::MAX; MAX_CPUS];

/// `R_AARCH64_RELATIVE` (ELF for the Arm 64-bit Architecture, table 4-18).
const R_AARCH64_RELATIVE: u64 = 1027;

/// Kinds of lower-EL exception passed to Rust in x1.
pub const KIND_SYNC: u64 = 0;
/// IRQ from a lower EL.
pub const KIND_IRQ: u64 = 1;
/// FIQ from a lower EL.
pub const KIND_FIQ: u64 = 2;
/// SError from a lower EL.
pub const KIND_SERROR: u64 = 3;

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (Documentation/arch/arm64/booting.rst) */
    b       oxen_primary_entry          /* code0 */
    .long   0                           /* code1 */
    .quad   0x200000                    /* text_offset */
    .quad   __image_end - _start        /* image_size (incl. bss) */
    .quad   0xa                         /* flags: LE, 4K pages, anywhere */
    .quad   0, 0, 0                     /* res2..res4 */
    .ascii  "ARM\x64"                   /* magic */
    .long   0                           /* res5 */

    .section .text.boot, "ax"
oxen_primary_entry:
    msr     daifset, #0xf
    mov     x19, x0                     /* DTB physical address */
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    oxen_park                   /* not entered at EL2: nothing to do */

    /*
     * MMU and D-cache are off (boot protocol): every store below goes to
     * memory. Discard whatever lines a loader left for the image first, so
     * that neither an old dirty line overwrites our stores nor a stale clean
     * one hides them once the MMU is on (arch/mmu.rs does it again before
     * enabling it).
     */
    adrp    x0, __image_start
    add     x0, x0, :lo12:__image_start
    adrp    x1, __image_end
    add     x1, x1, :lo12:__image_end
    bl      oxen_dcache_inval_poc

    /* Self-relocation: bias = run-time - link address of _start (mod 2^64);
     * *(bias + r_offset) = bias + r_addend for each R_AARCH64_RELATIVE. */
    adr     x20, _start
    movz    x1, #:abs_g3:__link_base
    movk    x1, #:abs_g2_nc:__link_base
    movk    x1, #:abs_g1_nc:__link_base
    movk    x1, #:abs_g0_nc:__link_base
    sub     x20, x20, x1
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16           /* r_offset, r_info */
    ldr     x5, [x1], #8                /* r_addend */
    cmp     x4, #{r_relative}
    b.ne    oxen_park                   /* nothing else can be applied here */
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
2:
    /* zero .bss (OXEN_STACKS is in it; no stack in use yet) */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:
    /* stack of CPU 0; its top is the CPU's guest frame slot (frame_slot) */
    adrp    x1, OXEN_STACKS
    add     x1, x1, :lo12:OXEN_STACKS
    mov     x2, #{stack_size}
    add     sp, x1, x2
    sub     sp, sp, #{frame_size}

    adrp    x1, oxen_vectors
    add     x1, x1, :lo12:oxen_vectors
    msr     vbar_el2, x1
    isb
    mov     x0, x19
    bl      {primary_main}
    b       oxen_park

    /*
     * Secondary CPUs arrive here at EL2, MMU and caches off, from PSCI
     * CPU_ON or a spin table (x0 is not used: both give different values).
     * The CPU index is the position of this CPU's MPIDR in OXEN_CPU_MPIDR,
     * which the boot CPU filled and cleaned to the point of coherency.
     */
    .global oxen_secondary_entry
oxen_secondary_entry:
    msr     daifset, #0xf
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    oxen_park
    mrs     x1, mpidr_el1
    mov     x2, #0xffffff
    movk    x2, #0xff, lsl #32
    and     x1, x1, x2                  /* Aff3..Aff0 */
    adrp    x2, OXEN_CPU_MPIDR
    add     x2, x2, :lo12:OXEN_CPU_MPIDR
    mov     x0, #0
5:  cmp     x0, #{max_cpus}
    b.hs    oxen_park                   /* not a CPU we know */
    ldr     x3, [x2, x0, lsl #3]
    cmp     x3, x1
    b.eq    6f
    add     x0, x0, #1
    b       5b
6:  mov     x19, x0
    adrp    x1, OXEN_STACKS
    add     x1, x1, :lo12:OXEN_STACKS
    add     x2, x0, #1
    mov     x3, #{stack_size}
    mul     x2, x2, x3
    add     sp, x1, x2
    sub     sp, sp, #{frame_size}
    adrp    x1, oxen_vectors
    add     x1, x1, :lo12:oxen_vectors
    msr     vbar_el2, x1
    isb
    mov     x0, x19
    bl      {secondary_main}
    b       oxen_park

    /*
     * Invalidate the data cache to the point of coherency over [x0, x1),
     * by VA (identity: PA while the MMU is off). Clobbers x0-x3; no stack.
     */
    .global oxen_dcache_inval_poc
oxen_dcache_inval_poc:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4             /* DminLine: log2(words) */
    mov     x2, #4
    lsl     x2, x2, x3                  /* line size in bytes */
    sub     x3, x2, #1
    bic     x0, x0, x3
7:  cmp     x0, x1
    b.hs    8f
    dc      ivac, x0
    add     x0, x0, x2
    b       7b
8:  dsb     sy
    ret

    .global oxen_park
oxen_park:
    msr     daifset, #0xf
3:  wfe
    b       3b

/* ---------------------------------------------------------------- vectors */
.macro LOWER_VECTOR kind
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       oxen_lower_common
.endm

.macro CURRENT_VECTOR kind
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       oxen_current_common
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global oxen_vectors
oxen_vectors:
    /* current EL with SP_EL0: never used */
    CURRENT_VECTOR 0
    CURRENT_VECTOR 1
    CURRENT_VECTOR 2
    CURRENT_VECTOR 3
    /* current EL with SP_ELx: a hypervisor bug */
    CURRENT_VECTOR 0
    CURRENT_VECTOR 1
    CURRENT_VECTOR 2
    CURRENT_VECTOR 3
    /* lower EL, AArch64: guests */
    LOWER_VECTOR 0
    LOWER_VECTOR 1
    LOWER_VECTOR 2
    LOWER_VECTOR 3
    /* lower EL, AArch32: not supported (HCR_EL2.RW = 1) */
    CURRENT_VECTOR 0
    CURRENT_VECTOR 1
    CURRENT_VECTOR 2
    CURRENT_VECTOR 3

.macro SAVE_REST
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x1, elr_el2
    mrs     x2, spsr_el2
    stp     x1, x2, [sp, #{off_elr}]
.endm

oxen_lower_common:
    SAVE_REST
    mov     x1, x0
    mov     x0, sp
    bl      {lower_handler}
    b       oxen_return_to_guest

oxen_current_common:
    SAVE_REST
    mov     x1, x0
    mov     x0, sp
    bl      {current_handler}
    b       oxen_park

    /* x0 = frame to run; it becomes the bottom of this CPU's stack */
    .global oxen_enter_frame
oxen_enter_frame:
    mov     sp, x0
    .global oxen_return_to_guest
oxen_return_to_guest:
    ldp     x1, x2, [sp, #{off_elr}]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame_size}
    eret
    "#,
    stack_size = const STACK_SIZE,
    max_cpus = const MAX_CPUS,
    r_relative = const R_AARCH64_RELATIVE,
    frame_size = const size_of::<TrapFrame>(),
    off_elr = const offset_of!(TrapFrame, elr),
    primary_main = sym crate::boot::primary_main,
    secondary_main = sym crate::boot::secondary_main,
    lower_handler = sym crate::trap::handle_lower_el,
    current_handler = sym crate::trap::handle_current_el,
);

const _: () = assert!(offset_of!(TrapFrame, elr) == 248);
const _: () = assert!(size_of::<TrapFrame>() == 272);

unsafe extern "C" {
    fn oxen_enter_frame(frame: *mut TrapFrame) -> !;
    /// Physical address of the secondary CPUs' entry point (identity-mapped).
    pub fn oxen_secondary_entry();
    fn oxen_dcache_inval_poc(start: u64, end: u64);
    static __image_start: u8;
    static __image_end: u8;
    static __bss_start: u8;
}

/// Where this CPU's trap frame lives: the very top of its stack.
pub fn frame_slot(cpu: usize) -> *mut TrapFrame {
    let base = (&raw mut OXEN_STACKS).cast::<u8>();
    // The top of stack `cpu`, minus one frame. In bounds: cpu < MAX_CPUS.
    base.wrapping_add((cpu + 1) * STACK_SIZE - size_of::<TrapFrame>())
        .cast::<TrapFrame>()
}

/// Leave Rust for good and run the guest whose registers are in `frame`.
///
/// # Safety
/// `frame` must be this CPU's [`frame_slot`], holding a valid guest frame, and
/// the vCPU's EL1 state and stage 2 must already be loaded. Everything on the
/// stack below the frame is abandoned.
pub unsafe fn enter_frame(frame: *mut TrapFrame) -> ! {
    // SAFETY: per this function's contract.
    unsafe { oxen_enter_frame(frame) }
}

/// The hypervisor image's physical range `[start, end)` (identity mapped),
/// including .bss and the stacks.
pub fn image_range() -> (u64, u64) {
    (
        (&raw const __image_start) as u64,
        (&raw const __image_end) as u64,
    )
}

/// Record which MPIDR each CPU index has (for [`oxen_secondary_entry`]) and
/// make it visible to CPUs whose MMU is still off; also clean and
/// invalidate the secondaries' stacks, which they first use with their MMU
/// off (no line of them may be left in the caches).
pub fn publish_cpu_table(mpidrs: &[u64]) {
    let table = &raw mut OXEN_CPU_MPIDR;
    for i in 0..MAX_CPUS {
        let v = mpidrs.get(i).copied().unwrap_or(u64::MAX);
        // SAFETY: boot CPU, before any secondary starts; i < MAX_CPUS.
        unsafe { (*table)[i] = v };
    }
    super::mmu::clean_dcache_range(table as u64, size_of::<[u64; MAX_CPUS]>() as u64);
    let stacks = (&raw const OXEN_STACKS) as u64;
    super::mmu::clean_inval_dcache_range(
        stacks + STACK_SIZE as u64,
        ((MAX_CPUS - 1) * STACK_SIZE) as u64,
    );
}

/// Discard every data-cache line of the hypervisor image (boot CPU, MMU
/// off, just before turning it on): what was written with the caches off is
/// in memory, and no stale line may shadow it once they are on.
///
/// # Safety
/// MMU off on the only running CPU (nothing in the image is dirty in a cache).
pub unsafe fn discard_image_lines() {
    let (s, e) = image_range();
    // SAFETY: per this function's contract; invalidation by VA changes no
    // memory contents.
    unsafe { oxen_dcache_inval_poc(s, e) };
}

/// Address of the start of .bss (for the image-size figure).
pub fn bss_start() -> u64 {
    (&raw const __bss_start) as u64
}

/// Stop this CPU for good (interrupts masked, waiting for events forever).
pub fn park() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting has no memory effects.
        unsafe { core::arch::asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
}
