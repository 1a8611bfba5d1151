//! Checked access to guest memory named by hypercall arguments.
//!
//! Hypercall pointers are guest *virtual* addresses of the calling vCPU.
//! Each page is translated with the hardware walker through the guest's own
//! stage 1 and stage 2 (`AT S12E1R/W`, so a guest can only name memory it
//! could access itself), and the resulting host address must lie inside the
//! domain's own RAM — never a device, never another domain's pages. Any
//! failure is `-EFAULT` for the guest, never a hypervisor fault.

use oxen_types::{PAGE_SIZE, PhysAddr};
use xen_abi::Errno;

use crate::arch::{self, sysreg};
use crate::domain::Domain;

/// PAR_EL1.F: the translation failed.
const PAR_F: u64 = 1 << 0;
/// PAR_EL1.PA, bits [47:12].
const PAR_PA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Why a guest buffer could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMemError {
    /// The address does not translate, or not to the domain's RAM.
    Fault(u64),
    /// Address arithmetic overflowed.
    Overflow,
}

impl GuestMemError {
    /// The errno a hypercall returns for it.
    pub fn errno(self) -> Errno {
        Errno::EFAULT
    }
}

fn translate(dom: &Domain, va: u64, len: u64, write: bool) -> Result<PhysAddr, GuestMemError> {
    // SAFETY: called while handling a trap of `dom`'s vCPU on this CPU, so
    // its EL1 registers and stage 2 are the loaded ones.
    let par = unsafe { sysreg::at_s12e1(va, write) };
    if par & PAR_F != 0 {
        return Err(GuestMemError::Fault(va));
    }
    let pa = PhysAddr((par & PAR_PA_MASK) | (va & (PAGE_SIZE - 1)));
    if !dom.owns_phys(pa, len) {
        return Err(GuestMemError::Fault(va));
    }
    Ok(pa)
}

/// Walk `[va, va+len)` page by page, calling `f(pa, offset, chunk)`.
fn for_each_chunk(
    dom: &Domain,
    va: u64,
    len: usize,
    write: bool,
    mut f: impl FnMut(PhysAddr, usize, usize),
) -> Result<(), GuestMemError> {
    va.checked_add(len as u64).ok_or(GuestMemError::Overflow)?;
    let mut done = 0usize;
    while done < len {
        let cur = va + done as u64;
        let in_page = (PAGE_SIZE - (cur & (PAGE_SIZE - 1))) as usize;
        let chunk = in_page.min(len - done);
        let pa = translate(dom, cur, chunk as u64, write)?;
        f(pa, done, chunk);
        done += chunk;
    }
    Ok(())
}

/// Copy `buf.len()` bytes from guest virtual address `va`.
pub fn copy_from_guest(dom: &Domain, va: u64, buf: &mut [u8]) -> Result<(), GuestMemError> {
    let dst = buf.as_mut_ptr() as u64;
    for_each_chunk(dom, va, buf.len(), false, |pa, off, n| {
        // SAFETY: `pa..pa+n` is the domain's RAM (checked by translate) and
        // `dst+off..+n` lies inside `buf`.
        unsafe { arch::copy_phys(dst + off as u64, pa.as_u64(), n) };
    })
}

/// Copy `data` to guest virtual address `va`.
pub fn copy_to_guest(dom: &Domain, va: u64, data: &[u8]) -> Result<(), GuestMemError> {
    let src = data.as_ptr() as u64;
    for_each_chunk(dom, va, data.len(), true, |pa, off, n| {
        // SAFETY: as in copy_from_guest, in the other direction.
        unsafe { arch::copy_phys(pa.as_u64(), src + off as u64, n) };
    })
}

/// Read a little-endian `u32` from guest virtual address `va`.
pub fn read_u32(dom: &Domain, va: u64) -> Result<u32, GuestMemError> {
    let mut b = [0u8; 4];
    copy_from_guest(dom, va, &mut b)?;
    Ok(u32::from_le_bytes(b))
}
