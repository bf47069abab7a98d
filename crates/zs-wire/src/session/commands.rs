//! Commands: requests, replies, transfers and closing.

use super::{
    CloseReason, Event, INITIAL_STREAM_WINDOW, SendError, Session, State, StreamSendError,
};
use bytes::Bytes;

use crate::frame::{self, CloseCode, Payload, RequestId, StatusCode, StreamInfo};

impl<T> Session<T> {
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
        let limit = self.stream_send_limit(id, chunk.len())?;
        frame::encode_stream_data(&mut self.transmit, id, chunk, limit)
            .map_err(StreamSendError::Encode)?;
        self.spend_stream_credit(id, chunk.len());
        Ok(())
    }

    /// [`Self::send_stream_data`] for a chunk the caller already holds as `Bytes`: a chunk
    /// of at least [`SEGMENT_MIN`](super::SEGMENT_MIN) bytes is queued as it is, not copied.
    pub fn send_stream_bytes(
        &mut self,
        id: RequestId,
        chunk: Bytes,
    ) -> Result<(), StreamSendError> {
        if chunk.len() < super::SEGMENT_MIN {
            return self.send_stream_data(id, &chunk);
        }
        let limit = self.stream_send_limit(id, chunk.len())?;
        frame::encode_stream_data_header(&mut self.transmit, id, chunk.len(), limit)
            .map_err(StreamSendError::Encode)?;
        self.spend_stream_credit(id, chunk.len());
        self.queue_segment(chunk);
        Ok(())
    }

    /// Checks that a `len`-byte chunk of transfer `id` may be sent now; returns the frame
    /// size limit to encode it under.
    fn stream_send_limit(&self, id: RequestId, len: usize) -> Result<u32, StreamSendError> {
        if self.state == State::Finished {
            return Err(StreamSendError::Closed);
        }
        let Some(&credit) = self.outbound_credit.get(&id.0) else {
            return Err(StreamSendError::NotSending);
        };
        if len as u64 > credit {
            return Err(StreamSendError::NoCredit {
                needed: len as u64,
                available: credit,
            });
        }
        Ok(self.send_limit())
    }

    fn spend_stream_credit(&mut self, id: RequestId, len: usize) {
        if let Some(credit) = self.outbound_credit.get_mut(&id.0) {
            *credit -= len as u64;
        }
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

    pub(super) fn maybe_finish_drain(&mut self) {
        if self.state == State::Draining
            && self.open_peer_requests.is_empty()
            && self.in_flight.is_empty()
            && let Some((code, reason)) = self.drain_close.take()
        {
            self.close(code, &reason);
        }
    }
}
