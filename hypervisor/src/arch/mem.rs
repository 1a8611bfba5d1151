//! `memcpy` for the hypervisor: what Rust emits for every struct copy
//! (trap frames, vCPU contexts, hypercall arguments) and `copy_nonoverlapping`.
//!
//! The target is built for strict alignment, so the generic routine from
//! compiler_builtins moves eight bytes per four instructions when both
//! pointers are 8-byte aligned and single bytes otherwise. This one moves 64
//! bytes per twelve instructions with `ldp`/`stp` of general registers (never
//! SIMD registers: those hold the guest's FP state while the hypervisor
//! runs), and also when the pointers are not aligned, once the MMU is on
//! (Normal memory) and alignment checking is off (SCTLR_EL2.A clear, as
//! `mmu` sets it); before that, misaligned copies go byte by byte.
//!
//! Invariant: only x0-x11 are used (caller-saved in AAPCS64), no stack; the
//! return value is the destination, as C's `memcpy`.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.memcpy, "ax"
    .global memcpy
    .type memcpy, %function
    .balign 64
memcpy:
    mov     x3, x0
    orr     x4, x0, x1
    tst     x4, #7
    b.ne    5f
1:  cmp     x2, #64
    b.lo    2f
0:  ldp     x4, x5, [x1]
    ldp     x6, x7, [x1, #16]
    ldp     x8, x9, [x1, #32]
    ldp     x10, x11, [x1, #48]
    add     x1, x1, #64
    sub     x2, x2, #64
    stp     x4, x5, [x3]
    stp     x6, x7, [x3, #16]
    stp     x8, x9, [x3, #32]
    stp     x10, x11, [x3, #48]
    add     x3, x3, #64
    cmp     x2, #64
    b.hs    0b
2:  cmp     x2, #16
    b.lo    3f
    ldp     x4, x5, [x1], #16
    stp     x4, x5, [x3], #16
    sub     x2, x2, #16
    b       2b
3:  cmp     x2, #8
    b.lo    4f
    ldr     x4, [x1], #8
    str     x4, [x3], #8
    sub     x2, x2, #8
4:  cbz     x2, 6f
7:  ldrb    w4, [x1], #1
    strb    w4, [x3], #1
    subs    x2, x2, #1
    b.ne    7b
6:  ret
    /* misaligned: word moves only with the MMU on (M) and checking off (A) */
5:  mrs     x4, sctlr_el2
    and     x4, x4, #3
    cmp     x4, #1
    b.eq    1b
    b       4b
    .size memcpy, . - memcpy
"#
);
