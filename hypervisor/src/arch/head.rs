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

    /* stack of CPU 0 */
    adrp    x1, OXEN_STACKS
    add     x1, x1, :lo12:OXEN_STACKS
    mov     x2, #{stack_size}
    add     sp, x1, x2
    /* the top of each stack is the CPU's guest frame slot (frame_slot) */
    sub     sp, sp, #{frame_size}

    /* zero .bss (OXEN_STACKS is in it; our stack is still empty) */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    adrp    x1, oxen_vectors
    add     x1, x1, :lo12:oxen_vectors
    msr     vbar_el2, x1
    isb
    mov     x0, x19
    bl      {primary_main}
    b       oxen_park

    /* secondary CPUs arrive here from PSCI CPU_ON with x0 = CPU index */
    .global oxen_secondary_entry
oxen_secondary_entry:
    msr     daifset, #0xf
    mov     x19, x0
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
