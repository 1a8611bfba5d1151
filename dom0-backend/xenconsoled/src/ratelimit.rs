//! Per-console event rate limit (Xen's `RATE_LIMIT_ALLOWANCE` / `RATE_LIMIT_PERIOD`): at
//! most 30 ring events are handled per 200 ms period; after the 30th the event channel
//! stays masked (not polled, not unmasked) until the period ends. A guest flooding
//! notifications thus costs the daemon a bounded amount of work.
//!
//! Invariant: `count` is the number of events since `period_end - PERIOD`; the port is
//! unmasked exactly when `count < ALLOWANCE`.

use std::time::{Duration, Instant};

/// Events handled per period before the port stays masked.
pub const ALLOWANCE: u32 = 30;
/// Length of one period.
pub const PERIOD: Duration = Duration::from_millis(200);

/// The limiter of one console.
#[derive(Debug)]
pub struct RateLimit {
    count: u32,
    period_end: Instant,
}

impl RateLimit {
    /// A fresh limiter whose first period starts `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            count: 0,
            period_end: now + PERIOD,
        }
    }

    /// Count one event. Returns whether the port may be unmasked now.
    pub fn event(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        self.count < ALLOWANCE
    }

    /// Whether the port is to be polled (it is not while masked by the limit).
    pub fn open(&self) -> bool {
        self.count < ALLOWANCE
    }

    /// At `now`: start a new period if the current one is over. Returns true when the port
    /// was held masked and must be unmasked now (Xen allows 5 ms of poll fuzz).
    pub fn tick(&mut self, now: Instant) -> bool {
        if now + Duration::from_millis(5) <= self.period_end {
            return false;
        }
        let was_closed = !self.open();
        self.count = 0;
        self.period_end = now + PERIOD;
        was_closed
    }

    /// When [`RateLimit::tick`] next has work to do.
    pub fn deadline(&self) -> Instant {
        self.period_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_events_per_period_then_masked_until_the_period_ends() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0);
        for _ in 0..ALLOWANCE - 1 {
            assert!(r.event());
        }
        assert!(!r.event(), "the 30th event leaves the port masked");
        assert!(!r.open());
        assert!(!r.tick(t0 + Duration::from_millis(100)), "period not over");
        assert!(!r.open());
        assert!(r.tick(t0 + PERIOD), "period over: unmask");
        assert!(r.open());
        assert!(r.event());
        assert_eq!(r.deadline(), t0 + PERIOD + PERIOD);
    }

    #[test]
    fn a_quiet_period_needs_no_unmask() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0);
        assert!(r.event());
        assert!(!r.tick(t0 + PERIOD + Duration::from_millis(1)));
        assert!(r.open());
    }
}
