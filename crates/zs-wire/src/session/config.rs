//! The limits and timers of a session.

use std::time::Duration;

use crate::frame;

/// Protocol limits and timers of one session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Largest frame body accepted from the peer. Bounds the memory one frame can claim.
    pub max_frame_size: u32,
    /// Most requests from the peer that may be open (received, not yet answered). Past it the
    /// runtime stops reading, so a flooding peer slows only itself.
    pub max_concurrent_requests: usize,
    /// Send a ping after this long without receiving anything. `None` disables pings.
    pub keepalive_interval: Option<Duration>,
    /// Close the connection after this long without receiving anything. `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// Ask the peer to run this side's requests strictly in order: each one starts after the
    /// previous one's reply (ZServer4D's serialized command queue). Sent in the preamble.
    pub ordered_requests: bool,
}

config_setters!(SessionConfig {
    max_frame_size: u32 => with_max_frame_size,
    max_concurrent_requests: usize => with_max_concurrent_requests,
    keepalive_interval: Option<Duration> => with_keepalive_interval,
    idle_timeout: Option<Duration> => with_idle_timeout,
    ordered_requests: bool => with_ordered_requests,
});

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_concurrent_requests: 1024,
            keepalive_interval: Some(Duration::from_secs(15)),
            idle_timeout: Some(Duration::from_secs(60)),
            ordered_requests: false,
        }
    }
}
