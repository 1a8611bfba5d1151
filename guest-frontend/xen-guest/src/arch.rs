//! The real conduit: `hvc` instructions at EL1. Compiled only for the
//! bare-metal aarch64 target; host builds use fakes.
//!
//! Register contracts:
//! * Xen hypercall (`arch-arm.h`): `hvc #0xEA1`, number in x16, arguments in
//!   x0..x4, result in x0. Xen may clobber x16 and every argument register
//!   (it does so on purpose in debug builds), so all of x0..x4 and x16 are
//!   declared clobbered.
//! * SMCCC (DEN0028): `hvc #0`, function id in w0, arguments in x1..x3,
//!   results in x0..x3. SMCCC v1.0 lets the callee clobber x0..x17, so
//!   x4..x17 are declared clobbered too.
#![allow(unsafe_code)]

use crate::hypercall::Hypercall;
use crate::psci::Smccc;

/// The `hvc` conduit to the hypervisor (both Xen hypercalls and SMCCC).
#[derive(Debug, Default)]
pub struct Hvc;

impl Hypercall for Hvc {
    unsafe fn hypercall(&mut self, nr: u64, args: [u64; 5]) -> i64 {
        let ret: u64;
        // SAFETY: the trap only transfers control to the hypervisor, which
        // returns to the next instruction with x0 = result and x1..x4, x16
        // possibly changed (declared below); the stack is untouched. Memory
        // accesses the hypervisor makes through pointer arguments are
        // covered by this function's contract (no `nomem`/`readonly`, so the
        // compiler assumes the asm reads and writes memory).
        unsafe {
            core::arch::asm!(
                "hvc #0xEA1",
                inlateout("x0") args[0] => ret,
                inlateout("x1") args[1] => _,
                inlateout("x2") args[2] => _,
                inlateout("x3") args[3] => _,
                inlateout("x4") args[4] => _,
                inlateout("x16") nr => _,
                options(nostack),
            );
        }
        ret as i64
    }
}

impl Smccc for Hvc {
    fn smccc_call(&mut self, fid: u32, args: [u64; 3]) -> [u64; 4] {
        let (r0, r1, r2, r3): (u64, u64, u64, u64);
        // SAFETY: SMCCC/PSCI calls issued through this conduit (VERSION,
        // SYSTEM_OFF/RESET, ...) take no pointers; the callee returns to the
        // next instruction with results in x0..x3 and may clobber x4..x17,
        // all declared. The stack is untouched.
        unsafe {
            core::arch::asm!(
                "hvc #0",
                inlateout("x0") u64::from(fid) => r0,
                inlateout("x1") args[0] => r1,
                inlateout("x2") args[1] => r2,
                inlateout("x3") args[2] => r3,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _,
                options(nostack),
            );
        }
        [r0, r1, r2, r3]
    }
}
