//! The Xen hypercall dispatcher (`HVC #0xEA1`, number in x16, arguments in
//! x0..x4, result in x0).
//!
//! Every handler returns `Result<i64, Errno>`; this is the one place that
//! turns errors into Xen's negative errno values. Registers other than x0
//! are preserved (Linux keeps x18 and callee-saved registers live across
//! the call).

extern crate alloc;

use alloc::sync::Arc;

use xen_abi::hypercall::ShutdownReason;
use xen_abi::hypercall::{self as hc, consoleio, schedop, xenver};
use xen_abi::{Errno, XEN_VERSION_MAJOR, XEN_VERSION_MINOR};

use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::guest_mem::{self, GuestMemError};
use crate::{console, sched, shutdown};

impl From<GuestMemError> for Errno {
    fn from(e: GuestMemError) -> Self {
        e.errno()
    }
}

/// Most bytes one `console_io(write)` call prints (Xen also bounds a chunk).
const CONSOLE_WRITE_MAX: usize = 4096;

/// Handle the hypercall in `frame` for vCPU `vcpu` of `dom`.
pub fn dispatch(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame) {
    let nr = frame.x[16];
    let a = [frame.x[0], frame.x[1], frame.x[2], frame.x[3], frame.x[4]];
    if let Some(r) = crate::xen::dispatch(nr, dom, vcpu, frame) {
        frame.x[0] = match r {
            Ok(v) => v as u64,
            Err(e) => e.as_ret() as u64,
        };
        return;
    }
    let r = match nr {
        hc::CONSOLE_IO => console_io(dom, a),
        hc::XEN_VERSION => xen_version(dom, a),
        hc::SCHED_OP => sched_op(dom, vcpu, a),
        _ => {
            // One line per domain and hypercall number (numbers ≥ 63 share
            // one), so a guest cannot flood the console this way.
            let bit = 1u64 << nr.min(63);
            if dom
                .reported_hypercalls
                .fetch_or(bit, core::sync::atomic::Ordering::Relaxed)
                & bit
                == 0
            {
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
            Err(Errno::ENOSYS)
        }
    };
    frame.x[0] = match r {
        Ok(v) => v as u64,
        Err(e) => e.as_ret() as u64,
    };
}

fn console_io(dom: &Domain, a: [u64; 5]) -> Result<i64, Errno> {
    match a[0] {
        consoleio::WRITE => {
            let count = usize::try_from(a[1])
                .map_err(|_| Errno::EINVAL)?
                .min(CONSOLE_WRITE_MAX);
            let mut buf = [0u8; 256];
            let mut done = 0usize;
            while done < count {
                let n = (count - done).min(buf.len());
                guest_mem::copy_from_guest(dom, a[2] + done as u64, &mut buf[..n])?;
                if dom.is_dom0 {
                    console::write_raw(&buf[..n]);
                } else {
                    dom.console.lock().push(dom.id.0, &buf[..n]);
                }
                done += n;
            }
            Ok(count as i64)
        }
        consoleio::READ => {
            if !dom.is_dom0 {
                return Err(Errno::EPERM);
            }
            let count = usize::try_from(a[1]).map_err(|_| Errno::EINVAL)?.min(256);
            let mut buf = [0u8; 256];
            let n = console::read_input(&mut buf[..count]);
            guest_mem::copy_to_guest(dom, a[2], &buf[..n])?;
            Ok(n as i64)
        }
        // Xen's do_console_io: an unknown sub-op is -ENOSYS.
        _ => Err(Errno::ENOSYS),
    }
}

fn xen_version(dom: &Domain, a: [u64; 5]) -> Result<i64, Errno> {
    match a[0] {
        xenver::VERSION => Ok(i64::from((XEN_VERSION_MAJOR << 16) | XEN_VERSION_MINOR)),
        xenver::EXTRAVERSION => {
            let mut s = [0u8; 16];
            s[..6].copy_from_slice(b"-oxen\0");
            guest_mem::copy_to_guest(dom, a[1], &s)?;
            Ok(0)
        }
        xenver::CAPABILITIES => {
            let mut s = [0u8; 1024];
            let caps = b"xen-3.0-aarch64 ";
            s[..caps.len()].copy_from_slice(caps);
            guest_mem::copy_to_guest(dom, a[1], &s)?;
            Ok(0)
        }
        // Xen: the argument must be NULL (-EINVAL otherwise).
        xenver::PAGESIZE if a[1] != 0 => Err(Errno::EINVAL),
        xenver::PAGESIZE => Ok(4096),
        _ => Err(Errno::ENOSYS),
    }
}

fn sched_op(dom: &Arc<Domain>, vcpu: usize, a: [u64; 5]) -> Result<i64, Errno> {
    match a[0] {
        schedop::YIELD | schedop::BLOCK => {
            sched::yield_current();
            Ok(0)
        }
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

/// `SCHEDOP_remote_shutdown` (Xen's sub-op 4).
const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;

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
