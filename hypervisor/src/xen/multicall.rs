//! `multicall`: a list of hypercalls issued as one (`multicall_entry`:
//! `op`, `result`, `args[6]`, 64 bytes on arm64). libxc sends every
//! `memory_op` this way on 64-bit Linux, to read its full return value.
//!
//! Each entry goes to the handler of [`crate::hypercall::handler`] with
//! its arguments in a scratch frame; its return value is written back to
//! `result`. A handler that asks to be continued (rewinds the PC, as long
//! memory and grant operations do) is simply called again with the
//! arguments it left, up to [`MAX_CONTINUATIONS`] times. A multicall inside
//! a multicall is -EINVAL and an unknown op -ENOSYS in its `result`, as in
//! Xen; the list itself is walked [`BATCH`] entries per call, then
//! continued, so no list keeps a CPU for long.

extern crate alloc;

use alloc::sync::Arc;

use xen_abi::Errno;
use xen_abi::hypercall as hc;

use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::guest_mem;

/// Size of a `multicall_entry` on arm64.
const ENTRY_SIZE: u64 = 64;
/// Entries handled before the multicall itself is continued.
const BATCH: u64 = 64;
/// Times one entry's handler may ask to be continued within a multicall.
const MAX_CONTINUATIONS: u32 = 1 << 16;

/// `multicall(call_list, nr_calls)`.
pub(crate) fn multicall(
    dom: &Arc<Domain>,
    vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let list = frame.x[0];
    // `nr_calls` is an unsigned int in Xen.
    let nr = u64::from(frame.x[1] as u32);
    for i in 0..nr.min(BATCH) {
        let at = i
            .checked_mul(ENTRY_SIZE)
            .and_then(|o| list.checked_add(o))
            .ok_or(Errno::EFAULT)?;
        let mut raw = [0u8; ENTRY_SIZE as usize];
        guest_mem::copy_from_guest(dom, at, &mut raw)?;
        let word =
            |k: usize| u64::from_le_bytes(raw[k * 8..k * 8 + 8].try_into().unwrap_or([0; 8]));
        let op = word(0);
        let args = [word(2), word(3), word(4), word(5), word(6), word(7)];
        let result = call(dom, vcpu, frame, op, args);
        guest_mem::copy_to_guest(dom, at + 8, &(result as u64).to_le_bytes())?;
    }
    if nr > BATCH {
        frame.x[0] = list + BATCH * ENTRY_SIZE;
        frame.x[1] = nr - BATCH;
        return super::continuation(frame, frame.x[0]);
    }
    Ok(0)
}

/// Run one entry's hypercall to completion; its return value (an errno
/// as a negative number).
fn call(dom: &Arc<Domain>, vcpu: usize, frame: &TrapFrame, op: u64, args: [u64; 6]) -> i64 {
    if op == hc::MULTICALL {
        return Errno::EINVAL.as_ret();
    }
    let Some(h) = crate::hypercall::handler(op) else {
        return Errno::ENOSYS.as_ret();
    };
    let mut scratch = *frame;
    scratch.x[..6].copy_from_slice(&args);
    scratch.x[16] = op;
    for _ in 0..MAX_CONTINUATIONS {
        let pc = scratch.elr;
        let r = h(dom, vcpu, &mut scratch);
        if scratch.elr == pc {
            return match r {
                Ok(v) => v,
                Err(e) => e.as_ret(),
            };
        }
        // The handler left the arguments of its continuation in x0..x5.
        scratch.elr = pc;
    }
    log::info!("{}v{vcpu}: multicall entry op {op} did not finish", dom.id);
    Errno::EBUSY.as_ret()
}
