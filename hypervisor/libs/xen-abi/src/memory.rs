//! Memory op ABI (`memory.h`): `XENMEM_*` sub-ops, `XENMAPSPACE_*` and the
//! argument structs Linux on arm64 uses, laid out for arm64.
//!
//! Frame-number fields (`gpfn`, `idx` for foreign maps, extent arrays) are
//! GFNs — IPA >> 12 — never virtual addresses. Guest handles are 8 bytes.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENMEM_increase_reservation`.
pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
/// `XENMEM_decrease_reservation`.
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `XENMEM_maximum_ram_page`.
pub const XENMEM_MAXIMUM_RAM_PAGE: u64 = 2;
/// `XENMEM_current_reservation`.
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// `XENMEM_maximum_reservation`.
pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
/// `XENMEM_populate_physmap`.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `XENMEM_exchange`.
pub const XENMEM_EXCHANGE: u64 = 11;
/// `XENMEM_maximum_gpfn`.
pub const XENMEM_MAXIMUM_GPFN: u64 = 14;
/// `XENMEM_remove_from_physmap`.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
/// `XENMEM_add_to_physmap_batch` (Linux: `add_to_physmap_range`).
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u64 = 23;
/// `XENMEM_claim_pages`: reserve free memory for a domain being built.
pub const XENMEM_CLAIM_PAGES: u64 = 24;
/// `XENMEM_acquire_resource`.
pub const XENMEM_ACQUIRE_RESOURCE: u64 = 28;

/// Xen keeps a continuation start extent in `cmd` bits from here up
/// (`MEMOP_EXTENT_SHIFT`); Linux always passes 0 there.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
/// Mask of the sub-op number in `cmd` (`MEMOP_CMD_MASK`).
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;

/// `XENMAPSPACE_shared_info`: idx must be 0.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`: idx is a grant table frame index.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn`.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPSPACE_gmfn_range` (add_to_physmap only).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`: idx is a GFN of `foreign_domid`.
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `XENMAPSPACE_dev_mmio`.
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;
/// Flag in `idx` for grant table status frames (v2 only).
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `XENMEM_resource_ioreq_server`.
pub const XENMEM_RESOURCE_IOREQ_SERVER: u16 = 0;
/// `XENMEM_resource_grant_table`.
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
/// `XENMEM_resource_grant_table_id_shared`.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;
/// `XENMEM_resource_grant_table_id_status`.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1;

/// `struct xen_memory_reservation` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenMemoryReservation {
    /// Guest handle of a `xen_pfn_t` array (GFNs).
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// log2 of the pages per extent.
    pub extent_order: u32,
    /// `XENMEMF_*` (`address_bits` in old interfaces).
    pub mem_flags: u32,
    /// Domain (`DOMID_SELF` allowed).
    pub domid: u16,
    /// Implicit C padding.
    pub _pad: [u8; 6],
}

/// `struct xen_add_to_physmap` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenAddToPhysmap {
    /// Domain (`DOMID_SELF` allowed).
    pub domid: u16,
    /// Pages for `gmfn_range` only; Linux leaves it uninitialised otherwise.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: u64,
    /// GFN where the page should appear.
    pub gpfn: u64,
}

/// `struct xen_add_to_physmap_batch` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenAddToPhysmapBatch {
    /// Domain (`DOMID_SELF` allowed).
    pub domid: u16,
    /// `XENMAPSPACE_*`.
    pub space: u16,
    /// Number of entries.
    pub size: u16,
    /// Foreign domain for `gmfn_foreign`.
    pub foreign_domid: u16,
    /// Guest handle of the `xen_ulong_t` idx array.
    pub idxs: u64,
    /// Guest handle of the `xen_pfn_t` GFN array.
    pub gpfns: u64,
    /// Guest handle of the `int` error array (out).
    pub errs: u64,
}

/// `struct xen_remove_from_physmap` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenRemoveFromPhysmap {
    /// Domain (`DOMID_SELF` allowed).
    pub domid: u16,
    /// Implicit C padding.
    pub _pad: [u8; 6],
    /// GFN to unmap.
    pub gpfn: u64,
}

/// `struct xen_mem_acquire_resource` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenMemAcquireResource {
    /// Domain owning the resource.
    pub domid: u16,
    /// `XENMEM_resource_*`.
    pub r#type: u16,
    /// Resource id (grant table: shared 0, status 1).
    pub id: u32,
    /// IN/OUT: number of frames.
    pub nr_frames: u32,
    /// OUT: `XENMEM_rsrc_acq_caller_owned` etc.
    pub flags: u32,
    /// IN: first frame index.
    pub frame: u64,
    /// Guest handle of the `xen_pfn_t` frame list.
    pub frame_list: u64,
}

const _: () = assert!(size_of::<XenMemoryReservation>() == 32);
const _: () = assert!(offset_of!(XenMemoryReservation, extent_order) == 16);
const _: () = assert!(offset_of!(XenMemoryReservation, domid) == 24);
const _: () = assert!(size_of::<XenAddToPhysmap>() == 24);
const _: () = assert!(offset_of!(XenAddToPhysmap, space) == 4);
const _: () = assert!(offset_of!(XenAddToPhysmap, idx) == 8);
const _: () = assert!(offset_of!(XenAddToPhysmap, gpfn) == 16);
const _: () = assert!(size_of::<XenAddToPhysmapBatch>() == 32);
const _: () = assert!(offset_of!(XenAddToPhysmapBatch, errs) == 24);
const _: () = assert!(size_of::<XenRemoveFromPhysmap>() == 16);
const _: () = assert!(size_of::<XenMemAcquireResource>() == 32);
const _: () = assert!(offset_of!(XenMemAcquireResource, frame) == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_to_physmap_from_guest_bytes() {
        let mut raw = [0u8; 24];
        raw[0..2].copy_from_slice(&0x7ff0u16.to_le_bytes());
        raw[2..4].copy_from_slice(&0xabcdu16.to_le_bytes()); // garbage size
        raw[4..8].copy_from_slice(&XENMAPSPACE_GRANT_TABLE.to_le_bytes());
        raw[8..16].copy_from_slice(&3u64.to_le_bytes());
        raw[16..24].copy_from_slice(&0x38003u64.to_le_bytes());
        let a = XenAddToPhysmap::read_from_bytes(&raw).unwrap();
        assert_eq!(a.domid, 0x7ff0);
        assert_eq!(a.space, XENMAPSPACE_GRANT_TABLE);
        assert_eq!(a.idx, 3);
        assert_eq!(a.gpfn, 0x38003);
        assert_eq!(0x47 & MEMOP_CMD_MASK, XENMEM_ADD_TO_PHYSMAP);
    }
}
