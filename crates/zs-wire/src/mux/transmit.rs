//! Output: control frames first, then stream data round-robin, flat or as chunks.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::stream::*;
use super::*;

impl Mux {
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

    pub(super) fn transmit(&mut self, out: &mut impl TransmitSink, max_bytes: usize) -> usize {
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
}

/// Where [`Mux::transmit`] puts frames: one contiguous buffer, or a list of chunks.
pub(super) trait TransmitSink {
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
