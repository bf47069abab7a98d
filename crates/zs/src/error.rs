//! Errors of the runtime, one enum per operation.

use std::time::Duration;

use zs_wire::frame::{CloseCode, EncodeError, ErrorCode};
use zs_wire::session::{CloseReason, ProtocolError};

/// The error type handlers return; any `std::error::Error` or string converts into it with `?`
/// or `.into()`. Its message becomes the error reply the caller sees.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    ConnectionLost(String),
    /// The record layer refused what arrived: an altered, replayed, reordered or oversize
    /// record. The connection is closed at once; nothing more is trusted.
    #[error("security violation: {0}")]
    Security(String),
}

impl From<CloseReason> for DisconnectReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Local { code, reason } => Self::Local { code, reason },
            CloseReason::Peer { code, reason } => Self::Peer { code, reason },
            CloseReason::Protocol(error) => Self::Protocol(error),
            CloseReason::IdleTimeout(after) => Self::IdleTimeout(after),
            other => Self::ConnectionLost(other.to_string()),
        }
    }
}

/// A call (`call_console`, `call_stream`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply within the call's timeout; the request was cancelled at the peer.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection ended before the reply arrived.
    #[error("connection closed before the reply: {0}")]
    ConnectionClosed(DisconnectReason),
    /// The peer answered with an error (handler error, unknown command, ...).
    #[error("{code:?}: {message}")]
    Remote {
        /// Why it failed.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },
    /// The reply is not what the command kind promises (bad UTF-8 or DataFrame).
    #[error("malformed reply: {0}")]
    BadReply(String),
    /// The request cannot be sent (too large, bad name).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The local source of a transfer failed (a file read error); the transfer was cancelled.
    #[error("transfer source failed: {0}")]
    Source(String),
}

impl CallError {
    /// True when the peer answered "no such command".
    pub fn is_unknown_command(&self) -> bool {
        matches!(
            self,
            Self::Remote {
                code: ErrorCode::UnknownCommand,
                ..
            }
        )
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
    Security(#[from] crate::security::SecurityError),
}
