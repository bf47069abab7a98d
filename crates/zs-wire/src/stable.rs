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

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hkdf::Hkdf;
use hkdf::hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

mod frame;

pub use frame::{Frame, FrameType, HEADER_LEN, MAX_BODY, MAX_SEGMENT};

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

/// Limits and timers. Out-of-range values are clamped.
#[derive(Debug, Clone)]
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
    /// Most sessions a [`StableRegistry`] holds. Default 10,000.
    pub max_sessions: usize,
    /// First reconnect delay; doubles per failed attempt. Default 250 ms.
    pub reconnect_initial: Duration,
    /// Longest reconnect delay. Default 5 s.
    pub reconnect_max: Duration,
    /// Largest `Data` segment sent. Default 16 KiB, 1..=[`MAX_SEGMENT`].
    pub segment_size: usize,
}

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
    fn clamped(mut self) -> Self {
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

/// Derives the secret of one link from its handshake, in the form
/// [`StableEndpoint::link_established`] and [`StableRegistry::new_link`] take: HKDF-SHA256 of
/// the client-to-server and server-to-client traffic secrets, salted with the handshake hash.
/// `send_secret`/`receive_secret` are this side's; both sides get the same result.
pub fn link_secret(
    role: Role,
    send_secret: &[u8; 32],
    receive_secret: &[u8; 32],
    handshake_hash: &[u8],
) -> Zeroizing<[u8; 32]> {
    let (c2s, s2c) = match role {
        Role::Client => (send_secret, receive_secret),
        Role::Server => (receive_secret, send_secret),
    };
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(c2s);
    ikm[32..].copy_from_slice(s2c);
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf_expand(
        handshake_hash,
        ikm.as_slice(),
        b"zs-stable link v1",
        &mut out,
    );
    out
}

fn hkdf_expand(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8; 32]) {
    let hkdf = Hkdf::<Sha256>::new(Some(salt), ikm);
    // 32 bytes is far below HKDF-SHA256's output limit, so expand cannot fail.
    let _ = hkdf.expand(info, out);
}

/// The fixed-size form of a link secret the runtime passed in: SHA-256 over a label and it.
fn link_key(link_secret: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut hash = Sha256::new();
    hash.update(b"zs-stable link key v1");
    hash.update(link_secret);
    Zeroizing::new(hash.finalize().into())
}

fn session_secret(id: SessionId, open_link: &[u8; 32], share: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(open_link);
    ikm[32..].copy_from_slice(share);
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf_expand(&id.0, ikm.as_slice(), b"zs-stable session v1", &mut out);
    out
}

fn resume_mac(
    secret: &[u8; 32],
    id: SessionId,
    nonce: &[u8; 32],
    next_expected: u64,
    link: &[u8; 32],
) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(b"zs-stable resume v1");
    mac.update(&id.0);
    mac.update(nonce);
    mac.update(&next_expected.to_le_bytes());
    mac.update(link);
    Some(mac)
}

fn resume_proof(
    secret: &[u8; 32],
    id: SessionId,
    nonce: &[u8; 32],
    next_expected: u64,
    link: &[u8; 32],
) -> [u8; 32] {
    resume_mac(secret, id, nonce, next_expected, link)
        .map(|mac| mac.finalize().into_bytes().into())
        .unwrap_or([0; 32])
}

fn verify_proof(
    secret: &[u8; 32],
    id: SessionId,
    nonce: &[u8; 32],
    next_expected: u64,
    link: &[u8; 32],
    proof: &[u8; 32],
) -> bool {
    resume_mac(secret, id, nonce, next_expected, link)
        .is_some_and(|mac| mac.verify_slice(proof).is_ok())
}

fn random<const N: usize>() -> Result<[u8; N], StableError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| StableError::Random(error.to_string()))?;
    Ok(bytes)
}

/// The state of the current link.
#[derive(Debug)]
enum LinkState {
    /// No link.
    Down,
    /// Client: link up, waiting for the server's challenge.
    AwaitChallenge,
    /// Client: `Open` sent.
    AwaitOpened,
    /// Client: `Resume` sent.
    AwaitResumed,
    /// Data flows.
    Up,
}

/// One side of a logical session. See the module docs.
#[derive(Debug)]
pub struct StableEndpoint {
    role: Role,
    config: StableConfig,
    session_id: Option<SessionId>,
    secret: Option<Zeroizing<[u8; 32]>>,
    link: LinkState,
    link_key: Zeroizing<[u8; 32]>,
    link_generation: u64,
    control: VecDeque<Frame>,

    /// Written, not yet acknowledged bytes, starting at offset `snd_una`.
    send_buf: BytesMut,
    snd_una: u64,
    /// Next offset to transmit on the current link.
    snd_nxt: u64,
    /// Highest offset ever transmitted.
    snd_max: u64,
    write_blocked: bool,

    /// Received, not yet read bytes; they end at `rcv_nxt`.
    recv_buf: BytesMut,
    rcv_nxt: u64,
    /// Offset the application has read up to.
    rcv_read: u64,
    last_ack_sent: u64,
    ack_deadline: Option<Instant>,
    ack_due: bool,

    /// We closed: our stream ends at `snd_end()`.
    closing: bool,
    close_sent_on_link: bool,
    peer_end: Option<u64>,
    peer_closed_reported: bool,

    /// Since when no link carries the session (or since creation, before it opened).
    detached_since: Option<Instant>,
    last_now: Instant,
    expired: bool,
    closed: bool,
    events: VecDeque<StableEvent>,
}

impl StableEndpoint {
    fn new(role: Role, config: StableConfig, now: Instant) -> Self {
        Self {
            role,
            config: config.clamped(),
            session_id: None,
            secret: None,
            link: LinkState::Down,
            link_key: Zeroizing::new([0; 32]),
            link_generation: 0,
            control: VecDeque::new(),
            send_buf: BytesMut::new(),
            snd_una: 0,
            snd_nxt: 0,
            snd_max: 0,
            write_blocked: false,
            recv_buf: BytesMut::new(),
            rcv_nxt: 0,
            rcv_read: 0,
            last_ack_sent: 0,
            ack_deadline: None,
            ack_due: false,
            closing: false,
            close_sent_on_link: false,
            peer_end: None,
            peer_closed_reported: false,
            detached_since: Some(now),
            last_now: now,
            expired: false,
            closed: false,
            events: VecDeque::new(),
        }
    }

    /// A client endpoint with no session yet: its first link opens one. Bytes written before
    /// that are sent once it is open.
    pub fn new_client(config: StableConfig, now: Instant) -> Self {
        Self::new(Role::Client, config, now)
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The session id, once known.
    pub fn session_id(&self) -> Option<SessionId> {
        self.session_id
    }

    /// Counts the links this session has been bound to (the current one's number).
    pub fn link_generation(&self) -> u64 {
        self.link_generation
    }

    /// Whether a link currently carries data.
    pub fn is_linked(&self) -> bool {
        matches!(self.link, LinkState::Up)
    }

    /// Whether the session is over for good (give-up time passed, or refused).
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// Whether the session ended in an orderly close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn is_over(&self) -> bool {
        self.expired || self.closed
    }

    fn snd_end(&self) -> u64 {
        self.snd_una + self.send_buf.len() as u64
    }

    /// Bytes [`Self::write`] accepts now.
    pub fn write_capacity(&self) -> usize {
        if self.is_over() || self.closing {
            return 0;
        }
        self.config.window.saturating_sub(self.send_buf.len())
    }

    /// Bytes waiting for [`Self::read`].
    pub fn readable_len(&self) -> usize {
        self.recv_buf.len()
    }

    /// Bytes written and not yet acknowledged by the peer's application.
    pub fn unacked_len(&self) -> usize {
        self.send_buf.len()
    }

    /// Memory held by this session's buffers (send, receive, control): at most
    /// 2 × [`StableConfig::window`] + 1 KiB.
    pub fn buffered_bytes(&self) -> usize {
        self.send_buf.len()
            + self.recv_buf.len()
            + self.control.iter().map(Frame::encoded_len).sum::<usize>()
    }

    /// Queues application bytes; returns how many were taken (fewer when the window is full,
    /// then [`StableEvent::Writable`] follows; 0 after [`Self::close`] or the end).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.write_capacity());
        if n < data.len() && !self.is_over() && !self.closing {
            self.write_blocked = true;
        }
        self.send_buf.extend_from_slice(&data[..n]);
        n
    }

    /// Appends every received byte not yet read to `out`; returns how many.
    pub fn read(&mut self, out: &mut BytesMut) -> usize {
        let n = self.recv_buf.len();
        if n == 0 {
            return 0;
        }
        out.extend_from_slice(&self.recv_buf.split());
        self.rcv_read += n as u64;
        if self.rcv_read - self.last_ack_sent >= self.ack_threshold() {
            self.ack_due = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(self.last_now + self.config.ack_delay);
        }
        self.check_closed();
        n
    }

    fn ack_threshold(&self) -> u64 {
        (self.config.window / 4) as u64
    }

    /// Ends this side's stream after the bytes written so far. The session ends
    /// ([`StableEvent::Closed`]) once the peer closed too and both streams were delivered.
    pub fn close(&mut self) {
        if !self.is_over() {
            self.closing = true;
            self.check_closed();
        }
    }

    /// The runtime reports that the current link dropped. Unacknowledged data stays; the
    /// give-up clock starts.
    pub fn link_lost(&mut self, now: Instant) {
        self.last_now = now;
        self.control.clear();
        if !matches!(self.link, LinkState::Down) {
            self.link = LinkState::Down;
            if self.detached_since.is_none() {
                self.detached_since = Some(now);
            }
        }
    }

    /// Client: a new link is up (after its own handshake). `link_secret`: key material
    /// only this link's two ends know (see [`link_secret`]); empty is allowed but weaker.
    /// The client answers the server's challenge with `Open` or `Resume`.
    pub fn link_established(&mut self, now: Instant, link_secret: &[u8]) {
        self.link_lost(now);
        if self.is_over() || self.role != Role::Client {
            return;
        }
        self.link_generation += 1;
        self.link_key = link_key(link_secret);
        self.link = LinkState::AwaitChallenge;
    }

    /// Server: binds the session to a link on which a `Resume` was verified.
    fn attach(
        &mut self,
        now: Instant,
        peer_next_expected: u64,
        link: &[u8; 32],
    ) -> Result<(), StableError> {
        self.check_resume_offset(peer_next_expected)?;
        self.link_lost(now);
        self.link_generation += 1;
        self.link_key = Zeroizing::new(*link);
        self.control.push_back(Frame::Resumed {
            next_expected: self.rcv_nxt,
        });
        self.bind(peer_next_expected);
        self.events.push_back(StableEvent::Resumed);
        Ok(())
    }

    fn check_resume_offset(&self, offset: u64) -> Result<(), StableError> {
        if offset > self.snd_max {
            return Err(StableError::AckBeyondSent {
                ack: offset,
                sent: self.snd_max,
            });
        }
        if offset < self.snd_una {
            return Err(StableError::ResumeBehindAck {
                offset,
                acked: self.snd_una,
            });
        }
        Ok(())
    }

    /// Data flows on the current link, resending from `from`.
    fn bind(&mut self, from: u64) {
        self.link = LinkState::Up;
        self.snd_nxt = from;
        self.close_sent_on_link = false;
        self.detached_since = None;
        // Whatever the peer has read is acknowledged again on this link.
        self.ack_due = self.rcv_read > 0;
    }

    /// Feeds bytes received on the current link; complete frames are taken off the front of
    /// `input`. An error ends the link (the endpoint already treats it as lost), except that
    /// [`StableError::Refused`] also ends the session.
    pub fn handle_link_bytes(
        &mut self,
        input: &mut BytesMut,
        now: Instant,
    ) -> Result<(), StableError> {
        self.last_now = now;
        if matches!(self.link, LinkState::Down) || self.is_over() {
            input.clear();
            return Ok(());
        }
        let readable_before = self.recv_buf.len();
        let result = self.handle_frames(input);
        if self.recv_buf.len() > readable_before {
            self.events.push_back(StableEvent::Readable);
        }
        if let Err(error) = &result {
            input.clear();
            self.link_lost(now);
            if matches!(error, StableError::Refused { .. }) {
                self.expire();
            }
        }
        result
    }

    fn handle_frames(&mut self, input: &mut BytesMut) -> Result<(), StableError> {
        while let Some(frame) = Frame::decode(input)? {
            self.handle_frame(frame)?;
            if self.is_over() {
                input.clear();
                break;
            }
        }
        Ok(())
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), StableError> {
        match (self.role, &self.link, frame) {
            (Role::Client, LinkState::AwaitChallenge, Frame::Challenge { nonce }) => {
                match (self.session_id, &self.secret) {
                    (Some(id), Some(secret)) => {
                        let proof = resume_proof(secret, id, &nonce, self.rcv_nxt, &self.link_key);
                        self.control.push_back(Frame::Resume {
                            session_id: id,
                            proof,
                            next_expected: self.rcv_nxt,
                        });
                        self.link = LinkState::AwaitResumed;
                    }
                    _ => {
                        self.control.push_back(Frame::Open);
                        self.link = LinkState::AwaitOpened;
                    }
                }
                Ok(())
            }
            (Role::Client, LinkState::AwaitOpened, Frame::Opened { session_id, share }) => {
                self.secret = Some(session_secret(session_id, &self.link_key, &share));
                self.session_id = Some(session_id);
                self.bind(0);
                self.events.push_back(StableEvent::Opened);
                Ok(())
            }
            (Role::Client, LinkState::AwaitResumed, Frame::Resumed { next_expected }) => {
                self.check_resume_offset(next_expected)?;
                self.bind(next_expected);
                self.events.push_back(StableEvent::Resumed);
                Ok(())
            }
            (
                Role::Client,
                LinkState::AwaitChallenge | LinkState::AwaitOpened | LinkState::AwaitResumed,
                Frame::Refused { reason },
            ) => Err(StableError::Refused { reason }),
            (_, LinkState::Up, Frame::Data { offset, bytes }) => self.on_data(offset, &bytes),
            (_, LinkState::Up, Frame::Ack { next_expected }) => self.on_ack(next_expected),
            (_, LinkState::Up, Frame::Close { end }) => self.on_close(end),
            _ => Err(StableError::Malformed {
                what: "frame out of place",
            }),
        }
    }

    fn on_data(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StableError> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or(StableError::Malformed {
                what: "data offset overflows",
            })?;
        if offset > self.rcv_nxt {
            return Err(StableError::DataGap {
                offset,
                expected: self.rcv_nxt,
            });
        }
        let limit = self.rcv_read + self.config.window as u64;
        if end > limit {
            return Err(StableError::DataBeyondWindow { end, limit });
        }
        if let Some(peer_end) = self.peer_end
            && end > peer_end
        {
            return Err(StableError::Malformed {
                what: "data after the peer's close",
            });
        }
        if end <= self.rcv_nxt {
            return Ok(()); // a duplicate after a resend
        }
        let skip = (self.rcv_nxt - offset) as usize;
        self.recv_buf.extend_from_slice(&bytes[skip..]);
        self.rcv_nxt = end;
        Ok(())
    }

    fn on_ack(&mut self, ack: u64) -> Result<(), StableError> {
        if ack > self.snd_max {
            return Err(StableError::AckBeyondSent {
                ack,
                sent: self.snd_max,
            });
        }
        if ack > self.snd_una {
            let freed = (ack - self.snd_una) as usize;
            let _ = self.send_buf.split_to(freed);
            self.snd_una = ack;
            self.snd_nxt = self.snd_nxt.max(ack);
            if self.write_blocked && self.write_capacity() > 0 {
                self.write_blocked = false;
                self.events.push_back(StableEvent::Writable);
            }
            self.check_closed();
        }
        Ok(())
    }

    fn on_close(&mut self, end: u64) -> Result<(), StableError> {
        if end != self.rcv_nxt || self.peer_end.is_some_and(|known| known != end) {
            return Err(StableError::Malformed {
                what: "close at an offset other than the stream's end",
            });
        }
        self.peer_end = Some(end);
        if !self.peer_closed_reported {
            self.peer_closed_reported = true;
            self.events.push_back(StableEvent::PeerClosed);
        }
        self.check_closed();
        Ok(())
    }

    fn check_closed(&mut self) {
        if !self.closed
            && !self.expired
            && self.closing
            && self.send_buf.is_empty()
            && self.peer_end == Some(self.rcv_read)
        {
            self.closed = true;
            self.detached_since = None;
            self.ack_deadline = None;
            // The peer waits for the ack of its last bytes.
            self.ack_due = self.rcv_read > self.last_ack_sent;
            self.events.push_back(StableEvent::Closed);
        }
    }

    fn expire(&mut self) {
        if !self.expired && !self.closed {
            self.expired = true;
            self.link = LinkState::Down;
            self.control.clear();
            self.send_buf = BytesMut::new();
            self.recv_buf = BytesMut::new();
            self.events.push_back(StableEvent::Expired);
        }
    }

    /// Appends up to `max` bytes of frames for the current link to `out`: control frames,
    /// an ack if one is due (or data goes out anyway), then data from the resend point, then
    /// `Close`. Returns the bytes appended.
    pub fn poll_link_transmit(&mut self, out: &mut BytesMut, max: usize) -> usize {
        let start = out.len();
        let budget = |out: &BytesMut| max - (out.len() - start);
        while let Some(frame) = self.control.front() {
            if frame.encoded_len() > budget(out) {
                return out.len() - start;
            }
            frame.encode(out);
            self.control.pop_front();
        }
        // A closed session still flushes its last ack (and close).
        if !matches!(self.link, LinkState::Up) || self.expired {
            return out.len() - start;
        }
        const ACK_LEN: usize = HEADER_LEN + 8;
        let has_data = self.snd_nxt < self.snd_end();
        if self.rcv_read > self.last_ack_sent
            && (self.ack_due || has_data)
            && ACK_LEN <= budget(out)
        {
            Frame::Ack {
                next_expected: self.rcv_read,
            }
            .encode(out);
            self.last_ack_sent = self.rcv_read;
            self.ack_due = false;
        } else if self.rcv_read == self.last_ack_sent {
            self.ack_due = false;
        }
        while self.snd_nxt < self.snd_end() && budget(out) > HEADER_LEN + 8 {
            let from = (self.snd_nxt - self.snd_una) as usize;
            let n = (self.send_buf.len() - from)
                .min(self.config.segment_size)
                .min(budget(out) - HEADER_LEN - 8);
            frame::encode_data(self.snd_nxt, &self.send_buf[from..from + n], out);
            self.snd_nxt += n as u64;
            self.snd_max = self.snd_max.max(self.snd_nxt);
        }
        if self.closing
            && !self.close_sent_on_link
            && self.snd_nxt == self.snd_end()
            && HEADER_LEN + 8 <= budget(out)
        {
            Frame::Close {
                end: self.snd_end(),
            }
            .encode(out);
            self.close_sent_on_link = true;
        }
        out.len() - start
    }

    /// The next time [`Self::handle_timeout`] has work: a delayed ack or the give-up time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_over() {
            return None;
        }
        let give_up = self
            .detached_since
            .map(|since| since + self.config.give_up_after);
        let ack = self.ack_deadline.filter(|_| self.is_linked());
        match (give_up, ack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs what is due at `now`: a delayed ack, or the end of the session when no link has
    /// carried it for [`StableConfig::give_up_after`] ([`StableEvent::Expired`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if self.is_over() {
            return;
        }
        if let Some(since) = self.detached_since
            && now >= since + self.config.give_up_after
        {
            self.expire();
            return;
        }
        if let Some(deadline) = self.ack_deadline
            && now >= deadline
        {
            self.ack_deadline = None;
            if self.rcv_read > self.last_ack_sent {
                self.ack_due = true;
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<StableEvent> {
        self.events.pop_front()
    }
}

/// Server: a link that has not yet said which session it carries.
///
/// A runtime that keeps each session in its own task (rather than in a [`StableRegistry`])
/// uses it directly: [`PendingLink::new`], feed input to [`PendingLink::handle_input`]
/// until it yields a [`LinkRequest`], then [`StableEndpoint::open_server`] or
/// [`StableEndpoint::resume_server`] on the session the request names.
#[derive(Debug)]
pub struct PendingLink {
    nonce: [u8; 32],
    link_key: Zeroizing<[u8; 32]>,
    transmit: BytesMut,
    done: bool,
}

/// What a new link asks for: its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRequest {
    /// Open a new session.
    Open,
    /// Resume a session.
    Resume {
        /// The session named.
        session_id: SessionId,
        /// Proof of owning it (see the module docs).
        proof: [u8; 32],
        /// The offset the client received up to.
        next_expected: u64,
    },
}

impl PendingLink {
    /// A newly accepted link; its transmit holds the challenge. `link_secret` as in
    /// [`StableEndpoint::link_established`].
    pub fn new(link_secret: &[u8]) -> Result<Self, StableError> {
        let nonce = random::<32>()?;
        let mut transmit = BytesMut::new();
        Frame::Challenge { nonce }.encode(&mut transmit);
        Ok(Self {
            nonce,
            link_key: link_key(link_secret),
            transmit,
            done: false,
        })
    }

    /// Decodes the link's first frame from the front of `input`: `Ok(None)` until it is
    /// complete. Anything but `Open` or `Resume` is an error (close the link).
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<LinkRequest>, StableError> {
        if self.done {
            input.clear();
            return Err(StableError::Malformed {
                what: "input on a finished pending link",
            });
        }
        let frame = match Frame::decode(input) {
            Ok(None) => return Ok(None),
            Ok(Some(frame)) => frame,
            Err(error) => {
                self.done = true;
                input.clear();
                return Err(error);
            }
        };
        self.done = true;
        match frame {
            Frame::Open => Ok(Some(LinkRequest::Open)),
            Frame::Resume {
                session_id,
                proof,
                next_expected,
            } => Ok(Some(LinkRequest::Resume {
                session_id,
                proof,
                next_expected,
            })),
            _ => {
                input.clear();
                Err(StableError::Malformed {
                    what: "first frame on a link is neither Open nor Resume",
                })
            }
        }
    }

    /// Queues a `Refused` frame telling the client why; write the transmit, then close.
    pub fn refuse(&mut self, reason: RefuseReason) {
        Frame::Refused { reason }.encode(&mut self.transmit);
    }

    /// Queues the refusal matching `error`, if the client should learn it.
    fn refuse_for(&mut self, error: &StableError) {
        let reason = match error {
            StableError::UnknownSession => RefuseReason::UnknownSession,
            StableError::BadProof => RefuseReason::BadProof,
            StableError::Expired => RefuseReason::Expired,
            StableError::TooManySessions { .. } => RefuseReason::TooManySessions,
            _ => return,
        };
        self.refuse(reason);
    }

    /// Appends up to `max` bytes of the link's pending output (the challenge, or a refusal)
    /// to `out`.
    pub fn poll_transmit(&mut self, out: &mut BytesMut, max: usize) -> usize {
        let n = self.transmit.len().min(max);
        out.extend_from_slice(&self.transmit.split_to(n));
        n
    }

    /// Bytes still to send.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }
}

impl StableEndpoint {
    /// Server: a new session opened by `link` (whose request was [`LinkRequest::Open`]),
    /// with a fresh random id. The caller enforces its own session limit and checks the id
    /// is not in use (a collision of 128 random bits).
    pub fn open_server(
        config: StableConfig,
        link: &PendingLink,
        now: Instant,
    ) -> Result<Self, StableError> {
        let id = SessionId(random()?);
        let share = random::<32>()?;
        let mut endpoint = StableEndpoint::new(Role::Server, config, now);
        endpoint.session_id = Some(id);
        endpoint.secret = Some(session_secret(id, &link.link_key, &share));
        endpoint.link_generation = 1;
        endpoint.link_key = link.link_key.clone();
        endpoint.control.push_back(Frame::Opened {
            session_id: id,
            share,
        });
        endpoint.bind(0);
        Ok(endpoint)
    }

    /// Server: moves this session onto `link` if the resume `proof` checks out (see the
    /// module docs); its old link is forgotten. On an error the session is untouched and a
    /// refusal is queued on `link` when the client should learn why; [`StableError::Expired`]
    /// means the session is over (forget it).
    pub fn resume_server(
        &mut self,
        link: &mut PendingLink,
        proof: &[u8; 32],
        next_expected: u64,
        now: Instant,
    ) -> Result<(), StableError> {
        let result = self.check_and_attach(link, proof, next_expected, now);
        if let Err(error) = &result {
            link.refuse_for(error);
        }
        result
    }

    fn check_and_attach(
        &mut self,
        link: &PendingLink,
        proof: &[u8; 32],
        next_expected: u64,
        now: Instant,
    ) -> Result<(), StableError> {
        self.handle_timeout(now);
        if self.is_over() {
            return Err(StableError::Expired);
        }
        let (Some(id), Some(secret)) = (self.session_id, &self.secret) else {
            return Err(StableError::UnknownSession);
        };
        if self.role != Role::Server
            || !verify_proof(
                secret,
                id,
                &link.nonce,
                next_expected,
                &link.link_key,
                proof,
            )
        {
            return Err(StableError::BadProof);
        }
        self.attach(now, next_expected, &link.link_key)
    }
}

/// Server: the sessions, by id, with their limits. See the module docs.
#[derive(Debug)]
pub struct StableRegistry {
    config: StableConfig,
    sessions: HashMap<SessionId, StableEndpoint>,
}

impl StableRegistry {
    /// An empty registry.
    pub fn new(config: StableConfig) -> Self {
        Self {
            config: config.clamped(),
            sessions: HashMap::new(),
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A session's endpoint.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut StableEndpoint> {
        self.sessions.get_mut(&id)
    }

    /// Forgets a session (the runtime's own decision, e.g. shutdown).
    pub fn remove(&mut self, id: SessionId) -> Option<StableEndpoint> {
        self.sessions.remove(&id)
    }

    /// A newly accepted link; its transmit holds the challenge. `link_secret` as in
    /// [`StableEndpoint::link_established`].
    pub fn new_link(&mut self, link_secret: &[u8]) -> Result<PendingLink, StableError> {
        PendingLink::new(link_secret)
    }

    /// Feeds a pending link's bytes. `Ok(Some(id))`: the link now carries session `id`
    /// (opened or resumed; its endpoint queued the answer) and the rest of `input` belongs
    /// to that endpoint. `Ok(None)`: more bytes are needed. `Err`: the link is refused (a
    /// `Refused` frame is queued on the pending link when the client should learn why);
    /// write its transmit and close the link.
    pub fn handle_pending_link(
        &mut self,
        link: &mut PendingLink,
        input: &mut BytesMut,
        now: Instant,
    ) -> Result<Option<SessionId>, StableError> {
        let Some(request) = link.handle_input(input)? else {
            return Ok(None);
        };
        let result = match request {
            LinkRequest::Open => self.open(link, now),
            LinkRequest::Resume {
                session_id,
                proof,
                next_expected,
            } => self.resume(link, session_id, &proof, next_expected, now),
        };
        if let Err(error) = &result {
            if matches!(
                error,
                StableError::TooManySessions { .. } | StableError::UnknownSession
            ) {
                link.refuse_for(error);
            }
            input.clear();
        }
        result.map(Some)
    }

    fn open(&mut self, link: &PendingLink, now: Instant) -> Result<SessionId, StableError> {
        if self.sessions.len() >= self.config.max_sessions {
            self.reap(now);
            if self.sessions.len() >= self.config.max_sessions {
                return Err(StableError::TooManySessions {
                    max: self.config.max_sessions,
                });
            }
        }
        let mut endpoint = StableEndpoint::open_server(self.config.clone(), link, now)?;
        while let Some(id) = endpoint.session_id
            && self.sessions.contains_key(&id)
        {
            endpoint = StableEndpoint::open_server(self.config.clone(), link, now)?;
        }
        let Some(id) = endpoint.session_id else {
            return Err(StableError::Malformed {
                what: "opened session without an id",
            });
        };
        self.sessions.insert(id, endpoint);
        Ok(id)
    }

    fn resume(
        &mut self,
        link: &mut PendingLink,
        id: SessionId,
        proof: &[u8; 32],
        next_expected: u64,
        now: Instant,
    ) -> Result<SessionId, StableError> {
        let Some(endpoint) = self.sessions.get_mut(&id) else {
            return Err(StableError::UnknownSession);
        };
        let result = endpoint.resume_server(link, proof, next_expected, now);
        if matches!(result, Err(StableError::Expired)) {
            self.sessions.remove(&id);
        }
        result.map(|()| id)
    }

    fn reap(&mut self, now: Instant) -> Vec<SessionId> {
        let mut gone = Vec::new();
        self.sessions.retain(|id, endpoint| {
            endpoint.handle_timeout(now);
            let keep = !endpoint.is_over();
            if !keep {
                gone.push(*id);
            }
            keep
        });
        gone
    }

    /// Runs every session's timers (call at [`Self::poll_timeout`]) and forgets expired and
    /// closed sessions; returns their ids. Sessions' own events stay on their endpoints
    /// until then — poll them before.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<SessionId> {
        self.reap(now)
    }

    /// The earliest timer of any session.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(StableEndpoint::poll_timeout)
            .min()
    }
}

#[cfg(test)]
mod tests;
