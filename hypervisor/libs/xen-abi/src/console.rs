//! PV console ring page (`io/console.h`, Xen 4.17): `struct xencons_interface`.
//!
//! A guest's console (hvc0 under Linux) is one shared page with two byte rings: `in`
//! (backend → guest, 1024 bytes) and `out` (guest → backend, 2048 bytes), each with a
//! free-running consumer and producer index. The guest produces `out` and consumes `in`; the
//! backend (xenconsoled) the opposite. After changing an index each side notifies the other
//! through the console event channel. Where the page is: `HVM_PARAM_CONSOLE_PFN` / the
//! `console/ring-ref` node (a GFN), or grant entry [`crate::grant_table::GNTTAB_RESERVED_CONSOLE`].
//!
//! Invariant of a well-behaved peer: `prod - cons` (wrapping) never exceeds the ring size.
//! The peer is untrusted: [`ring_used`] is the one place that turns two indexes read from
//! the page into a byte count, and it refuses impossible pairs.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of the `in` ring (backend → guest) (`sizeof(intf->in)`).
pub const XENCONS_IN_SIZE: u32 = 1024;
/// Size of the `out` ring (guest → backend) (`sizeof(intf->out)`).
pub const XENCONS_OUT_SIZE: u32 = 2048;

/// `struct xencons_interface` (3088 bytes at the start of the ring page).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenconsInterface {
    /// Bytes for the guest to read (`in`; the backend produces).
    pub input: [u8; XENCONS_IN_SIZE as usize],
    /// Bytes the guest wrote (`out`; the backend consumes).
    pub output: [u8; XENCONS_OUT_SIZE as usize],
    /// Guest's consumer index of `in`.
    pub in_cons: u32,
    /// Backend's producer index of `in`.
    pub in_prod: u32,
    /// Backend's consumer index of `out`.
    pub out_cons: u32,
    /// Guest's producer index of `out`.
    pub out_prod: u32,
}

/// Byte offset of the `in` ring in the page.
pub const OFF_IN: usize = offset_of!(XenconsInterface, input);
/// Byte offset of the `out` ring.
pub const OFF_OUT: usize = offset_of!(XenconsInterface, output);
/// Byte offset of `in_cons`.
pub const OFF_IN_CONS: usize = offset_of!(XenconsInterface, in_cons);
/// Byte offset of `in_prod`.
pub const OFF_IN_PROD: usize = offset_of!(XenconsInterface, in_prod);
/// Byte offset of `out_cons`.
pub const OFF_OUT_CONS: usize = offset_of!(XenconsInterface, out_cons);
/// Byte offset of `out_prod`.
pub const OFF_OUT_PROD: usize = offset_of!(XenconsInterface, out_prod);

/// Position in the `in` ring of a free-running index (`MASK_XENCONS_IDX(idx, intf->in)`).
pub const fn mask_in(idx: u32) -> usize {
    (idx & (XENCONS_IN_SIZE - 1)) as usize
}

/// Position in the `out` ring of a free-running index.
pub const fn mask_out(idx: u32) -> usize {
    (idx & (XENCONS_OUT_SIZE - 1)) as usize
}

/// Bytes between `cons` and `prod` in a ring of `size` bytes, or `None` when the pair is
/// impossible (`prod - cons > size`: a confused or hostile peer; Xen's xenconsoled then
/// ignores the ring).
pub const fn ring_used(cons: u32, prod: u32, size: u32) -> Option<u32> {
    let used = prod.wrapping_sub(cons);
    if used > size { None } else { Some(used) }
}

const _: () = assert!(XENCONS_IN_SIZE.is_power_of_two() && XENCONS_OUT_SIZE.is_power_of_two());
const _: () = assert!(OFF_IN == 0);
const _: () = assert!(OFF_OUT == 1024);
const _: () = assert!(OFF_IN_CONS == 3072);
const _: () = assert!(OFF_IN_PROD == 3076);
const _: () = assert!(OFF_OUT_CONS == 3080);
const _: () = assert!(OFF_OUT_PROD == 3084);
const _: () = assert!(size_of::<XenconsInterface>() == 3088);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_wrap_into_the_rings() {
        assert_eq!(mask_in(0), 0);
        assert_eq!(mask_in(1025), 1);
        assert_eq!(mask_out(2047), 2047);
        assert_eq!(mask_out(2048), 0);
        assert_eq!(mask_out(u32::MAX), 2047);
    }

    #[test]
    fn ring_used_refuses_impossible_pairs() {
        assert_eq!(ring_used(0, 0, XENCONS_OUT_SIZE), Some(0));
        assert_eq!(ring_used(10, 2058, XENCONS_OUT_SIZE), Some(2048));
        assert_eq!(ring_used(10, 2059, XENCONS_OUT_SIZE), None);
        // Free-running indexes wrap at 2^32.
        assert_eq!(ring_used(u32::MAX - 1, 3, XENCONS_OUT_SIZE), Some(5));
        // prod behind cons is a huge "used" count: refused.
        assert_eq!(ring_used(5, 4, XENCONS_IN_SIZE), None);
    }

    #[test]
    fn page_layout_round_trips_through_bytes() {
        let mut page = [0u8; 4096];
        page[OFF_OUT_PROD..OFF_OUT_PROD + 4].copy_from_slice(&7u32.to_le_bytes());
        page[OFF_OUT] = b'h';
        let (intf, _) = XenconsInterface::read_from_prefix(&page[..]).unwrap();
        assert_eq!(intf.out_prod, 7);
        assert_eq!(intf.output[0], b'h');
        assert_eq!(intf.in_cons, 0);
    }
}
