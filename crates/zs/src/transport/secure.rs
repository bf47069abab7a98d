//! The record layer as a byte stream: [`SecureStream`] wraps a transport after the handshake
//! and seals everything written into AEAD records, opens everything read.
//!
//! The connection driver does not know it is there: it reads and writes plaintext through
//! `AsyncRead + AsyncWrite`, and flushes when it has nothing more to write. Keys rotate after
//! a number of bytes (inside [`Sealer`]) or an interval (checked here on each write), without
//! pausing traffic.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::transport::read_buf::{ReadBuffer, hand_out};
use tokio::time::Instant;
use zs_wire::crypto::record::{Opener, PLAIN_RECORDS_MAX, RecordError, Sealer};
use zs_wire::handshake::HandshakeOutcome;

/// Stop accepting plaintext while this much ciphertext is unsent.
const CIPHER_HIGH_WATER: usize = 1024 * 1024;
/// Plaintext sealed per `poll_write` call.
const WRITE_CHUNK: usize = 256 * 1024;

/// When to rotate the sending key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RekeyPolicy {
    pub(crate) after_bytes: u64,
    pub(crate) after_time: Duration,
}

/// A transport carrying AEAD records: plaintext in and out, records on the wire.
pub(crate) struct SecureStream<IO> {
    io: IO,
    sealer: Sealer,
    opener: Opener,
    /// Ciphertext read but not yet opened (an incomplete record); no memory while idle.
    cipher_in: ReadBuffer,
    /// The rest of the record being handed out: opened in place and split off `cipher_in`
    /// (sharing its allocation until handed out).
    plain_in: BytesMut,
    /// Sealed records not yet written; allocated as records are sealed.
    cipher_out: BytesMut,
    /// The last `poll_write` sealed a full chunk: a bulk writer, keep the output buffer.
    streaming: bool,
    rekey_interval: Duration,
    next_time_rekey: Instant,
    eof: bool,
    /// Key updates (both directions) already added to the process counter.
    counted_key_updates: u64,
}

/// The peer broke the record layer: an altered, replayed, reordered or oversize record.
#[derive(Debug, thiserror::Error)]
#[error("record layer: {0}")]
pub(crate) struct RecordViolation(pub(crate) RecordError);

impl<IO> SecureStream<IO> {
    /// Wraps `io` with the keys of a finished handshake; `leftover` holds bytes read past the
    /// handshake (the peer's first records).
    pub(crate) fn new(
        io: IO,
        outcome: &HandshakeOutcome,
        leftover: BytesMut,
        policy: RekeyPolicy,
    ) -> Result<Self, RecordError> {
        Ok(Self {
            io,
            sealer: Sealer::new(outcome.suite, outcome.send_secret, policy.after_bytes)?,
            opener: Opener::new(outcome.suite, outcome.receive_secret)?,
            cipher_in: ReadBuffer::with_leftover(leftover),
            plain_in: BytesMut::new(),
            cipher_out: BytesMut::new(),
            streaming: false,
            rekey_interval: policy.after_time,
            next_time_rekey: Instant::now() + policy.after_time,
            eof: false,
            counted_key_updates: 0,
        })
    }

    /// Adds key updates since the last call to the process counter (two loads and a
    /// compare per record batch; updates themselves are rare).
    fn count_key_updates(&mut self) {
        let now = self.sealer.key_updates() + self.opener.key_updates();
        if now != self.counted_key_updates {
            crate::metrics::PROCESS.key_updates.fetch_add(
                now - self.counted_key_updates,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.counted_key_updates = now;
        }
    }
}

fn violation(error: RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, RecordViolation(error))
}

impl<IO: AsyncWrite + Unpin> SecureStream<IO> {
    /// Writes sealed records until none are left or the transport would block.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.cipher_out.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.cipher_out))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.cipher_out.advance(written);
        }
        // Drained: keep the buffer only for a bulk writer (its last write was a full
        // chunk), so an idle connection holds no output buffer.
        if !self.streaming && self.cipher_out.capacity() > 0 {
            self.cipher_out = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> SecureStream<IO> {
    /// Seals up to [`WRITE_CHUNK`] bytes of `parts` and starts sending them.
    fn poll_seal<B: std::ops::Deref<Target = [u8]>>(
        &mut self,
        cx: &mut Context<'_>,
        parts: &[B],
    ) -> Poll<io::Result<usize>> {
        if self.cipher_out.len() >= CIPHER_HIGH_WATER {
            ready!(self.poll_drain(cx))?;
        }
        if Instant::now() >= self.next_time_rekey {
            self.sealer
                .force_key_update(&mut self.cipher_out)
                .map_err(violation)?;
            self.next_time_rekey = Instant::now() + self.rekey_interval;
        }
        if self.cipher_out.is_empty()
            && self.sealer.suite().is_plain()
            && self.io.is_write_vectored()
            && let Some(result) = self.poll_write_plain(cx, parts)
        {
            return result;
        }
        let len = self
            .sealer
            .seal_vectored(parts, WRITE_CHUNK, &mut self.cipher_out)
            .map_err(violation)?;
        self.streaming = len == WRITE_CHUNK;
        self.count_key_updates();
        // Start sending now; whatever the transport does not take waits for the next write
        // or flush.
        if let Poll::Ready(Err(error)) = self.poll_drain(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(len))
    }
}

impl<IO: AsyncWrite + Unpin> SecureStream<IO> {
    /// The `plain` suite without a copy: record headers and the caller's bytes go out in one
    /// vectored write; only what the transport does not take is copied, into `cipher_out`,
    /// to follow. `None`: use the sealing path (nothing was taken).
    fn poll_write_plain<B: std::ops::Deref<Target = [u8]>>(
        &mut self,
        cx: &mut Context<'_>,
        parts: &[B],
    ) -> Option<Poll<io::Result<usize>>> {
        let total = parts
            .iter()
            .map(|part| part.len())
            .sum::<usize>()
            .min(WRITE_CHUNK);
        let records = self.sealer.plain_records(total)?;
        let mut slices = [io::IoSlice::new(&[]); 2 * PLAIN_RECORDS_MAX + 16];
        let mut used = 0;
        for (slot, piece) in slices.iter_mut().zip(records.pieces(parts)) {
            *slot = io::IoSlice::new(piece);
            used += 1;
        }
        let written = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..used]) {
            Poll::Ready(Ok(written)) => written,
            Poll::Ready(Err(error)) => return Some(Poll::Ready(Err(error))),
            Poll::Pending => 0,
        };
        // The records are counted as sent: what the transport did not take follows from
        // `cipher_out`, ahead of anything written later.
        let mut skip = written;
        for piece in records.pieces(parts) {
            if skip >= piece.len() {
                skip -= piece.len();
            } else {
                self.cipher_out.extend_from_slice(&piece[skip..]);
                skip = 0;
            }
        }
        self.streaming = records.plaintext_len() == WRITE_CHUNK;
        Some(Poll::Ready(Ok(records.plaintext_len())))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SecureStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut handed_out = false;
        loop {
            if !this.plain_in.is_empty() {
                // Opened records are handed on at once: `plain_in` is a record's own bytes,
                // opened in place in `cipher_in`, so this is the only copy on the way in.
                hand_out(&mut this.plain_in, buf);
                handed_out = true;
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
            }
            if !this.cipher_in.is_empty() {
                let opened = match this.opener.open_record(this.cipher_in.bytes()) {
                    Ok(opened) => opened,
                    // Deliver what was opened before the bad record; the error is final,
                    // so the next read returns it.
                    Err(_) if handed_out => return Poll::Ready(Ok(())),
                    Err(error) => return Poll::Ready(Err(violation(error))),
                };
                this.count_key_updates();
                if let Some(text) = opened {
                    this.plain_in = text;
                    continue;
                }
                this.cipher_in.settle();
            }
            if handed_out {
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                if this.cipher_in.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection ended inside a record",
                )));
            }
            let read = ready!(this.cipher_in.poll_fill(Pin::new(&mut this.io), cx))?;
            if read == 0 {
                this.eof = true;
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for SecureStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_seal(cx, &[buf])
    }

    /// Gathers the pieces into records (one copy, the sealing one): a frame header and the
    /// transfer chunk after it share a record instead of the chunk being copied behind the
    /// header first.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_seal(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Writes all of `bytes` (handshake messages) to a transport.
pub(crate) async fn write_all<IO: AsyncWrite + Unpin>(io: &mut IO, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use zs_wire::crypto::record::Suite;

    fn outcome(send: u8, receive: u8) -> HandshakeOutcome {
        HandshakeOutcome {
            suite: Suite::Aes128Gcm,
            send_secret: [send; 32],
            receive_secret: [receive; 32],
            handshake_hash: Vec::new(),
            peer_static: [0; 32],
            client_token_ok: true,
            stable_link: false,
        }
    }

    const POLICY: RekeyPolicy = RekeyPolicy {
        after_bytes: 0,
        after_time: Duration::from_secs(3600),
    };

    /// Records that arrive together with a damaged one behind them are delivered first; the
    /// damage is the next read's error (the reader must not lose, say, a close frame).
    #[tokio::test]
    async fn good_records_before_a_damaged_one_are_delivered_then_the_error() {
        let (wire, mut peer) = tokio::io::duplex(1 << 16);
        let mut stream = SecureStream::new(wire, &outcome(1, 2), BytesMut::new(), POLICY).unwrap();
        let mut sealer = Sealer::new(Suite::Aes128Gcm, [2; 32], 0).unwrap();
        let mut records = BytesMut::new();
        sealer.seal(b"first", &mut records).unwrap();
        sealer.seal(b"second", &mut records).unwrap();
        let last = records.len() - 1;
        records[last] ^= 1; // the second record's tag
        peer.write_all(&records).await.unwrap();

        let mut buf = [0u8; 64];
        let read = stream.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..read], b"first");
        let error = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error
                .get_ref()
                .is_some_and(|inner| inner.is::<RecordViolation>())
        );
    }

    /// A transport taking vectored writes a few bytes at a time, or none (`Pending`).
    struct Trickle {
        written: Vec<u8>,
        steps: std::iter::Cycle<std::vec::IntoIter<usize>>,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let step = this.steps.next().unwrap_or(1);
            if step == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut taken = 0;
            for buf in bufs {
                let take = buf.len().min(step - taken);
                this.written.extend_from_slice(&buf[..take]);
                taken += take;
                if taken == step {
                    break;
                }
            }
            Poll::Ready(Ok(taken))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The plain suite's copy-free path: whatever the transport takes of a vectored write
    /// (all, some, nothing), the records on the wire open to the bytes written, in order.
    #[tokio::test]
    async fn plain_records_survive_partial_and_refused_writes() {
        let mut plain = outcome(1, 2);
        plain.suite = Suite::Plain;
        for steps in [
            vec![1 << 20],
            vec![7, 0, 30_000, 5, 0, 100_000],
            vec![0, 1, 16_389],
        ] {
            let trickle = Trickle {
                written: Vec::new(),
                steps: steps.into_iter().cycle(),
            };
            let mut stream = SecureStream::new(trickle, &plain, BytesMut::new(), POLICY).unwrap();
            let parts: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 7_000 * usize::from(i)]).collect();
            let expected = parts.concat();
            let mut offset = 0;
            while offset < expected.len() {
                let rest = &expected[offset..];
                let (a, b) = rest.split_at(rest.len() / 3);
                offset += stream
                    .write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
                    .await
                    .unwrap();
            }
            stream.flush().await.unwrap();
            let mut wire = BytesMut::from(&stream.io.written[..]);
            let mut opener = Opener::new(Suite::Plain, [1; 32]).unwrap();
            let mut opened = BytesMut::new();
            opener.open(&mut wire, &mut opened).unwrap();
            assert!(wire.is_empty());
            assert_eq!(opened, expected);
        }
    }

    /// Gathered writes produce the records a single buffer would.
    #[tokio::test]
    async fn vectored_writes_arrive_whole_and_in_order() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut writer = SecureStream::new(a, &outcome(1, 2), BytesMut::new(), POLICY).unwrap();
        let mut reader = SecureStream::new(b, &outcome(2, 1), BytesMut::new(), POLICY).unwrap();
        let parts: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10_000 + usize::from(i)]).collect();
        let expected = parts.concat();
        let mut offset = 0;
        while offset < expected.len() {
            // Rebuild the slices past what was written.
            let mut skip = offset;
            let mut slices = Vec::new();
            for part in &parts {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices.push(io::IoSlice::new(&part[skip..]));
                skip = 0;
            }
            offset += writer.write_vectored(&slices).await.unwrap();
        }
        writer.flush().await.unwrap();
        let mut got = vec![0u8; expected.len()];
        reader.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected);
    }
}
