//! Stage-2 (IPA → PA) translation tables, VMSAv8-64 with the 4 KiB granule.
//!
//! [`Stage2`] owns one domain's tree of table pages. Pages come from, and go
//! back to, a [`TableMemory`], which is also the only way the tables are read
//! or written — so the hypervisor can back it with its identity map and the
//! tests with fake pages.
//!
//! Geometry: level *n* entries map `1 << (12 + 9 * (3 - n))` bytes (L0 512 GiB,
//! L1 1 GiB, L2 2 MiB, L3 4 KiB). The walk starts at
//! [`Stage2Config::start_level`], whose table may be up to 16 concatenated
//! pages ([`Stage2Config::root_pages`]); an index into it simply runs on into
//! the following pages.
//!
//! Stage-2 leaf descriptor (Arm ARM DDI 0487, D8.3 "Translation table
//! descriptor formats", stage 2 attributes; without FEAT_S2FWB):
//!
//! | bits | field | value |
//! |---|---|---|
//! | 0 | valid | 1 |
//! | 1 | 1 = table (L0-L2) or page (L3); 0 = block (L1/L2 only) | |
//! | 5:2 | MemAttr | Normal WB `0b1111`, Device-nGnRE `0b0001` |
//! | 7:6 | S2AP | bit 6 = read, bit 7 = write |
//! | 9:8 | SH | `0b11` inner (Normal), `0b10` outer (Device; ignored by hardware) |
//! | 10 | AF | 1 |
//! | 47:12 | output address | |
//! | 54:53 | XN | `0b10` = execute-never at EL1 and EL0; `0b00` = executable |
//!
//! Invariants kept by every operation, including failed ones:
//! * invalid entries are all-zero;
//! * every table page reachable from the root holds at least one valid entry
//!   (unmap frees tables it empties; a failed map frees tables it created), so
//!   a table entry always means "something is mapped below";
//! * no table page is reachable twice, and every allocated page is reachable
//!   (so [`Stage2::destroy`] returns them all).
//!
//! TLB maintenance is the caller's business, except in the middle of a block
//! split, where [`TableMemory::flush_for_bbm`] is called (see there).

use oxen_types::{Ipa, PAGE_SIZE, PhysAddr};

/// Where stage-2 table pages come from and how they are accessed.
pub trait TableMemory {
    /// A zeroed 4 KiB page for a translation table; `None` when out of memory.
    fn alloc_table(&mut self) -> Option<PhysAddr>;
    /// Give back a page from [`alloc_table`](Self::alloc_table).
    fn free_table(&mut self, pa: PhysAddr);
    /// Access the 512 descriptors of the table page at `pa` (the hypervisor
    /// implements this over its identity map; tests over fake pages).
    fn table(&mut self, pa: PhysAddr) -> &mut [u64; 512];

    /// The root table: `pages` zeroed, physically contiguous 4 KiB pages
    /// aligned to `pages * 4 KiB` (the architecture requires concatenated
    /// root tables to be aligned to their total size). `None` when out of
    /// memory or unsupported.
    ///
    /// The default supports only `pages == 1` (via
    /// [`alloc_table`](Self::alloc_table)); an implementation that must serve
    /// 40- or 42-bit IPA configurations (2 or 8 concatenated pages, see
    /// [`Stage2Config::from_parange`]) has to override it, and then
    /// [`free_root`](Self::free_root) if needed.
    fn alloc_root(&mut self, pages: usize) -> Option<PhysAddr> {
        if pages == 1 { self.alloc_table() } else { None }
    }

    /// Give back a root from [`alloc_root`](Self::alloc_root). The default
    /// frees each of its pages with [`free_table`](Self::free_table).
    fn free_root(&mut self, pa: PhysAddr, pages: usize) {
        for i in 0..pages as u64 {
            self.free_table(pa.add(i * PAGE_SIZE));
        }
    }

    /// Break-before-make hook. While splitting a block, [`Stage2::unmap`]
    /// first writes the block's entry invalid, then calls this with the range
    /// the block covered, then writes the table that replaces it. A live
    /// domain needs the old block out of every TLB before the table is
    /// written (the break-before-make rule for changing block size, Arm ARM
    /// chapter D8, TLB maintenance): `DSB ISHST; TLBI IPAS2E1IS` (or
    /// `VMALLS12E1IS`) for the domain's VMID; `DSB ISH`. The default does
    /// nothing, which is right for a domain that has not run yet.
    fn flush_for_bbm(&mut self, ipa: Ipa, size: u64) {
        let _ = (ipa, size);
    }
}

/// Memory type of a stage-2 mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Normal memory, outer and inner write-back cacheable (MemAttr `0b1111`).
    Normal,
    /// Device-nGnRE (MemAttr `0b0001`).
    Device,
}

/// Access rights and memory type of a stage-2 mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Attrs {
    /// Guest may read (S2AP bit 6).
    pub read: bool,
    /// Guest may write (S2AP bit 7).
    pub write: bool,
    /// Guest may execute (XN = `0b00` rather than `0b10`).
    pub exec: bool,
    /// Memory type.
    pub mem: MemType,
}

impl S2Attrs {
    /// Guest RAM: read, write, execute, Normal.
    pub const RAM: S2Attrs = S2Attrs {
        read: true,
        write: true,
        exec: true,
        mem: MemType::Normal,
    };
    /// Passed-through device MMIO: read, write, no execute, Device.
    pub const DEVICE: S2Attrs = S2Attrs {
        read: true,
        write: true,
        exec: false,
        mem: MemType::Device,
    };
    /// Read-only RAM: read, execute, Normal.
    pub const RO_RAM: S2Attrs = S2Attrs {
        read: true,
        write: false,
        exec: true,
        mem: MemType::Normal,
    };
}

/// Stage-2 geometry and the `VTCR_EL2` fields derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Config {
    /// IPA size in bits (`64 - t0sz`).
    pub ipa_bits: u32,
    /// Level of the root table (0, 1 or 2 with the 4 KiB granule).
    pub start_level: u32,
    /// Number of concatenated 4 KiB pages in the root table (1..=16).
    pub root_pages: usize,
    /// `VTCR_EL2.T0SZ`.
    pub t0sz: u32,
    /// `VTCR_EL2.SL0` (4 KiB granule: 0 = level 2, 1 = level 1, 2 = level 0).
    pub sl0: u32,
    /// `VTCR_EL2.PS` (same encoding as `ID_AA64MMFR0_EL1.PARange`).
    pub ps: u32,
}

impl Stage2Config {
    /// From `ID_AA64MMFR0_EL1.PARange` (the raw 4-bit field): IPA size = PA
    /// size, with start level and root concatenation as Xen's p2m picks them
    /// (Arm ARM D8.2 "Translation table walk", concatenated stage-2 root
    /// tables):
    ///
    /// | PARange | bits | start level | root pages |
    /// |---|---|---|---|
    /// | 0 | 32 | 1 | 1 |
    /// | 1 | 36 | 1 | 1 |
    /// | 2 | 40 | 1 | 2 |
    /// | 3 | 42 | 1 | 8 |
    /// | 4 | 44 | 0 | 1 |
    /// | 5 | 48 | 0 | 1 |
    ///
    /// 6 (52-bit PA, needs FEAT_LPA/LPA2 descriptors this crate does not
    /// write) is capped to 48 bits. Reserved values (7..=15) give the
    /// conservative 40 bits: an unknown CPU may not implement more.
    pub fn from_parange(parange: u8) -> Self {
        let (ipa_bits, ps, start_level, root_pages) = match parange & 0xf {
            0 => (32, 0, 1, 1),
            1 => (36, 1, 1, 1),
            3 => (42, 3, 1, 8),
            4 => (44, 4, 0, 1),
            5 | 6 => (48, 5, 0, 1),
            _ => (40, 2, 1, 2),
        };
        Self {
            ipa_bits,
            start_level,
            root_pages,
            t0sz: 64 - ipa_bits,
            sl0: 2 - start_level,
            ps,
        }
    }

    /// The `VTCR_EL2` value. Field positions from Arm ARM DDI 0487, D23.2
    /// "VTCR_EL2, Virtualization Translation Control Register":
    /// T0SZ \[5:0\], SL0 \[7:6\], IRGN0 \[9:8\] = 0b01 (write-back,
    /// read/write-allocate), ORGN0 \[11:10\] = 0b01, SH0 \[13:12\] = 0b11
    /// (inner shareable), TG0 \[15:14\] = 0b00 (4 KiB), PS \[18:16\], bit 31
    /// RES1. VS (16-bit VMID), HA/HD and the rest stay 0.
    pub fn vtcr(&self) -> u64 {
        const IRGN0_WBWA: u64 = 0b01 << 8;
        const ORGN0_WBWA: u64 = 0b01 << 10;
        const SH0_INNER: u64 = 0b11 << 12;
        const TG0_4K: u64 = 0;
        const RES1: u64 = 1 << 31;
        u64::from(self.t0sz & 0x3f)
            | u64::from(self.sl0 & 0b11) << 6
            | IRGN0_WBWA
            | ORGN0_WBWA
            | SH0_INNER
            | TG0_4K
            | u64::from(self.ps & 0b111) << 16
            | RES1
    }

    /// Whether the fields are consistent with each other and with the 4 KiB
    /// granule (true for everything [`from_parange`](Self::from_parange)
    /// returns).
    pub fn is_valid(&self) -> bool {
        if self.start_level > 2 || self.ipa_bits > 48 || self.ps > 5 {
            return false;
        }
        let shift = level_shift(self.start_level);
        if self.ipa_bits <= shift || self.ipa_bits > shift + 9 + 4 {
            return false;
        }
        let entries = 1usize << (self.ipa_bits - shift);
        self.root_pages == entries.div_ceil(ENTRIES)
            && self.t0sz == 64 - self.ipa_bits
            && self.sl0 == 2 - self.start_level
    }

    /// Number of entries in the (possibly concatenated) root table.
    fn root_entries(&self) -> usize {
        1 << (self.ipa_bits - level_shift(self.start_level))
    }
}

/// Why a stage-2 operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmError {
    /// [`TableMemory`] had no page for a table.
    OutOfMemory,
    /// An address or size is not 4 KiB-aligned (or a root page is not aligned
    /// to the root size).
    Misaligned,
    /// The IPA range goes beyond `ipa_bits`, the PA range beyond 48 bits, or
    /// the [`Stage2Config`] is inconsistent.
    OutOfRange,
    /// Part of the IPA range is already mapped.
    AlreadyMapped,
    /// Nothing is mapped there.
    NotMapped,
}

/// Entries per table page.
const ENTRIES: usize = 512;
/// Output address bits \[47:12\].
const OA_MASK: u64 = 0x0000_FFFF_FFFF_F000;
const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const MEMATTR_SHIFT: u32 = 2;
const MEMATTR_MASK: u64 = 0b1111 << MEMATTR_SHIFT;
const MEMATTR_NORMAL_WB: u64 = 0b1111;
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
const SH_SHIFT: u32 = 8;
const SH_OUTER: u64 = 0b10;
const SH_INNER: u64 = 0b11;
const AF: u64 = 1 << 10;
const XN_SHIFT: u32 = 53;
const XN_MASK: u64 = 0b11 << XN_SHIFT;
/// XN = 0b10: execute-never at EL1 and EL0.
const XN_NEVER: u64 = 0b10 << XN_SHIFT;
/// Largest output address + 1 that a descriptor can hold.
const PA_LIMIT: u64 = 1 << 48;

/// log2 of the bytes one entry at `level` maps.
const fn level_shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

const fn level_size(level: u32) -> u64 {
    1 << level_shift(level)
}

/// Leaf (block or page) descriptor for `pa` at `level`.
fn leaf_desc(pa: u64, attrs: S2Attrs, level: u32) -> u64 {
    let (memattr, sh) = match attrs.mem {
        MemType::Normal => (MEMATTR_NORMAL_WB, SH_INNER),
        MemType::Device => (MEMATTR_DEVICE_NGNRE, SH_OUTER),
    };
    let mut d = (pa & OA_MASK) | VALID | memattr << MEMATTR_SHIFT | sh << SH_SHIFT | AF;
    if level == 3 {
        d |= TABLE_OR_PAGE;
    }
    if attrs.read {
        d |= S2AP_READ;
    }
    if attrs.write {
        d |= S2AP_WRITE;
    }
    if !attrs.exec {
        d |= XN_NEVER;
    }
    d
}

/// Attributes of a leaf descriptor (any non-zero XN counts as no-exec; any
/// MemAttr with \[3:2\] = 0 is Device).
fn leaf_attrs(d: u64) -> S2Attrs {
    let memattr = (d & MEMATTR_MASK) >> MEMATTR_SHIFT;
    S2Attrs {
        read: d & S2AP_READ != 0,
        write: d & S2AP_WRITE != 0,
        exec: d & XN_MASK == 0,
        mem: if memattr & 0b1100 == 0 {
            MemType::Device
        } else {
            MemType::Normal
        },
    }
}

fn is_table(d: u64, level: u32) -> bool {
    level < 3 && d & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE
}

fn table_desc(next: PhysAddr) -> u64 {
    (next.0 & OA_MASK) | VALID | TABLE_OR_PAGE
}

/// Page `idx / 512` of the (possibly concatenated) table at `table`.
fn page_of(table: PhysAddr, idx: usize) -> PhysAddr {
    table.add((idx / ENTRIES) as u64 * PAGE_SIZE)
}

fn read(mem: &mut impl TableMemory, table: PhysAddr, idx: usize) -> u64 {
    mem.table(page_of(table, idx))[idx % ENTRIES]
}

fn write(mem: &mut impl TableMemory, table: PhysAddr, idx: usize, d: u64) {
    mem.table(page_of(table, idx))[idx % ENTRIES] = d;
}

fn is_empty(mem: &mut impl TableMemory, table: PhysAddr) -> bool {
    mem.table(table).iter().all(|&d| d == 0)
}

/// Free the (non-root) table at `table`, at `level`, and every table below.
fn free_subtree(mem: &mut impl TableMemory, table: PhysAddr, level: u32) {
    if level < 3 {
        for idx in 0..ENTRIES {
            let d = read(mem, table, idx);
            if is_table(d, level) {
                free_subtree(mem, PhysAddr(d & OA_MASK), level + 1);
            }
        }
    }
    mem.free_table(table);
}

/// Allocate a table page and make sure it is zero.
fn new_table(mem: &mut impl TableMemory) -> Result<PhysAddr, MmError> {
    let pa = mem.alloc_table().ok_or(MmError::OutOfMemory)?;
    if !pa.is_aligned(PAGE_SIZE) || pa.0 >= PA_LIMIT {
        mem.free_table(pa);
        return Err(MmError::Misaligned);
    }
    mem.table(pa).fill(0);
    Ok(pa)
}

/// One domain's stage-2 translation tables.
///
/// Dropping a `Stage2` leaks its pages; call [`destroy`](Self::destroy).
#[derive(Debug)]
pub struct Stage2 {
    root: PhysAddr,
    cfg: Stage2Config,
}

impl Stage2 {
    /// Empty tables for `cfg`: allocates the root with
    /// [`TableMemory::alloc_root`]. Fails with [`MmError::OutOfRange`] for an
    /// inconsistent config ([`Stage2Config::is_valid`]), with
    /// [`MmError::Misaligned`] if the root is not aligned to its size.
    pub fn new(cfg: Stage2Config, mem: &mut impl TableMemory) -> Result<Self, MmError> {
        if !cfg.is_valid() {
            return Err(MmError::OutOfRange);
        }
        let root = mem.alloc_root(cfg.root_pages).ok_or(MmError::OutOfMemory)?;
        let root_size = cfg.root_pages as u64 * PAGE_SIZE;
        if !root.is_aligned(root_size) || root.0 >= PA_LIMIT {
            mem.free_root(root, cfg.root_pages);
            return Err(MmError::Misaligned);
        }
        for i in 0..cfg.root_pages as u64 {
            mem.table(root.add(i * PAGE_SIZE)).fill(0);
        }
        Ok(Self { root, cfg })
    }

    /// Physical address of the root table (for `VTTBR_EL2.BADDR`).
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The configuration (for `VTCR_EL2`).
    pub fn config(&self) -> Stage2Config {
        self.cfg
    }

    /// Map `[ipa, ipa + size)` to `[pa, pa + size)` with `attrs`. All three
    /// must be 4 KiB-aligned; `size == 0` does nothing. Uses 1 GiB blocks
    /// (level 1) and 2 MiB blocks (level 2) wherever IPA, PA and the remaining
    /// size allow, 4 KiB pages otherwise.
    ///
    /// Nothing already mapped is overwritten: if any part of the range is
    /// mapped the result is [`MmError::AlreadyMapped`]. On any error the call
    /// is undone — what it mapped is unmapped and the table pages it
    /// allocated are freed — so the tables are as before (no TLB flush is
    /// needed for a failed map).
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        ipa: Ipa,
        pa: PhysAddr,
        size: u64,
        attrs: S2Attrs,
    ) -> Result<(), MmError> {
        self.check_range(ipa, size)?;
        if !pa.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned);
        }
        match pa.0.checked_add(size) {
            Some(end) if end <= PA_LIMIT => {}
            _ => return Err(MmError::OutOfRange),
        }
        let mut done = 0;
        while done < size {
            let (i, p) = (ipa.0 + done, pa.0 + done);
            let level = self.leaf_level(i, p, size - done);
            if let Err(e) = self.map_one(mem, i, p, level, attrs) {
                // Undo. Neither unmap can need a split (so neither can fail):
                // [ipa, ipa + done) holds only whole leaves this call made;
                // AlreadyMapped is only ever found before this step created
                // a table; after a table-allocation failure the failed leaf's
                // range holds nothing but the empty tables this step created.
                let undo = if e == MmError::AlreadyMapped {
                    done
                } else {
                    done + level_size(level)
                };
                let undone = self.unmap_range(mem, ipa.0, ipa.0 + undo);
                debug_assert!(undone.is_ok());
                return Err(e);
            }
            done += level_size(level);
        }
        Ok(())
    }

    /// Unmap `[ipa, ipa + size)` (4 KiB-aligned). Unmapped parts are skipped,
    /// so this is idempotent. A block only partly covered is split into the
    /// next level's blocks/pages (calling [`TableMemory::flush_for_bbm`]),
    /// which needs table pages: on [`MmError::OutOfMemory`] the part of the
    /// range before the failing block is unmapped and the rest still mapped,
    /// and every mapping still points where it did. Tables left empty are
    /// freed. The caller flushes the TLBs afterwards (also after an error).
    pub fn unmap(
        &mut self,
        mem: &mut impl TableMemory,
        ipa: Ipa,
        size: u64,
    ) -> Result<(), MmError> {
        self.check_range(ipa, size)?;
        if size == 0 {
            return Ok(());
        }
        self.unmap_range(mem, ipa.0, ipa.0 + size)
    }

    /// The PA and attributes `ipa` maps to (the offset inside the page or
    /// block applied); `None` if unmapped or beyond `ipa_bits`.
    pub fn translate(&self, mem: &mut impl TableMemory, ipa: Ipa) -> Option<(PhysAddr, S2Attrs)> {
        let (level, d) = self.leaf(mem, ipa)?;
        let mask = level_size(level) - 1;
        let pa = (d & OA_MASK & !mask) | (ipa.0 & mask);
        Some((PhysAddr(pa), leaf_attrs(d)))
    }

    /// The leaf descriptor mapping `ipa` and its level (1 = 1 GiB block,
    /// 2 = 2 MiB block, 3 = page); `None` if unmapped or beyond `ipa_bits`.
    /// For diagnostics and tests.
    pub fn leaf(&self, mem: &mut impl TableMemory, ipa: Ipa) -> Option<(u32, u64)> {
        if ipa.0 >> self.cfg.ipa_bits != 0 {
            return None;
        }
        let mut table = self.root;
        let mut level = self.cfg.start_level;
        loop {
            let d = read(mem, table, self.index(ipa.0, level));
            if d & VALID == 0 {
                return None;
            }
            if is_table(d, level) {
                table = PhysAddr(d & OA_MASK);
                level += 1;
                continue;
            }
            // Blocks do not exist at level 0; bit 1 clear at level 3 is reserved.
            if level == 0 || (level == 3 && d & TABLE_OR_PAGE == 0) {
                return None;
            }
            return Some((level, d));
        }
    }

    /// Free every table page, the root included (domain destruction). The
    /// caller flushes the domain's TLB entries (by VMID) before reusing the
    /// pages or the VMID.
    pub fn destroy(self, mem: &mut impl TableMemory) {
        let level = self.cfg.start_level;
        for idx in 0..self.cfg.root_entries() {
            let d = read(mem, self.root, idx);
            if is_table(d, level) {
                free_subtree(mem, PhysAddr(d & OA_MASK), level + 1);
            }
        }
        mem.free_root(self.root, self.cfg.root_pages);
    }

    /// Alignment and `ipa_bits` checks shared by map and unmap.
    fn check_range(&self, ipa: Ipa, size: u64) -> Result<(), MmError> {
        if !ipa.is_aligned(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Misaligned);
        }
        match ipa.0.checked_add(size) {
            Some(end) if end <= 1 << self.cfg.ipa_bits => Ok(()),
            _ => Err(MmError::OutOfRange),
        }
    }

    /// Index of `ipa`'s entry in its table at `level` (the root may be
    /// concatenated, so its index can exceed 511).
    fn index(&self, ipa: u64, level: u32) -> usize {
        let idx = (ipa >> level_shift(level)) as usize;
        if level == self.cfg.start_level {
            idx
        } else {
            idx % ENTRIES
        }
    }

    /// The level of the biggest leaf that can map `ipa` → `pa` with `left`
    /// bytes to go.
    fn leaf_level(&self, ipa: u64, pa: u64, left: u64) -> u32 {
        for level in self.cfg.start_level.max(1)..3 {
            let bs = level_size(level);
            if ipa.is_multiple_of(bs) && pa.is_multiple_of(bs) && left >= bs {
                return level;
            }
        }
        3
    }

    /// Install one leaf at `target` level, creating tables on the way.
    fn map_one(
        &mut self,
        mem: &mut impl TableMemory,
        ipa: u64,
        pa: u64,
        target: u32,
        attrs: S2Attrs,
    ) -> Result<(), MmError> {
        let mut table = self.root;
        let mut level = self.cfg.start_level;
        loop {
            let idx = self.index(ipa, level);
            let d = read(mem, table, idx);
            if level == target {
                if d != 0 {
                    return Err(MmError::AlreadyMapped);
                }
                write(mem, table, idx, leaf_desc(pa, attrs, level));
                return Ok(());
            }
            if d == 0 {
                let next = new_table(mem)?;
                write(mem, table, idx, table_desc(next));
                table = next;
            } else if is_table(d, level) {
                table = PhysAddr(d & OA_MASK);
            } else {
                return Err(MmError::AlreadyMapped);
            }
            level += 1;
        }
    }

    /// Unmap `[start, end)` (aligned, non-empty, in range) from the root.
    fn unmap_range(
        &mut self,
        mem: &mut impl TableMemory,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        if start >= end {
            return Ok(());
        }
        self.unmap_in(mem, self.root, self.cfg.start_level, 0, start, end)
    }

    /// Unmap `[start, end)` within the table at `table` (at `level`, mapping
    /// IPAs from `base`). Frees child tables it empties; the caller frees
    /// `table` itself if it ends up empty.
    fn unmap_in(
        &mut self,
        mem: &mut impl TableMemory,
        table: PhysAddr,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        let shift = level_shift(level);
        let bs = level_size(level);
        let first = ((start - base) >> shift) as usize;
        let last = ((end - 1 - base) >> shift) as usize;
        for idx in first..=last {
            let e_start = base + idx as u64 * bs;
            let e_end = e_start + bs;
            let (s, e) = (start.max(e_start), end.min(e_end));
            let whole = s == e_start && e == e_end;
            let d = read(mem, table, idx);
            if d & VALID == 0 {
                continue;
            }
            if is_table(d, level) {
                let next = PhysAddr(d & OA_MASK);
                if whole {
                    write(mem, table, idx, 0);
                    free_subtree(mem, next, level + 1);
                } else {
                    let r = self.unmap_in(mem, next, level + 1, e_start, s, e);
                    if is_empty(mem, next) {
                        write(mem, table, idx, 0);
                        mem.free_table(next);
                    }
                    r?;
                }
            } else if whole || level == 3 {
                write(mem, table, idx, 0);
            } else {
                self.split(mem, table, idx, level, e_start, d)?;
                let next = PhysAddr(read(mem, table, idx) & OA_MASK);
                self.unmap_in(mem, next, level + 1, e_start, s, e)?;
            }
        }
        Ok(())
    }

    /// Replace the block `d` at `table[idx]` (level 1 or 2, mapping IPAs from
    /// `ipa`) with a table of next-level leaves mapping the same PAs with the
    /// same attributes, break-before-make.
    fn split(
        &mut self,
        mem: &mut impl TableMemory,
        table: PhysAddr,
        idx: usize,
        level: u32,
        ipa: u64,
        d: u64,
    ) -> Result<(), MmError> {
        let next = new_table(mem)?;
        let child = level + 1;
        let cs = level_size(child);
        let block_pa = d & OA_MASK & !(level_size(level) - 1);
        // Same attribute bits; bit 1 set only for level-3 pages.
        let attr_bits = d & !OA_MASK & !TABLE_OR_PAGE;
        let page_bit = if child == 3 { TABLE_OR_PAGE } else { 0 };
        {
            let t = mem.table(next);
            for (k, slot) in t.iter_mut().enumerate() {
                *slot = (block_pa + k as u64 * cs) | attr_bits | page_bit;
            }
        }
        write(mem, table, idx, 0);
        mem.flush_for_bbm(Ipa(ipa), level_size(level));
        write(mem, table, idx, table_desc(next));
        Ok(())
    }
}
