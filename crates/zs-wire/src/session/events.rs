//! What a session reports: events for the runtime, and its errors.

use std::time::Duration;

use bytes::Bytes;

use super::MIN_FRAME_SIZE;
use crate::frame::{
    CloseCode, EncodeError, FrameError, Payload, RequestId, StatusCode, StreamInfo,
};

/// Something the runtime must act on.
#[derive(Debug)]
pub enum Event<T> {
    /// The peer asks for a reply; answer with [`Session::send_reply`](super::Session::send_reply)
    /// exactly once.
    Request {
        /// The peer's id for it.
        id: RequestId,
        /// Text or DataFrame.
        payload: Payload,
        /// Command name.
        name: String,
        /// The undecoded payload.
        body: Bytes,
    },
    /// The peer sent a message that takes no reply.
    Direct {
        /// Text or DataFrame.
        payload: Payload,
        /// Command name.
        name: String,
        /// The undecoded payload.
        body: Bytes,
    },
    /// The reply to one of our requests.
    Reply {
        /// Our id for the request.
        id: RequestId,
        /// What was stored with the request.
        token: T,
        /// The reply body, or the peer's error.
        result: Result<Bytes, RemoteError>,
    },
    /// The peer opens a transfer (a request whose body follows as [`Event::StreamData`]); answer it
    /// with [`Session::send_reply`](super::Session::send_reply) once consumed, and grant window
    /// with [`Session::grant_stream_credit`](super::Session::grant_stream_credit) as chunks are
    /// consumed.
    StreamOpen {
        /// The peer's request id for the transfer.
        id: RequestId,
        /// Handler name.
        name: String,
        /// Size, offset, mode, compression.
        info: StreamInfo,
    },
    /// A chunk of an open inbound transfer.
    StreamData {
        /// The transfer.
        id: RequestId,
        /// The bytes.
        body: Bytes,
    },
    /// An inbound transfer has no more chunks.
    StreamEnd {
        /// The transfer.
        id: RequestId,
    },
    /// The peer granted more window to one of our outbound transfers.
    StreamCredit {
        /// The transfer.
        id: RequestId,
        /// Additional bytes we may send.
        credit: u32,
    },
    /// The peer no longer waits for its request `id` (it will ignore the reply).
    Cancelled {
        /// The peer's id.
        id: RequestId,
    },
    /// The connection is over; no more events follow. Requests still in flight are
    /// handed back by [`Session::take_in_flight`](super::Session::take_in_flight).
    Closed(CloseReason),
}

/// An error reply from the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    /// Why the request failed.
    pub code: StatusCode,
    /// The peer's message.
    pub message: String,
    /// Structured details (an encoded DataFrame), empty when there are none.
    pub details: Bytes,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// This side closed it.
    #[error("closed locally ({code}): {reason}")]
    Local {
        /// The code sent to the peer.
        code: CloseCode,
        /// The reason sent to the peer.
        reason: String,
    },
    /// The peer sent a close frame.
    #[error("closed by peer ({code}): {reason}")]
    Peer {
        /// The peer's code.
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The peer broke the protocol; the error was sent to it in a close frame.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// Nothing arrived within the idle timeout.
    #[error("idle timeout: nothing received for {0:?}")]
    IdleTimeout(Duration),
}

/// The peer sent something this protocol forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first bytes are not a zserver preamble.
    #[error("not a zserver peer: bad preamble {found:02x?}")]
    BadPreamble {
        /// The bytes received.
        found: [u8; 4],
    },
    /// No protocol version in common.
    #[error("peer speaks protocol version {theirs}, this side {ours}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// A frame failed to decode.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A reply names a request id never sent.
    #[error("reply to request {id} which was never sent")]
    UnknownReply {
        /// The id.
        id: RequestId,
    },
    /// A request reuses the id of one still open.
    #[error("request id {id} reused while still open")]
    DuplicateRequest {
        /// The id.
        id: RequestId,
    },
    /// The peer sent more of a transfer than the window it was granted.
    #[error("transfer {id} exceeded its window by {excess} bytes")]
    WindowExceeded {
        /// The transfer.
        id: RequestId,
        /// Bytes beyond the window.
        excess: u64,
    },
    /// A chunk, end or credit for a transfer that was never opened.
    #[error("transfer frame for {id}, which was never opened")]
    UnknownStream {
        /// The id.
        id: RequestId,
    },
    /// The peer announced a frame limit too small to be usable.
    #[error("peer accepts frames of at most {max} bytes; the minimum is {MIN_FRAME_SIZE}")]
    FrameLimitTooSmall {
        /// The announced limit.
        max: u32,
    },
    /// A request id of zero (reserved for "no request").
    #[error("request id 0 is reserved")]
    ZeroRequestId,
    /// A frame after the peer's close.
    #[error("data after the close frame")]
    DataAfterClose,
}

/// A frame could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T> {
    /// The session is closed or closing; the token is handed back.
    #[error("connection closed")]
    Closed(T),
    /// The frame cannot be encoded (too large, bad name); the token is handed back.
    #[error("{0}")]
    Encode(EncodeError, T),
    /// The request id is zero or already in flight; the token is handed back.
    #[error("request id {0} is zero or already in flight")]
    BadRequestId(RequestId, T),
}

/// A transfer chunk could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamSendError {
    /// The session is closed.
    #[error("connection closed")]
    Closed,
    /// The transfer is not sending (ended, answered or cancelled).
    #[error("transfer is not sending")]
    NotSending,
    /// The chunk is larger than the credit the peer granted.
    #[error("chunk of {needed} bytes exceeds the {available} bytes of credit")]
    NoCredit {
        /// Chunk size.
        needed: u64,
        /// Credit left.
        available: u64,
    },
    /// The chunk cannot be encoded (larger than the peer's frame limit).
    #[error(transparent)]
    Encode(EncodeError),
}
