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
//! 4. **output**: write [`Session::transmit_buffer`] to the socket (and `advance` it by what
//!    was written); stop when [`Session::is_finished`] and the buffer is empty.
//!
//! Time is an argument (`now`); the session never reads a clock.
//!
//! The type parameter `T` is whatever the runtime wants back with a reply (typically the
//! channel to the waiting caller): it is stored with the request and handed back in
//! [`Event::Reply`], so there is one map of calls in flight, here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::{
    self, CloseCode, EncodeError, Frame, FrameDecoder, FrameError, Payload, RequestId, StatusCode,
    StreamInfo,
};

/// First bytes of every zserver connection, in both directions.
pub const PREAMBLE_MAGIC: [u8; 4] = *b"ZSRV";

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Length of the preamble: magic, u16 version, u16 flags (reserved, zero), u32 largest frame
/// body this side accepts.
pub const PREAMBLE_SIZE: usize = 12;

/// Bytes a transfer's sender may send before the receiver grants more: the initial window of
/// every BigStream / CompleteBuffer transfer. Bounds what one transfer can make its receiver
/// buffer.
pub const INITIAL_STREAM_WINDOW: u64 = 1024 * 1024;

/// Preamble flag: "run my requests in order".
pub const FLAG_ORDERED_REQUESTS: u16 = 0x0001;

/// Smallest frame limit a peer may announce; below it even error replies would not fit.
pub const MIN_FRAME_SIZE: u32 = 1024;

/// Protocol limits and timers of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest frame body accepted from the peer. Bounds the memory one frame can claim.
    pub max_frame_size: u32,
    /// Most requests from the peer that may be open (received, not yet answered). Past it the
    /// runtime stops reading, so a flooding peer slows only itself.
    pub max_concurrent_requests: usize,
    /// Send a ping after this long without receiving anything. `None` disables pings.
    pub keepalive_interval: Option<Duration>,
    /// Close the connection after this long without receiving anything. `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// Ask the peer to run this side's requests strictly in order: each one starts after the
    /// previous one's reply (ZServer4D's serialized command queue). Sent in the preamble.
    pub ordered_requests: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_concurrent_requests: 1024,
            keepalive_interval: Some(Duration::from_secs(15)),
            idle_timeout: Some(Duration::from_secs(60)),
            ordered_requests: false,
        }
    }
}

/// Something the runtime must act on.
#[derive(Debug)]
pub enum Event<T> {
    /// The peer asks for a reply; answer with [`Session::send_reply`] exactly once.
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
    /// The peer opens a transfer (a request whose body follows as [`Event::StreamData`]);
    /// answer it with [`Session::send_reply`] once consumed, and grant window with
    /// [`Session::grant_stream_credit`] as chunks are consumed.
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
    /// handed back by [`Session::take_in_flight`].
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
    transmit: BytesMut,
    events: VecDeque<Event<T>>,
    /// Our requests awaiting a reply.
    in_flight: HashMap<u64, T>,
    /// Highest request id sent so far: a reply above it answers nothing we sent.
    highest_request_id: u64,
    /// The peer's requests we have not answered yet.
    open_peer_requests: HashSet<u64>,
    /// Highest request (or transfer) id the peer has opened: frames for lower ids that are no
    /// longer open are late, not forged.
    highest_peer_request_id: u64,
    /// Inbound transfers still receiving: bytes the peer may still send.
    inbound_windows: HashMap<u64, u64>,
    /// Outbound transfers still sending: bytes we may still send.
    outbound_credit: HashMap<u64, u64>,
    last_received: Instant,
    ping_sent_at: Option<Instant>,
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
        transmit.put_slice(&PREAMBLE_MAGIC);
        transmit.put_u16_le(PROTOCOL_VERSION);
        let flags = if config.ordered_requests {
            FLAG_ORDERED_REQUESTS
        } else {
            0
        };
        transmit.put_u16_le(flags);
        transmit.put_u32_le(config.max_frame_size);
        Self {
            decoder: FrameDecoder::new(config.max_frame_size),
            config,
            state: State::AwaitingPreamble,
            transmit,
            events: VecDeque::new(),
            in_flight: HashMap::new(),
            highest_request_id: 0,
            open_peer_requests: HashSet::new(),
            highest_peer_request_id: 0,
            inbound_windows: HashMap::new(),
            outbound_credit: HashMap::new(),
            last_received: now,
            ping_sent_at: None,
            next_ping_nonce: 1,
            drain_close: None,
            late_replies: 0,
            peer_max_frame_size: None,
            peer_wants_order: false,
        }
    }

    /// The output buffer: bytes waiting to be written to the socket. The runtime may also
    /// take bytes out of it directly (e.g. `split`) instead of using
    /// [`Self::transmit_pending`] + [`Self::advance_transmit`].
    pub fn transmit_buffer(&mut self) -> &mut BytesMut {
        &mut self.transmit
    }

    /// Bytes waiting to be written to the socket.
    pub fn transmit_pending(&self) -> &[u8] {
        &self.transmit
    }

    /// Marks `written` bytes of [`Self::transmit_pending`] as sent.
    pub fn advance_transmit(&mut self, written: usize) {
        self.transmit.advance(written.min(self.transmit.len()));
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
    ///
    /// On a protocol error a close frame naming it is queued, the session is finished and the
    /// error is returned (it also appears as [`Event::Closed`]).
    pub fn handle_received(
        &mut self,
        received: &mut BytesMut,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if received.is_empty() || self.state == State::Finished {
            return Ok(());
        }
        self.last_received = now;
        self.ping_sent_at = None;
        match self.process_frames(received) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.finish_with_error(error.clone());
                Err(error)
            }
        }
    }

    fn process_frames(&mut self, received: &mut BytesMut) -> Result<(), ProtocolError> {
        if self.state == State::AwaitingPreamble {
            if received.len() < PREAMBLE_SIZE {
                // Reject a wrong magic as soon as its bytes arrive, not after 8 bytes.
                let seen = received.len().min(4);
                if received[..seen] != PREAMBLE_MAGIC[..seen] {
                    let mut found = [0u8; 4];
                    found[..seen].copy_from_slice(&received[..seen]);
                    return Err(ProtocolError::BadPreamble { found });
                }
                return Ok(());
            }
            let mut found = [0u8; 4];
            found.copy_from_slice(&received[..4]);
            if found != PREAMBLE_MAGIC {
                return Err(ProtocolError::BadPreamble { found });
            }
            let theirs = u16::from_le_bytes([received[4], received[5]]);
            let flags = u16::from_le_bytes([received[6], received[7]]);
            self.peer_wants_order = flags & FLAG_ORDERED_REQUESTS != 0;
            // A newer peer also speaks every older version; the lower one is used.
            if theirs < PROTOCOL_VERSION {
                return Err(ProtocolError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs,
                });
            }
            let peer_limit =
                u32::from_le_bytes([received[8], received[9], received[10], received[11]]);
            if peer_limit < MIN_FRAME_SIZE {
                return Err(ProtocolError::FrameLimitTooSmall { max: peer_limit });
            }
            self.peer_max_frame_size = Some(peer_limit);
            received.advance(PREAMBLE_SIZE);
            self.state = State::Open;
        }
        while self.state != State::Finished {
            let Some(frame) = self.decoder.decode(received)? else {
                break;
            };
            self.handle_frame(frame)?;
        }
        Ok(())
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        match frame {
            Frame::Request {
                id,
                payload,
                name,
                body,
            } => {
                if !self.accept_peer_request(id)? {
                    return Ok(());
                }
                self.events.push_back(Event::Request {
                    id,
                    payload,
                    name,
                    body,
                });
            }
            Frame::Direct {
                payload,
                name,
                body,
            } => {
                if self.state != State::Draining {
                    self.events.push_back(Event::Direct {
                        payload,
                        name,
                        body,
                    });
                }
            }
            Frame::Reply { id, body } => self.complete(id, Ok(body))?,
            Frame::ErrorReply {
                id,
                code,
                message,
                details,
            } => {
                self.complete(
                    id,
                    Err(RemoteError {
                        code,
                        message,
                        details,
                    }),
                )?;
            }
            Frame::Ping { nonce } => frame::encode_pong(&mut self.transmit, nonce),
            Frame::Pong { .. } => {}
            Frame::Close { code, reason } => {
                self.state = State::Finished;
                self.events
                    .push_back(Event::Closed(CloseReason::Peer { code, reason }));
            }
            Frame::Cancel { id } => {
                if self.open_peer_requests.contains(&id.0) {
                    self.inbound_windows.remove(&id.0);
                    self.events.push_back(Event::Cancelled { id });
                }
            }
            Frame::StreamOpen { id, name, info } => {
                if !self.accept_peer_request(id)? {
                    return Ok(());
                }
                self.inbound_windows.insert(id.0, INITIAL_STREAM_WINDOW);
                self.events.push_back(Event::StreamOpen { id, name, info });
            }
            Frame::StreamData { id, body } => match self.inbound_windows.get_mut(&id.0) {
                Some(window) => {
                    let len = body.len() as u64;
                    if len > *window {
                        return Err(ProtocolError::WindowExceeded {
                            id,
                            excess: len - *window,
                        });
                    }
                    *window -= len;
                    self.events.push_back(Event::StreamData { id, body });
                }
                // Answered or cancelled already: chunks in flight are dropped.
                None if id.0 != 0 && id.0 <= self.highest_peer_request_id => {}
                None => return Err(ProtocolError::UnknownStream { id }),
            },
            Frame::StreamEnd { id } => {
                if self.inbound_windows.remove(&id.0).is_some() {
                    self.events.push_back(Event::StreamEnd { id });
                } else if id.0 == 0 || id.0 > self.highest_peer_request_id {
                    return Err(ProtocolError::UnknownStream { id });
                }
            }
            Frame::StreamCredit { id, credit } => match self.outbound_credit.get_mut(&id.0) {
                Some(available) => {
                    *available = available.saturating_add(u64::from(credit));
                    self.events.push_back(Event::StreamCredit { id, credit });
                }
                None if id.0 != 0 && id.0 <= self.highest_request_id => {}
                None => return Err(ProtocolError::UnknownStream { id }),
            },
        }
        Ok(())
    }

    /// Checks a new request (or transfer) id from the peer and marks it open. `Ok(false)` when
    /// the session is draining: the request was answered `ShuttingDown` at once.
    fn accept_peer_request(&mut self, id: RequestId) -> Result<bool, ProtocolError> {
        if id.0 == 0 {
            return Err(ProtocolError::ZeroRequestId);
        }
        if self.state == State::Draining {
            // Closing: answer at once instead of starting new work.
            frame::encode_error_reply(
                &mut self.transmit,
                id,
                StatusCode::UNAVAILABLE,
                "connection is closing",
                &[],
                u32::MAX,
            );
            return Ok(false);
        }
        if !self.open_peer_requests.insert(id.0) {
            return Err(ProtocolError::DuplicateRequest { id });
        }
        self.highest_peer_request_id = self.highest_peer_request_id.max(id.0);
        Ok(true)
    }

    fn complete(
        &mut self,
        id: RequestId,
        result: Result<Bytes, RemoteError>,
    ) -> Result<(), ProtocolError> {
        if id.0 == 0 || id.0 > self.highest_request_id {
            return Err(ProtocolError::UnknownReply { id });
        }
        self.outbound_credit.remove(&id.0);
        match self.in_flight.remove(&id.0) {
            Some(token) => {
                self.events.push_back(Event::Reply { id, token, result });
                self.maybe_finish_drain();
            }
            // We gave up on it (timeout or cancel); the reply is legitimately late.
            None => self.late_replies += 1,
        }
        Ok(())
    }

    fn finish_with_error(&mut self, error: ProtocolError) {
        let code = match error {
            ProtocolError::VersionMismatch { .. } => CloseCode::VersionMismatch,
            _ => CloseCode::ProtocolError,
        };
        // Tell the peer why, so its user sees a reason instead of a reset.
        frame::encode_close(&mut self.transmit, code, &error.to_string());
        self.state = State::Finished;
        self.events
            .push_back(Event::Closed(CloseReason::Protocol(error)));
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// True once the peer's preamble has arrived and the session is usable.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Open | State::Draining)
    }

    /// Queues request `id`; `token` comes back with its reply in [`Event::Reply`] (or from
    /// [`Self::take_in_flight`] if the connection ends first).
    ///
    /// Ids are chosen by the caller so that a runtime can hand them out from many tasks at
    /// once (an atomic counter): they must be non-zero and not in flight, and should grow —
    /// a reply to an id above the highest one sent is a protocol error.
    pub fn send_request(
        &mut self,
        id: RequestId,
        payload: Payload,
        name: &str,
        body: &[u8],
        token: T,
    ) -> Result<RequestId, SendError<T>> {
        if self.state == State::Finished || self.drain_close.is_some() {
            return Err(SendError::Closed(token));
        }
        if id.0 == 0 || self.in_flight.contains_key(&id.0) {
            return Err(SendError::BadRequestId(id, token));
        }
        let limit = self.send_limit();
        if let Err(error) =
            frame::encode_command(&mut self.transmit, Some(id), payload, name, body, limit)
        {
            return Err(SendError::Encode(error, token));
        }
        self.highest_request_id = self.highest_request_id.max(id.0);
        self.in_flight.insert(id.0, token);
        Ok(id)
    }

    /// Queues a message that takes no reply.
    pub fn send_direct(
        &mut self,
        payload: Payload,
        name: &str,
        body: &[u8],
    ) -> Result<(), SendError<()>> {
        if self.state == State::Finished {
            return Err(SendError::Closed(()));
        }
        let limit = self.send_limit();
        frame::encode_command(&mut self.transmit, None, payload, name, body, limit)
            .map_err(|error| SendError::Encode(error, ()))
    }

    /// Answers the peer's request `id` with `body`. Replies to requests that are not open
    /// (already answered) are ignored and return `false`. A body over the peer's frame limit
    /// is turned into an error reply saying so.
    pub fn send_reply(&mut self, id: RequestId, body: &[u8]) -> bool {
        if !self.close_peer_request(id) {
            return false;
        }
        if self.state != State::Finished {
            let limit = self.send_limit();
            if let Err(error) = frame::encode_reply(&mut self.transmit, id, body, limit) {
                frame::encode_error_reply(
                    &mut self.transmit,
                    id,
                    StatusCode::RESOURCE_EXHAUSTED,
                    &format!("reply too large: {error}"),
                    &[],
                    limit,
                );
            }
        }
        self.maybe_finish_drain();
        true
    }

    /// Answers the peer's request `id` with an error: a code, a message and optional
    /// `details` (an encoded DataFrame; left out when they would exceed the peer's frame
    /// limit). Returns `false`, sending nothing, when the request is not open.
    pub fn send_error(
        &mut self,
        id: RequestId,
        code: StatusCode,
        message: &str,
        details: &[u8],
    ) -> bool {
        if !self.close_peer_request(id) {
            return false;
        }
        if self.state != State::Finished {
            let limit = self.send_limit();
            frame::encode_error_reply(&mut self.transmit, id, code, message, details, limit);
        }
        self.maybe_finish_drain();
        true
    }

    /// Forgets the open peer request `id`; `false` when it was not open.
    fn close_peer_request(&mut self, id: RequestId) -> bool {
        if !self.open_peer_requests.remove(&id.0) {
            return false;
        }
        // A transfer answered early (refused, failed): chunks still in flight are dropped.
        self.inbound_windows.remove(&id.0);
        true
    }

    /// Gives up on our request `id` (its caller timed out): the token is returned, the peer
    /// is told with a cancel frame, and a late reply will be ignored.
    pub fn cancel_request(&mut self, id: RequestId) -> Option<T> {
        let token = self.in_flight.remove(&id.0)?;
        self.outbound_credit.remove(&id.0);
        if self.state != State::Finished {
            frame::encode_cancel(&mut self.transmit, id);
        }
        self.maybe_finish_drain();
        Some(token)
    }

    /// Opens outbound transfer `id` (see [`Self::send_request`] for ids and the token, which
    /// comes back with the transfer's reply). The first [`INITIAL_STREAM_WINDOW`] bytes may
    /// be sent at once; more as the peer grants credit ([`Event::StreamCredit`]).
    pub fn send_stream_open(
        &mut self,
        id: RequestId,
        name: &str,
        info: &StreamInfo,
        token: T,
    ) -> Result<RequestId, SendError<T>> {
        if self.state == State::Finished || self.drain_close.is_some() {
            return Err(SendError::Closed(token));
        }
        if id.0 == 0 || self.in_flight.contains_key(&id.0) {
            return Err(SendError::BadRequestId(id, token));
        }
        if let Err(error) = frame::encode_stream_open(&mut self.transmit, id, name, info) {
            return Err(SendError::Encode(error, token));
        }
        self.highest_request_id = self.highest_request_id.max(id.0);
        self.in_flight.insert(id.0, token);
        self.outbound_credit.insert(id.0, INITIAL_STREAM_WINDOW);
        Ok(id)
    }

    /// Bytes outbound transfer `id` may still send, or `None` if it is not sending.
    pub fn stream_credit(&self, id: RequestId) -> Option<u64> {
        self.outbound_credit.get(&id.0).copied()
    }

    /// Sends a chunk of outbound transfer `id`. Refused when the transfer is over (answered,
    /// cancelled) or the chunk exceeds the credit the peer granted.
    pub fn send_stream_data(&mut self, id: RequestId, chunk: &[u8]) -> Result<(), StreamSendError> {
        if self.state == State::Finished {
            return Err(StreamSendError::Closed);
        }
        let limit = self.send_limit();
        let Some(credit) = self.outbound_credit.get_mut(&id.0) else {
            return Err(StreamSendError::NotSending);
        };
        let len = chunk.len() as u64;
        if len > *credit {
            return Err(StreamSendError::NoCredit {
                needed: len,
                available: *credit,
            });
        }
        frame::encode_stream_data(&mut self.transmit, id, chunk, limit)
            .map_err(StreamSendError::Encode)?;
        *credit -= len;
        Ok(())
    }

    /// Ends outbound transfer `id`: no more chunks. Its reply arrives as usual.
    pub fn send_stream_end(&mut self, id: RequestId) -> Result<(), StreamSendError> {
        if self.state == State::Finished {
            return Err(StreamSendError::Closed);
        }
        if self.outbound_credit.remove(&id.0).is_none() {
            return Err(StreamSendError::NotSending);
        }
        frame::encode_stream_end(&mut self.transmit, id);
        Ok(())
    }

    /// Grants the peer `credit` more bytes on inbound transfer `id` (call as chunks are
    /// consumed). Ignored when the transfer has ended.
    pub fn grant_stream_credit(&mut self, id: RequestId, credit: u32) {
        if self.state == State::Finished {
            return;
        }
        if let Some(window) = self.inbound_windows.get_mut(&id.0) {
            *window = window.saturating_add(u64::from(credit));
            frame::encode_stream_credit(&mut self.transmit, id, credit);
        }
    }

    /// Closes now: a close frame is queued and nothing more is sent or received.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.state == State::Finished {
            return;
        }
        frame::encode_close(&mut self.transmit, code, reason);
        self.state = State::Finished;
        self.events.push_back(Event::Closed(CloseReason::Local {
            code,
            reason: reason.to_owned(),
        }));
    }

    /// Closes once every open request — the peer's and ours — is answered: new requests
    /// from the peer get a `ShuttingDown` error reply, new local requests are refused.
    pub fn close_after_drain(&mut self, code: CloseCode, reason: &str) {
        if self.state == State::Finished {
            return;
        }
        self.drain_close = Some((code, reason.to_owned()));
        if self.state == State::Open {
            self.state = State::Draining;
        }
        self.maybe_finish_drain();
    }

    fn maybe_finish_drain(&mut self) {
        if self.state == State::Draining
            && self.open_peer_requests.is_empty()
            && self.in_flight.is_empty()
            && let Some((code, reason)) = self.drain_close.take()
        {
            self.close(code, &reason);
        }
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
        let idle = self
            .config
            .idle_timeout
            .map(|timeout| self.last_received + timeout);
        let ping = match (self.config.keepalive_interval, self.ping_sent_at) {
            (Some(interval), None) => Some(self.last_received + interval),
            _ => None,
        };
        match (idle, ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers due at `now`: sends a keep-alive ping, or closes an idle connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Finished {
            return;
        }
        let silent_for = now.saturating_duration_since(self.last_received);
        if let Some(timeout) = self.config.idle_timeout
            && silent_for >= timeout
        {
            frame::encode_close(
                &mut self.transmit,
                CloseCode::IdleTimeout,
                "nothing received within the idle timeout",
            );
            self.state = State::Finished;
            self.events
                .push_back(Event::Closed(CloseReason::IdleTimeout(timeout)));
            return;
        }
        if let Some(interval) = self.config.keepalive_interval
            && self.ping_sent_at.is_none()
            && silent_for >= interval
        {
            frame::encode_ping(&mut self.transmit, self.next_ping_nonce);
            self.next_ping_nonce += 1;
            self.ping_sent_at = Some(now);
        }
    }
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

#[cfg(test)]
mod tests;
