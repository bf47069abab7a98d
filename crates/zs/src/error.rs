//! Errors of the runtime, one enum per operation.

use std::time::Duration;

use zs_wire::crypto::record::RecordError;
use zs_wire::dataframe::DecodeError;
use zs_wire::frame::{CloseCode, EncodeError};
use zs_wire::session::{CloseReason, ProtocolError};

use crate::dispatch::Status;

/// How a transport ended without a close frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Lost {
    /// The peer ended the stream (EOF) without saying goodbye.
    #[error("peer closed the connection without a close frame")]
    Eof,
    /// Reading or writing failed.
    #[error("{kind}: {message}")]
    Io {
        /// The I/O error's kind (`ConnectionReset`, `BrokenPipe`, `TimedOut`, ...).
        kind: std::io::ErrorKind,
        /// Its text.
        message: String,
    },
    /// The connection's task ended (the runtime is shutting down).
    #[error("connection task ended")]
    TaskEnded,
}

impl From<&std::io::Error> for Lost {
    fn from(error: &std::io::Error) -> Self {
        Self::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// This side closed it (`Peer::close`, client drop, server shutdown).
    #[error("closed locally ({code}): {reason}")]
    Local {
        /// Code sent to the peer.
        code: CloseCode,
        /// Reason sent to the peer.
        reason: String,
    },
    /// The peer closed it with a close frame.
    #[error("closed by peer ({code}): {reason}")]
    Peer {
        /// The peer's code.
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// Nothing was received within the idle timeout.
    #[error("idle timeout after {0:?}")]
    IdleTimeout(Duration),
    /// The transport ended without a close frame (peer crashed, cable pulled, reset).
    #[error("connection lost: {0}")]
    ConnectionLost(Lost),
    /// The record layer refused what arrived: an altered, replayed, reordered or oversize
    /// record. The connection is closed at once; nothing more is trusted.
    #[error("security violation: {0}")]
    Security(RecordError),
}

impl From<CloseReason> for DisconnectReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Local { code, reason } => Self::Local { code, reason },
            CloseReason::Peer { code, reason } => Self::Peer { code, reason },
            CloseReason::Protocol(error) => Self::Protocol(error),
            CloseReason::IdleTimeout(after) => Self::IdleTimeout(after),
            // A reason added to the session later: closest is a local close.
            other => Self::Local {
                code: CloseCode::Normal,
                reason: other.to_string(),
            },
        }
    }
}

/// A call (`call_console`, `call_stream`) failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply within the call's timeout; the request was cancelled at the peer.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection ended before the reply arrived.
    #[error("connection closed before the reply: {0}")]
    ConnectionClosed(DisconnectReason),
    /// The peer answered with an error: its handler's [`Status`], or one the runtime chose
    /// (`UNIMPLEMENTED` for an unknown command, `INVALID_ARGUMENT` for a malformed request,
    /// `INTERNAL` for a panic, `UNAVAILABLE` while shutting down).
    #[error("{0}")]
    Remote(Status),
    /// The reply is not what the command kind promises.
    #[error("malformed reply: {0}")]
    BadReply(#[from] BadReply),
    /// The request cannot be sent (too large, bad name).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The local source of a transfer failed (a file read error); the transfer was cancelled.
    #[error("transfer source failed: {0}")]
    Source(Lost),
}

/// A reply that does not match its command kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadReply {
    /// A console reply that is not UTF-8.
    #[error("console reply is not UTF-8")]
    NotUtf8,
    /// A stream reply that is not a DataFrame.
    #[error("reply is not a DataFrame: {0}")]
    NotDataFrame(#[from] DecodeError),
    /// The reply's values are not what the command returns.
    #[error("unexpected reply values: {0}")]
    Values(#[from] zs_wire::dataframe::ReadError),
    /// The request id was still in use (a bug in the caller's runtime).
    #[error("request id {0} in use")]
    IdInUse(u64),
}

impl CallError {
    /// The peer's status, when the peer answered with an error.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Self::Remote(status) => Some(status),
            _ => None,
        }
    }

    /// True when the peer answered "no such command" (`UNIMPLEMENTED`).
    pub fn is_unknown_command(&self) -> bool {
        self.status()
            .is_some_and(|status| status.code() == crate::StatusCode::UNIMPLEMENTED)
    }
}

/// A one-way message (`send_direct_*`) could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed.
    #[error("connection closed: {0}")]
    ConnectionClosed(DisconnectReason),
    /// The message cannot be encoded (too large, bad name).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// `Client::connect` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TCP connection could not be made.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server refused the connection (full, shutting down, version).
    #[error("server refused the connection: {0}")]
    Refused(DisconnectReason),
    /// The server did not complete the handshake and preamble in time.
    #[error("no handshake from the server within {0:?}")]
    Timeout(Duration),
    /// The secure handshake failed (no common suite, pinned fingerprint mismatch, ...).
    #[error(transparent)]
    Security(#[from] crate::transport::security::SecurityError),
}
