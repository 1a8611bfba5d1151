//! The Xen hypercall table (`HVC #0xEA1`, number in x16, arguments in
//! x0..x4, result in x0): [`handler`] maps every hypercall number to the one
//! function that handles it, one module per op family under `xen/`:
//!
//! | number | hypercall | handler |
//! |---|---|---|
//! | 7 | `platform_op` | [`xen::misc::platform_op`] |
//! | 12 | `memory_op` | [`xen::memory::memory_op`] |
//! | 13 | `multicall` | [`xen::multicall::multicall`] |
//! | 17 | `xen_version` | [`xen::version::xen_version`] |
//! | 18 | `console_io` | [`xen::consoleio::console_io`] |
//! | 20 | `grant_table_op` | [`xen::grant::grant_table_op`] |
//! | 21 | `vm_assist` | [`xen::misc::vm_assist`] |
//! | 24 | `vcpu_op` | [`xen::misc::vcpu_op`] |
//! | 29 | `sched_op` | [`xen::schedop::sched_op`] |
//! | 32 | `event_channel_op` | [`xen::evtchn::event_channel_op`] |
//! | 33 | `physdev_op` | [`xen::misc::physdev_op`] |
//! | 34 | `hvm_op` | [`xen::misc::hvm_op`] |
//! | 35 | `sysctl` | [`xen::sysctl::sysctl`] |
//! | 36 | `domctl` | [`xen::domctl::domctl`] |
//!
//! Every handler returns `Result<i64, Errno>`; [`dispatch`] is the one
//! place that turns errors into Xen's negative errno values. Registers other
//! than x0 are preserved (Linux keeps x18 and callee-saved registers live
//! across the call); a handler may rewind the PC to continue a long
//! operation (Xen's continuations).

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use xen_abi::Errno;
use xen_abi::hypercall as hc;

use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::guest_mem::GuestMemError;
use crate::xen;

impl From<GuestMemError> for Errno {
    fn from(e: GuestMemError) -> Self {
        e.errno()
    }
}

/// A hypercall handler: the calling domain and vCPU, and the trap frame
/// holding the arguments (x0..x4).
pub type Handler = fn(&Arc<Domain>, usize, &mut TrapFrame) -> Result<i64, Errno>;

/// The hypercall table.
pub fn handler(nr: u64) -> Option<Handler> {
    Some(match nr {
        hc::PLATFORM_OP => xen::misc::platform_op,
        hc::MEMORY_OP => xen::memory::memory_op,
        hc::MULTICALL => xen::multicall::multicall,
        hc::XEN_VERSION => xen::version::xen_version,
        hc::CONSOLE_IO => xen::consoleio::console_io,
        hc::GRANT_TABLE_OP => xen::grant::grant_table_op,
        hc::VM_ASSIST => xen::misc::vm_assist,
        hc::VCPU_OP => xen::misc::vcpu_op,
        hc::SCHED_OP => xen::schedop::sched_op,
        hc::EVENT_CHANNEL_OP => xen::evtchn::event_channel_op,
        hc::PHYSDEV_OP => xen::misc::physdev_op,
        hc::HVM_OP => xen::misc::hvm_op,
        hc::SYSCTL => xen::sysctl::sysctl,
        hc::DOMCTL => xen::domctl::domctl,
        _ => return None,
    })
}

/// Whether hypercall `nr` leaves every vCPU's scheduling and virtual
/// interrupt state alone (it may read or write the caller's memory and take
/// locks of its own), so the exit path can return straight to the caller
/// without rescheduling or list-register work (`trap::handle_lower_el`).
/// `xen_version` (what every guest library asks first, and the figure the
/// fast path is measured by) and `console_io` (debug output).
pub fn is_local(nr: u64) -> bool {
    matches!(nr, hc::XEN_VERSION)
}

/// Handle the hypercall in `frame` for vCPU `vcpu` of `dom`.
pub fn dispatch(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame) {
    let nr = frame.x[16];
    let r = match handler(nr) {
        Some(h) => {
            let sub = frame.x[0];
            let r = h(dom, vcpu, frame);
            if let Err(e) = r {
                log::debug!(
                    "{}v{vcpu}: {}({sub:#x}) -> -{}",
                    dom.id,
                    hc::name(nr).unwrap_or("?"),
                    e.name()
                );
            }
            r
        }
        None => {
            report_unimplemented(dom, vcpu, nr);
            Err(Errno::ENOSYS)
        }
    };
    frame.x[0] = match r {
        Ok(v) => v as u64,
        Err(e) => e.as_ret() as u64,
    };
}

/// One line per domain and hypercall number (numbers ≥ 63 share one), so
/// a guest cannot flood the console with unimplemented calls.
fn report_unimplemented(dom: &Domain, vcpu: usize, nr: u64) {
    let bit = 1u64 << nr.min(63);
    if dom.reported_hypercalls.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        log::info!(
            "{}v{vcpu}: hypercall {nr} ({}) not implemented: -ENOSYS{}",
            dom.id,
            hc::name(nr).unwrap_or("unknown"),
            if nr >= 63 {
                " (further numbers >= 63 not reported)"
            } else {
                ""
            }
        );
    }
}
