//! Planning a 1:1 domain's RAM in banks (Dom0), as Xen's
//! `allocate_memory_11` does when one contiguous block is not free.
//!
//! [`PhysAllocator::plan_banks`] only reads the free list;
//! [`PhysAllocator::alloc_banks`] plans and then takes the banks, or
//! changes nothing. The rules, in order:
//!
//! * Free ranges are cut to whole `align` units (2 MiB for Dom0: block
//!   mappings and Linux's placement rules) and, when there is a
//!   `low_limit` (a board's DMA limit), split at it. Memory below the limit
//!   is used first; memory above it only for what does not fit below.
//! * Within that order, as few banks as possible: while no single free
//!   piece holds all that is still missing, the largest piece is taken
//!   whole (ties: the lower one); then the remainder comes from the start
//!   of the lowest piece that holds it. So when one block is enough the
//!   result is the lowest fit, a single bank.
//! * The banks are returned sorted by address, touching ones merged
//!   (pieces split at the limit). The first (lowest) one must
//!   hold `first_min` bytes: the guest's kernel, initrd and device tree go
//!   there, as Xen places them in bank 0. A plan whose lowest bank is too
//!   small is redone without that piece.
//! * At most `max_banks` banks (and never more than `out` can hold).

use oxen_types::{PhysAddr, PhysRange, align_down, align_up};

use crate::phys::{AllocError, PhysAllocator};

/// What a set of banks must satisfy; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BankRequest {
    /// Total bytes (rounded up to `align`).
    pub size: u64,
    /// Start and size alignment of every bank (a power of two, at least a
    /// page).
    pub align: u64,
    /// Bytes the lowest bank must hold at least.
    pub first_min: u64,
    /// Use free memory below this address first.
    pub low_limit: Option<u64>,
    /// Most banks allowed.
    pub max_banks: usize,
}

/// Why no bank plan exists. Sizes are in bytes, counted over free memory
/// cut to the request's alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BankError {
    /// Less free memory than asked for, in all.
    NoMemory {
        /// Free bytes usable for banks.
        free: u64,
    },
    /// Enough free memory, but in more pieces than `max_banks`.
    TooManyBanks {
        /// Free bytes usable for banks.
        free: u64,
    },
    /// Enough free memory, but no plan's lowest bank holds `first_min`.
    FirstBankTooSmall {
        /// The largest free piece.
        largest: u64,
    },
    /// A bad request (alignment, zero size, overflow) or the free list ran
    /// out of entries while taking the banks.
    Alloc(AllocError),
}

/// Free pieces are at most two per free range (split at the limit).
const MAX_PIECES: usize = 2 * PhysAllocator::CAPACITY;

/// The aligned free pieces, in address order, and how many there are.
type Pieces = ([(u64, u64); MAX_PIECES], usize);

impl PhysAllocator {
    /// The banks `req` would get (see the module docs), written to `out` in
    /// address order; returns how many. Changes nothing.
    pub fn plan_banks(&self, req: &BankRequest, out: &mut [PhysRange]) -> Result<usize, BankError> {
        if req.align < oxen_types::PAGE_SIZE || !req.align.is_power_of_two() || req.size == 0 {
            return Err(BankError::Alloc(AllocError::BadAlignment));
        }
        let size = align_up(req.size, req.align).ok_or(BankError::Alloc(AllocError::Overflow))?;
        let max_banks = req.max_banks.min(out.len());
        let (pieces, n) = self.pieces(req.align, req.low_limit);
        let pieces = &pieces[..n];
        let free: u64 = pieces.iter().map(|&(s, e)| e - s).sum();
        if free < size {
            return Err(BankError::NoMemory { free });
        }
        let largest = pieces.iter().map(|&(s, e)| e - s).max().unwrap_or(0);
        let mut excluded = [false; MAX_PIECES];
        let mut too_many = false;
        loop {
            let mut used = [false; MAX_PIECES];
            let nb = match plan(
                pieces,
                &excluded,
                &mut used,
                size,
                req.low_limit,
                out,
                max_banks,
            ) {
                Plan::Banks(nb) => nb,
                Plan::TooMany => {
                    too_many = true;
                    break;
                }
                Plan::Short => break,
            };
            out[..nb].sort_unstable_by_key(|r| r.start);
            let nb = merge_touching(&mut out[..nb]);
            if out[0].size >= req.first_min {
                return Ok(nb);
            }
            // The lowest bank is too small for the kernel & co: do without
            // the piece it came from.
            let low = out[0].start.0;
            match pieces.iter().position(|&(s, e)| s <= low && low < e) {
                Some(i) => excluded[i] = true,
                None => break,
            }
        }
        if too_many {
            Err(BankError::TooManyBanks { free })
        } else {
            Err(BankError::FirstBankTooSmall { largest })
        }
    }

    /// [`plan_banks`](Self::plan_banks), then take the banks from the free
    /// set. On failure nothing is taken.
    pub fn alloc_banks(
        &mut self,
        req: &BankRequest,
        out: &mut [PhysRange],
    ) -> Result<usize, BankError> {
        let n = self.plan_banks(req, out)?;
        for i in 0..n {
            if let Err(e) = self.alloc_at(out[i]) {
                for r in &out[..i] {
                    // Giving back what was just taken cannot fail: it
                    // merges into the place it came from.
                    let _ = self.free(*r);
                }
                return Err(BankError::Alloc(e));
            }
        }
        Ok(n)
    }

    /// Free ranges cut to whole `align` units and split at `limit`.
    fn pieces(&self, align: u64, limit: Option<u64>) -> Pieces {
        let mut p = [(0, 0); MAX_PIECES];
        let mut n = 0;
        let limit = limit.map(|l| align_down(l, align));
        for r in self.ranges() {
            let Some(s) = align_up(r.start.0, align) else {
                continue;
            };
            let e = align_down(r.end(), align);
            if s >= e {
                continue;
            }
            match limit {
                Some(l) if s < l && l < e => {
                    p[n] = (s, l);
                    p[n + 1] = (l, e);
                    n += 2;
                }
                _ => {
                    p[n] = (s, e);
                    n += 1;
                }
            }
        }
        (p, n)
    }
}

/// Merge banks (sorted) that touch; returns how many are left.
fn merge_touching(b: &mut [PhysRange]) -> usize {
    let mut n = 0;
    for i in 0..b.len() {
        if n > 0 && b[n - 1].end() == b[i].start.0 {
            b[n - 1].size += b[i].size;
        } else {
            b[n] = b[i];
            n += 1;
        }
    }
    n
}

enum Plan {
    /// This many banks in `out` (unsorted).
    Banks(usize),
    /// More banks than allowed.
    TooMany,
    /// Not enough memory in the pieces not excluded.
    Short,
}

/// One planning pass over the pieces not `excluded`: below `limit` first,
/// then anywhere; largest whole pieces until the lowest fit of the rest.
fn plan(
    pieces: &[(u64, u64)],
    excluded: &[bool],
    used: &mut [bool],
    size: u64,
    limit: Option<u64>,
    out: &mut [PhysRange],
    max_banks: usize,
) -> Plan {
    let mut left = size;
    let mut nb = 0;
    let phases: &[Option<u64>] = match limit {
        Some(l) => &[Some(l), None],
        None => &[None],
    };
    for &below in phases {
        let eligible = |i: usize, used: &[bool]| {
            !excluded[i] && !used[i] && below.is_none_or(|l| pieces[i].1 <= l)
        };
        while left > 0 {
            let len = |i: usize| pieces[i].1 - pieces[i].0;
            // The lowest piece that holds the rest ends the plan.
            let fit = (0..pieces.len()).find(|&i| eligible(i, used) && len(i) >= left);
            let (i, take) = match fit {
                Some(i) => (i, left),
                None => {
                    // Else the largest piece, whole (the lowest of equals).
                    let Some(i) = (0..pieces.len())
                        .filter(|&i| eligible(i, used))
                        .max_by_key(|&i| (len(i), core::cmp::Reverse(i)))
                    else {
                        break;
                    };
                    (i, len(i))
                }
            };
            if nb == max_banks {
                return Plan::TooMany;
            }
            used[i] = true;
            out[nb] = PhysRange::new(PhysAddr(pieces[i].0), take);
            nb += 1;
            left -= take;
        }
    }
    if left > 0 {
        Plan::Short
    } else {
        Plan::Banks(nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const M2: u64 = 2 * MIB;

    fn r(start: u64, size: u64) -> PhysRange {
        PhysRange::new(PhysAddr(start), size)
    }

    fn req(size: u64) -> BankRequest {
        BankRequest {
            size,
            align: M2,
            first_min: 0,
            low_limit: None,
            max_banks: 256,
        }
    }

    fn banks(a: &PhysAllocator, q: &BankRequest) -> Result<Vec<(u64, u64)>, BankError> {
        let mut out = [PhysRange::default(); 256];
        let n = a.plan_banks(q, &mut out)?;
        Ok(out[..n].iter().map(|b| (b.start.0, b.size)).collect())
    }

    /// QEMU virt, 2 GiB: the image at 0x4020_0000 (10 MiB, and nothing
    /// free below it), QEMU's DTB at 0x4800_0000 and Dom0's modules at
    /// 0x8000_0000 (90 MiB).
    fn virt() -> PhysAllocator {
        let mut a = PhysAllocator::new();
        a.add(r(0x4000_0000, 2 * GIB)).unwrap();
        a.reserve(r(0x4000_0000, 12 * MIB)).unwrap();
        a.reserve(r(0x4800_0000, 0x10_0000)).unwrap();
        a.reserve(r(0x8000_0000, 90 * MIB)).unwrap();
        a
    }

    #[test]
    fn one_block_when_one_fits_at_the_lowest_fit() {
        let a = virt();
        // Same place as alloc(512M, 2M) takes.
        let mut b = a.clone();
        let at = b.alloc(512 * MIB, M2).unwrap();
        assert_eq!(banks(&a, &req(512 * MIB)), Ok(vec![(at.0, 512 * MIB)]));
        assert_eq!(at.0, 0x4820_0000);
        // Small enough for the piece between the image and the DTB.
        assert_eq!(banks(&a, &req(64 * MIB)), Ok(vec![(0x40c0_0000, 64 * MIB)]));
    }

    #[test]
    fn largest_pieces_whole_then_the_lowest_fit_of_the_rest() {
        let a = virt();
        // Pieces: 116 MiB @0x40c0_0000, 894 MiB @0x4820_0000, 934 MiB
        // @0x85a0_0000. 1200 MiB: the 934 whole, then 266 from the 894.
        let got = banks(&a, &req(1200 * MIB)).unwrap();
        assert_eq!(
            got,
            vec![(0x4820_0000, 266 * MIB), (0x85a0_0000, 934 * MIB)]
        );
        assert_eq!(got.iter().map(|b| b.1).sum::<u64>(), 1200 * MIB);
        // Everything there is: three banks.
        let all = 116 * MIB + 894 * MIB + 934 * MIB;
        assert_eq!(banks(&a, &req(all)).unwrap().len(), 3);
        assert_eq!(
            banks(&a, &req(all + M2)),
            Err(BankError::NoMemory { free: all })
        );
    }

    #[test]
    fn size_rounds_up_to_the_alignment() {
        let a = virt();
        assert_eq!(banks(&a, &req(MIB + 1)), Ok(vec![(0x40c0_0000, M2)]));
    }

    #[test]
    fn bank_limit() {
        let a = virt();
        let q = BankRequest {
            max_banks: 2,
            ..req(1900 * MIB)
        };
        assert_eq!(
            banks(&a, &q),
            Err(BankError::TooManyBanks { free: 1944 * MIB })
        );
        // `out` smaller than max_banks limits too.
        let mut out = [PhysRange::default(); 1];
        assert_eq!(
            a.plan_banks(&req(1200 * MIB), &mut out),
            Err(BankError::TooManyBanks { free: 1944 * MIB })
        );
    }

    #[test]
    fn lowest_bank_must_hold_the_kernel() {
        let mut a = PhysAllocator::new();
        a.add(r(0x4000_0000, 64 * MIB)).unwrap(); // small low piece
        a.add(r(0x8000_0000, 512 * MIB)).unwrap();
        // 540 MiB: 512 whole + 28 from the low piece, which is bank 0.
        let q = BankRequest {
            first_min: 20 * MIB,
            ..req(540 * MIB)
        };
        assert_eq!(
            banks(&a, &q),
            Ok(vec![(0x4000_0000, 28 * MIB), (0x8000_0000, 512 * MIB)])
        );
        // 40 MiB of kernel, initrd and DTB do not fit there: no plan.
        let q = BankRequest {
            first_min: 40 * MIB,
            ..q
        };
        assert_eq!(
            banks(&a, &q),
            Err(BankError::FirstBankTooSmall { largest: 512 * MIB })
        );
        // With a third piece the low one is left out.
        a.add(r(0xc000_0000, 64 * MIB)).unwrap();
        assert_eq!(
            banks(&a, &q),
            Ok(vec![(0x8000_0000, 512 * MIB), (0xc000_0000, 28 * MIB)])
        );
    }

    /// A 4 GiB Raspberry Pi 4: RAM 0..0x3b40_0000 and 0x4000_0000..0xfc00_0000
    /// (the firmware's two /memory ranges), oxen at 0x20_0000, modules at
    /// 0x100_0000; the /soc DMA masters reach the first GiB only.
    fn rpi4() -> PhysAllocator {
        let mut a = PhysAllocator::new();
        a.add(r(0, 0x3b40_0000)).unwrap();
        a.add(r(0x4000_0000, 0xfc00_0000 - 0x4000_0000)).unwrap();
        a.reserve(r(0x20_0000, 10 * MIB)).unwrap();
        a.reserve(r(0x100_0000, 60 * MIB)).unwrap();
        a
    }

    fn q_size(q: BankRequest, size: u64) -> BankRequest {
        BankRequest { size, ..q }
    }

    fn pi_req(size: u64) -> BankRequest {
        BankRequest {
            low_limit: Some(GIB),
            first_min: 64 * MIB,
            ..req(size)
        }
    }

    #[test]
    fn below_the_dma_limit_first() {
        let a = rpi4();
        // 512 MiB fits below 1 GiB: there, although a bigger block is above.
        assert_eq!(
            banks(&a, &pi_req(512 * MIB)),
            Ok(vec![(0x4c0_0000, 512 * MIB)])
        );
        // 1536 MiB: all of the low piece (0x4c0_0000..0x3b40_0000), the rest
        // from the first piece above the limit.
        let low = 0x3b40_0000 - 0x4c0_0000;
        assert_eq!(
            banks(&a, &pi_req(1536 * MIB)),
            Ok(vec![(0x4c0_0000, low), (0x4000_0000, 1536 * MIB - low)])
        );
        // Without the limit, one block above 1 GiB would do.
        let q = BankRequest {
            low_limit: None,
            ..pi_req(1536 * MIB)
        };
        assert_eq!(banks(&a, &q), Ok(vec![(0x4000_0000, 1536 * MIB)]));
    }

    #[test]
    fn a_range_across_the_limit_is_split_there() {
        let mut a = PhysAllocator::new();
        a.add(r(0x3000_0000, 768 * MIB)).unwrap(); // 256 MiB below 1 GiB, 512 above
        a.add(r(0x1_0000_0000, GIB)).unwrap();
        let q = BankRequest {
            low_limit: Some(GIB),
            ..req(640 * MIB)
        };
        // Below the limit first (256 MiB), then the lowest piece above that
        // holds the remaining 384 MiB: the one just above the limit, so the
        // two pieces touch and make one bank.
        assert_eq!(banks(&a, &q), Ok(vec![(0x3000_0000, 640 * MIB)]));
        // 896 MiB: the 1 GiB piece holds the remaining 640 MiB.
        assert_eq!(
            banks(&a, &q_size(q, 896 * MIB)),
            Ok(vec![(0x3000_0000, 256 * MIB), (0x1_0000_0000, 640 * MIB)])
        );
    }

    #[test]
    fn alloc_banks_takes_the_plan_or_nothing() {
        let mut a = virt();
        let before = a.clone();
        let mut out = [PhysRange::default(); 8];
        let n = a.alloc_banks(&req(1200 * MIB), &mut out).unwrap();
        assert_eq!(n, 2);
        assert_eq!(a.free_bytes(), before.free_bytes() - 1200 * MIB);
        for b in &out[..n] {
            assert!(a.alloc_at(*b).is_err(), "{b} still free");
        }
        let free = a.free_bytes();
        let after: Vec<_> = a.ranges().collect();
        assert!(matches!(
            a.alloc_banks(&req(free + M2), &mut out),
            Err(BankError::NoMemory { free: f }) if f <= free
        ));
        assert_eq!(a.ranges().collect::<Vec<_>>(), after);
        assert_eq!(
            a.alloc_banks(&req(0), &mut out),
            Err(BankError::Alloc(AllocError::BadAlignment))
        );
    }
}
