//! Runtime pieces both ends share: a transport that can be cut, the control channel, the
//! header of forwarded streams, and byte counting.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use zs::mux::VirtualStream;

use crate::codec::{self, CodecError, ControlMessage, LENGTH_PREFIX_LEN};
use crate::stats::MappingCounters;

/// Why a link or one of its streams failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("malformed control message: {0}")]
    Codec(#[from] CodecError),
    #[error("handshake failed: {0}")]
    Handshake(#[from] zs::SecurityError),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("the peer reported: {0}")]
    Peer(String),
    #[error("the peer closed the control stream")]
    Closed,
}

/// Runs `future` within `limit`; `what` names it in the error.
pub(crate) async fn within<T, E>(
    limit: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, LinkError>
where
    LinkError: From<E>,
{
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result.map_err(LinkError::from),
        Err(_) => Err(LinkError::Timeout(what)),
    }
}

fn cut() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the link was closed")
}

/// A transport that fails every operation once its token is cancelled, so a mux link over
/// it ends at once (the mux has no abort of its own: `close` waits for streams to finish).
pub(crate) struct Cuttable<IO> {
    io: IO,
    read_cut: Pin<Box<WaitForCancellationFutureOwned>>,
    write_cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<IO> Cuttable<IO> {
    pub(crate) fn new(io: IO, cut: &CancellationToken) -> Self {
        Self {
            io,
            read_cut: Box::pin(cut.clone().cancelled_owned()),
            write_cut: Box::pin(cut.clone().cancelled_owned()),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Cuttable<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Cuttable<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Messages on the control stream.
pub(crate) struct ControlChannel {
    stream: VirtualStream,
    received: BytesMut,
}

impl ControlChannel {
    pub(crate) fn new(stream: VirtualStream) -> Self {
        Self {
            stream,
            received: BytesMut::new(),
        }
    }

    pub(crate) async fn send(&mut self, message: &ControlMessage) -> Result<(), LinkError> {
        let bytes = message.to_bytes()?;
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The next message; `None` when the peer finished the stream cleanly. Cancel-safe.
    /// Never buffers more than one message of at most [`codec::MAX_MESSAGE_LEN`] bytes and
    /// one read beyond it.
    pub(crate) async fn receive(&mut self) -> Result<Option<ControlMessage>, LinkError> {
        loop {
            if let Some(message) = codec::decode(&mut self.received)? {
                return Ok(Some(message));
            }
            self.received.reserve(512);
            if self.stream.read_buf(&mut self.received).await? == 0 {
                return if self.received.is_empty() {
                    Ok(None)
                } else {
                    Err(CodecError::Truncated("message").into())
                };
            }
        }
    }

    /// Sends a fatal `Error`, finishes the stream and waits (at most `linger`) for the peer
    /// to close, so the message is delivered before the caller cuts the link.
    pub(crate) async fn close_with_error(&mut self, message: String, linger: Duration) {
        let mut message = message;
        message.truncate(floor_char_boundary(&message, codec::MAX_TEXT_LEN));
        let _ = self.send(&ControlMessage::Error { message }).await;
        self.finish().await;
        // Whatever the peer still sends is discarded, undecoded, until it closes.
        self.received.clear();
        let mut scratch = [0u8; 1024];
        let _ = tokio::time::timeout(linger, async {
            while let Ok(1..) = self.stream.read(&mut scratch).await {}
        })
        .await;
    }

    /// Half-closes the stream: the peer reads its end.
    pub(crate) async fn finish(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0)
}

/// Reads the `Open` header of a forwarded stream, and not one byte more (the rest is the
/// public client's data).
pub(crate) async fn read_open<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<SocketAddr, LinkError> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    stream.read_exact(&mut prefix).await?;
    let len = codec::peek_length(&prefix)?.unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    match codec::decode_body(&body)? {
        ControlMessage::Open { peer } => Ok(peer),
        other => Err(LinkError::Protocol(format!(
            "a forwarded stream must start with Open, not {other:?}"
        ))),
    }
}

/// A public client's socket that counts the bytes it carries into its mapping's counters:
/// reads are bytes from the user (`bytes_in`), writes bytes to the user (`bytes_out`).
pub(crate) struct Metered<IO> {
    io: IO,
    counters: Arc<MappingCounters>,
}

impl<IO> Metered<IO> {
    pub(crate) fn new(io: IO, counters: Arc<MappingCounters>) -> Self {
        Self { io, counters }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Metered<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            this.counters
                .bytes_in
                .fetch_add(read as u64, Ordering::Relaxed);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Metered<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &result {
            this.counters
                .bytes_out
                .fetch_add(*written as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_cut_transport_fails_pending_reads_at_once() {
        let (near, _far) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut transport = Cuttable::new(near, &token);
        let reader = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            transport.read(&mut byte).await
        });
        tokio::task::yield_now().await;
        token.cancel();
        let error = reader.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn the_open_header_is_read_exactly() {
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let mut wire = ControlMessage::Open { peer }.to_bytes().unwrap().to_vec();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut reader = &wire[..];
        assert_eq!(read_open(&mut reader).await.unwrap(), peer);
        assert_eq!(reader, b"GET / HTTP/1.1\r\n");
        let mut garbage = &[0xFFu8, 0xFF, 1, 2][..];
        assert!(matches!(
            read_open(&mut garbage).await,
            Err(LinkError::Codec(CodecError::TooLong { .. }))
        ));
    }

    #[test]
    fn error_texts_are_cut_on_character_boundaries() {
        assert_eq!(floor_char_boundary("héllo", 2), 1);
        assert_eq!(floor_char_boundary("abc", 10), 3);
    }
}
