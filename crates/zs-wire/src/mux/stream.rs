//! Per-stream state: flags, windows, the receive buffer and the send queue.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::transmit::TransmitSink;
use super::{Header, INITIAL_WINDOW};

// Stream state bits.
pub(super) const ACKED: u8 = 0x01;
pub(super) const LOCAL_FIN: u8 = 0x02;
pub(super) const FIN_SENT: u8 = 0x04;
pub(super) const REMOTE_FIN: u8 = 0x08;
pub(super) const QUEUED: u8 = 0x10;
pub(super) const WANT_WRITE: u8 = 0x20;
/// With a receive budget: the configured window's excess over [`INITIAL_WINDOW`] is not yet
/// owed, because the stream has not carried half an initial window since it opened. An idle
/// or small stream reserves only its initial window of the budget; a busy one grows to the
/// configured window on its first reads.
pub(super) const GROWTH_PENDING: u8 = 0x40;

/// One stream's state. 80 bytes on 64-bit targets (`stream_struct_is_small` checks it);
/// the two buffers are empty `BytesMut`s, owning no allocation, until data passes.
#[derive(Debug)]
pub(super) struct Stream {
    /// Received, not yet read. Never longer than the stream window.
    pub(super) recv: BytesMut,
    /// Written, not yet framed. Never longer than the stream window.
    pub(super) send: SendQueue,
    /// Bytes we may still send (already reduced by `send`).
    pub(super) send_window: u32,
    /// Bytes the peer may still send.
    pub(super) recv_window: u32,
    /// Window owed to the peer: bytes read but not yet granted back, and any part of the
    /// configured window the receive budget has held back.
    pub(super) recv_unacked: u32,
    pub(super) flags: u8,
}

impl Stream {
    pub(super) fn new(recv_window: u32, flags: u8) -> Self {
        Self {
            recv: BytesMut::new(),
            send: SendQueue::default(),
            send_window: INITIAL_WINDOW,
            recv_window,
            recv_unacked: 0,
            flags,
        }
    }

    pub(super) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// What the stream counts against the connection's receive budget: what it holds plus
    /// what the peer may still send, and never less than [`INITIAL_WINDOW`], which every
    /// stream keeps reserved so that it can always be granted its initial window again.
    pub(super) fn reservation(&self) -> usize {
        (self.recv_window as usize + self.recv.len()).max(INITIAL_WINDOW as usize)
    }

    pub(super) fn has_output(&self) -> bool {
        !self.send.is_empty() || (self.has(LOCAL_FIN) && !self.has(FIN_SENT))
    }

    /// Bytes [`Mux::write`](super::Mux::write) would take now.
    pub(super) fn write_capacity(&self, stream_window: u32) -> usize {
        let buffer_room = (stream_window as usize).saturating_sub(self.send.len());
        buffer_room.min(self.send_window as usize)
    }

    /// True when a writer that was turned away should be told to write again: there is room
    /// for half a window, or the send buffer has drained and any room at all. Waiting for
    /// that much room, rather than for any, wakes a busy writer once per half window instead
    /// of once per chunk sent.
    pub(super) fn writable_again(&self, stream_window: u32) -> bool {
        let capacity = self.write_capacity(stream_window);
        capacity >= (stream_window / 2) as usize || (capacity > 0 && self.send.is_empty())
    }
}

/// Smallest part of a stream's owed window granted from the shared part of the budget: the
/// budget does not dribble out in tiny window updates.
pub(super) const MIN_BUDGET_GRANT: u32 = 16 * 1024;

/// How much of `stream`'s owed window (`recv_unacked`) to grant now. Without a budget, all
/// of it. With one, what is needed to bring the stream back to [`INITIAL_WINDOW`] (always
/// reserved for it) plus what the budget's free room allows beyond that, if that is at least
/// [`MIN_BUDGET_GRANT`] or all that is owed.
pub(super) fn grant(stream: &Stream, committed: usize, max_buffered: Option<usize>) -> u32 {
    let owed = stream.recv_unacked;
    let Some(max) = max_buffered else {
        return owed;
    };
    let held = stream.recv_window as usize + stream.recv.len();
    let base = (INITIAL_WINDOW as usize).saturating_sub(held);
    let base = u32::try_from(base).unwrap_or(u32::MAX).min(owed);
    let room = u32::try_from(max.saturating_sub(committed)).unwrap_or(u32::MAX);
    let extra = (owed - base).min(room);
    if extra >= MIN_BUDGET_GRANT || extra == owed - base {
        base + extra
    } else {
        base
    }
}

/// Capacity of a new receive buffer for a first frame of `len` bytes: a full-size chunk
/// suggests more follow, so room for a few is taken at once (within the window) instead of
/// growing the buffer chunk by chunk; a small frame gets just its size.
pub(super) fn fresh_capacity(len: usize, window: usize) -> usize {
    if len >= 4096 {
        len.max((window / 4).min(64 * 1024))
    } else {
        len
    }
}

/// Written data not yet framed, in the chunks it was written in: growing it never moves what is
/// queued, and [`Mux::poll_transmit_chunks`](super::Mux::poll_transmit_chunks) frames it without
/// copying. Small writes are packed into the last chunk's spare room. Owns no allocation while
/// empty.
#[derive(Debug, Default)]
pub(super) struct SendQueue {
    /// Never holds an empty chunk.
    pub(super) chunks: VecDeque<BytesMut>,
}

/// Most emptied send chunks a mux keeps for reuse.
pub(super) const SPARE_CHUNKS: usize = 16;

/// Spare room a new send chunk reserves for small writes that follow, at most: this, or a
/// 64th of the stream window if larger (so a queue holds about 64 chunks at most).
pub(super) const SEND_PACKING: usize = 4096;

impl SendQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes queued (walks the chunks: few, as writes are packed).
    pub(super) fn len(&self) -> usize {
        self.chunks.iter().map(BytesMut::len).sum()
    }

    /// Length of the first chunk: the most one frame takes.
    pub(super) fn front_len(&self) -> usize {
        self.chunks.front().map_or(0, BytesMut::len)
    }

    pub(super) fn push(&mut self, mut data: &[u8], stream_window: u32, spare: &mut Vec<BytesMut>) {
        let queued = match self.chunks.back_mut() {
            Some(back) => {
                let room = (back.capacity() - back.len()).min(data.len());
                back.extend_from_slice(&data[..room]);
                data = &data[room..];
                back.len()
            }
            None => 0,
        };
        if !data.is_empty() {
            // Room for more small writes once some are queued; a first write gets its size.
            let packing = (2 * queued).min(SEND_PACKING.max(stream_window as usize / 64));
            let capacity = data.len().max(packing);
            // A spare chunk that no frame in flight shares any more is as good as new (and
            // its memory is already touched).
            let reusable = spare
                .iter_mut()
                .rposition(|chunk| chunk.try_reclaim(capacity));
            let mut chunk = match reusable {
                Some(index) => spare.swap_remove(index),
                None => BytesMut::with_capacity(capacity),
            };
            chunk.extend_from_slice(data);
            self.chunks.push_back(chunk);
        }
    }

    /// Hands the first `len` bytes (at most [`Self::front_len`]) to `out` as one data frame.
    pub(super) fn frame(
        &mut self,
        out: &mut impl TransmitSink,
        header: Header,
        len: usize,
        spare: &mut Vec<BytesMut>,
    ) {
        match self.chunks.front_mut() {
            Some(front) => {
                out.data(header, front, len);
                if front.is_empty()
                    && let Some(emptied) = self.chunks.pop_front()
                    && spare.len() < SPARE_CHUNKS
                {
                    spare.push(emptied);
                }
            }
            None => out.data(header, &mut BytesMut::new(), 0),
        }
    }
}
