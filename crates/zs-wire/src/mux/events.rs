//! What a mux reports: events, close reasons, errors and counters.

use std::time::Duration;

use super::{FrameType, MAX_SERVICE_NAME, StreamId, VERSION};

/// Why a side sends `GoAway` (the frame's `length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoAwayCode {
    /// Orderly: no new streams, existing ones finish.
    Normal,
    /// The other side broke the protocol; the mux is over.
    ProtocolError,
    /// The sender failed internally; the mux is over.
    InternalError,
    /// Nothing was received within the sender's idle timeout; the mux is over.
    IdleTimeout,
    /// A code this version does not know; treated as fatal.
    Other(u32),
}

impl GoAwayCode {
    /// The code for a wire value.
    pub fn from_u32(code: u32) -> Self {
        match code {
            0 => Self::Normal,
            1 => Self::ProtocolError,
            2 => Self::InternalError,
            3 => Self::IdleTimeout,
            other => Self::Other(other),
        }
    }

    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::Normal => 0,
            Self::ProtocolError => 1,
            Self::InternalError => 2,
            Self::IdleTimeout => 3,
            Self::Other(code) => code,
        }
    }
}

impl std::fmt::Display for GoAwayCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::ProtocolError => f.write_str("protocol error"),
            Self::InternalError => f.write_str("internal error"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::Other(code) => write!(f, "code {code}"),
        }
    }
}

/// Why a mux ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer broke the protocol; it was told with `GoAway` (protocol error).
    #[error("protocol error: {0}")]
    Protocol(MuxError),
    /// The peer ended the mux with a non-normal `GoAway`.
    #[error("closed by peer: {0}")]
    Peer(GoAwayCode),
    /// Nothing arrived within the idle timeout.
    #[error("idle timeout: nothing received for {0:?}")]
    IdleTimeout(Duration),
}

/// Something the runtime must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxEvent {
    /// The peer opened a stream to one of our services; it is accepted already.
    IncomingStream {
        /// The new stream.
        id: StreamId,
        /// The service it was opened to.
        service: String,
    },
    /// The peer accepted a stream we opened.
    Accepted {
        /// The stream.
        id: StreamId,
    },
    /// A stream's receive buffer went from empty to non-empty: [`Mux::read`](super::Mux::read) it.
    Readable {
        /// The stream.
        id: StreamId,
    },
    /// A stream whose last [`Mux::write`](super::Mux::write) was short can take data again: at
    /// least half a window, or whatever its peer allows once its queued data has been sent.
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// The peer sent FIN: nothing follows what is buffered (end of file once read).
    PeerFinished {
        /// The stream.
        id: StreamId,
    },
    /// The stream is gone: both sides finished and everything was read (`reset: false`), or the
    /// peer reset or refused it (`reset: true`). Not emitted for a local
    /// [`Mux::reset`](super::Mux::reset).
    StreamClosed {
        /// The stream.
        id: StreamId,
        /// True when it was aborted rather than finished.
        reset: bool,
    },
    /// The peer listens on a service.
    ListenerAnnounced {
        /// The service name.
        service: String,
    },
    /// The peer no longer listens on a service.
    ListenerRemoved {
        /// The service name.
        service: String,
    },
    /// The peer sent `GoAway`: it accepts no new streams. A non-normal code ends the mux
    /// ([`MuxEvent::Closed`] follows).
    GoAway {
        /// The peer's code.
        code: GoAwayCode,
    },
    /// The mux is over: every stream is gone, no more events follow.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// A mux error: a protocol violation by the peer (fatal, see the module docs) or a refused
/// local command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// The header's version byte is not [`VERSION`].
    #[error("mux frame version {version}; this side speaks version {VERSION}")]
    BadVersion {
        /// The version received.
        version: u8,
    },
    /// The header's type byte is not a known frame type.
    #[error("unknown mux frame type {frame_type:#04x}")]
    UnknownType {
        /// The type byte.
        frame_type: u8,
    },
    /// Flags not allowed on this frame type.
    #[error("flags {flags:#06x} are not allowed on a {frame_type:?} frame")]
    BadFlags {
        /// The frame type.
        frame_type: FrameType,
        /// The flag bits.
        flags: u16,
    },
    /// A body longer than allowed (data: [`MAX_FRAME_BODY`](super::MAX_FRAME_BODY); names:
    /// [`MAX_SERVICE_NAME`]).
    #[error("mux frame body of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Declared length.
        len: u32,
        /// The maximum.
        max: u32,
    },
    /// A body on a frame that takes none (RST).
    #[error("{frame_type:?} frame carries {len} bytes of body; it takes none")]
    UnexpectedBody {
        /// The frame type.
        frame_type: FrameType,
        /// Declared length.
        len: u32,
    },
    /// A stream id where none belongs (or 0 where one does), a SYN with the wrong parity,
    /// or a SYN reusing an id.
    #[error("bad stream id {id} for this frame")]
    BadStreamId {
        /// The id.
        id: StreamId,
    },
    /// A frame for a stream that was never opened, or a command for a stream that is not
    /// open (never opened, closed or reset).
    #[error("unknown or closed stream {id}")]
    UnknownStream {
        /// The id.
        id: StreamId,
    },
    /// The peer sent more than the window it was granted on a stream.
    #[error("stream {id}: peer exceeded its window by {by} bytes")]
    WindowExceeded {
        /// The stream.
        id: StreamId,
        /// Bytes beyond the window.
        by: u32,
    },
    /// A window update would take a stream's send window past `u32::MAX`.
    #[error("stream {id}: window update of {delta} overflows the send window")]
    WindowOverflow {
        /// The stream.
        id: StreamId,
        /// The increment received.
        delta: u32,
    },
    /// Data or FIN after the peer's FIN on the same stream.
    #[error("stream {id}: data after the peer's FIN")]
    DataAfterFin {
        /// The stream.
        id: StreamId,
    },
    /// A service name that is empty or longer than [`MAX_SERVICE_NAME`].
    #[error("service name of {len} bytes; it must be 1..={MAX_SERVICE_NAME}")]
    InvalidServiceName {
        /// Its length.
        len: usize,
    },
    /// A service name that is not UTF-8.
    #[error("service name is not UTF-8")]
    ServiceNameNotUtf8,
    /// Too many streams open to open another.
    #[error("too many streams: at most {max} may be open")]
    TooManyStreams {
        /// The limit.
        max: usize,
    },
    /// The peer announced (or this side listens on) too many services.
    #[error("too many services: at most {max} may be announced")]
    TooManyServices {
        /// The limit.
        max: usize,
    },
    /// Opening another stream would take the received-data budget
    /// ([`MuxConfig::max_buffered`](super::MuxConfig::max_buffered)) past its limit: every stream
    /// reserves [`INITIAL_WINDOW`](super::INITIAL_WINDOW).
    #[error("receive budget exhausted: at most {max} bytes may be committed to streams")]
    BudgetExhausted {
        /// The budget.
        max: usize,
    },
    /// Every stream id of this side's parity has been used.
    #[error("stream ids exhausted")]
    StreamIdsExhausted,
    /// A write after [`Mux::close`](super::Mux::close) on that stream.
    #[error("stream {id} is closed for writing")]
    WriteClosed {
        /// The stream.
        id: StreamId,
    },
    /// No new streams: this side or the peer sent `GoAway`.
    #[error("the mux is going away: no new streams")]
    GoingAway,
    /// The mux is over.
    #[error("the mux is closed")]
    Closed,
}

/// Counters of what a mux holds, for statistics and memory checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MuxStats {
    /// Streams open.
    pub streams: usize,
    /// Received bytes buffered, not yet read, over all streams.
    pub buffered_receive: usize,
    /// Written bytes not yet handed to [`Mux::poll_transmit`](super::Mux::poll_transmit), over all
    /// streams.
    pub buffered_send: usize,
    /// Control frame bytes not yet handed to [`Mux::poll_transmit`](super::Mux::poll_transmit).
    pub control_pending: usize,
    /// Received-data budget in use: over all streams, what each holds and may still be sent, at
    /// least [`INITIAL_WINDOW`](super::INITIAL_WINDOW) per stream (see
    /// [`MuxConfig::max_buffered`](super::MuxConfig::max_buffered)).
    pub committed_receive: usize,
    /// Streams the peer opened that were refused with RST.
    pub refused_streams: u64,
}
