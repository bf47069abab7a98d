//! The limits and timers of a mux.

use std::time::Duration;

use super::INITIAL_WINDOW;

/// Limits and timers of one mux. Out-of-range values are clamped by [`Mux::new`](super::Mux::new).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MuxConfig {
    /// Receive window of every stream, in bytes: the most received data one stream buffers. At
    /// least [`INITIAL_WINDOW`] (256 KiB, the default), at most
    /// [`MAX_STREAM_WINDOW`](super::MAX_STREAM_WINDOW). It also bounds the unsent data
    /// [`Mux::write`](super::Mux::write) accepts per stream.
    pub stream_window: u32,
    /// Most streams open at once, both directions together. Default 65,536, at most
    /// [`MAX_STREAMS_LIMIT`](super::MAX_STREAMS_LIMIT) (1,000,000). Local opens past it fail with
    /// [`MuxError::TooManyStreams`](super::MuxError::TooManyStreams); the peer's are answered with
    /// RST.
    pub max_streams: usize,
    /// Largest data chunk one stream sends per round-robin turn of
    /// [`Mux::poll_transmit`](super::Mux::poll_transmit): the fairness quantum. Default 16 KiB,
    /// 1..=[`MAX_FRAME_BODY`](super::MAX_FRAME_BODY).
    pub chunk_size: u32,
    /// Most services the peer may announce; more is
    /// [`MuxError::TooManyServices`](super::MuxError::TooManyServices). Also the most this side may
    /// listen on. Default 1,024.
    pub max_peer_services: usize,
    /// Send a ping after this long without receiving anything. `None` disables pings.
    pub keepalive_interval: Option<Duration>,
    /// Close the mux after this long without receiving anything. `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// Connection-wide budget for received data, in bytes: what the peer has sent and is
    /// not yet read, plus what it may still send, over all streams. `None` (the default)
    /// sets no connection-wide limit: the bound is then `max_streams × stream_window`.
    /// At least [`INITIAL_WINDOW`]; see "Connection-wide budget" in the module docs.
    pub max_buffered: Option<usize>,
}

config_setters!(MuxConfig {
    stream_window: u32 => with_stream_window,
    max_streams: usize => with_max_streams,
    chunk_size: u32 => with_chunk_size,
    max_peer_services: usize => with_max_peer_services,
    keepalive_interval: Option<Duration> => with_keepalive_interval,
    idle_timeout: Option<Duration> => with_idle_timeout,
    max_buffered: Option<usize> => with_max_buffered,
});

impl Default for MuxConfig {
    fn default() -> Self {
        Self {
            stream_window: INITIAL_WINDOW,
            max_streams: 65_536,
            chunk_size: 16 * 1024,
            max_peer_services: 1024,
            keepalive_interval: Some(Duration::from_secs(15)),
            idle_timeout: Some(Duration::from_secs(60)),
            max_buffered: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_change_only_their_field() {
        let config = MuxConfig::default()
            .with_max_streams(16)
            .with_idle_timeout(None);
        assert_eq!(config.max_streams, 16);
        assert_eq!(config.idle_timeout, None);
        assert_eq!(config.stream_window, MuxConfig::default().stream_window);
    }
}
