//! Descriptors for the hypervisor's own EL2 stage-1 translation regime
//! (non-VHE: `HCR_EL2.E2H == 0`, one VA range through `TTBR0_EL2`, 4 KiB
//! granule).
//!
//! Layout of a block/page descriptor (Arm ARM DDI 0487, D8.3 "Translation
//! table descriptor formats", stage 1 attribute fields):
//!
//! | bits | field | value used here |
//! |---|---|---|
//! | 0 | valid | 1 |
//! | 1 | 0 = block (level 1/2), 1 = page (level 3) or table | see [`block_desc`] / [`page_desc`] |
//! | 4:2 | AttrIndx: index into `MAIR_EL2` | caller's `attr_index` |
//! | 5 | NS | 0 (ignored in the non-secure EL2 regime) |
//! | 6 | AP\[1\] | 1: RES1 in a regime with a single privilege level |
//! | 7 | AP\[2\] | 0 = read/write, 1 = read-only |
//! | 9:8 | SH | 0b11 inner shareable (ignored for Device memory types) |
//! | 10 | AF | 1 (no access-flag faults) |
//! | 11 | nG | 0 (no ASIDs in this regime) |
//! | 47:12 | output address | `pa` |
//! | 54 | XN | 1 when not executable |
//!
//! Because the shareability field is ignored for Device memory, the helpers
//! need not know what `MAIR_EL2[attr_index]` holds.

use oxen_types::PhysAddr;

/// Output-address bits \[47:12\] of a descriptor.
pub const OA_MASK: u64 = 0x0000_FFFF_FFFF_F000;
/// Bit 0: the descriptor is valid.
pub const VALID: u64 = 1 << 0;
/// Bit 1: table (levels 0-2) or page (level 3) rather than block.
pub const TABLE_OR_PAGE: u64 = 1 << 1;
/// Bits \[4:2\]: AttrIndx.
pub const ATTR_INDEX_SHIFT: u32 = 2;
/// Bit 6: AP\[1\], RES1 at EL2.
pub const AP1_RES1: u64 = 1 << 6;
/// Bit 7: AP\[2\], read-only when set.
pub const AP2_RO: u64 = 1 << 7;
/// Bits \[9:8\] = 0b11: inner shareable.
pub const SH_INNER: u64 = 0b11 << 8;
/// Bit 10: access flag.
pub const AF: u64 = 1 << 10;
/// Bit 54: execute-never.
pub const XN: u64 = 1 << 54;

/// A level-1 (1 GiB) or level-2 (2 MiB) block descriptor mapping `pa` with
/// `MAIR_EL2` attribute index `attr_index` (only bits \[2:0\] are used),
/// read/write or read-only, executable or execute-never. `pa` must be aligned
/// to the block size of the level it is stored at; bits outside \[47:12\] are
/// dropped.
pub fn block_desc(pa: PhysAddr, attr_index: u8, writable: bool, exec: bool) -> u64 {
    let mut d = (pa.0 & OA_MASK)
        | VALID
        | (u64::from(attr_index & 0b111) << ATTR_INDEX_SHIFT)
        | AP1_RES1
        | SH_INNER
        | AF;
    if !writable {
        d |= AP2_RO;
    }
    if !exec {
        d |= XN;
    }
    d
}

/// A level-3 (4 KiB) page descriptor: as [`block_desc`] with bit 1 set.
pub fn page_desc(pa: PhysAddr, attr_index: u8, writable: bool, exec: bool) -> u64 {
    block_desc(pa, attr_index, writable, exec) | TABLE_OR_PAGE
}

/// A table descriptor (levels 0-2) pointing at the next-level table page
/// `next` (4 KiB-aligned). Hierarchical attribute bits \[63:59\] are left 0 so
/// the leaf descriptors alone decide permissions.
pub fn table_desc(next: PhysAddr) -> u64 {
    (next.0 & OA_MASK) | VALID | TABLE_OR_PAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_rwx_block() {
        // Index 1, RW, executable: valid, AttrIndx=1, AP[1], SH=11, AF.
        let d = block_desc(PhysAddr(0x4000_0000), 1, true, true);
        assert_eq!(
            d,
            0x4000_0000 | 0b1 | (1 << 2) | (1 << 6) | (0b11 << 8) | (1 << 10)
        );
        assert_eq!(d & 0b11, 0b01);
    }

    #[test]
    fn read_only_no_exec_page() {
        let d = page_desc(PhysAddr(0x0900_0000), 0, false, false);
        assert_eq!(d & 0b11, 0b11);
        assert_eq!((d >> 2) & 0b111, 0);
        assert_ne!(d & (1 << 7), 0, "AP[2] read-only");
        assert_ne!(d & (1 << 54), 0, "XN");
        assert_eq!(d & OA_MASK, 0x0900_0000);
        // Attribute index is truncated to three bits.
        let d7 = block_desc(PhysAddr(0), 0xff, true, true);
        assert_eq!((d7 >> 2) & 0b111, 7);
        assert_eq!(d7 & (1 << 5), 0, "NS untouched");
    }

    #[test]
    fn table() {
        assert_eq!(table_desc(PhysAddr(0x4012_3000)), 0x4012_3003);
        // Stray high/low bits are masked out.
        assert_eq!(table_desc(PhysAddr(0xffff_0000_4012_3fff)), 0x4012_3003);
    }
}
