//! One custom-protocol connection: read and decode, run the handler for each message in
//! order, encode and write what is queued; and the first-bytes test that tells a zs client
//! from a foreign one on a shared port.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};
use zs_wire::handshake::HELLO_MAGIC;

use super::{BoxedIo, CustomCodec, CustomEnv, CustomPeer, Handler, HandlerResult, Hook};

/// Messages written before a flush: one syscall carries many small replies.
const WRITE_BATCH: usize = 64;

/// How long the last queued messages may take to be written when the connection ends.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// What `CustomServe::serve` hands the loop.
pub(super) struct Parts<C: Decoder, Out> {
    pub(super) reader_codec: C,
    pub(super) writer_codec: C,
    pub(super) handler: Handler<C::Item, Out>,
    pub(super) on_connect: Option<Hook<Out>>,
    pub(super) queue: mpsc::Receiver<Out>,
}

/// Whether a new connection on a shared port speaks the zs protocol: its first bytes are the
/// handshake's magic. Waits up to `limit` for them; silence or other bytes mean the custom
/// protocol. Nothing is consumed (`peek`).
pub(crate) async fn detect(stream: &TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut first = [0u8; HELLO_MAGIC.len()];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first)).await;
        let Ok(Ok(seen)) = peeked else {
            // Silence (a server-speaks-first protocol) or an error: not a zs client.
            return false;
        };
        if seen == 0 || first[..seen] != HELLO_MAGIC[..seen] {
            return false;
        }
        if seen == HELLO_MAGIC.len() {
            return true;
        }
        // A prefix of the magic so far: `peek` would return at once with the same bytes,
        // so wait a little for the rest.
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether a byte stream (a StableIO session) speaks the zs protocol: its first bytes are
/// the session preamble's `magic`. Reads up to `magic.len()` bytes within `limit` and hands
/// them back in front of the stream.
pub(crate) async fn detect_stream<IO>(
    mut stream: IO,
    magic: &[u8],
    limit: Duration,
) -> (bool, Prefixed<IO>)
where
    IO: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut first = vec![0u8; magic.len()];
    let mut seen = 0;
    let deadline = Instant::now() + limit;
    while seen < first.len() {
        match tokio::time::timeout_at(deadline, stream.read(&mut first[seen..])).await {
            Ok(Ok(read)) if read > 0 => {
                seen += read;
                if first[..seen] != magic[..seen] {
                    break;
                }
            }
            _ => break,
        }
    }
    first.truncate(seen);
    let is_zs = first == magic;
    (
        is_zs,
        Prefixed {
            prefix: bytes::Bytes::from(first),
            inner: stream,
        },
    )
}

/// A stream whose first bytes were read already: they come first again.
pub(crate) struct Prefixed<IO> {
    prefix: bytes::Bytes,
    inner: IO,
}

impl<IO> Prefixed<IO> {
    /// `inner` with nothing read ahead.
    pub(crate) fn new(inner: IO) -> Self {
        Self {
            prefix: bytes::Bytes::new(),
            inner,
        }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let take = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(take);
            buf.put_slice(&chunk);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one connection until the peer leaves, the handler fails, the codec rejects input,
/// the connection is idle too long, or the server shuts down.
pub(super) async fn run<C, Out>(
    stream: BoxedIo,
    peer: CustomPeer<Out>,
    parts: Parts<C, Out>,
    env: CustomEnv,
) where
    C: CustomCodec<Out>,
    Out: Send + Sync + 'static,
{
    let Parts {
        reader_codec,
        writer_codec,
        handler,
        on_connect,
        mut queue,
    } = parts;
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = FramedRead::new(reader, reader_codec);
    let mut writer = FramedWrite::new(writer, writer_codec);
    let id = peer.id();
    env.peers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(id, Arc::new(peer.clone()));
    env.counters.custom_opened();

    // The running handler (or greeting): messages are handled one at a time, in order; the
    // loop keeps writing meanwhile, so a handler may wait on a full send queue.
    let mut running: Option<BoxFuture<'static, HandlerResult>> =
        on_connect.map(|hook| hook(peer.clone()));
    let idle = env
        .idle_timeout
        .unwrap_or(Duration::from_secs(86_400 * 365));
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let close = peer.inner.close.clone();
    let reason = loop {
        tokio::select! {
            biased;
            () = env.abort.cancelled() => break "the server closed it",
            Some(result) = async { Some(running.as_mut()?.await) }, if running.is_some() => {
                running = None;
                if let Err(error) = result {
                    tracing::warn!(peer = %peer.remote_addr(), %error, "custom handler failed; connection closed");
                    break "the handler failed";
                }
            }
            message = queue.recv() => {
                let Some(message) = message else { break "closed" };
                if let Err(error) = write_batch(&mut writer, &mut queue, message, &env).await {
                    tracing::debug!(peer = %peer.remote_addr(), %error, "custom connection: write failed");
                    break "write failed";
                }
            }
            () = close.cancelled() => break "closed here",
            () = env.drain.cancelled() => break "the server is shutting down",
            read = reader.next(), if running.is_none() => {
                match read {
                    None => break "the peer left",
                    Some(Err(error)) => {
                        tracing::warn!(peer = %peer.remote_addr(), %error, "bad input; custom connection closed");
                        break "bad input";
                    }
                    Some(Ok(message)) => {
                        env.counters.custom_message_in();
                        timer.as_mut().reset(Instant::now() + idle);
                        running = Some(handler(peer.clone(), message));
                    }
                }
            }
            () = &mut timer => break "idle too long",
        }
    };
    // What was queued before the end is still written (a last reply, a goodbye).
    let _ = tokio::time::timeout(FINAL_FLUSH, async {
        queue.close();
        while let Some(message) = queue.recv().await {
            if write_batch(&mut writer, &mut queue, message, &env)
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = writer.close().await;
    })
    .await;
    peer.close();
    env.peers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&id);
    env.counters.custom_closed();
    tracing::debug!(peer = %peer.remote_addr(), reason, "custom connection ended");
}

/// Writes `first` and whatever else is queued (up to a batch), then flushes.
async fn write_batch<C, Out>(
    writer: &mut FramedWrite<tokio::io::WriteHalf<BoxedIo>, C>,
    queue: &mut mpsc::Receiver<Out>,
    first: Out,
    env: &CustomEnv,
) -> Result<(), <C as Encoder<Out>>::Error>
where
    C: Encoder<Out>,
{
    writer.feed(first).await?;
    env.counters.custom_message_out();
    for _ in 1..WRITE_BATCH {
        let Ok(message) = queue.try_recv() else { break };
        writer.feed(message).await?;
        env.counters.custom_message_out();
    }
    writer.flush().await
}
