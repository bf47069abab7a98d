//! Input: the peer's preamble, then frames, checked against what is in flight.

use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::{
    CloseReason, Event, INITIAL_STREAM_WINDOW, ProtocolError, RemoteError, Session, State, preamble,
};
use crate::frame::{self, CloseCode, Frame, RequestId, StatusCode};

impl<T> Session<T> {
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
        self.keepalive.on_received(now);
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
            let Some(peer) = preamble::decode(received)? else {
                return Ok(());
            };
            self.peer_wants_order = peer.wants_order;
            self.peer_max_frame_size = Some(peer.max_frame_size);
            received.advance(preamble::PREAMBLE_SIZE);
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
}
