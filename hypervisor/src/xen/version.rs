//! `xen_version`: every sub-op in one place (version numbers, strings the
//! toolstack shows in `xl info`, feature bits, the domain handle).

extern crate alloc;

use alloc::sync::Arc;

use oxen_xen::hcall;
use xen_abi::features::XenFeatureInfo;
use xen_abi::hypercall::xenver;
use xen_abi::{Errno, XEN_VERSION_MAJOR, XEN_VERSION_MINOR};

use super::{read_arg, write_arg};
use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::guest_mem;

/// `XENVER_extraversion` (Xen's `XEN_EXTRAVERSION`, shown after "4.17").
pub const EXTRAVERSION: &str = "-oxen";
/// `XENVER_capabilities`: what `xc_dom_compat_check` looks for.
pub const CAPABILITIES: &str = "xen-3.0-aarch64 ";

/// The hypervisor's command line (set at boot; `XENVER_commandline`).
pub static COMMAND_LINE: spin::Once<alloc::string::String> = spin::Once::new();

/// `xen_version(cmd, arg)`.
pub(crate) fn xen_version(
    dom: &Arc<Domain>,
    _vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
    let arg = a[1];
    match a[0] {
        xenver::VERSION => Ok(i64::from((XEN_VERSION_MAJOR << 16) | XEN_VERSION_MINOR)),
        xenver::EXTRAVERSION => fixed_string(dom, arg, EXTRAVERSION.as_bytes(), 16),
        xenver::CAPABILITIES => fixed_string(dom, arg, CAPABILITIES.as_bytes(), 1024),
        // Xen: the argument must be NULL (-EINVAL otherwise).
        xenver::PAGESIZE if arg != 0 => Err(Errno::EINVAL),
        xenver::PAGESIZE => Ok(4096),
        xenver::GET_FEATURES => {
            let mut fi: XenFeatureInfo = read_arg(dom, arg)?;
            if fi.submap_idx != 0 {
                return Err(Errno::EINVAL);
            }
            // Dom0 is built 1:1 (IPA == PA), every other domain is not.
            fi.submap = hcall::features_submap0(dom.is_dom0, dom.is_dom0);
            write_arg(dom, arg, &fi)?;
            Ok(0)
        }
        xenver::CHANGESET => fixed_string(dom, arg, b"oxen", 64),
        xenver::COMMANDLINE => {
            let cmdline = COMMAND_LINE.get().map_or("", |s| s.as_str());
            fixed_string(dom, arg, cmdline.as_bytes(), 1024)
        }
        xenver::COMPILE_INFO => {
            // compiler[64], compile_by[16], compile_domain[32], compile_date[32].
            let mut b = [0u8; 144];
            b[..5].copy_from_slice(b"rustc");
            b[64..68].copy_from_slice(b"oxen");
            guest_mem::copy_to_guest(dom, arg, &b)?;
            Ok(0)
        }
        // xen_platform_parameters { virt_start }: nothing is reserved in a
        // guest's address space on ARM.
        xenver::PLATFORM_PARAMETERS => {
            guest_mem::copy_to_guest(dom, arg, &0u64.to_le_bytes())?;
            Ok(0)
        }
        // The domain handle (UUID) the toolstack gave it (zero for boot-time domains).
        xenver::GUEST_HANDLE => {
            let handle = *dom.handle.lock();
            guest_mem::copy_to_guest(dom, arg, &handle)?;
            Ok(0)
        }
        // oxen has no build id: Xen answers -ENODATA then.
        xenver::BUILD_ID => Err(Errno::ENODATA),
        _ => Err(Errno::ENOSYS),
    }
}

/// Copy `s` NUL-padded into a guest buffer of `size` bytes.
fn fixed_string(dom: &Domain, arg: u64, s: &[u8], size: usize) -> Result<i64, Errno> {
    let mut b = [0u8; 1024];
    let n = s.len().min(size - 1);
    b[..n].copy_from_slice(&s[..n]);
    guest_mem::copy_to_guest(dom, arg, &b[..size])?;
    Ok(0)
}
