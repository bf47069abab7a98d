//! Commands: listening, opening, writing, reading, closing and resetting streams.

use bytes::BytesMut;

use super::stream::*;
use super::*;

impl Mux {
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
            if stream.has(GROWTH_PENDING) && stream.recv_unacked >= INITIAL_WINDOW / 2 {
                // A busy stream: the rest of its configured window becomes owed.
                stream.flags &= !GROWTH_PENDING;
                stream.recv_unacked += stream_window - INITIAL_WINDOW;
            }
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

    pub(super) fn check_open(&self) -> Result<(), MuxError> {
        match self.state {
            State::Open => Ok(()),
            State::Closed => Err(MuxError::Closed),
        }
    }

    pub(super) fn enqueue(&mut self, id: u32) {
        if let Some(stream) = self.streams.get_mut(&id)
            && !stream.has(QUEUED)
        {
            stream.flags |= QUEUED;
            self.ready.push_back(id);
        }
    }

    pub(super) fn encode_named(
        &mut self,
        frame_type: FrameType,
        flags: Flags,
        id: u32,
        name: &str,
    ) {
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
}
