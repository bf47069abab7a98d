//! One connection's protocol state, without I/O.
//!
//! A [`Session`] owns everything the protocol remembers about a connection: the preamble
//! exchange, the ids of requests in flight in both directions, keep-alive and idle timers and
//! the orderly close. The runtime drives it with four method families, in the manner of
//! quinn-proto's `Connection`:
//!
//! 1. **input**: read socket bytes into a `BytesMut` and pass it to
//!    [`Session::handle_received`]; call [`Session::handle_timeout`] when the deadline from
//!    [`Session::poll_timeout`] passes;
//! 2. **commands**: [`Session::send_request`], [`Session::send_direct`], [`Session::send_reply`],
//!    [`Session::cancel_request`], [`Session::close`], [`Session::close_after_drain`];
//! 3. **events**: drain [`Session::poll_event`] after each input;
//! 4. **output**: write [`Session::transmit_vectored`] (or [`Session::transmit_pending`]) to
//!    the socket and [`Session::advance_transmit`] by what was written; stop when
//!    [`Session::is_finished`] and nothing is pending. Large transfer chunks are queued as
//!    their own buffers, not copied (see `output.rs`).
//!
//! Time is an argument (`now`); the session never reads a clock.
//!
//! The type parameter `T` is whatever the runtime wants back with a reply (typically the
//! channel to the waiting caller): it is stored with the request and handed back in
//! [`Event::Reply`], so there is one map of calls in flight, here.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::frame::{self, CloseCode, FrameDecoder, RequestId};
use crate::ids::{IdMap, IdSet};
use crate::keepalive::{KeepAlive, KeepAliveAction};

mod commands;
mod config;
mod events;
mod input;
mod output;
mod preamble;

pub use config::SessionConfig;
pub use events::{CloseReason, Event, ProtocolError, RemoteError, SendError, StreamSendError};
pub use output::SEGMENT_MIN;
pub use preamble::{
    FLAG_ORDERED_REQUESTS, MIN_FRAME_SIZE, PREAMBLE_MAGIC, PREAMBLE_SIZE, PROTOCOL_VERSION,
};

/// Bytes a transfer's sender may send before the receiver grants more: the initial window of
/// every BigStream / CompleteBuffer transfer. Bounds what one transfer can make its receiver
/// buffer.
pub const INITIAL_STREAM_WINDOW: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's preamble.
    AwaitingPreamble,
    Open,
    /// Closing after the open requests are answered and flushed.
    Draining,
    /// Close frame queued or received; nothing more is sent or received.
    Finished,
}

/// One connection's protocol state. See the module docs for the driving contract.
#[derive(Debug)]
pub struct Session<T> {
    config: SessionConfig,
    decoder: FrameDecoder,
    state: State,
    /// Output in order: `queued` first (frozen segments: earlier small frames, and transfer
    /// chunks queued without a copy), then `transmit`, where frames are encoded.
    queued: VecDeque<Bytes>,
    /// Bytes in `queued`.
    queued_len: usize,
    transmit: BytesMut,
    events: VecDeque<Event<T>>,
    /// Our requests awaiting a reply.
    in_flight: IdMap<u64, T>,
    /// Highest request id sent so far: a reply above it answers nothing we sent.
    highest_request_id: u64,
    /// The peer's requests we have not answered yet.
    open_peer_requests: IdSet<u64>,
    /// Highest request (or transfer) id the peer has opened: frames for lower ids that are no
    /// longer open are late, not forged.
    highest_peer_request_id: u64,
    /// Inbound transfers still receiving: bytes the peer may still send.
    inbound_windows: IdMap<u64, u64>,
    /// Outbound transfers still sending: bytes we may still send.
    outbound_credit: IdMap<u64, u64>,
    keepalive: KeepAlive,
    next_ping_nonce: u64,
    drain_close: Option<(CloseCode, String)>,
    late_replies: u64,
    /// The largest frame body the peer accepts, from its preamble.
    peer_max_frame_size: Option<u32>,
    /// The peer asked for its requests to run in order.
    peer_wants_order: bool,
}

impl<T> Session<T> {
    /// A new session; our preamble is queued for transmission at once.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let mut transmit = BytesMut::with_capacity(8 * 1024);
        preamble::encode(
            &mut transmit,
            config.ordered_requests,
            config.max_frame_size,
        );
        let keepalive = KeepAlive::new(config.keepalive_interval, config.idle_timeout, now);
        Self {
            decoder: FrameDecoder::new(config.max_frame_size),
            config,
            state: State::AwaitingPreamble,
            queued: VecDeque::new(),
            queued_len: 0,
            transmit,
            events: VecDeque::new(),
            in_flight: IdMap::default(),
            highest_request_id: 0,
            open_peer_requests: IdSet::default(),
            highest_peer_request_id: 0,
            inbound_windows: IdMap::default(),
            outbound_credit: IdMap::default(),
            keepalive,
            next_ping_nonce: 1,
            drain_close: None,
            late_replies: 0,
            peer_max_frame_size: None,
            peer_wants_order: false,
        }
    }

    /// True when the peer's requests are below the concurrency limit and the session still
    /// takes input: the runtime should read from the socket only then.
    pub fn wants_read(&self) -> bool {
        self.state != State::Finished
            && self.open_peer_requests.len() < self.config.max_concurrent_requests
    }

    /// True when the session is over: flush the transmit buffer, then drop the connection.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Our requests awaiting a reply.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// The peer's requests not answered yet.
    pub fn open_peer_request_count(&self) -> usize {
        self.open_peer_requests.len()
    }

    /// Replies that arrived for requests already given up (cancelled or timed out).
    pub fn late_reply_count(&self) -> u64 {
        self.late_replies
    }

    /// True when the peer's preamble asked for its requests to run strictly in order; the
    /// runtime then starts each of its requests only after the previous one is answered.
    /// Unknown flag bits are ignored (reserved for future versions).
    pub fn peer_wants_order(&self) -> bool {
        self.peer_wants_order
    }

    /// The largest frame body the peer accepts, once its preamble has arrived.
    pub fn peer_max_frame_size(&self) -> Option<u32> {
        self.peer_max_frame_size
    }

    /// The limit for frames we send: the peer's, or ours until we know the peer's.
    fn send_limit(&self) -> u32 {
        self.peer_max_frame_size
            .unwrap_or(self.config.max_frame_size)
    }

    /// Processes received bytes: takes every complete frame off the front of `received`
    /// (which the runtime owns and reads the socket into; an incomplete frame stays in it)
    /// and queues events. Frame bodies are zero-copy slices of `received`.
    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// True once the peer's preamble has arrived and the session is usable.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Open | State::Draining)
    }

    /// Hands back every request still waiting for a reply (call after [`Event::Closed`]).
    pub fn take_in_flight(&mut self) -> impl Iterator<Item = (RequestId, T)> + '_ {
        self.in_flight
            .drain()
            .map(|(id, token)| (RequestId(id), token))
    }

    /// When [`Self::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Finished {
            return None;
        }
        self.keepalive.poll_timeout()
    }

    /// Runs the timers due at `now`: sends a keep-alive ping, or closes an idle connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Finished {
            return;
        }
        match self.keepalive.handle_timeout(now) {
            Some(KeepAliveAction::IdleTimeout(timeout)) => {
                frame::encode_close(
                    &mut self.transmit,
                    CloseCode::IdleTimeout,
                    "nothing received within the idle timeout",
                );
                self.state = State::Finished;
                self.events
                    .push_back(Event::Closed(CloseReason::IdleTimeout(timeout)));
            }
            Some(KeepAliveAction::SendPing) => {
                frame::encode_ping(&mut self.transmit, self.next_ping_nonce);
                self.next_ping_nonce += 1;
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
