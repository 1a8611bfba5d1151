//! `sched_op`: yield, block and poll (waiting for events), shutdown of the
//! caller, and `remote_shutdown` of another domain by Dom0.

extern crate alloc;

use alloc::sync::Arc;

use xen_abi::Errno;
use xen_abi::hypercall::{ShutdownReason, schedop};

use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::{guest_mem, sched, shutdown};

/// `SCHEDOP_remote_shutdown` (Xen's sub-op 4).
const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;

/// `sched_op(cmd, arg)`.
pub(crate) fn sched_op(
    dom: &Arc<Domain>,
    vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
    match a[0] {
        schedop::YIELD => {
            sched::yield_current();
            Ok(0)
        }
        schedop::BLOCK => {
            super::evtchn::block(dom, vcpu);
            Ok(0)
        }
        schedop::POLL => super::evtchn::poll(dom, vcpu, a[1]),
        schedop::SHUTDOWN => {
            let raw = guest_mem::read_u32(dom, a[1])?;
            let Some(reason) = ShutdownReason::from_raw(raw) else {
                log::info!(
                    "{}v{vcpu}: sched_op(shutdown) with unknown reason {raw}",
                    dom.id
                );
                return Err(Errno::EINVAL);
            };
            shutdown::domain_shutdown(dom, reason);
            Ok(0)
        }
        SCHEDOP_REMOTE_SHUTDOWN => remote_shutdown(dom, vcpu, a[1]),
        _ => Err(Errno::ENOSYS),
    }
}

/// `SCHEDOP_remote_shutdown`: `struct sched_remote_shutdown { domid_t
/// domain_id; unsigned int reason; }` (8 bytes). As Xen: -EFAULT, then
/// -ESRCH for no such domain (`DOMID_SELF` included: Xen looks the id up
/// literally), then -EPERM unless the caller is the control domain (Dom0).
/// An unknown reason is -EINVAL, as for `SCHEDOP_shutdown` in oxen.
fn remote_shutdown(dom: &Arc<Domain>, vcpu: usize, arg: u64) -> Result<i64, Errno> {
    let mut b = [0u8; 8];
    guest_mem::copy_from_guest(dom, arg, &mut b)?;
    let id = oxen_types::DomId(u16::from_le_bytes([b[0], b[1]]));
    let raw = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let target = crate::domain::get(id).ok_or(Errno::ESRCH)?;
    if !dom.is_dom0 {
        log::info!("{}v{vcpu}: remote_shutdown of {id}: not permitted", dom.id);
        return Err(Errno::EPERM);
    }
    let reason = ShutdownReason::from_raw(raw).ok_or(Errno::EINVAL)?;
    log::info!(
        "{}v{vcpu}: remote_shutdown of {id} ({})",
        dom.id,
        reason.name()
    );
    shutdown::domain_shutdown(&target, reason);
    Ok(0)
}
