//! Many virtual streams over one connection, without I/O (the original's p2pVM).
//!
//! A [`Mux`] carries any number of byte streams over one ordered byte stream (a TCP or
//! secure connection). Each stream has its own flow-control window, so a slow reader stalls
//! only its own stream; output is shared fairly between streams; streams open, half-close and
//! reset independently; keep-alive pings watch the link. Either end may listen on a named
//! *service* and either end may open streams to the other's services (p2pVM's "reverse" mode
//! is just the normal case). A virtual "address:port" is a service name like `10.0.0.1:80`.
//!
//! The design follows yamux (typed 12-byte header, per-stream windows, SYN/ACK/FIN/RST), with
//! little-endian integers, named services instead of bare stream ids, and bounds everywhere.
//!
//! # Driving it (sans-IO)
//! Like [`Session`](crate::session::Session), the runtime moves bytes and time:
//! 1. **input**: read socket bytes into a `BytesMut`, pass it to [`Mux::handle_received`]
//!    (complete frames are taken off its front); call [`Mux::handle_timeout`] when the
//!    deadline from [`Mux::poll_timeout`] passes; read only while [`Mux::wants_read`];
//! 2. **commands**: [`Mux::listen`], [`Mux::unlisten`], [`Mux::open_stream`], [`Mux::write`],
//!    [`Mux::read`], [`Mux::close`], [`Mux::reset`], [`Mux::go_away`];
//! 3. **events**: drain [`Mux::poll_event`] after every input and command;
//! 4. **output**: [`Mux::poll_transmit`] appends up to `max_bytes` of frames to the runtime's
//!    output buffer — control frames first, then one chunk per stream per round-robin turn.
//!
//! # Frame header (12 bytes, little-endian)
//! | offset | size | field       | meaning |
//! |-------:|-----:|-------------|---------|
//! | 0      | 1    | `version`   | always `1`; anything else is [`MuxError::BadVersion`] |
//! | 1      | 1    | `type`      | `0` Data, `1` WindowUpdate, `2` Ping, `3` GoAway, `4` Listen, `5` Unlisten |
//! | 2      | 2    | `flags`     | `0x1` SYN, `0x2` ACK, `0x4` FIN, `0x8` RST (allowed sets below) |
//! | 4      | 4    | `stream_id` | the stream; `0` for Ping, GoAway, Listen, Unlisten, never `0` otherwise |
//! | 8      | 4    | `length`    | by type: body length, window increment, ping nonce or go-away code |
//!
//! | type | flags | `length` | body |
//! |------|-------|----------|------|
//! | Data | none or FIN | data length, ≤ [`MAX_FRAME_BODY`] (256 KiB) | stream data; FIN = the sender's last frame on the stream |
//! | Data | SYN | name length, 1..=[`MAX_SERVICE_NAME`] | UTF-8 service name: opens the stream to that service |
//! | Data | RST | `0` | none: the stream is aborted in both directions |
//! | WindowUpdate | none or ACK | window increment | none; ACK = the stream opened by the peer is accepted |
//! | Ping | SYN (probe) or ACK (answer) | nonce, echoed in the answer | none |
//! | GoAway | none | code: `0` normal, `1` protocol error, `2` internal error, `3` idle timeout | none |
//! | Listen / Unlisten | none | name length, 1..=255 | UTF-8 service name |
//!
//! Any other flag combination is [`MuxError::BadFlags`]. Every check that needs no state —
//! version, type, flags, stream id 0 or not, length bounds — is made on the 12 header bytes,
//! before a body is buffered.
//!
//! # Streams
//! - **Ids**: the connection's initiator ([`Role::Initiator`]) opens odd ids (1, 3, 5, …), the
//!   acceptor even ids (2, 4, …); each side's ids only grow. A SYN with the wrong parity or an
//!   id not above the peer's previous ones is [`MuxError::BadStreamId`].
//! - **Open**: `Data|SYN` with the service name. The peer answers `WindowUpdate|ACK` (whose
//!   increment grants any window beyond [`INITIAL_WINDOW`]) if it listens on that service, or
//!   `Data|RST` if it does not (or is at its stream limit, or going away). The opener does
//!   not refuse services the peer never announced — the announcement may still be in flight;
//!   [`Mux::peer_listens`] tells what is known. The opener may send data at once, within the
//!   initial window.
//! - **Windows**: each direction of each stream starts with [`INITIAL_WINDOW`] (256 KiB)
//!   bytes; a receiver configured with a larger [`MuxConfig::stream_window`] grants the
//!   difference at once. [`Mux::read`] grants consumed bytes back with a `WindowUpdate` once
//!   half the window has been consumed. A stream's receive buffer therefore never holds more
//!   than its window.
//! - **Close**: [`Mux::close`] sends FIN after the queued data (half-close: the other direction
//!   stays open). A stream is gone ([`MuxEvent::StreamClosed`] `reset: false`) once both sides
//!   have sent FIN and its received data has been read. [`Mux::reset`] (or a received RST)
//!   drops it at once in both directions. Frames that arrive for a stream already closed are
//!   late, not forged, and are dropped.
//!
//! # Bad input
//! Every protocol violation is fatal to the whole mux, not just one stream: a peer that
//! overruns a window, sends data for a stream it never opened, or sends after its FIN is
//! broken or hostile. The mux queues `GoAway` with code `1` (protocol error), drops every
//! stream, emits [`MuxEvent::Closed`] and returns the [`MuxError`]; later input is discarded.
//! Refusals that a correct peer can run into — unknown service, stream limit, going away —
//! are answered with RST and are not errors.
//!
//! Memory is bounded by configuration, never by input: at most
//! [`MuxConfig::max_streams`] streams, each holding at most its window of received data and
//! its window of unsent data (a stream that never carried data is a small fixed-size entry —
//! see the tests for its size; one that did keeps one emptied receive buffer, at most twice
//! the window, for the data that follows, and emptied send buffers go to a pool of at most
//! 16 that busy streams draw from), received data over all streams within
//! [`MuxConfig::max_buffered`] when set (below), at most
//! [`MuxConfig::max_peer_services`] announced services, and one partial frame of at most
//! [`HEADER_LEN`] + [`MAX_FRAME_BODY`] bytes left in the runtime's input buffer. Control
//! answers (pongs, RSTs) grow with input only while the runtime keeps reading, and
//! [`Mux::wants_read`] turns false when they pile up unsent.
//!
//! # Connection-wide budget
//! Without [`MuxConfig::max_buffered`] a peer may make this side hold
//! `max_streams × stream_window` bytes of received data (16 GiB with the defaults) by
//! filling every window of streams whose readers are slow. With it, every stream counts
//! against the budget what it holds plus what its peer may still send — its *commitment*,
//! never less than [`INITIAL_WINDOW`], which the protocol grants each new stream — and the
//! sum never exceeds the budget, so neither does the data held:
//! - **Admission**: a stream opens only while the budget has room for its initial window. A
//!   peer's `SYN` past that is answered with RST (as at the stream limit: a refusal, not a
//!   protocol error); a local [`Mux::open_stream`] fails with
//!   [`MuxError::BudgetExhausted`]. A budget therefore also caps the streams open at once
//!   to `max_buffered / 256 KiB`.
//! - **Back-pressure by window**: [`Mux::read`] grants consumed bytes back as usual, but a
//!   grant that would take a stream above its initial window is cut to the budget's free
//!   room (and sent only if at least 16 KiB, or all that is owed); the rest is owed and
//!   granted by later reads once slow streams' data is read or streams end. The part up to
//!   the initial window is always granted, so every stream keeps moving: a slow reader still
//!   stalls only its own stream, while the windows beyond the initial one shrink for the
//!   others when the budget is short. [`MuxStats::committed_receive`] shows the budget in
//!   use.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

mod frame;

pub use frame::{
    Flags, FrameType, HEADER_LEN, Header, INITIAL_WINDOW, MAX_FRAME_BODY, MAX_SERVICE_NAME, VERSION,
};

/// Upper bound of [`MuxConfig::max_streams`].
pub const MAX_STREAMS_LIMIT: usize = 1_000_000;

/// Upper bound of [`MuxConfig::stream_window`].
pub const MAX_STREAM_WINDOW: u32 = 16 * 1024 * 1024;

/// Unsent control frames past which [`Mux::wants_read`] turns false.
pub const CONTROL_HIGH_WATER: usize = 64 * 1024;

/// Bytes allocated at a time for the frame headers [`Mux::poll_transmit_chunks`] hands out.
const HEADER_ARENA: usize = 4096;

/// Identifies one stream of a mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which end of the underlying connection this side is: decides the parity of the stream
/// ids it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that connected: opens odd stream ids.
    Initiator,
    /// The side that accepted the connection: opens even stream ids.
    Acceptor,
}

/// Limits and timers of one mux. Out-of-range values are clamped by [`Mux::new`].
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// Receive window of every stream, in bytes: the most received data one stream buffers.
    /// At least [`INITIAL_WINDOW`] (256 KiB, the default), at most [`MAX_STREAM_WINDOW`]. It
    /// also bounds the unsent data [`Mux::write`] accepts per stream.
    pub stream_window: u32,
    /// Most streams open at once, both directions together. Default 65,536, at most
    /// [`MAX_STREAMS_LIMIT`] (1,000,000). Local opens past it fail with
    /// [`MuxError::TooManyStreams`]; the peer's are answered with RST.
    pub max_streams: usize,
    /// Largest data chunk one stream sends per round-robin turn of [`Mux::poll_transmit`]:
    /// the fairness quantum. Default 16 KiB, 1..=[`MAX_FRAME_BODY`].
    pub chunk_size: u32,
    /// Most services the peer may announce; more is [`MuxError::TooManyServices`]. Also the
    /// most this side may listen on. Default 1,024.
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
    /// A stream's receive buffer went from empty to non-empty: [`Mux::read`] it.
    Readable {
        /// The stream.
        id: StreamId,
    },
    /// A stream whose last [`Mux::write`] was short can take data again: at least half a
    /// window, or whatever its peer allows once its queued data has been sent.
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// The peer sent FIN: nothing follows what is buffered (end of file once read).
    PeerFinished {
        /// The stream.
        id: StreamId,
    },
    /// The stream is gone: both sides finished and everything was read (`reset: false`), or
    /// the peer reset or refused it (`reset: true`). Not emitted for a local [`Mux::reset`].
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
    /// A body longer than allowed (data: [`MAX_FRAME_BODY`]; names: [`MAX_SERVICE_NAME`]).
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
    /// ([`MuxConfig::max_buffered`]) past its limit: every stream reserves [`INITIAL_WINDOW`].
    #[error("receive budget exhausted: at most {max} bytes may be committed to streams")]
    BudgetExhausted {
        /// The budget.
        max: usize,
    },
    /// Every stream id of this side's parity has been used.
    #[error("stream ids exhausted")]
    StreamIdsExhausted,
    /// A write after [`Mux::close`] on that stream.
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
    /// Written bytes not yet handed to [`Mux::poll_transmit`], over all streams.
    pub buffered_send: usize,
    /// Control frame bytes not yet handed to [`Mux::poll_transmit`].
    pub control_pending: usize,
    /// Received-data budget in use: over all streams, what each holds and may still be
    /// sent, at least [`INITIAL_WINDOW`] per stream (see [`MuxConfig::max_buffered`]).
    pub committed_receive: usize,
    /// Streams the peer opened that were refused with RST.
    pub refused_streams: u64,
}

// Stream state bits.
const ACKED: u8 = 0x01;
const LOCAL_FIN: u8 = 0x02;
const FIN_SENT: u8 = 0x04;
const REMOTE_FIN: u8 = 0x08;
const QUEUED: u8 = 0x10;
const WANT_WRITE: u8 = 0x20;

/// One stream's state. 80 bytes on 64-bit targets (`stream_struct_is_small` checks it);
/// the two buffers are empty `BytesMut`s, owning no allocation, until data passes.
#[derive(Debug)]
struct Stream {
    /// Received, not yet read. Never longer than the stream window.
    recv: BytesMut,
    /// Written, not yet framed. Never longer than the stream window.
    send: SendQueue,
    /// Bytes we may still send (already reduced by `send`).
    send_window: u32,
    /// Bytes the peer may still send.
    recv_window: u32,
    /// Window owed to the peer: bytes read but not yet granted back, and any part of the
    /// configured window the receive budget has held back.
    recv_unacked: u32,
    flags: u8,
}

impl Stream {
    fn new(recv_window: u32, flags: u8) -> Self {
        Self {
            recv: BytesMut::new(),
            send: SendQueue::default(),
            send_window: INITIAL_WINDOW,
            recv_window,
            recv_unacked: 0,
            flags,
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// What the stream counts against the connection's receive budget: what it holds plus
    /// what the peer may still send, and never less than [`INITIAL_WINDOW`], which every
    /// stream keeps reserved so that it can always be granted its initial window again.
    fn reservation(&self) -> usize {
        (self.recv_window as usize + self.recv.len()).max(INITIAL_WINDOW as usize)
    }

    fn has_output(&self) -> bool {
        !self.send.is_empty() || (self.has(LOCAL_FIN) && !self.has(FIN_SENT))
    }

    /// Bytes [`Mux::write`] would take now.
    fn write_capacity(&self, stream_window: u32) -> usize {
        let buffer_room = (stream_window as usize).saturating_sub(self.send.len());
        buffer_room.min(self.send_window as usize)
    }

    /// True when a writer that was turned away should be told to write again: there is room
    /// for half a window, or the send buffer has drained and any room at all. Waiting for
    /// that much room, rather than for any, wakes a busy writer once per half window instead
    /// of once per chunk sent.
    fn writable_again(&self, stream_window: u32) -> bool {
        let capacity = self.write_capacity(stream_window);
        capacity >= (stream_window / 2) as usize || (capacity > 0 && self.send.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
}

/// The multiplexer state machine of one connection. See the module docs.
#[derive(Debug)]
pub struct Mux {
    config: MuxConfig,
    role: Role,
    state: State,
    streams: HashMap<u32, Stream>,
    /// Streams with output pending, in round-robin order (ids of closed streams are skipped).
    ready: VecDeque<u32>,
    /// Encoded control frames, sent before any data.
    control: BytesMut,
    /// Header bytes handed out by [`Mux::poll_transmit_chunks`] (split off, shared).
    headers: BytesMut,
    /// Send chunks emptied by [`Mux::poll_transmit`], reused once no frame handed out
    /// still shares them; at most [`SPARE_CHUNKS`], and only while output is pending.
    spare_chunks: Vec<BytesMut>,
    /// Received-data budget in use: the sum of [`Stream::reservation`] over all streams.
    committed: usize,
    events: VecDeque<MuxEvent>,
    /// Next id this side opens (u64 so exhaustion is visible).
    next_local_id: u64,
    /// Highest id the peer has opened (or tried to).
    highest_peer_id: u32,
    local_services: HashSet<String>,
    peer_services: HashSet<String>,
    local_going_away: bool,
    peer_going_away: bool,
    last_received: Instant,
    /// A keep-alive ping was sent and nothing has been received since.
    ping_outstanding: bool,
    /// Nonce and send time of the last ping, until its answer arrives (for the RTT).
    rtt_probe: Option<(u32, Instant)>,
    next_ping_nonce: u32,
    rtt: Option<Duration>,
    refused_streams: u64,
}

impl Mux {
    /// A new mux for one connection; `role` says which end of it this side is.
    pub fn new(config: MuxConfig, role: Role, now: Instant) -> Self {
        let config = MuxConfig {
            stream_window: config
                .stream_window
                .clamp(INITIAL_WINDOW, MAX_STREAM_WINDOW),
            max_streams: config.max_streams.clamp(1, MAX_STREAMS_LIMIT),
            chunk_size: config.chunk_size.clamp(1, MAX_FRAME_BODY),
            max_buffered: config
                .max_buffered
                .map(|max| max.max(INITIAL_WINDOW as usize)),
            ..config
        };
        Self {
            config,
            role,
            state: State::Open,
            streams: HashMap::new(),
            ready: VecDeque::new(),
            control: BytesMut::new(),
            headers: BytesMut::new(),
            spare_chunks: Vec::new(),
            committed: 0,
            events: VecDeque::new(),
            next_local_id: match role {
                Role::Initiator => 1,
                Role::Acceptor => 2,
            },
            highest_peer_id: 0,
            local_services: HashSet::new(),
            peer_services: HashSet::new(),
            local_going_away: false,
            peer_going_away: false,
            last_received: now,
            ping_outstanding: false,
            rtt_probe: None,
            next_ping_nonce: 1,
            rtt: None,
            refused_streams: 0,
        }
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// Which end of the connection this side is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True when `id` is of the parity this side opens.
    fn is_local_id(&self, id: u32) -> bool {
        let odd = id % 2 == 1;
        odd == (self.role == Role::Initiator)
    }

    // ---------------------------------------------------------------- input

    /// Processes received bytes: takes every complete frame off the front of `received` (an
    /// incomplete one stays there) and queues events and answers.
    ///
    /// On a protocol violation the mux is closed (see the module docs) and the error is
    /// returned; it also appears in [`MuxEvent::Closed`]. After the close, input is
    /// discarded.
    pub fn handle_received(
        &mut self,
        received: &mut BytesMut,
        now: Instant,
    ) -> Result<(), MuxError> {
        if self.state == State::Closed {
            received.clear();
            return Ok(());
        }
        if received.is_empty() {
            return Ok(());
        }
        self.last_received = now;
        self.ping_outstanding = false;
        match self.process_frames(received, now) {
            Ok(()) => {
                if self.state == State::Closed {
                    received.clear();
                }
                Ok(())
            }
            Err(error) => {
                received.clear();
                self.close_with(
                    CloseReason::Protocol(error.clone()),
                    Some(GoAwayCode::ProtocolError),
                );
                Err(error)
            }
        }
    }

    fn process_frames(&mut self, received: &mut BytesMut, now: Instant) -> Result<(), MuxError> {
        while self.state == State::Open {
            let Some(header_bytes) = received.get(..HEADER_LEN) else {
                return Ok(());
            };
            let mut array = [0u8; HEADER_LEN];
            array.copy_from_slice(header_bytes);
            // Every stateless check, length bounds included, before the body is waited for.
            let header = Header::decode(&array)?;
            let frame_len = HEADER_LEN + header.body_len();
            let Some(body) = received.get(HEADER_LEN..frame_len) else {
                return Ok(());
            };
            self.handle_frame(header, body, now)?;
            received.advance(frame_len);
        }
        Ok(())
    }

    /// True when the receive budget has room for one more stream's initial window.
    fn budget_admits_stream(&self) -> bool {
        self.config
            .max_buffered
            .is_none_or(|max| self.committed + INITIAL_WINDOW as usize <= max)
    }

    /// Inserts a new stream whose peer starts with [`INITIAL_WINDOW`]; returns the extra
    /// window to grant at once (the configured window's excess over the initial one, as far
    /// as the budget allows; the rest is owed and granted by later reads).
    fn insert_stream(&mut self, id: u32, flags: u8) -> u32 {
        let window = self.config.stream_window;
        let room = self.config.max_buffered.map_or(usize::MAX, |max| {
            max.saturating_sub(self.committed + INITIAL_WINDOW as usize)
        });
        let extra = (window - INITIAL_WINDOW).min(u32::try_from(room).unwrap_or(u32::MAX));
        let mut stream = Stream::new(INITIAL_WINDOW + extra, flags);
        stream.recv_unacked = window - INITIAL_WINDOW - extra;
        self.committed += stream.reservation();
        self.streams.insert(id, stream);
        extra
    }

    /// Removes a stream and releases its share of the receive budget.
    fn remove_stream(&mut self, id: u32) -> bool {
        match self.streams.remove(&id) {
            Some(stream) => {
                self.committed -= stream.reservation();
                true
            }
            None => false,
        }
    }

    /// True when `id` names a stream that existed once and is gone: frames for it are late.
    fn is_late(&self, id: u32) -> bool {
        if self.is_local_id(id) {
            u64::from(id) < self.next_local_id
        } else {
            id <= self.highest_peer_id
        }
    }

    fn handle_frame(&mut self, header: Header, body: &[u8], now: Instant) -> Result<(), MuxError> {
        let id = StreamId(header.stream_id);
        match header.frame_type {
            FrameType::Data if header.flags == Flags::SYN => self.handle_syn(id, body),
            FrameType::Data if header.flags == Flags::RST => {
                if self.remove_stream(id.0) {
                    self.events
                        .push_back(MuxEvent::StreamClosed { id, reset: true });
                    Ok(())
                } else if self.is_late(id.0) {
                    Ok(())
                } else {
                    Err(MuxError::UnknownStream { id })
                }
            }
            FrameType::Data => self.handle_data(id, header.flags.contains(Flags::FIN), body),
            FrameType::WindowUpdate => {
                self.handle_window_update(id, header.flags.contains(Flags::ACK), header.length)
            }
            FrameType::Ping => {
                if header.flags == Flags::SYN {
                    Header::session(FrameType::Ping, Flags::ACK, header.length)
                        .encode(&mut self.control);
                } else if let Some((nonce, sent_at)) = self.rtt_probe
                    && nonce == header.length
                {
                    self.rtt_probe = None;
                    self.rtt = Some(now.saturating_duration_since(sent_at));
                }
                Ok(())
            }
            FrameType::GoAway => {
                let code = GoAwayCode::from_u32(header.length);
                self.peer_going_away = true;
                self.events.push_back(MuxEvent::GoAway { code });
                if code != GoAwayCode::Normal {
                    self.close_with(CloseReason::Peer(code), None);
                }
                Ok(())
            }
            FrameType::Listen => {
                let service = service_name(body)?;
                if self.peer_services.contains(service) {
                    return Ok(());
                }
                if self.peer_services.len() >= self.config.max_peer_services {
                    return Err(MuxError::TooManyServices {
                        max: self.config.max_peer_services,
                    });
                }
                self.peer_services.insert(service.to_owned());
                self.events.push_back(MuxEvent::ListenerAnnounced {
                    service: service.to_owned(),
                });
                Ok(())
            }
            FrameType::Unlisten => {
                let service = service_name(body)?;
                if self.peer_services.remove(service) {
                    self.events.push_back(MuxEvent::ListenerRemoved {
                        service: service.to_owned(),
                    });
                }
                Ok(())
            }
        }
    }

    fn handle_syn(&mut self, id: StreamId, body: &[u8]) -> Result<(), MuxError> {
        if self.is_local_id(id.0) || id.0 <= self.highest_peer_id {
            return Err(MuxError::BadStreamId { id });
        }
        self.highest_peer_id = id.0;
        let service = service_name(body)?;
        let refuse = self.local_going_away
            || !self.local_services.contains(service)
            || self.streams.len() >= self.config.max_streams
            || !self.budget_admits_stream();
        if refuse {
            self.refused_streams += 1;
            Header::data(id, Flags::RST, 0).encode(&mut self.control);
            return Ok(());
        }
        let extra = self.insert_stream(id.0, ACKED);
        Header::window_update(id, Flags::ACK, extra).encode(&mut self.control);
        self.events.push_back(MuxEvent::IncomingStream {
            id,
            service: service.to_owned(),
        });
        Ok(())
    }

    fn handle_data(&mut self, id: StreamId, fin: bool, body: &[u8]) -> Result<(), MuxError> {
        let late = self.is_late(id.0);
        let local = self.is_local_id(id.0);
        let Some(stream) = self.streams.get_mut(&id.0) else {
            return if late {
                Ok(())
            } else {
                Err(MuxError::UnknownStream { id })
            };
        };
        if stream.has(REMOTE_FIN) {
            return Err(MuxError::DataAfterFin { id });
        }
        // Header::decode bounded the body by MAX_FRAME_BODY, so it fits a u32.
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        if len > stream.recv_window {
            return Err(MuxError::WindowExceeded {
                id,
                by: len - stream.recv_window,
            });
        }
        stream.recv_window -= len;
        // Data from the acceptor means it accepted, even if its ACK were missing.
        if local && !stream.has(ACKED) {
            stream.flags |= ACKED;
            self.events.push_back(MuxEvent::Accepted { id });
        }
        if !body.is_empty() {
            let was_empty = stream.recv.is_empty();
            if was_empty && !stream.recv.try_reclaim(body.len()) {
                let window = self.config.stream_window as usize;
                stream.recv = BytesMut::with_capacity(fresh_capacity(body.len(), window));
            }
            stream.recv.extend_from_slice(body);
            if was_empty {
                self.events.push_back(MuxEvent::Readable { id });
            }
        }
        if fin {
            stream.flags |= REMOTE_FIN;
            self.events.push_back(MuxEvent::PeerFinished { id });
            self.maybe_remove(id);
        }
        Ok(())
    }

    fn handle_window_update(
        &mut self,
        id: StreamId,
        ack: bool,
        delta: u32,
    ) -> Result<(), MuxError> {
        let local = self.is_local_id(id.0);
        let late = self.is_late(id.0);
        let stream_window = self.config.stream_window;
        let Some(stream) = self.streams.get_mut(&id.0) else {
            return if late {
                Ok(())
            } else {
                Err(MuxError::UnknownStream { id })
            };
        };
        if ack {
            if !local {
                return Err(MuxError::BadFlags {
                    frame_type: FrameType::WindowUpdate,
                    flags: Flags::ACK.bits(),
                });
            }
            if !stream.has(ACKED) {
                stream.flags |= ACKED;
                self.events.push_back(MuxEvent::Accepted { id });
            }
        }
        stream.send_window = stream
            .send_window
            .checked_add(delta)
            .ok_or(MuxError::WindowOverflow { id, delta })?;
        if stream.has(WANT_WRITE) && stream.writable_again(stream_window) {
            stream.flags &= !WANT_WRITE;
            self.events.push_back(MuxEvent::Writable { id });
        }
        Ok(())
    }

    /// Removes a stream that is over in both directions and fully read.
    fn maybe_remove(&mut self, id: StreamId) {
        let done = self
            .streams
            .get(&id.0)
            .is_some_and(|s| s.has(FIN_SENT) && s.has(REMOTE_FIN) && s.recv.is_empty());
        if done {
            self.remove_stream(id.0);
            self.events
                .push_back(MuxEvent::StreamClosed { id, reset: false });
        }
    }

    fn close_with(&mut self, reason: CloseReason, code: Option<GoAwayCode>) {
        if self.state == State::Closed {
            return;
        }
        if let Some(code) = code {
            Header::session(FrameType::GoAway, Flags::NONE, code.to_u32())
                .encode(&mut self.control);
        }
        self.state = State::Closed;
        self.streams = HashMap::new();
        self.committed = 0;
        self.ready = VecDeque::new();
        self.events.push_back(MuxEvent::Closed { reason });
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// True when [`Self::poll_event`] has an event.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    // ---------------------------------------------------------------- commands

    /// Announces to the peer that this side listens on `service`: its streams to that name
    /// are accepted from now on. Listening twice is a no-op.
    pub fn listen(&mut self, service: &str) -> Result<(), MuxError> {
        self.check_open()?;
        check_service(service)?;
        if self.local_services.contains(service) {
            return Ok(());
        }
        if self.local_services.len() >= self.config.max_peer_services {
            return Err(MuxError::TooManyServices {
                max: self.config.max_peer_services,
            });
        }
        self.local_services.insert(service.to_owned());
        self.encode_named(FrameType::Listen, Flags::NONE, 0, service);
        Ok(())
    }

    /// Stops listening on `service` and tells the peer; later opens to it are refused with
    /// RST. Streams already accepted stay open. Returns false if it was not listened on.
    pub fn unlisten(&mut self, service: &str) -> bool {
        if !self.local_services.remove(service) {
            return false;
        }
        if self.state == State::Open {
            self.encode_named(FrameType::Unlisten, Flags::NONE, 0, service);
        }
        true
    }

    /// True when this side listens on `service`.
    pub fn is_listening(&self, service: &str) -> bool {
        self.local_services.contains(service)
    }

    /// True when the peer has announced `service` (and not withdrawn it).
    pub fn peer_listens(&self, service: &str) -> bool {
        self.peer_services.contains(service)
    }

    /// The services the peer has announced.
    pub fn peer_services(&self) -> impl Iterator<Item = &str> + '_ {
        self.peer_services.iter().map(String::as_str)
    }

    /// Opens a stream to the peer's `service`. Data may be written at once (within
    /// [`INITIAL_WINDOW`]); [`MuxEvent::Accepted`] or [`MuxEvent::StreamClosed`] (`reset`)
    /// follows. Not refused locally when the peer never announced the service — the peer
    /// answers RST for a service it does not listen on.
    pub fn open_stream(&mut self, service: &str) -> Result<StreamId, MuxError> {
        self.check_open()?;
        check_service(service)?;
        if self.local_going_away || self.peer_going_away {
            return Err(MuxError::GoingAway);
        }
        if self.streams.len() >= self.config.max_streams {
            return Err(MuxError::TooManyStreams {
                max: self.config.max_streams,
            });
        }
        if let Some(max) = self.config.max_buffered
            && !self.budget_admits_stream()
        {
            return Err(MuxError::BudgetExhausted { max });
        }
        let id = u32::try_from(self.next_local_id).map_err(|_| MuxError::StreamIdsExhausted)?;
        self.next_local_id += 2;
        let extra = self.insert_stream(id, 0);
        self.encode_named(FrameType::Data, Flags::SYN, id, service);
        if extra > 0 {
            Header::window_update(StreamId(id), Flags::NONE, extra).encode(&mut self.control);
        }
        Ok(StreamId(id))
    }

    /// Queues up to the stream's send window of `data` (and at most
    /// [`MuxConfig::stream_window`] unsent bytes per stream); returns how much was taken.
    /// A short count (0 included) means "wait for [`MuxEvent::Writable`]".
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, MuxError> {
        self.check_open()?;
        let stream_window = self.config.stream_window;
        let stream = self
            .streams
            .get_mut(&id.0)
            .ok_or(MuxError::UnknownStream { id })?;
        if stream.has(LOCAL_FIN) {
            return Err(MuxError::WriteClosed { id });
        }
        let taken = data.len().min(stream.write_capacity(stream_window));
        if taken < data.len() {
            stream.flags |= WANT_WRITE;
        }
        if taken == 0 {
            return Ok(0);
        }
        stream
            .send
            .push(&data[..taken], stream_window, &mut self.spare_chunks);
        // `taken` is at most the send window, a u32.
        stream.send_window -= u32::try_from(taken).unwrap_or(u32::MAX);
        self.enqueue(id.0);
        Ok(taken)
    }

    /// Moves everything received on stream `id` to `out` (appended); returns the byte count
    /// (0 for an unknown stream or nothing buffered). Consumed bytes are granted back to the
    /// peer once half the window has been read.
    ///
    /// When `out` is empty the stream's buffer is handed over whole, without copying, and
    /// the stream keeps `out`'s allocation for the data that follows: a reader that passes
    /// its drained buffer back every time makes a busy stream allocate nothing per chunk.
    pub fn read(&mut self, id: StreamId, out: &mut BytesMut) -> usize {
        let stream_window = self.config.stream_window;
        let open = self.state == State::Open;
        let Some(stream) = self.streams.get_mut(&id.0) else {
            return 0;
        };
        let len = stream.recv.len();
        if len == 0 {
            return 0;
        }
        let reserved_before = stream.reservation();
        if out.is_empty() {
            std::mem::swap(out, &mut stream.recv);
            stream.recv.clear();
            if stream.recv.capacity() > 2 * stream_window as usize {
                stream.recv = BytesMut::new();
            }
        } else {
            out.extend_from_slice(&stream.recv);
            stream.recv.clear();
        }
        self.committed -= reserved_before - stream.reservation();
        if open && !stream.has(REMOTE_FIN) {
            // The receive buffer never exceeds the window, a u32.
            stream.recv_unacked += u32::try_from(len).unwrap_or(u32::MAX);
            if stream.recv_unacked >= stream_window / 2 {
                let delta = grant(stream, self.committed, self.config.max_buffered);
                if delta > 0 {
                    let reserved_before = stream.reservation();
                    stream.recv_unacked -= delta;
                    stream.recv_window += delta;
                    self.committed += stream.reservation() - reserved_before;
                    Header::window_update(id, Flags::NONE, delta).encode(&mut self.control);
                }
            }
        }
        self.maybe_remove(id);
        len
    }

    /// Bytes buffered for [`Self::read`] on stream `id`, if it is open.
    pub fn readable_len(&self, id: StreamId) -> Option<usize> {
        self.streams.get(&id.0).map(|s| s.recv.len())
    }

    /// Bytes [`Self::write`] would take now on stream `id`, if it is open for writing.
    pub fn write_capacity(&self, id: StreamId) -> Option<usize> {
        let stream = self.streams.get(&id.0)?;
        if stream.has(LOCAL_FIN) {
            return None;
        }
        Some(stream.write_capacity(self.config.stream_window))
    }

    /// True when stream `id` is open (in at least one direction, or with data left to read).
    pub fn contains_stream(&self, id: StreamId) -> bool {
        self.streams.contains_key(&id.0)
    }

    /// Half-closes stream `id`: FIN follows the data already written; the peer's direction
    /// stays open. Closing twice is a no-op.
    pub fn close(&mut self, id: StreamId) -> Result<(), MuxError> {
        self.check_open()?;
        let stream = self
            .streams
            .get_mut(&id.0)
            .ok_or(MuxError::UnknownStream { id })?;
        if !stream.has(LOCAL_FIN) {
            stream.flags = (stream.flags | LOCAL_FIN) & !WANT_WRITE;
            self.enqueue(id.0);
        }
        Ok(())
    }

    /// Aborts stream `id` in both directions: unsent and unread data are dropped, RST is
    /// sent, and the id is free at once (no [`MuxEvent::StreamClosed`] for it).
    pub fn reset(&mut self, id: StreamId) -> Result<(), MuxError> {
        self.check_open()?;
        if !self.remove_stream(id.0) {
            return Err(MuxError::UnknownStream { id });
        }
        Header::data(id, Flags::RST, 0).encode(&mut self.control);
        Ok(())
    }

    /// Orderly shutdown: tells the peer this side accepts no new streams (they get RST) and
    /// opens none; existing streams continue. See [`Self::is_finished`].
    pub fn go_away(&mut self) {
        if self.state == State::Closed || self.local_going_away {
            return;
        }
        self.local_going_away = true;
        Header::session(FrameType::GoAway, Flags::NONE, GoAwayCode::Normal.to_u32())
            .encode(&mut self.control);
    }

    fn check_open(&self) -> Result<(), MuxError> {
        match self.state {
            State::Open => Ok(()),
            State::Closed => Err(MuxError::Closed),
        }
    }

    fn enqueue(&mut self, id: u32) {
        if let Some(stream) = self.streams.get_mut(&id)
            && !stream.has(QUEUED)
        {
            stream.flags |= QUEUED;
            self.ready.push_back(id);
        }
    }

    fn encode_named(&mut self, frame_type: FrameType, flags: Flags, id: u32, name: &str) {
        // Names were checked to be 1..=MAX_SERVICE_NAME bytes.
        let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        Header {
            frame_type,
            flags,
            stream_id: id,
            length: len,
        }
        .encode(&mut self.control);
        self.control.extend_from_slice(name.as_bytes());
    }

    // ---------------------------------------------------------------- output

    /// True when [`Self::poll_transmit`] has something to send.
    pub fn wants_transmit(&self) -> bool {
        !self.control.is_empty() || !self.ready.is_empty()
    }

    /// Appends up to `max_bytes` of frames to `out` and returns how many were appended.
    ///
    /// Control frames (opens, accepts, window updates, resets, pings, listen, go-away) go
    /// first; a control frame may be split across calls. Then streams with data take turns
    /// round-robin, one chunk of at most [`MuxConfig::chunk_size`] each per turn, so a stream
    /// with much queued data cannot starve the others; the rotation carries over between
    /// calls. A data frame is never split, so a budget below 13 bytes may send nothing.
    pub fn poll_transmit(&mut self, out: &mut BytesMut, max_bytes: usize) -> usize {
        self.transmit(out, max_bytes)
    }

    /// [`Self::poll_transmit`] without copying stream data: appends the same bytes to `out`
    /// as a sequence of [`Bytes`] (frame headers, control frames, and slices of the streams'
    /// send buffers), for a vectored write (`writev`). Returns the byte count appended.
    /// The two forms may be mixed freely between calls.
    pub fn poll_transmit_chunks(&mut self, out: &mut VecDeque<Bytes>, max_bytes: usize) -> usize {
        let mut headers = std::mem::take(&mut self.headers);
        let sent = self.transmit(
            &mut ChunkSink {
                out,
                headers: &mut headers,
            },
            max_bytes,
        );
        self.headers = headers;
        sent
    }

    fn transmit(&mut self, out: &mut impl TransmitSink, max_bytes: usize) -> usize {
        let mut sent = 0;
        if !self.control.is_empty() {
            let take = self.control.len().min(max_bytes);
            out.control(&mut self.control, take);
            sent += take;
            if !self.control.is_empty() {
                return sent;
            }
            if self.control.capacity() > CONTROL_HIGH_WATER {
                self.control = BytesMut::new();
            }
        }
        let chunk_size = self.config.chunk_size as usize;
        let stream_window = self.config.stream_window;
        while let Some(&id) = self.ready.front() {
            let budget = max_bytes - sent;
            let Some(stream) = self.streams.get_mut(&id) else {
                self.ready.pop_front();
                continue;
            };
            if !stream.has_output() {
                stream.flags &= !QUEUED;
                self.ready.pop_front();
                continue;
            }
            let pending = stream.send.len();
            let needed = HEADER_LEN + usize::from(pending > 0);
            if budget < needed {
                break;
            }
            let len = stream
                .send
                .front_len()
                .min(chunk_size)
                .min(budget - HEADER_LEN);
            let fin = len == pending && stream.has(LOCAL_FIN);
            let flags = if fin { Flags::FIN } else { Flags::NONE };
            // `len` is at most chunk_size, a u32.
            let header = Header::data(StreamId(id), flags, u32::try_from(len).unwrap_or(u32::MAX));
            stream.send.frame(out, header, len, &mut self.spare_chunks);
            sent += HEADER_LEN + len;
            if fin {
                stream.flags |= FIN_SENT;
            }
            if stream.has(WANT_WRITE) && stream.writable_again(stream_window) {
                stream.flags &= !WANT_WRITE;
                self.events
                    .push_back(MuxEvent::Writable { id: StreamId(id) });
            }
            self.ready.pop_front();
            if stream.has_output() {
                self.ready.push_back(id);
            } else {
                stream.flags &= !QUEUED;
            }
            if fin {
                self.maybe_remove(StreamId(id));
            }
        }
        if self.ready.is_empty() {
            // Nothing left to send: the link is idle, keep no spare memory.
            self.spare_chunks = Vec::new();
        }
        sent
    }

    // ---------------------------------------------------------------- timers and state

    /// When [`Self::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let idle = self.config.idle_timeout.map(|t| self.last_received + t);
        let ping = match self.config.keepalive_interval {
            Some(interval) if !self.ping_outstanding => Some(self.last_received + interval),
            _ => None,
        };
        match (idle, ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers due at `now`: sends a keep-alive ping, or closes the mux when nothing
    /// was received within the idle timeout (`GoAway` code 3, [`MuxEvent::Closed`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        let silent_for = now.saturating_duration_since(self.last_received);
        if let Some(timeout) = self.config.idle_timeout
            && silent_for >= timeout
        {
            self.close_with(
                CloseReason::IdleTimeout(timeout),
                Some(GoAwayCode::IdleTimeout),
            );
            return;
        }
        if let Some(interval) = self.config.keepalive_interval
            && !self.ping_outstanding
            && silent_for >= interval
        {
            let nonce = self.next_ping_nonce;
            self.next_ping_nonce = self.next_ping_nonce.wrapping_add(1);
            Header::session(FrameType::Ping, Flags::SYN, nonce).encode(&mut self.control);
            self.ping_outstanding = true;
            self.rtt_probe = Some((nonce, now));
        }
    }

    /// Round-trip time measured by the last answered keep-alive ping.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// True while the runtime should read from the connection: the mux is open and its
    /// unsent control answers are below [`CONTROL_HIGH_WATER`] (a peer that does not read
    /// its pongs and resets is not read from either).
    pub fn wants_read(&self) -> bool {
        self.state == State::Open && self.control.len() < CONTROL_HIGH_WATER
    }

    /// True once the mux is closed, or both sides have sent `GoAway` and every stream is
    /// over: flush [`Self::poll_transmit`], then drop the connection.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed
            || (self.local_going_away && self.peer_going_away && self.streams.is_empty())
    }

    /// True once the mux is closed (protocol error, peer's fatal `GoAway`, idle timeout).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Streams open.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// What the mux holds now (walks every stream: O(streams)).
    pub fn stats(&self) -> MuxStats {
        let (buffered_receive, buffered_send) =
            self.streams.values().fold((0, 0), |(r, s), stream| {
                (r + stream.recv.len(), s + stream.send.len())
            });
        MuxStats {
            streams: self.streams.len(),
            buffered_receive,
            buffered_send,
            control_pending: self.control.len(),
            committed_receive: self.committed,
            refused_streams: self.refused_streams,
        }
    }
}

/// Where [`Mux::transmit`] puts frames: one contiguous buffer, or a list of chunks.
trait TransmitSink {
    /// Takes the first `take` bytes off `control`.
    fn control(&mut self, control: &mut BytesMut, take: usize);
    /// A data frame: `header`, then the first `len` bytes taken off `send`.
    fn data(&mut self, header: Header, send: &mut BytesMut, len: usize);
}

impl TransmitSink for BytesMut {
    fn control(&mut self, control: &mut BytesMut, take: usize) {
        self.extend_from_slice(&control[..take]);
        control.advance(take);
    }

    fn data(&mut self, header: Header, send: &mut BytesMut, len: usize) {
        header.encode(self);
        self.extend_from_slice(&send[..len]);
        send.advance(len);
    }
}

struct ChunkSink<'a> {
    out: &'a mut VecDeque<Bytes>,
    headers: &'a mut BytesMut,
}

impl TransmitSink for ChunkSink<'_> {
    fn control(&mut self, control: &mut BytesMut, take: usize) {
        self.out.push_back(control.split_to(take).freeze());
    }

    fn data(&mut self, header: Header, send: &mut BytesMut, len: usize) {
        if self.headers.capacity() < HEADER_LEN {
            // A fresh arena; the previous one lives on in the headers handed out.
            *self.headers = BytesMut::with_capacity(HEADER_ARENA);
        }
        header.encode(self.headers);
        self.out.push_back(self.headers.split().freeze());
        if len > 0 {
            self.out.push_back(send.split_to(len).freeze());
        }
    }
}

/// Smallest part of a stream's owed window granted from the shared part of the budget: the
/// budget does not dribble out in tiny window updates.
const MIN_BUDGET_GRANT: u32 = 16 * 1024;

/// How much of `stream`'s owed window (`recv_unacked`) to grant now. Without a budget, all
/// of it. With one, what is needed to bring the stream back to [`INITIAL_WINDOW`] (always
/// reserved for it) plus what the budget's free room allows beyond that, if that is at least
/// [`MIN_BUDGET_GRANT`] or all that is owed.
fn grant(stream: &Stream, committed: usize, max_buffered: Option<usize>) -> u32 {
    let owed = stream.recv_unacked;
    let Some(max) = max_buffered else {
        return owed;
    };
    let held = stream.recv_window as usize + stream.recv.len();
    let base = (INITIAL_WINDOW as usize).saturating_sub(held);
    let base = u32::try_from(base).unwrap_or(u32::MAX).min(owed);
    let room = u32::try_from(max.saturating_sub(committed)).unwrap_or(u32::MAX);
    let extra = (owed - base).min(room);
    if extra >= MIN_BUDGET_GRANT || extra == owed - base {
        base + extra
    } else {
        base
    }
}

/// Capacity of a new receive buffer for a first frame of `len` bytes: a full-size chunk
/// suggests more follow, so room for a few is taken at once (within the window) instead of
/// growing the buffer chunk by chunk; a small frame gets just its size.
fn fresh_capacity(len: usize, window: usize) -> usize {
    if len >= 4096 {
        len.max((window / 4).min(64 * 1024))
    } else {
        len
    }
}

/// Written data not yet framed, in the chunks it was written in: growing it never moves
/// what is queued, and [`Mux::poll_transmit_chunks`] frames it without copying. Small writes
/// are packed into the last chunk's spare room. Owns no allocation while empty.
#[derive(Debug, Default)]
struct SendQueue {
    /// Never holds an empty chunk.
    chunks: VecDeque<BytesMut>,
}

/// Most emptied send chunks a mux keeps for reuse.
const SPARE_CHUNKS: usize = 16;

/// Spare room a new send chunk reserves for small writes that follow, at most: this, or a
/// 64th of the stream window if larger (so a queue holds about 64 chunks at most).
const SEND_PACKING: usize = 4096;

impl SendQueue {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes queued (walks the chunks: few, as writes are packed).
    fn len(&self) -> usize {
        self.chunks.iter().map(BytesMut::len).sum()
    }

    /// Length of the first chunk: the most one frame takes.
    fn front_len(&self) -> usize {
        self.chunks.front().map_or(0, BytesMut::len)
    }

    fn push(&mut self, mut data: &[u8], stream_window: u32, spare: &mut Vec<BytesMut>) {
        let queued = match self.chunks.back_mut() {
            Some(back) => {
                let room = (back.capacity() - back.len()).min(data.len());
                back.extend_from_slice(&data[..room]);
                data = &data[room..];
                back.len()
            }
            None => 0,
        };
        if !data.is_empty() {
            // Room for more small writes once some are queued; a first write gets its size.
            let packing = (2 * queued).min(SEND_PACKING.max(stream_window as usize / 64));
            let capacity = data.len().max(packing);
            // A spare chunk that no frame in flight shares any more is as good as new (and
            // its memory is already touched).
            let reusable = spare
                .iter_mut()
                .rposition(|chunk| chunk.try_reclaim(capacity));
            let mut chunk = match reusable {
                Some(index) => spare.swap_remove(index),
                None => BytesMut::with_capacity(capacity),
            };
            chunk.extend_from_slice(data);
            self.chunks.push_back(chunk);
        }
    }

    /// Hands the first `len` bytes (at most [`Self::front_len`]) to `out` as one data frame.
    fn frame(
        &mut self,
        out: &mut impl TransmitSink,
        header: Header,
        len: usize,
        spare: &mut Vec<BytesMut>,
    ) {
        match self.chunks.front_mut() {
            Some(front) => {
                out.data(header, front, len);
                if front.is_empty()
                    && let Some(emptied) = self.chunks.pop_front()
                    && spare.len() < SPARE_CHUNKS
                {
                    spare.push(emptied);
                }
            }
            None => out.data(header, &mut BytesMut::new(), 0),
        }
    }
}

fn check_service(service: &str) -> Result<(), MuxError> {
    if service.is_empty() || service.len() > MAX_SERVICE_NAME {
        return Err(MuxError::InvalidServiceName { len: service.len() });
    }
    Ok(())
}

fn service_name(body: &[u8]) -> Result<&str, MuxError> {
    std::str::from_utf8(body).map_err(|_| MuxError::ServiceNameNotUtf8)
}

#[cfg(test)]
mod tests;
