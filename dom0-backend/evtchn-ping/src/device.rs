//! The event-channel device seen by the ping-pong logic.
//!
//! [`EvtchnDevice`] is one open handle of `/dev/xen/evtchn` reduced to the five operations
//! the ping-pong needs. The real implementation ([`crate::linux::LinuxEvtchn`]) issues
//! ioctls; tests use an in-memory fake so the round-trip logic and the error paths run on
//! the host. Errors are plain [`std::io::Error`]s (errno values on Linux); the caller wraps
//! them with the step that failed.

use std::io;
use std::time::Duration;

/// One handle of an event-channel device (Linux `/dev/xen/evtchn` semantics).
///
/// Invariants callers rely on: a port delivered by [`read_ports`](Self::read_ports) stays
/// masked (no further delivery) until it is passed to [`unmask`](Self::unmask); a
/// notification that arrives while masked is kept pending and delivered on unmask.
pub trait EvtchnDevice {
    /// Allocates a fresh port that `remote_domain` may bind to and binds it to this handle.
    fn bind_unbound_port(&mut self, remote_domain: u32) -> io::Result<u32>;
    /// Binds a new local port to the unbound `remote_port` of `remote_domain`.
    fn bind_interdomain(&mut self, remote_domain: u32, remote_port: u32) -> io::Result<u32>;
    /// Sends an event to the remote end of the local `port`.
    fn notify(&mut self, port: u32) -> io::Result<()>;
    /// Closes the local `port`.
    fn unbind(&mut self, port: u32) -> io::Result<()>;
    /// Waits up to `timeout` for fired ports and stores them in `buf`; returns how many.
    /// Returns an error of kind [`io::ErrorKind::TimedOut`] when nothing fired in time.
    fn read_ports(&mut self, buf: &mut [u32], timeout: Duration) -> io::Result<usize>;
    /// Unmasks the given ports (re-enables delivery).
    fn unmask(&mut self, ports: &[u32]) -> io::Result<()>;
}

/// A monotonic clock in nanoseconds (the real one wraps [`std::time::Instant`]).
pub trait Clock {
    /// Nanoseconds since an arbitrary fixed origin; never decreases.
    fn now_ns(&mut self) -> u64;
}

/// [`Clock`] over [`std::time::Instant`].
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&mut self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
