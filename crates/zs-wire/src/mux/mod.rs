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
//!   difference at once — or, with a connection-wide budget (below), once the stream has
//!   carried half an initial window, so idle streams reserve no more than the initial one. [`Mux::read`] grants consumed bytes back with a `WindowUpdate` once
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

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::keepalive::{KeepAlive, KeepAliveAction};

mod commands;
mod config;
mod events;
mod frame;
mod input;
mod stream;
mod transmit;

pub use config::MuxConfig;
pub use events::{CloseReason, GoAwayCode, MuxError, MuxEvent, MuxStats};
pub use frame::{
    Flags, FrameType, HEADER_LEN, Header, INITIAL_WINDOW, MAX_FRAME_BODY, MAX_SERVICE_NAME, VERSION,
};
use stream::Stream;

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
    streams: crate::ids::IdMap<u32, Stream>,
    /// Streams with output pending, in round-robin order (ids of closed streams are skipped).
    ready: VecDeque<u32>,
    /// Encoded control frames, sent before any data.
    control: BytesMut,
    /// Header bytes handed out by [`Mux::poll_transmit_chunks`] (split off, shared).
    headers: BytesMut,
    /// Send chunks emptied by [`Mux::poll_transmit`], reused once no frame handed out still shares
    /// them; at most [`SPARE_CHUNKS`](stream::SPARE_CHUNKS), and only while output is pending.
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
    keepalive: KeepAlive,
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
            keepalive: KeepAlive::new(config.keepalive_interval, config.idle_timeout, now),
            config,
            role,
            state: State::Open,
            streams: crate::ids::IdMap::default(),
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

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// True when [`Self::poll_event`] has an event.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`Self::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        self.keepalive.poll_timeout()
    }

    /// Runs the timers due at `now`: sends a keep-alive ping, or closes the mux when nothing
    /// was received within the idle timeout (`GoAway` code 3, [`MuxEvent::Closed`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        match self.keepalive.handle_timeout(now) {
            Some(KeepAliveAction::IdleTimeout(timeout)) => self.close_with(
                CloseReason::IdleTimeout(timeout),
                Some(GoAwayCode::IdleTimeout),
            ),
            Some(KeepAliveAction::SendPing) => {
                let nonce = self.next_ping_nonce;
                self.next_ping_nonce = self.next_ping_nonce.wrapping_add(1);
                Header::session(FrameType::Ping, Flags::SYN, nonce).encode(&mut self.control);
                self.rtt_probe = Some((nonce, now));
            }
            None => {}
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
