//! StableIO without I/O: a logical session that survives dropped connections.
//!
//! A [`StableEndpoint`] sits between the application's byte stream and a sequence of physical
//! links (TCP connections, each already through its own handshake and record layer). Bytes the
//! application writes are numbered by their stream offset, sent in `Data` frames and kept in a
//! resend buffer until the peer acknowledges them. When a link drops, the client opens a new
//! one, proves that it owns the session, and both sides resend whatever the other has not
//! received. The application sees one unbroken stream: no error, no loss, no duplicate, no
//! reordering — unless the client fails to resume within [`StableConfig::give_up_after`]
//! (default 5 minutes), which ends the session with [`StableEvent::Expired`] on both sides.
//!
//! The server keeps its sessions in a [`StableRegistry`] (at most
//! [`StableConfig::max_sessions`]); a new link on the server starts as a [`PendingLink`] until
//! the client's `Open` or `Resume` tells which session it belongs to.
//!
//! # Driving it (sans-IO)
//! As with [`Mux`](crate::mux::Mux), the runtime moves bytes and time:
//! - **client**: [`StableEndpoint::new_client`]; on every new link
//!   [`StableEndpoint::link_established`] with that link's secret (see [`link_secret`]), then
//!   feed received bytes to [`StableEndpoint::handle_link_bytes`] and write what
//!   [`StableEndpoint::poll_link_transmit`] produces; on a dropped link call
//!   [`StableEndpoint::link_lost`] and reconnect after [`StableConfig::reconnect_delay`];
//!   a new link always starts with an empty input buffer.
//! - **server**: [`StableRegistry::new_link`] on every accepted link; write the
//!   [`PendingLink`]'s transmit (the challenge), feed received bytes to
//!   [`StableRegistry::handle_pending_link`] until it names the session, then drive that
//!   session's endpoint ([`StableRegistry::get_mut`]) with the rest of the link's bytes. On a
//!   refusal, write the pending link's transmit (the `Refused` frame) and close the link. A
//!   session resumed on a new link forgets its old link: the runtime stops feeding the old
//!   one ([`StableEndpoint::link_generation`] tells them apart).
//! - **both**: [`StableEndpoint::write`] / [`StableEndpoint::read`] for application bytes,
//!   [`StableEndpoint::poll_event`] after every call, [`StableEndpoint::poll_timeout`] /
//!   [`StableEndpoint::handle_timeout`] for delayed acks and the give-up time
//!   ([`StableRegistry::handle_timeout`] on the server, which also forgets expired and closed
//!   sessions).
//!
//! # Link protocol
//! 1. The server sends `Challenge { nonce }` (32 fresh random bytes) first on every link.
//! 2. The client answers with `Open` (no session yet) or `Resume { session_id, proof,
//!    next_expected }`.
//! 3. The server answers `Opened { session_id, share }` (16 and 32 random bytes),
//!    `Resumed { next_expected }` or `Refused { reason }`.
//! 4. Then both sides exchange `Data`, `Ack` and `Close`. After a resume, each side resends
//!    its stream from the peer's `next_expected`.
//!
//! **Session secret** = HKDF-SHA256(salt = session id, ikm = the `Open` link's secret ‖
//! `share`, info = `"zs-stable session v1"`), 32 bytes. The link secret is what the runtime
//! passes to [`StableEndpoint::link_established`] / [`StableRegistry::new_link`]: key material
//! only the two ends of that link know ([`link_secret`] derives it from the handshake's
//! traffic secrets; the bare Noise handshake hash is *not* secret, it is computed from
//! transcript bytes an eavesdropper sees). The random `share` makes the secret unguessable
//! even over a link without one.
//!
//! **Proof** = HMAC-SHA256(key = session secret, `"zs-stable resume v1"` ‖ session id ‖
//! nonce ‖ `next_expected` (u64) ‖ the resume link's key). A link's *key* is SHA-256 over
//! `"zs-stable link key v1"` and the link secret the runtime passed in; the session secret's
//! ikm above is the `Open` link's key ‖ `share`. A captured
//! `Resume` is useless on another link: its nonce (and link secret) differ. Proofs are
//! compared in constant time.
//!
//! # Frames (little-endian)
//! Header: `u8` type, `u32` body length. Fixed-size frames must declare exactly their size;
//! a `Data` body is 9..=[`MAX_BODY`] bytes. Both are checked on the 5 header bytes, before a
//! body is buffered ([`StableError::FrameTooLarge`], [`StableError::Malformed`]).
//!
//! | type | name | body | direction |
//! |-----:|------|------|-----------|
//! | 1 | `Open` | none | client → server |
//! | 2 | `Opened` | `[u8;16]` session id, `[u8;32]` share | server → client |
//! | 3 | `Challenge` | `[u8;32]` nonce | server → client |
//! | 4 | `Resume` | `[u8;16]` session id, `[u8;32]` proof, `u64` next expected | client → server |
//! | 5 | `Resumed` | `u64` next expected | server → client |
//! | 6 | `Refused` | `u8` reason: 1 unknown session, 2 bad proof, 3 expired, 4 too many sessions, 5 unauthorized | server → client |
//! | 7 | `Data` | `u64` stream offset of the first byte, then 1..=[`MAX_SEGMENT`] bytes | both |
//! | 8 | `Ack` | `u64` offset up to which the application has read | both |
//! | 9 | `Close` | `u64` the sender's stream length (it writes no more) | both |
//!
//! # Windows, acks and memory
//! An `Ack` acknowledges what the receiving *application has read*, so it is also flow
//! control: a sender keeps at most [`StableConfig::window`] unacknowledged bytes (default
//! 4 MiB; [`StableEndpoint::write`] accepts less when full, [`StableEvent::Writable`] follows),
//! and a receiver refuses data beyond its read offset plus its window
//! ([`StableError::DataBeyondWindow`]; both sides must use the same window). Acks go out when
//! a quarter window has been read, piggybacked on data, or after
//! [`StableConfig::ack_delay`]. `Resume`/`Resumed` carry the offset *received* (which may be
//! ahead of the last ack), so nothing received is sent twice.
//!
//! A session therefore holds at most one window of unacknowledged output and one window of
//! unread input, plus a few control frames: [`StableEndpoint::buffered_bytes`] is at most
//! 2 × window plus 1 KiB. The runtime's input buffer holds at most one partial frame
//! (≤ [`HEADER_LEN`] + [`MAX_BODY`]).
//!
//! # Bad input
//! A protocol violation on a link (unknown frame type, bad length, data beyond the window or
//! leaving a gap, an ack for data never sent, a frame out of place) is returned as a
//! [`StableError`] and ends that *link*: the endpoint treats it as lost and its state is
//! untouched, so the session can still resume on a new link before it expires. A refusal
//! (`Refused`, or an error from [`StableRegistry::handle_pending_link`]) ends the client's
//! session for good ([`StableEndpoint::is_expired`]).

#[cfg(test)]
use std::time::{Duration, Instant};

#[cfg(test)]
use bytes::BytesMut;

#[cfg(test)]
use secret::{link_key, resume_proof};

mod config;
mod endpoint;
mod error;
mod frame;
mod pending;
mod registry;
mod secret;
mod table;

pub use config::StableConfig;
pub use endpoint::StableEndpoint;
pub use error::StableError;
pub use frame::{Frame, FrameType, HEADER_LEN, MAX_BODY, MAX_SEGMENT};
pub use pending::{LinkRequest, PendingLink};
pub use registry::StableRegistry;
pub use secret::link_secret;
pub use table::{SessionTable, TableEntry};

/// Lower bound of [`StableConfig::window`].
pub const MIN_WINDOW: usize = 64 * 1024;
/// Upper bound of [`StableConfig::window`].
pub const MAX_WINDOW: usize = 256 * 1024 * 1024;

/// Identifies one logical session: 16 random bytes chosen by the server.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// Which side of the session an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opens links, sends `Open`/`Resume`.
    Client,
    /// Accepts links, sends `Challenge`, keeps sessions in a [`StableRegistry`].
    Server,
}

/// Why the server refused a link (the `Refused` frame's byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// No such session (never existed, or already forgotten).
    UnknownSession,
    /// The proof does not match the session secret and this link's nonce.
    BadProof,
    /// The session expired: the client did not come back within the give-up time.
    Expired,
    /// The server holds its maximum number of sessions.
    TooManySessions,
    /// The link's client did not authenticate (e.g. the server's token was not presented).
    Unauthorized,
    /// A reason this version does not know.
    Other(u8),
}

impl RefuseReason {
    /// The reason for a wire byte.
    pub fn from_u8(byte: u8) -> Self {
        match byte {
            1 => Self::UnknownSession,
            2 => Self::BadProof,
            3 => Self::Expired,
            4 => Self::TooManySessions,
            5 => Self::Unauthorized,
            other => Self::Other(other),
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::UnknownSession => 1,
            Self::BadProof => 2,
            Self::Expired => 3,
            Self::TooManySessions => 4,
            Self::Unauthorized => 5,
            Self::Other(byte) => byte,
        }
    }
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownSession => write!(f, "unknown session"),
            Self::BadProof => write!(f, "bad session proof"),
            Self::Expired => write!(f, "session expired"),
            Self::TooManySessions => write!(f, "too many sessions"),
            Self::Unauthorized => write!(f, "unauthorized"),
            Self::Other(byte) => write!(f, "reason {byte}"),
        }
    }
}

/// What happened, for the application or the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StableEvent {
    /// New bytes can be read.
    Readable,
    /// The window has room again after a short write.
    Writable,
    /// The client's first link opened the session (client side only).
    Opened,
    /// The session is bound to a new link; unacknowledged data is being resent.
    Resumed,
    /// The session is over: no resume within the give-up time, or refused. Terminal.
    Expired,
    /// Both sides closed and everything was delivered. Terminal.
    Closed,
    /// The peer closed its direction; everything it wrote is in the read buffer.
    PeerClosed,
}

#[cfg(test)]
mod tests;
