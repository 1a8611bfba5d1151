//! Physical range allocator.
//!
//! Boot code needs physical memory (the heap itself, stage-2 table pages,
//! guest RAM) before any heap exists, so [`PhysAllocator`] keeps its state in a
//! fixed-capacity array of free ranges and never allocates.
//!
//! Invariants (hold between calls; every method keeps them or fails without
//! changing anything):
//! * the free list holds at most [`PhysAllocator::CAPACITY`] ranges,
//!   sorted by address, each non-empty, page-aligned at both ends;
//! * no two ranges overlap or touch (touching ranges are merged), so the list
//!   is the unique minimal description of the free set.
//!
//! All sizes handed out are multiples of 4 KiB and all addresses at least
//! 4 KiB-aligned.

use oxen_types::{PAGE_SIZE, PhysAddr, PhysRange, align_down, align_up};

/// Why a [`PhysAllocator`] operation failed. A failed operation leaves the
/// allocator unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocError {
    /// No free range can satisfy the request.
    NoMemory,
    /// The free list would need more than [`PhysAllocator::CAPACITY`] ranges.
    TooManyRanges,
    /// The range is not in the state the operation needs: for
    /// [`PhysAllocator::alloc_at`] part of it is not free; for
    /// [`PhysAllocator::free`] and [`PhysAllocator::add`] part of it is
    /// already free (a double free / overlapping bank).
    NotFree,
    /// An address or size is not page-aligned where it must be, an alignment
    /// is not a power of two, or a size is zero.
    BadAlignment,
    /// `start + size` (or a rounding of it) does not fit in 64 bits.
    Overflow,
}

/// A fixed-capacity, sorted list of free physical ranges.
///
/// Typical boot use: [`add`](Self::add) every RAM bank, then
/// [`reserve`](Self::reserve) the hypervisor image, the DTB and the boot
/// modules, then allocate.
#[derive(Clone, Debug)]
pub struct PhysAllocator {
    /// `(start, end)` pairs, end exclusive; only `free[..len]` is meaningful.
    free: [(u64, u64); Self::CAPACITY],
    len: usize,
}

impl Default for PhysAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl PhysAllocator {
    /// Maximum number of disjoint free ranges tracked.
    pub const CAPACITY: usize = 128;

    /// An allocator with no free memory.
    pub const fn new() -> Self {
        Self {
            free: [(0, 0); Self::CAPACITY],
            len: 0,
        }
    }

    /// Add free RAM. The range is shrunk inward to whole pages (a range with
    /// no whole page in it is accepted and adds nothing) and merged with free
    /// neighbours. Fails with [`AllocError::NotFree`] if any part is already
    /// free.
    pub fn add(&mut self, r: PhysRange) -> Result<(), AllocError> {
        let end = r.start.0.checked_add(r.size).ok_or(AllocError::Overflow)?;
        let s = align_up(r.start.0, PAGE_SIZE).ok_or(AllocError::Overflow)?;
        let e = align_down(end, PAGE_SIZE);
        if s >= e {
            return Ok(());
        }
        self.insert(s, e)
    }

    /// Remove a range from the free set (hypervisor image, DTB, modules). The
    /// range is grown outward to whole pages. Parts that are not free are
    /// ignored, so reserving twice or reserving non-RAM is fine.
    pub fn reserve(&mut self, r: PhysRange) -> Result<(), AllocError> {
        let end = r.start.0.checked_add(r.size).ok_or(AllocError::Overflow)?;
        let s = align_down(r.start.0, PAGE_SIZE);
        let e = align_up(end, PAGE_SIZE).ok_or(AllocError::Overflow)?;
        if s >= e {
            return Ok(());
        }
        // Only a free range that strictly contains [s, e) with space left on
        // both sides needs a new entry; check capacity before touching anything.
        let splits = self.free[..self.len]
            .iter()
            .any(|&(fs, fe)| fs < s && e < fe);
        if splits && self.len == Self::CAPACITY {
            return Err(AllocError::TooManyRanges);
        }
        let mut i = 0;
        while i < self.len {
            let (fs, fe) = self.free[i];
            if fe <= s || e <= fs {
                i += 1;
                continue;
            }
            match (fs < s, e < fe) {
                (true, true) => {
                    self.free[i] = (fs, s);
                    self.insert_at(i + 1, (e, fe));
                    return Ok(());
                }
                (true, false) => {
                    self.free[i] = (fs, s);
                    i += 1;
                }
                (false, true) => {
                    self.free[i] = (e, fe);
                    return Ok(());
                }
                (false, false) => self.remove_at(i),
            }
        }
        Ok(())
    }

    /// Allocate `size` bytes (rounded up to whole pages) aligned to `align`
    /// (a power of two; values below 4 KiB mean 4 KiB), at the lowest address
    /// that fits.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<PhysAddr, AllocError> {
        let (size, align) = Self::check_request(size, align)?;
        for i in 0..self.len {
            let (fs, fe) = self.free[i];
            let Some(start) = align_up(fs, align) else {
                continue;
            };
            match start.checked_add(size) {
                Some(end) if end <= fe => {
                    self.carve(i, start, end)?;
                    return Ok(PhysAddr(start));
                }
                _ => {}
            }
        }
        Err(AllocError::NoMemory)
    }

    /// Like [`alloc`](Self::alloc), but at the highest address that fits, so
    /// that placement does not depend on what low memory was used before.
    pub fn alloc_top(&mut self, size: u64, align: u64) -> Result<PhysAddr, AllocError> {
        let (size, align) = Self::check_request(size, align)?;
        for i in (0..self.len).rev() {
            let (fs, fe) = self.free[i];
            if fe - fs < size {
                continue;
            }
            let start = align_down(fe - size, align);
            if start >= fs {
                self.carve(i, start, start + size)?;
                return Ok(PhysAddr(start));
            }
        }
        Err(AllocError::NoMemory)
    }

    /// Allocate exactly `r` (page-aligned start and size), which must be
    /// entirely free ([`AllocError::NotFree`] otherwise). Used for 1:1 Dom0 RAM.
    pub fn alloc_at(&mut self, r: PhysRange) -> Result<(), AllocError> {
        let (s, e) = Self::check_exact(r)?;
        let i = self.free[..self.len]
            .iter()
            .position(|&(fs, fe)| fs <= s && e <= fe)
            .ok_or(AllocError::NotFree)?;
        self.carve(i, s, e)
    }

    /// Take up to `max` bytes (rounded down to whole pages, at least one
    /// page) from the top of the highest free range, whatever its
    /// alignment: for draining the allocator a piece at a time (the
    /// hypervisor's list of RAM waiting to be scrubbed). `None` when nothing
    /// is free.
    pub fn take_top(&mut self, max: u64) -> Option<PhysRange> {
        let i = self.len.checked_sub(1)?;
        let (fs, fe) = self.free[i];
        let size = (max & !(PAGE_SIZE - 1)).clamp(PAGE_SIZE, fe - fs);
        // Carving the top of a range never splits it: cannot fail.
        self.carve(i, fe - size, fe).ok()?;
        Some(PhysRange::new(PhysAddr(fe - size), size))
    }

    /// Give back `r` (page-aligned start and size), merging with free
    /// neighbours. Fails with [`AllocError::NotFree`] if any part of it is
    /// already free (double free).
    pub fn free(&mut self, r: PhysRange) -> Result<(), AllocError> {
        let (s, e) = Self::check_exact(r)?;
        self.insert(s, e)
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free[..self.len].iter().map(|&(s, e)| e - s).sum()
    }

    /// Size of the largest free range (0 when nothing is free).
    pub fn largest_free(&self) -> u64 {
        self.free[..self.len]
            .iter()
            .map(|&(s, e)| e - s)
            .max()
            .unwrap_or(0)
    }

    /// The free ranges, in ascending address order.
    pub fn ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.free[..self.len]
            .iter()
            .map(|&(s, e)| PhysRange::new(PhysAddr(s), e - s))
    }

    /// Validate an alloc request: page-rounded non-zero size, power-of-two
    /// alignment of at least a page.
    fn check_request(size: u64, align: u64) -> Result<(u64, u64), AllocError> {
        if size == 0 || (align != 0 && !align.is_power_of_two()) {
            return Err(AllocError::BadAlignment);
        }
        let size = align_up(size, PAGE_SIZE).ok_or(AllocError::Overflow)?;
        Ok((size, align.max(PAGE_SIZE)))
    }

    /// Validate an exact range: page-aligned, non-empty, no overflow.
    fn check_exact(r: PhysRange) -> Result<(u64, u64), AllocError> {
        if !r.start.is_aligned(PAGE_SIZE) || !r.size.is_multiple_of(PAGE_SIZE) || r.size == 0 {
            return Err(AllocError::BadAlignment);
        }
        let e = r.start.0.checked_add(r.size).ok_or(AllocError::Overflow)?;
        Ok((r.start.0, e))
    }

    /// Remove `[s, e)` from free range `i`, which contains it.
    fn carve(&mut self, i: usize, s: u64, e: u64) -> Result<(), AllocError> {
        let (fs, fe) = self.free[i];
        debug_assert!(fs <= s && e <= fe);
        match (fs < s, e < fe) {
            (true, true) => {
                if self.len == Self::CAPACITY {
                    return Err(AllocError::TooManyRanges);
                }
                self.free[i] = (fs, s);
                self.insert_at(i + 1, (e, fe));
            }
            (true, false) => self.free[i] = (fs, s),
            (false, true) => self.free[i] = (e, fe),
            (false, false) => self.remove_at(i),
        }
        Ok(())
    }

    /// Add page-aligned `[s, e)` (s < e) to the free set, merging neighbours.
    fn insert(&mut self, s: u64, e: u64) -> Result<(), AllocError> {
        // First range that ends at or after s: the only candidates to overlap
        // or touch are it and the one after it.
        let i = self.free[..self.len].partition_point(|&(_, fe)| fe < s);
        let touches_prev = i < self.len && self.free[i].1 == s;
        let next = if touches_prev { i + 1 } else { i };
        if next < self.len && self.free[next].0 < e {
            return Err(AllocError::NotFree);
        }
        let touches_next = next < self.len && self.free[next].0 == e;
        match (touches_prev, touches_next) {
            (true, true) => {
                self.free[i].1 = self.free[next].1;
                self.remove_at(next);
            }
            (true, false) => self.free[i].1 = e,
            (false, true) => self.free[next].0 = s,
            (false, false) => {
                if self.len == Self::CAPACITY {
                    return Err(AllocError::TooManyRanges);
                }
                self.insert_at(i, (s, e));
            }
        }
        Ok(())
    }

    fn insert_at(&mut self, i: usize, v: (u64, u64)) {
        debug_assert!(self.len < Self::CAPACITY);
        self.free.copy_within(i..self.len, i + 1);
        self.free[i] = v;
        self.len += 1;
    }

    fn remove_at(&mut self, i: usize) {
        self.free.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, size: u64) -> PhysRange {
        PhysRange::new(PhysAddr(start), size)
    }

    fn list(a: &PhysAllocator) -> Vec<(u64, u64)> {
        a.ranges().map(|r| (r.start.0, r.end())).collect()
    }

    #[test]
    fn add_aligns_inward_and_merges() {
        let mut a = PhysAllocator::new();
        a.add(r(0x1001, 0x3000)).unwrap(); // [0x2000, 0x4000)
        assert_eq!(list(&a), vec![(0x2000, 0x4000)]);
        a.add(r(0x8000, 0x1000)).unwrap();
        a.add(r(0x4000, 0x4000)).unwrap(); // fills the gap: all merge
        assert_eq!(list(&a), vec![(0x2000, 0x9000)]);
        a.add(r(0x1000, 0x1000)).unwrap(); // touches below
        assert_eq!(list(&a), vec![(0x1000, 0x9000)]);
        a.add(r(0x10_0000, 0xfff)).unwrap(); // no whole page: no-op
        assert_eq!(list(&a), vec![(0x1000, 0x9000)]);
        assert_eq!(a.add(r(0x8000, 0x2000)), Err(AllocError::NotFree));
        assert_eq!(a.add(r(u64::MAX - 10, 20)), Err(AllocError::Overflow));
        assert_eq!(a.free_bytes(), 0x8000);
        assert_eq!(a.largest_free(), 0x8000);
    }

    #[test]
    fn reserve_aligns_outward_and_splits() {
        let mut a = PhysAllocator::new();
        a.add(r(0x4000_0000, 512 * MIB)).unwrap();
        // Image at 0x4020_0000, unaligned size.
        a.reserve(r(0x4020_0000, 0x1234)).unwrap();
        assert_eq!(
            list(&a),
            vec![(0x4000_0000, 0x4020_0000), (0x4020_2000, 0x6000_0000)]
        );
        // Unaligned DTB start and a range that is partly not RAM.
        a.reserve(r(0x5fff_f800, 0x10_0000)).unwrap();
        assert_eq!(
            list(&a),
            vec![(0x4000_0000, 0x4020_0000), (0x4020_2000, 0x5fff_f000)]
        );
        // Reserving again / outside RAM is fine and changes nothing.
        a.reserve(r(0x4020_0000, 0x2000)).unwrap();
        a.reserve(r(0x1000, 0x1000)).unwrap();
        // Spanning several ranges removes the inner ones whole.
        a.reserve(r(0x401f_f000, 0x4000)).unwrap();
        assert_eq!(
            list(&a),
            vec![(0x4000_0000, 0x401f_f000), (0x4020_3000, 0x5fff_f000)]
        );
        a.reserve(r(0, u64::MAX - 0x2000)).unwrap();
        assert_eq!(a.free_bytes(), 0);
    }

    #[test]
    fn alloc_first_fit_with_alignment() {
        let mut a = PhysAllocator::new();
        a.add(r(0x1000, 0x3000)).unwrap();
        a.add(r(0x10_0000, 4 * MIB)).unwrap();
        assert_eq!(a.alloc(0x1000, 0), Ok(PhysAddr(0x1000)));
        // Too big for the first range: next one.
        assert_eq!(a.alloc(0x3000, 0x1000), Ok(PhysAddr(0x10_0000)));
        // 2 MiB alignment leaves a hole below.
        assert_eq!(a.alloc(1, 2 * MIB), Ok(PhysAddr(0x20_0000)));
        assert_eq!(
            list(&a),
            vec![
                (0x2000, 0x4000),
                (0x10_3000, 0x20_0000),
                (0x20_1000, 0x50_0000)
            ]
        );
        assert_eq!(a.alloc(0x2000, 0x1000), Ok(PhysAddr(0x2000)));
        assert_eq!(a.alloc(0, 0x1000), Err(AllocError::BadAlignment));
        assert_eq!(a.alloc(0x1000, 0x3000), Err(AllocError::BadAlignment));
        assert_eq!(a.alloc(u64::MAX, 0x1000), Err(AllocError::Overflow));
        assert_eq!(a.alloc(8 * MIB, 0x1000), Err(AllocError::NoMemory));
    }

    #[test]
    fn take_top_drains_from_the_top_in_pieces() {
        let mut a = PhysAllocator::new();
        a.add(PhysRange::new(PhysAddr(0x10_0000), 0x3000)).unwrap();
        a.add(PhysRange::new(PhysAddr(0x40_0000), 0x5000)).unwrap();
        // At most `max` (rounded down to pages) from the top of the highest range.
        assert_eq!(
            a.take_top(0x2fff),
            Some(PhysRange::new(PhysAddr(0x40_3000), 0x2000))
        );
        // Less than a page still takes one; more than the range takes the range.
        assert_eq!(
            a.take_top(1),
            Some(PhysRange::new(PhysAddr(0x40_2000), 0x1000))
        );
        assert_eq!(
            a.take_top(u64::MAX),
            Some(PhysRange::new(PhysAddr(0x40_0000), 0x2000))
        );
        assert_eq!(
            a.take_top(0x10_0000),
            Some(PhysRange::new(PhysAddr(0x10_0000), 0x3000))
        );
        assert_eq!(a.take_top(0x1000), None);
        assert_eq!(a.free_bytes(), 0);
        // What was taken can be given back whole.
        a.free(PhysRange::new(PhysAddr(0x40_0000), 0x5000)).unwrap();
        assert_eq!(a.free_bytes(), 0x5000);
    }

    #[test]
    fn alloc_top_is_highest_fit() {
        let mut a = PhysAllocator::new();
        a.add(r(0x4000_0000, 64 * MIB)).unwrap();
        a.add(r(0x8000_0000, MIB)).unwrap();
        assert_eq!(a.alloc_top(0x1000, 0), Ok(PhysAddr(0x800f_f000)));
        // 2 MiB does not fit in the top range any more.
        assert_eq!(a.alloc_top(2 * MIB, 2 * MIB), Ok(PhysAddr(0x43e0_0000)));
        // Unaligned end: round the start down to the alignment.
        assert_eq!(a.alloc_top(0x1000, 0x1_0000), Ok(PhysAddr(0x800f_0000)));
        assert_eq!(
            list(&a),
            vec![
                (0x4000_0000, 0x43e0_0000),
                (0x8000_0000, 0x800f_0000),
                (0x800f_1000, 0x800f_f000)
            ]
        );
        assert_eq!(a.alloc_top(128 * MIB, 0), Err(AllocError::NoMemory));
    }

    #[test]
    fn alloc_at_exact() {
        let mut a = PhysAllocator::new();
        a.add(r(0x4000_0000, 16 * MIB)).unwrap();
        a.alloc_at(r(0x4080_0000, 2 * MIB)).unwrap();
        assert_eq!(
            a.alloc_at(r(0x4090_0000, 2 * MIB)),
            Err(AllocError::NotFree)
        );
        assert_eq!(a.alloc_at(r(0x3fff_f000, 0x2000)), Err(AllocError::NotFree));
        assert_eq!(
            a.alloc_at(r(0x4000_0800, 0x1000)),
            Err(AllocError::BadAlignment)
        );
        assert_eq!(
            a.alloc_at(r(0x4000_0000, 0x800)),
            Err(AllocError::BadAlignment)
        );
        a.alloc_at(r(0x4000_0000, 0x1000)).unwrap();
        assert_eq!(
            list(&a),
            vec![(0x4000_1000, 0x4080_0000), (0x40a0_0000, 0x4100_0000)]
        );
        assert_eq!(a.free_bytes(), 16 * MIB - 2 * MIB - 0x1000);
    }

    #[test]
    fn free_merges_and_detects_double_free() {
        let mut a = PhysAllocator::new();
        a.add(r(0x10_0000, MIB)).unwrap();
        let x = a.alloc(0x1000, 0).unwrap();
        let y = a.alloc(0x2000, 0).unwrap();
        let z = a.alloc(0x1000, 0).unwrap();
        assert_eq!((x.0, y.0, z.0), (0x10_0000, 0x10_1000, 0x10_3000));
        a.free(r(y.0, 0x2000)).unwrap();
        assert_eq!(
            list(&a),
            vec![(0x10_1000, 0x10_3000), (0x10_4000, 0x20_0000)]
        );
        // Double free, partial double free and overlap with a neighbour.
        assert_eq!(a.free(r(y.0, 0x2000)), Err(AllocError::NotFree));
        assert_eq!(a.free(r(y.0 + 0x1000, 0x1000)), Err(AllocError::NotFree));
        assert_eq!(a.free(r(z.0, 0x2000)), Err(AllocError::NotFree));
        assert_eq!(a.free(r(x.0, 0x2000)), Err(AllocError::NotFree));
        assert_eq!(a.free(r(x.0 + 1, 0x1000)), Err(AllocError::BadAlignment));
        assert_eq!(a.free(r(x.0, 0)), Err(AllocError::BadAlignment));
        // Unchanged by the failures.
        assert_eq!(
            list(&a),
            vec![(0x10_1000, 0x10_3000), (0x10_4000, 0x20_0000)]
        );
        a.free(r(z.0, 0x1000)).unwrap();
        a.free(r(x.0, 0x1000)).unwrap();
        assert_eq!(list(&a), vec![(0x10_0000, 0x20_0000)]);
    }

    #[test]
    fn capacity_exhaustion() {
        let cap = PhysAllocator::CAPACITY as u64;
        let mut a = PhysAllocator::new();
        for i in 0..cap {
            a.add(r(i * 0x2000, 0x1000)).unwrap();
        }
        let full = list(&a);
        assert_eq!(full.len(), PhysAllocator::CAPACITY);
        // A disjoint range needs a new entry.
        assert_eq!(
            a.add(r(cap * 0x2000, 0x1000)),
            Err(AllocError::TooManyRanges)
        );
        assert_eq!(
            a.free(r(cap * 0x2000, 0x1000)),
            Err(AllocError::TooManyRanges)
        );
        assert_eq!(list(&a), full);
        // Filling a gap merges two entries into one, even when full.
        a.add(r(0x1000, 0x1000)).unwrap();
        assert_eq!(a.ranges().count(), PhysAllocator::CAPACITY - 1);
        assert_eq!(a.ranges().next(), Some(r(0, 0x3000)));
        a.add(r(cap * 0x2000, 0x1000)).unwrap();
        assert_eq!(a.ranges().count(), PhysAllocator::CAPACITY);
        // Reserving the middle of [0, 0x3000) would split it.
        let before = list(&a);
        assert_eq!(a.reserve(r(0x1000, 0x1000)), Err(AllocError::TooManyRanges));
        assert_eq!(list(&a), before);
        // Trimming an edge or removing a whole range needs no new entry.
        a.reserve(r(0x2000, 0x1000)).unwrap();
        a.reserve(r(0x4000, 0x1000)).unwrap();
        assert_eq!(a.ranges().count(), PhysAllocator::CAPACITY - 1);
        assert_eq!(a.free_bytes(), cap * 0x1000);
    }

    #[test]
    fn alloc_split_when_full() {
        let mut a = PhysAllocator::new();
        a.add(r(0x1000, 0x10_1000)).unwrap(); // [0x1000, 0x10_2000)
        for i in 1..PhysAllocator::CAPACITY as u64 {
            // Odd page numbers: never 64 KiB-aligned.
            a.add(r(0x1000_1000 + i * 0x2000, 0x1000)).unwrap();
        }
        let before = list(&a);
        // A 64 KiB-aligned page inside the first range leaves space on both
        // sides; the other ranges cannot hold it at all.
        assert_eq!(a.alloc(0x1000, 0x1_0000), Err(AllocError::TooManyRanges));
        assert_eq!(
            a.alloc_top(0x1000, 0x1_0000),
            Err(AllocError::TooManyRanges)
        );
        assert_eq!(
            a.alloc_at(r(0x2000, 0x1000)),
            Err(AllocError::TooManyRanges)
        );
        assert_eq!(list(&a), before);
        // From the edge of a range it works.
        assert_eq!(a.alloc(0x1000, 0), Ok(PhysAddr(0x1000)));
        assert_eq!(
            a.alloc_top(0x1000, 0),
            Ok(PhysAddr(0x1000_1000 + 127 * 0x2000))
        );
    }
}
