//! [`ReadBuffer`]: a receive buffer sized to what flows.
//!
//! Every layer that reads (the connection driver, the record layer, p2pVM and StableIO links)
//! used to hold a 256 KiB buffer per connection from the first byte. Idle connections then
//! cost a quarter of a megabyte each, and after a round of connections the freed buffers left
//! glibc's heap fragmented and its mmap threshold raised, so the server's memory never came
//! back (issue 12). Here a connection holds no receive buffer while nothing flows:
//!
//! - **cold** (idle or small messages): each read goes through a buffer on the stack that
//!   lives only during the poll, and only the bytes that arrived are copied into a heap
//!   buffer of exactly their size;
//! - **hot** (a read filled the probe): reads go straight into heap room, which doubles while
//!   reads keep filling it, up to [`MAX_READ`];
//! - when a read finds nothing to read and the buffer is empty after a read that did not
//!   fill it, the flow has stopped: the buffer is released and the reader is cold again.
//!
//! `MAX_READ` stays below glibc's default mmap threshold (128 KiB), so these buffers never
//! raise that threshold when freed.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// Read size through the stack while cold.
pub(crate) const PROBE: usize = 8 * 1024;
/// Largest heap room for one read while hot.
pub(crate) const MAX_READ: usize = 112 * 1024;

/// Received bytes not yet consumed, and how large the next read should be.
#[derive(Debug, Default)]
pub(crate) struct ReadBuffer {
    buf: BytesMut,
    /// Heap room for the next read; 0 while cold.
    room: usize,
    /// Whether the last read filled the room it had.
    last_filled: bool,
}

impl ReadBuffer {
    /// A buffer starting with bytes already read (past a handshake).
    pub(crate) fn with_leftover(leftover: BytesMut) -> Self {
        Self {
            buf: leftover,
            ..Self::default()
        }
    }

    /// Bytes received and not yet consumed; consumers take them off the front (`split_to`,
    /// `advance`).
    pub(crate) fn bytes(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// True when nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Heap bytes held (for tests and statistics).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads once from `io`, appending to the buffer. `Ok(0)` is end of stream.
    pub(crate) fn poll_fill<R: AsyncRead + ?Sized>(
        &mut self,
        io: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.room == 0 {
            return self.poll_cold(io, cx);
        }
        if self.buf.capacity() - self.buf.len() < self.room {
            self.buf.reserve(self.room);
        }
        // At most `room`, even when the allocator handed out more.
        let room = self.room;
        let mut limited = (&mut self.buf).limit(room);
        let read = match tokio_util::io::poll_read_buf(io, cx, &mut limited) {
            Poll::Ready(result) => result?,
            Poll::Pending => {
                self.release_if_quiet();
                return Poll::Pending;
            }
        };
        self.last_filled = read >= room;
        if self.last_filled {
            self.room = (self.room * 2).min(MAX_READ);
        } else if read < self.room / 8 {
            // The flow thinned out: halve, and go cold below two probes.
            self.room /= 2;
            if self.room < 2 * PROBE {
                self.room = 0;
            }
        }
        Poll::Ready(Ok(read))
    }

    fn poll_cold<R: AsyncRead + ?Sized>(
        &mut self,
        io: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        // On the stack only for this call: an idle connection holds no receive buffer. Left
        // uninitialised (`ReadBuf::uninit` tracks what the read filled): zeroing 8 KiB on
        // every poll, `Pending` ones included, was 4 % of a small-call server's CPU.
        let mut probe = [MaybeUninit::<u8>::uninit(); PROBE];
        let mut probe_buf = ReadBuf::uninit(&mut probe);
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
        ready!(io.poll_read(cx, &mut probe_buf))?;
        let read = probe_buf.filled().len();
        self.buf.extend_from_slice(probe_buf.filled());
        self.last_filled = read == PROBE;
        if self.last_filled {
            // More is waiting: read straight into the heap from now on.
            self.room = 2 * PROBE;
        }
        Poll::Ready(Ok(read))
    }

    /// Nothing to read right now: if the flow has stopped, give the memory back.
    fn release_if_quiet(&mut self) {
        if self.buf.is_empty() && !self.last_filled {
            self.buf = BytesMut::new();
            self.room = 0;
        }
    }

    /// Releases the buffer if it is empty, hot or not (the connection has been quiet).
    pub(crate) fn release_if_empty(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
            self.room = 0;
            self.last_filled = false;
        }
    }

    /// Called after the consumer took what it could: an empty cold buffer is released.
    pub(crate) fn settle(&mut self) {
        if self.room == 0 && self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}

/// Copies what fits of `pending` into `buf`; an emptied `pending` gives its memory back, so
/// a reader that has handed everything on holds no buffer. Shared by every layer that keeps
/// bytes for its reader (record layer, virtual streams, StableIO streams).
pub(crate) fn hand_out(pending: &mut BytesMut, buf: &mut ReadBuf<'_>) {
    let len = pending.len().min(buf.remaining());
    buf.put_slice(&pending[..len]);
    bytes::Buf::advance(pending, len);
    if pending.is_empty() {
        *pending = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncWriteExt;

    async fn fill(buffer: &mut ReadBuffer, io: &mut (impl AsyncRead + Unpin)) -> usize {
        poll_fn(|cx| buffer.poll_fill(Pin::new(&mut *io), cx))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn small_messages_cost_only_their_size_and_nothing_once_consumed() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let mut buffer = ReadBuffer::default();
        a.write_all(b"hello").await.unwrap();
        assert_eq!(fill(&mut buffer, &mut b).await, 5);
        assert_eq!(&buffer.bytes()[..], b"hello");
        assert!(buffer.capacity() < 64, "{}", buffer.capacity());
        buffer.bytes().clear();
        buffer.settle();
        assert_eq!(buffer.capacity(), 0);
    }

    #[tokio::test]
    async fn a_bulk_flow_grows_the_reads_up_to_the_cap_and_releases_when_quiet() {
        let (mut a, mut b) = tokio::io::duplex(4 << 20);
        let mut buffer = ReadBuffer::default();
        a.write_all(&vec![7u8; 2 << 20]).await.unwrap();
        let mut largest = 0;
        let mut total = 0;
        while total < 2 << 20 {
            let read = fill(&mut buffer, &mut b).await;
            largest = largest.max(read);
            total += read;
            buffer.bytes().clear();
        }
        assert_eq!(largest, MAX_READ);
        assert!(buffer.capacity() <= 2 * MAX_READ);
        // A short read, then nothing to read: the flow stopped, the memory goes back.
        a.write_all(b"tail").await.unwrap();
        assert_eq!(fill(&mut buffer, &mut b).await, 4);
        buffer.bytes().clear();
        let pending = poll_fn(|cx| Poll::Ready(buffer.poll_fill(Pin::new(&mut b), cx))).await;
        assert!(pending.is_pending());
        assert_eq!(buffer.capacity(), 0);
    }

    #[tokio::test]
    async fn end_of_stream_reads_zero() {
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        let mut buffer = ReadBuffer::default();
        assert_eq!(fill(&mut buffer, &mut b).await, 0);
    }
}
