//! Relaying one forwarded connection: bytes both ways between the public (or local) socket
//! and its virtual stream, with half-close passed on.
//!
//! Written here instead of using `tokio::io::copy_bidirectional` because that one holds two
//! 8 KiB buffers per connection for the connection's whole life, and XNat's memory is
//! dominated by idle forwarded connections. Here a direction takes a buffer only while bytes
//! flow and gives it back whenever its reader has nothing to offer, so an idle connection
//! holds no copy buffer at all, and an active one can afford a larger buffer (fewer system
//! calls per byte).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read per system call while a direction is busy.
const BUFFER_SIZE: usize = 32 * 1024;

/// One direction of a relay.
#[derive(Default)]
struct Direction {
    /// Present only while there are bytes to write or a read is being attempted.
    buffer: Option<Box<[u8]>>,
    /// Written up to `start`, read up to `end`.
    start: usize,
    end: usize,
    /// The reader reached its end; the writer is shut down once the buffer is written.
    read_done: bool,
    /// Bytes were written since the last flush.
    needs_flush: bool,
    finished: bool,
    bytes: u64,
}

impl Direction {
    fn poll_relay<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            if self.start < self.end {
                let Some(buffer) = &self.buffer else {
                    return Poll::Ready(Err(io::Error::other("relay buffer lost")));
                };
                let written =
                    ready!(Pin::new(&mut *writer).poll_write(cx, &buffer[self.start..self.end]))?;
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += written;
                self.bytes += written as u64;
                self.needs_flush = true;
                continue;
            }
            if self.read_done {
                self.buffer = None;
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.finished = true;
                return Poll::Ready(Ok(()));
            }
            let buffer = self
                .buffer
                .get_or_insert_with(|| vec![0u8; BUFFER_SIZE].into_boxed_slice());
            let mut read = ReadBuf::new(buffer);
            match Pin::new(&mut *reader).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled().len();
                    self.start = 0;
                    self.end = filled;
                    self.read_done = filled == 0;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    // Nothing to read: give the buffer back, and push out what was written.
                    self.buffer = None;
                    if self.needs_flush {
                        match Pin::new(&mut *writer).poll_flush(cx) {
                            Poll::Ready(Ok(())) => self.needs_flush = false,
                            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                            Poll::Pending => {}
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Copies `a` → `b` and `b` → `a` until both have ended; the end of one side's reading is
/// passed on as a shutdown of the other's writing (half-close). Returns the bytes copied
/// each way; the first I/O error ends the relay.
pub(crate) async fn relay<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Direction::default();
    let mut b_to_a = Direction::default();
    poll_fn(|cx| {
        if !a_to_b.finished
            && let Poll::Ready(Err(error)) = a_to_b.poll_relay(cx, &mut *a, &mut *b)
        {
            return Poll::Ready(Err(error));
        }
        if !b_to_a.finished
            && let Poll::Ready(Err(error)) = b_to_a.poll_relay(cx, &mut *b, &mut *a)
        {
            return Poll::Ready(Err(error));
        }
        if a_to_b.finished && b_to_a.finished {
            Poll::Ready(Ok((a_to_b.bytes, b_to_a.bytes)))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test]
    async fn bytes_flow_both_ways_and_half_close_is_passed_on() {
        let (mut user, mut relay_a) = duplex(4096);
        let (mut relay_b, mut service) = duplex(4096);
        let relay = tokio::spawn(async move { relay(&mut relay_a, &mut relay_b).await });
        let request: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sent = request.clone();
        let writer = tokio::spawn(async move {
            user.write_all(&sent).await.unwrap();
            user.shutdown().await.unwrap(); // half-close: the user still reads
            let mut answer = Vec::new();
            user.read_to_end(&mut answer).await.unwrap();
            answer
        });
        let mut received = Vec::new();
        service.read_to_end(&mut received).await.unwrap(); // ends: the shutdown came through
        assert_eq!(received, request);
        service
            .write_all(b"answer after the request ended")
            .await
            .unwrap();
        service.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"answer after the request ended");
        let (to_service, to_user) = relay.await.unwrap().unwrap();
        assert_eq!(to_service, 200_000);
        assert_eq!(to_user, 30);
    }

    #[tokio::test]
    async fn an_idle_direction_holds_no_buffer() {
        let (_user, mut relay_a) = duplex(64);
        let (mut relay_b, _service) = duplex(64);
        let mut direction = Direction::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(
            direction
                .poll_relay(&mut cx, &mut relay_a, &mut relay_b)
                .is_pending()
        );
        assert!(direction.buffer.is_none());
    }
}
