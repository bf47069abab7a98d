//! Frames on the current link: input, output, acks and timers.

use std::time::Instant;

use bytes::BytesMut;

use super::{LinkState, StableEndpoint};
use crate::stable::secret::{resume_proof, session_secret};
use crate::stable::{Frame, HEADER_LEN, Role, StableError, StableEvent, frame};

impl StableEndpoint {
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

    pub(super) fn handle_frames(&mut self, input: &mut BytesMut) -> Result<(), StableError> {
        while let Some(frame) = Frame::decode(input)? {
            self.handle_frame(frame)?;
            if self.is_over() {
                input.clear();
                break;
            }
        }
        Ok(())
    }

    pub(super) fn handle_frame(&mut self, frame: Frame) -> Result<(), StableError> {
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

    pub(super) fn on_data(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StableError> {
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

    pub(super) fn on_ack(&mut self, ack: u64) -> Result<(), StableError> {
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

    pub(super) fn on_close(&mut self, end: u64) -> Result<(), StableError> {
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

    pub(super) fn check_closed(&mut self) {
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

    pub(super) fn expire(&mut self) {
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

    /// Runs what is due at `now`: a delayed ack, or the end of the session when no link has carried
    /// it for [`StableConfig::give_up_after`](crate::stable::StableConfig::give_up_after)
    /// ([`StableEvent::Expired`]).
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
