//! The limits and timers of StableIO sessions.

use std::time::Duration;

use super::{MAX_SEGMENT, MAX_WINDOW, MIN_WINDOW};

/// Limits and timers. Out-of-range values are clamped.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StableConfig {
    /// Most unacknowledged bytes a sender keeps (and unread bytes a receiver accepts): the
    /// per-session memory cap is about twice this. Default 4 MiB,
    /// [`MIN_WINDOW`]..=[`MAX_WINDOW`]. Both sides must use the same value.
    pub window: usize,
    /// Client: give up after this long without a successful resume. Server: forget a
    /// session detached this long. Default 5 minutes.
    pub give_up_after: Duration,
    /// Longest an ack waits for data to piggyback on. Default 20 ms.
    pub ack_delay: Duration,
    /// Most sessions a [`StableRegistry`](super::StableRegistry) holds. Default 10,000.
    pub max_sessions: usize,
    /// First reconnect delay; doubles per failed attempt. Default 250 ms.
    pub reconnect_initial: Duration,
    /// Longest reconnect delay. Default 5 s.
    pub reconnect_max: Duration,
    /// Largest `Data` segment sent. Default 16 KiB, 1..=[`MAX_SEGMENT`].
    pub segment_size: usize,
}

config_setters!(StableConfig {
    window: usize => with_window,
    give_up_after: Duration => with_give_up_after,
    ack_delay: Duration => with_ack_delay,
    max_sessions: usize => with_max_sessions,
    reconnect_initial: Duration => with_reconnect_initial,
    reconnect_max: Duration => with_reconnect_max,
    segment_size: usize => with_segment_size,
});

impl Default for StableConfig {
    fn default() -> Self {
        Self {
            window: 4 * 1024 * 1024,
            give_up_after: Duration::from_secs(300),
            ack_delay: Duration::from_millis(20),
            max_sessions: 10_000,
            reconnect_initial: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(5),
            segment_size: 16 * 1024,
        }
    }
}

impl StableConfig {
    pub(super) fn clamped(mut self) -> Self {
        self.window = self.window.clamp(MIN_WINDOW, MAX_WINDOW);
        self.segment_size = self.segment_size.clamp(1, MAX_SEGMENT);
        self
    }

    /// The delay before reconnect attempt `attempt` (0-based): exponential backoff from
    /// [`Self::reconnect_initial`], capped at [`Self::reconnect_max`].
    pub fn reconnect_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.reconnect_initial
            .saturating_mul(factor)
            .min(self.reconnect_max)
    }
}
