//! One side of a logical session: the application's streams, and the link lifecycle.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::BytesMut;
use zeroize::Zeroizing;

use super::secret::link_key;
use super::{Frame, Role, SessionId, StableConfig, StableError, StableEvent};

mod link;
mod server;

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
    pub(super) session_id: Option<SessionId>,
    pub(super) secret: Option<Zeroizing<[u8; 32]>>,
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

    /// Since when the session has had no link; `None` while one is up. The give-up time
    /// counts from here.
    pub fn detached_since(&self) -> Option<Instant> {
        self.detached_since
    }

    /// Whether the session is over for good (give-up time passed, or refused).
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// Whether the session ended in an orderly close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub(super) fn is_over(&self) -> bool {
        self.expired || self.closed
    }

    fn snd_end(&self) -> u64 {
        self.snd_una + self.send_buf.len() as u64
    }

    /// Whether [`Self::poll_link_transmit`] has something to send now: a control frame,
    /// written bytes not yet sent on the link, or an ack that is due. A runtime wakes its
    /// link driver when this turns true, and needs no wake-up while it stays true.
    pub fn wants_transmit(&self) -> bool {
        !self.control.is_empty()
            || self.snd_nxt < self.snd_end()
            || (self.ack_due && self.rcv_read > self.last_ack_sent)
            || (self.closing && !self.close_sent_on_link)
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

    /// Client: a new link is up (after its own handshake). `link_secret`: key material only this
    /// link's two ends know (see [`link_secret`](crate::stable::link_secret)); empty is allowed but
    /// weaker. The client answers the server's challenge with `Open` or `Resume`.
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
}
