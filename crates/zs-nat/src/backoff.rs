//! Reconnect delays, without I/O: exponential from a minimum to a maximum.
//!
//! ```
//! use std::time::Duration;
//! use zs_nat::backoff::Backoff;
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
//! assert_eq!(backoff.next_delay(), Duration::from_millis(100));
//! assert_eq!(backoff.next_delay(), Duration::from_millis(200));
//! assert_eq!(backoff.next_delay(), Duration::from_millis(350));
//! assert_eq!(backoff.next_delay(), Duration::from_millis(350));
//! backoff.reset(); // after a link that worked
//! assert_eq!(backoff.next_delay(), Duration::from_millis(100));
//! ```

use std::time::Duration;

/// Doubling delays between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays start at `min` and double up to `max` (at least `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt; the one after it is twice as long, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts over at `min` (after a successful connection).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}
