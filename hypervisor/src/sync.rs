//! The hypervisor's lock type.
//!
//! A spin lock whose waiters execute `YIELD` between attempts: a hint on
//! hardware, and under QEMU's single-threaded TCG (e.g. with `-icount`)
//! the point where the emulator switches to another CPU — which may be the
//! one holding the lock — instead of spinning out its whole time slice.

/// Relax strategy: the `YIELD` hint.
pub struct YieldRelax;

impl spin::RelaxStrategy for YieldRelax {
    #[inline(always)]
    fn relax() {
        // SAFETY: YIELD is a hint with no architectural effect.
        unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
    }
}

/// A spin lock protecting `T`.
pub type Mutex<T> = spin::mutex::SpinMutex<T, YieldRelax>;
/// Its guard.
pub type MutexGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T, YieldRelax>;
