//! The errors of StableIO links and sessions.

use super::RefuseReason;

/// A StableIO error. Link-level errors end the link, not the session (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StableError {
    /// A `Resume` for a session the server does not have.
    #[error("unknown StableIO session")]
    UnknownSession,
    /// A `Resume` whose proof does not match.
    #[error("StableIO resume proof does not match the session secret")]
    BadProof,
    /// An acknowledgement (or a resume offset) beyond what was sent.
    #[error("StableIO ack for offset {ack}, but only {sent} bytes were sent")]
    AckBeyondSent {
        /// The acknowledged offset.
        ack: u64,
        /// Bytes sent so far.
        sent: u64,
    },
    /// A resume offset below what the peer already acknowledged.
    #[error("StableIO resume from offset {offset}, but the peer already acknowledged {acked}")]
    ResumeBehindAck {
        /// The offset in the `Resume`/`Resumed`.
        offset: u64,
        /// What the peer acknowledged before.
        acked: u64,
    },
    /// Data past the receiver's window.
    #[error("StableIO data up to offset {end} is beyond the window ending at {limit}")]
    DataBeyondWindow {
        /// End offset of the data.
        end: u64,
        /// First offset outside the window.
        limit: u64,
    },
    /// Data starting after the next expected offset.
    #[error("StableIO data at offset {offset} leaves a gap; expected {expected}")]
    DataGap {
        /// The frame's offset.
        offset: u64,
        /// The next expected offset.
        expected: u64,
    },
    /// A frame declaring a body longer than allowed.
    #[error("StableIO frame body of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Declared length.
        len: u32,
        /// The maximum.
        max: u32,
    },
    /// A type byte this version does not know.
    #[error("unknown StableIO frame type {frame_type:#04x}")]
    UnknownFrameType {
        /// The byte.
        frame_type: u8,
    },
    /// A frame that breaks the layout or comes out of place.
    #[error("malformed StableIO input: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// The server refused the link.
    #[error("StableIO server refused the session: {reason}")]
    Refused {
        /// Why.
        reason: RefuseReason,
    },
    /// The session expired (no resume within the give-up time) or was refused for good.
    #[error("StableIO session expired")]
    Expired,
    /// The registry is full.
    #[error("too many StableIO sessions (at most {max})")]
    TooManySessions {
        /// The limit.
        max: usize,
    },
    /// The OS random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
}
