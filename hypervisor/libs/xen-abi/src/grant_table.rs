//! Grant table ABI (`grant_table.h`): `GNTTABOP_*` numbers, the v1 grant
//! entry, `GTF_*` entry flags, `GNTMAP_*` map flags, `GNTST_*` status codes
//! and the operation structs, laid out for arm64.
//!
//! Xen on ARM supports only grant table version 1 (`GNTTAB_MAX_VERSION` is
//! 1 there), which is what Linux uses. A v1 entry is 8 bytes, 512 per 4 KiB
//! frame. The hypervisor updates `flags` of entries in guest memory with
//! atomic compare-and-exchange on the 32-bit `{flags, domid}` header.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;
/// A grant mapping handle (`grant_handle_t`).
pub type GrantHandle = u32;

/// `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_MAP_GRANT_REF: u64 = 0;
/// `GNTTABOP_unmap_grant_ref`.
pub const GNTTABOP_UNMAP_GRANT_REF: u64 = 1;
/// `GNTTABOP_setup_table`.
pub const GNTTABOP_SETUP_TABLE: u64 = 2;
/// `GNTTABOP_dump_table`.
pub const GNTTABOP_DUMP_TABLE: u64 = 3;
/// `GNTTABOP_transfer`.
pub const GNTTABOP_TRANSFER: u64 = 4;
/// `GNTTABOP_copy`.
pub const GNTTABOP_COPY: u64 = 5;
/// `GNTTABOP_query_size`.
pub const GNTTABOP_QUERY_SIZE: u64 = 6;
/// `GNTTABOP_unmap_and_replace`.
pub const GNTTABOP_UNMAP_AND_REPLACE: u64 = 7;
/// `GNTTABOP_set_version`.
pub const GNTTABOP_SET_VERSION: u64 = 8;
/// `GNTTABOP_get_status_frames`.
pub const GNTTABOP_GET_STATUS_FRAMES: u64 = 9;
/// `GNTTABOP_get_version`.
pub const GNTTABOP_GET_VERSION: u64 = 10;
/// `GNTTABOP_swap_grant_ref`.
pub const GNTTABOP_SWAP_GRANT_REF: u64 = 11;
/// `GNTTABOP_cache_flush`.
pub const GNTTABOP_CACHE_FLUSH: u64 = 12;

/// Entries reserved by guests at the start of the table (`GNTTAB_NR_RESERVED_ENTRIES`).
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Reserved entry for the console ring (`GNTTAB_RESERVED_CONSOLE`).
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// Reserved entry for the xenstore ring (`GNTTAB_RESERVED_XENSTORE`).
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// Size of a v1 grant entry in bytes.
pub const GRANT_ENTRY_V1_SIZE: usize = 8;
/// v1 grant entries per 4 KiB frame.
pub const GRANT_ENTRIES_V1_PER_FRAME: u32 = 4096 / GRANT_ENTRY_V1_SIZE as u32;

/// `GTF_invalid`: entry grants nothing.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: `domid` may map/access `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`: `domid` may transfer a page into `frame`.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive` (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// Mask of the entry type bits.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: only read access is granted.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by the hypervisor while the frame is mapped/copied.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by the hypervisor while the frame is writably mapped/copied.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT` cache attribute.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD` cache attribute.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT` cache attribute.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page` (v2 only).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `GTF_transfer_committed`.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `GTF_transfer_completed`.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// `GNTMAP_device_map`.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// Bits free for guest use (`GNTMAP_guest_avail_mask`).
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = !0u32 << 16;

/// `GNTCOPY_source_gref`: `source.u` is a grant ref (else a local GFN).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: `dest.u` is a grant ref (else a local GFN).
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `GNTTAB_CACHE_CLEAN`.
pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
/// `GNTTAB_CACHE_INVAL`.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `GNTTAB_CACHE_SOURCE_GREF`.
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`.
pub const GNTST_NO_SPACE: i16 = -13;

/// `struct grant_entry_v1` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: u16,
    /// The granted GFN (of the granting domain).
    pub frame: u32,
}

impl GrantEntryV1 {
    /// The `{flags, domid}` header as the 32-bit little-endian word the
    /// hypervisor compare-and-exchanges (flags in the low half).
    pub const fn header(&self) -> u32 {
        self.flags as u32 | ((self.domid as u32) << 16)
    }
}

/// `struct gnttab_map_grant_ref` (32 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabMapGrantRef {
    /// IN: IPA in the caller where to map (auto-translated guests).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: grant reference in `dom`'s table.
    pub r#ref: u32,
    /// IN: granting domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for unmap.
    pub handle: u32,
    /// OUT: host physical address of the granted frame.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabUnmapGrantRef {
    /// IN: IPA the grant is mapped at.
    pub host_addr: u64,
    /// IN: device address (Linux passes 0).
    pub dev_bus_addr: u64,
    /// IN: handle from the map.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Implicit C padding.
    pub _pad: u16,
}

/// `struct gnttab_setup_table` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabSetupTable {
    /// IN: domain.
    pub dom: u16,
    /// Implicit C padding.
    pub _pad0: u16,
    /// IN: number of frames wanted.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Implicit C padding.
    pub _pad1: [u8; 6],
    /// IN: guest handle of the frame list (unused on ARM).
    pub frame_list: u64,
}

/// One side of a `gnttab_copy` (`struct gnttab_copy_ptr`, 16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabCopyPtr {
    /// Union: grant ref (low 32 bits) when the side's `GNTCOPY_*_gref` flag
    /// is set, else the caller's GFN.
    pub u: u64,
    /// Granting domain (gref side) or `DOMID_SELF` (GFN side).
    pub domid: u16,
    /// Byte offset in the page.
    pub offset: u16,
    /// Implicit C padding.
    pub _pad: u32,
}

impl GnttabCopyPtr {
    /// The union read as a grant ref.
    pub const fn gref(&self) -> GrantRef {
        self.u as u32
    }
}

/// `struct gnttab_copy` (40 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabCopy {
    /// IN: source.
    pub source: GnttabCopyPtr,
    /// IN: destination.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy.
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Implicit C padding.
    pub _pad: u16,
}

/// `struct gnttab_query_size` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabQuerySize {
    /// IN: domain (`DOMID_SELF` allowed).
    pub dom: u16,
    /// Implicit C padding.
    pub _pad0: u16,
    /// OUT: current number of frames.
    pub nr_frames: u32,
    /// OUT: maximum number of frames.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Implicit C padding.
    pub _pad1: u16,
}

/// `struct gnttab_set_version` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabSetVersion {
    /// IN: wanted version; OUT: version in force.
    pub version: u32,
}

/// `struct gnttab_get_version` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabGetVersion {
    /// IN: domain.
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// OUT: version.
    pub version: u32,
}

/// `struct gnttab_cache_flush` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabCacheFlush {
    /// Union: device bus address, or grant ref with `GNTTAB_CACHE_SOURCE_GREF`.
    pub a: u64,
    /// Offset in the page.
    pub offset: u16,
    /// Length.
    pub length: u16,
    /// `GNTTAB_CACHE_*`.
    pub op: u32,
}

const _: () = assert!(size_of::<GrantEntryV1>() == GRANT_ENTRY_V1_SIZE);
const _: () = assert!(offset_of!(GrantEntryV1, frame) == 4);
const _: () = assert!(size_of::<GnttabMapGrantRef>() == 32);
const _: () = assert!(offset_of!(GnttabMapGrantRef, r#ref) == 12);
const _: () = assert!(offset_of!(GnttabMapGrantRef, dom) == 16);
const _: () = assert!(offset_of!(GnttabMapGrantRef, status) == 18);
const _: () = assert!(offset_of!(GnttabMapGrantRef, handle) == 20);
const _: () = assert!(offset_of!(GnttabMapGrantRef, dev_bus_addr) == 24);
const _: () = assert!(size_of::<GnttabUnmapGrantRef>() == 24);
const _: () = assert!(offset_of!(GnttabUnmapGrantRef, status) == 20);
const _: () = assert!(size_of::<GnttabSetupTable>() == 24);
const _: () = assert!(offset_of!(GnttabSetupTable, status) == 8);
const _: () = assert!(offset_of!(GnttabSetupTable, frame_list) == 16);
const _: () = assert!(size_of::<GnttabCopyPtr>() == 16);
const _: () = assert!(offset_of!(GnttabCopyPtr, offset) == 10);
const _: () = assert!(size_of::<GnttabCopy>() == 40);
const _: () = assert!(offset_of!(GnttabCopy, len) == 32);
const _: () = assert!(offset_of!(GnttabCopy, status) == 36);
const _: () = assert!(size_of::<GnttabQuerySize>() == 16);
const _: () = assert!(offset_of!(GnttabQuerySize, max_nr_frames) == 8);
const _: () = assert!(offset_of!(GnttabQuerySize, status) == 12);
const _: () = assert!(size_of::<GnttabSetVersion>() == 4);
const _: () = assert!(size_of::<GnttabGetVersion>() == 8);
const _: () = assert!(size_of::<GnttabCacheFlush>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_header_matches_memory_layout() {
        let e = GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS | GTF_READONLY,
            domid: 7,
            frame: 0x4_0001,
        };
        let b = e.as_bytes();
        assert_eq!(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), e.header());
        assert_eq!(e.header(), 0x0007_0005);
        assert_eq!(GRANT_ENTRIES_V1_PER_FRAME, 512);
    }

    #[test]
    fn copy_ptr_union() {
        let p = GnttabCopyPtr {
            u: 0xdead_0000_0000_0011,
            domid: 1,
            offset: 2,
            _pad: 0,
        };
        assert_eq!(p.gref(), 0x11);
    }
}
