//! Frames: the units a connection carries after the preamble (`docs/PROTOCOL.md` §Frames).
//!
//! ```text
//! header (14 bytes) = u8 kind | u8 flags | u32 body_len | u64 request_id
//! body              = body_len bytes, layout by kind
//! ```
//! Every request carries a request id chosen by its sender, so many requests can be in flight
//! at once in both directions on one connection (the original allowed one per direction).
//! The decoder follows the `tokio_util::codec::Decoder` contract: `Ok(None)` means "need more
//! bytes", an `Err` is fatal for this connection only. The declared body length is checked
//! against the configured maximum *before* any buffer grows.

use bytes::Bytes;

mod decode;
mod encode;

pub use decode::FrameDecoder;
pub use encode::{
    EncodeError, MAX_MESSAGE_LEN, encode_cancel, encode_close, encode_command, encode_error_reply,
    encode_ping, encode_pong, encode_reply, encode_stream_credit, encode_stream_data,
    encode_stream_data_header, encode_stream_end, encode_stream_open,
};

/// Size of the fixed frame header.
pub const HEADER_SIZE: usize = 14;

/// Default maximum body size of one frame: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// Longest command name, in bytes.
pub const MAX_COMMAND_NAME: usize = 255;

/// Identifies one request among those its sender has in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a request carries: text or a DataFrame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// UTF-8 text ("console" command in ZServer4D).
    Console,
    /// An encoded [`DataFrame`](crate::DataFrame) ("stream" command in ZServer4D).
    Stream,
}

/// The kind byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Console request expecting a reply.
    ConsoleRequest = 0x01,
    /// Stream request expecting a reply.
    StreamRequest = 0x02,
    /// Console message without reply.
    DirectConsole = 0x03,
    /// Stream message without reply.
    DirectStream = 0x04,
    /// Successful reply.
    Reply = 0x05,
    /// Failed reply.
    ErrorReply = 0x06,
    /// Keep-alive probe.
    Ping = 0x07,
    /// Answer to a ping.
    Pong = 0x08,
    /// The sender closes the connection.
    Close = 0x09,
    /// The sender no longer waits for the reply to one of its requests.
    Cancel = 0x0A,
    /// Opens a BigStream / CompleteBuffer transfer: a request whose body follows in
    /// `StreamData` frames.
    StreamOpen = 0x0B,
    /// A chunk of an open transfer.
    StreamData = 0x0C,
    /// The sender has sent every chunk of the transfer.
    StreamEnd = 0x0D,
    /// The receiver grants the sender more bytes of window for a transfer.
    StreamCredit = 0x0E,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x01 => Self::ConsoleRequest,
            0x02 => Self::StreamRequest,
            0x03 => Self::DirectConsole,
            0x04 => Self::DirectStream,
            0x05 => Self::Reply,
            0x06 => Self::ErrorReply,
            0x07 => Self::Ping,
            0x08 => Self::Pong,
            0x09 => Self::Close,
            0x0A => Self::Cancel,
            0x0B => Self::StreamOpen,
            0x0C => Self::StreamData,
            0x0D => Self::StreamEnd,
            0x0E => Self::StreamCredit,
            _ => return None,
        })
    }
}

pub use crate::status::StatusCode;

/// Why a connection is closed, as sent in a close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// Orderly close by the application.
    Normal,
    /// The peer broke the protocol.
    ProtocolError,
    /// Nothing was received for longer than the idle timeout.
    IdleTimeout,
    /// The server is at its connection limit.
    ServerFull,
    /// The server is shutting down.
    ShuttingDown,
    /// No common protocol version.
    VersionMismatch,
    /// The peer failed authentication (wrong token, unpinned key).
    Unauthorized,
    /// A code this version does not know.
    Other(u16),
}

impl CloseCode {
    /// The code's wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 0,
            Self::ProtocolError => 1,
            Self::IdleTimeout => 2,
            Self::ServerFull => 3,
            Self::ShuttingDown => 4,
            Self::VersionMismatch => 5,
            Self::Unauthorized => 6,
            Self::Other(code) => code,
        }
    }

    /// The code for a wire value.
    pub fn from_u16(code: u16) -> Self {
        match code {
            0 => Self::Normal,
            1 => Self::ProtocolError,
            2 => Self::IdleTimeout,
            3 => Self::ServerFull,
            4 => Self::ShuttingDown,
            5 => Self::VersionMismatch,
            6 => Self::Unauthorized,
            other => Self::Other(other),
        }
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Normal => f.write_str("normal close"),
            Self::ProtocolError => f.write_str("protocol error"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::ServerFull => f.write_str("server full"),
            Self::ShuttingDown => f.write_str("shutting down"),
            Self::VersionMismatch => f.write_str("version mismatch"),
            Self::Unauthorized => f.write_str("unauthorized"),
            Self::Other(code) => write!(f, "close code {code}"),
        }
    }
}

/// How the receiver treats a transfer's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamMode {
    /// Delivered to the handler chunk by chunk (ZServer4D's BigStream).
    Chunks,
    /// Collected and delivered as one buffer (ZServer4D's CompleteBuffer); `total` is
    /// known and bounded by the receiver's limit.
    Complete,
}

/// Compression of a transfer's bytes (CompleteBuffer only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Sent as is.
    None,
    /// LZ4 block format.
    Lz4,
    /// Zstandard frame.
    Zstd,
}

impl Compression {
    fn to_u8(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Lz4 => 1,
            Self::Zstd => 2,
        }
    }

    fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::None,
            1 => Self::Lz4,
            2 => Self::Zstd,
            _ => return None,
        })
    }
}

/// What a `StreamOpen` frame announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamInfo {
    /// Bytes that will follow on the wire, if known.
    pub total: Option<u64>,
    /// Where in the source these bytes start (resumed transfers); informational.
    pub offset: u64,
    /// Chunks or one buffer.
    pub mode: StreamMode,
    /// How the bytes are compressed.
    pub compression: Compression,
    /// Size after decompression (equals `total` when not compressed).
    pub original_len: u64,
}

/// Size of a `StreamOpen` body after the name.
const STREAM_INFO_SIZE: usize = 8 + 8 + 1 + 1 + 8;

/// One decoded frame. Bodies are zero-copy slices of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A request that expects exactly one reply.
    Request {
        /// The sender's id for it; the reply carries the same id.
        id: RequestId,
        /// Text or DataFrame.
        payload: Payload,
        /// The command name.
        name: String,
        /// UTF-8 text or an encoded DataFrame (validated by the receiver's handler task).
        body: Bytes,
    },
    /// A message that expects no reply.
    Direct {
        /// Text or DataFrame.
        payload: Payload,
        /// The command name.
        name: String,
        /// UTF-8 text or an encoded DataFrame.
        body: Bytes,
    },
    /// The successful reply to request `id`.
    Reply {
        /// The request answered.
        id: RequestId,
        /// Text or an encoded DataFrame, as the request's payload kind.
        body: Bytes,
    },
    /// The failed reply to request `id`.
    ErrorReply {
        /// The request answered.
        id: RequestId,
        /// Why it failed.
        code: StatusCode,
        /// A message for humans.
        message: String,
        /// Structured details (an encoded DataFrame), empty when there are none.
        details: Bytes,
    },
    /// Keep-alive probe; the peer answers with a pong carrying the same nonce.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Answer to a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The sender closes the connection and sends nothing after this frame.
    Close {
        /// Why.
        code: CloseCode,
        /// A message for humans.
        reason: String,
    },
    /// The sender gave up waiting for request `id` (timeout); the receiver may stop working
    /// on it and must still not send more than one reply.
    Cancel {
        /// The request given up.
        id: RequestId,
    },
    /// Opens transfer `id` (a request answered by `Reply`/`ErrorReply` once consumed).
    StreamOpen {
        /// The sender's request id for the transfer.
        id: RequestId,
        /// The handler's name.
        name: String,
        /// Size, offset, mode, compression.
        info: StreamInfo,
    },
    /// A chunk of transfer `id`.
    StreamData {
        /// The transfer.
        id: RequestId,
        /// The bytes.
        body: Bytes,
    },
    /// Transfer `id` has no more chunks.
    StreamEnd {
        /// The transfer.
        id: RequestId,
    },
    /// The receiver of transfer `id` accepts `credit` more bytes.
    StreamCredit {
        /// The transfer.
        id: RequestId,
        /// Additional bytes the sender may send.
        credit: u32,
    },
}

/// A frame could not be decoded. Fatal for the connection it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared body is larger than this side accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Declared body length.
        len: u64,
        /// Configured maximum.
        max: u32,
    },
    /// A kind byte no version of this protocol defines.
    #[error("unknown frame kind 0x{kind:02x}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// Flags this version does not define are set.
    #[error("unknown frame flags 0x{flags:02x} on kind 0x{kind:02x}")]
    UnknownFlags {
        /// The kind byte.
        kind: u8,
        /// The flags byte.
        flags: u8,
    },
    /// The body does not match the layout of its kind.
    #[error("malformed {kind:?} frame: {problem}")]
    Malformed {
        /// The frame's kind.
        kind: FrameKind,
        /// What is wrong.
        problem: &'static str,
    },
}

#[cfg(test)]
mod tests;
