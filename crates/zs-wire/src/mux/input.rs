//! Input: frames from the peer, checked against the streams' state.

use std::time::Instant;

use bytes::{Buf, BytesMut};

use super::stream::*;
use super::*;

impl Mux {
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
        self.keepalive.on_received(now);
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

    pub(super) fn process_frames(
        &mut self,
        received: &mut BytesMut,
        now: Instant,
    ) -> Result<(), MuxError> {
        while self.state == State::Open {
            // Every stateless check, length bounds included, before the body is waited for.
            let Some(header) = Header::peek(received)? else {
                return Ok(());
            };
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
    pub(super) fn budget_admits_stream(&self) -> bool {
        self.config
            .max_buffered
            .is_none_or(|max| self.committed + INITIAL_WINDOW as usize <= max)
    }

    /// Inserts a new stream whose peer starts with [`INITIAL_WINDOW`]; returns the extra
    /// window to grant at once. Without a budget that is the configured window's excess over
    /// the initial one. With one it is nothing: the excess waits ([`GROWTH_PENDING`]) until
    /// the stream has carried half an initial window, so that many idle streams do not each
    /// reserve a full window of the budget.
    pub(super) fn insert_stream(&mut self, id: u32, flags: u8) -> u32 {
        let excess = self.config.stream_window - INITIAL_WINDOW;
        let (extra, flags) = match self.config.max_buffered {
            Some(_) if excess > 0 => (0, flags | GROWTH_PENDING),
            _ => (excess, flags),
        };
        let stream = Stream::new(INITIAL_WINDOW + extra, flags);
        self.committed += stream.reservation();
        self.streams.insert(id, stream);
        extra
    }

    /// Removes a stream and releases its share of the receive budget.
    pub(super) fn remove_stream(&mut self, id: u32) -> bool {
        match self.streams.remove(&id) {
            Some(stream) => {
                self.committed -= stream.reservation();
                true
            }
            None => false,
        }
    }

    /// True when `id` names a stream that existed once and is gone: frames for it are late.
    pub(super) fn is_late(&self, id: u32) -> bool {
        if self.is_local_id(id) {
            u64::from(id) < self.next_local_id
        } else {
            id <= self.highest_peer_id
        }
    }

    pub(super) fn handle_frame(
        &mut self,
        header: Header,
        body: &[u8],
        now: Instant,
    ) -> Result<(), MuxError> {
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

    pub(super) fn handle_syn(&mut self, id: StreamId, body: &[u8]) -> Result<(), MuxError> {
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

    pub(super) fn handle_data(
        &mut self,
        id: StreamId,
        fin: bool,
        body: &[u8],
    ) -> Result<(), MuxError> {
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

    pub(super) fn handle_window_update(
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
    pub(super) fn maybe_remove(&mut self, id: StreamId) {
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

    pub(super) fn close_with(&mut self, reason: CloseReason, code: Option<GoAwayCode>) {
        if self.state == State::Closed {
            return;
        }
        if let Some(code) = code {
            Header::session(FrameType::GoAway, Flags::NONE, code.to_u32())
                .encode(&mut self.control);
        }
        self.state = State::Closed;
        self.streams = crate::ids::IdMap::default();
        self.committed = 0;
        self.ready = VecDeque::new();
        self.events.push_back(MuxEvent::Closed { reason });
    }
}
