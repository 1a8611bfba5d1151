//! `console_io`: guests print on the hypervisor console (Dom0 raw, others
//! line-buffered as `(d<N>) ...`) and Dom0 reads console input.

extern crate alloc;

use alloc::sync::Arc;

use xen_abi::Errno;
use xen_abi::hypercall::consoleio;

use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::{console, guest_mem};

/// Most bytes one `console_io(write)` call prints (Xen also bounds a chunk).
const CONSOLE_WRITE_MAX: usize = 4096;

/// `console_io(cmd, count, buffer)`.
pub(crate) fn console_io(
    dom: &Arc<Domain>,
    _vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
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
