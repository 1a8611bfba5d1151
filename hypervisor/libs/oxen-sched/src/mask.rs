//! A set of physical CPUs (Xen's `cpumask_t`), at most [`MAX_CPUS`].

use core::fmt;

/// Largest number of physical CPUs a [`CpuMask`] can hold.
pub const MAX_CPUS: usize = 64;

/// A set of physical CPU indices `0..MAX_CPUS`, bit `n` = CPU `n`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuMask(pub u64);

impl CpuMask {
    /// No CPU.
    pub const EMPTY: CpuMask = CpuMask(0);

    /// CPUs `0..n`.
    pub const fn first_n(n: usize) -> CpuMask {
        if n >= MAX_CPUS {
            CpuMask(u64::MAX)
        } else {
            CpuMask((1u64 << n) - 1)
        }
    }

    /// Only `cpu` (empty if `cpu >= MAX_CPUS`).
    pub const fn single(cpu: usize) -> CpuMask {
        if cpu >= MAX_CPUS {
            CpuMask(0)
        } else {
            CpuMask(1u64 << cpu)
        }
    }

    /// The CPUs listed (those `>= MAX_CPUS` are ignored).
    pub fn of(cpus: &[usize]) -> CpuMask {
        cpus.iter()
            .fold(CpuMask::EMPTY, |m, &c| m.or(CpuMask::single(c)))
    }

    /// Whether `cpu` is in the set.
    pub const fn contains(self, cpu: usize) -> bool {
        cpu < MAX_CPUS && self.0 & (1u64 << cpu) != 0
    }

    /// Adds `cpu`.
    pub fn insert(&mut self, cpu: usize) {
        self.0 |= CpuMask::single(cpu).0;
    }

    /// Removes `cpu`.
    pub fn remove(&mut self, cpu: usize) {
        self.0 &= !CpuMask::single(cpu).0;
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Intersection.
    pub const fn and(self, o: CpuMask) -> CpuMask {
        CpuMask(self.0 & o.0)
    }

    /// Union.
    pub const fn or(self, o: CpuMask) -> CpuMask {
        CpuMask(self.0 | o.0)
    }

    /// `self` without the CPUs of `o`.
    pub const fn and_not(self, o: CpuMask) -> CpuMask {
        CpuMask(self.0 & !o.0)
    }

    /// Whether every CPU of `self` is in `o`.
    pub const fn is_subset(self, o: CpuMask) -> bool {
        self.0 & !o.0 == 0
    }

    /// Whether the sets share a CPU.
    pub const fn intersects(self, o: CpuMask) -> bool {
        self.0 & o.0 != 0
    }

    /// Number of CPUs in the set.
    pub const fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// Lowest CPU in the set.
    pub const fn first(self) -> Option<usize> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0.trailing_zeros() as usize)
        }
    }

    /// Xen's `cpumask_cycle(n, mask)`: the first CPU of the set after `n`,
    /// wrapping around (`n` itself only if it is the only one).
    pub fn cycle(self, n: usize) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let above = if n + 1 >= MAX_CPUS {
            0
        } else {
            self.0 & (u64::MAX << (n + 1))
        };
        if above != 0 {
            Some(above.trailing_zeros() as usize)
        } else {
            self.first()
        }
    }

    /// The CPUs of the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        // Only the set bits (usually none or one): the hypervisor signals
        // the masks the policy returns on every scheduling decision.
        let mut rest = self.0;
        core::iter::from_fn(move || {
            (rest != 0).then(|| {
                let c = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                c
            })
        })
    }
}

impl fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_wraps_and_skips_self() {
        let m = CpuMask::of(&[1, 3]);
        assert_eq!(m.cycle(0), Some(1));
        assert_eq!(m.cycle(1), Some(3));
        assert_eq!(m.cycle(3), Some(1));
        assert_eq!(CpuMask::single(2).cycle(2), Some(2));
        assert_eq!(CpuMask::EMPTY.cycle(0), None);
        assert_eq!(CpuMask::single(63).cycle(63), Some(63));
        assert_eq!(CpuMask::first_n(64).count(), 64);
        assert_eq!(CpuMask::first_n(3), CpuMask::of(&[0, 1, 2]));
    }
}
