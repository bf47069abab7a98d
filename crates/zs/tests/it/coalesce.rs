//! Write coalescing: calls that callers issue together leave in shared writes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use zs::{Client, Server};

/// A TCP stream that counts the writes which carried bytes.
struct CountingStream {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl CountingStream {
    fn count(&self, result: &Poll<std::io::Result<usize>>) {
        if matches!(result, Poll::Ready(Ok(written)) if *written > 0) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Sixteen callers on one connection, each calling again as soon as its reply is in: the
/// replies arrive in batches, and the callers a batch wakes send their next calls in one
/// write. Without coalescing, tokio runs the connection's task right after the first caller
/// woken (its LIFO slot), and nearly every call leaves in a write of its own.
///
/// A multi-thread runtime, as in production: a single-thread one queues the driver behind
/// the woken callers anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_issued_together_share_writes() {
    const CALLERS: usize = 16;
    const CALLS_EACH: usize = 100;
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    let addr = server.local_addr().unwrap();
    let server = server.spawn();

    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let local = tcp.local_addr().unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let stream = CountingStream {
        inner: tcp,
        writes: writes.clone(),
    };
    let client = Arc::new(
        Client::builder()
            .connect_stream(stream, addr, local)
            .await
            .unwrap(),
    );
    // Warm up, so that the handshake's writes are not counted and replies already flow.
    client.call_console("echo", "warm").await.unwrap();
    let before = writes.load(Ordering::Relaxed);

    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let client = client.clone();
            tokio::spawn(async move {
                for call in 0..CALLS_EACH {
                    let text = format!("{caller}/{call}");
                    assert_eq!(client.call_console("echo", &text).await.unwrap(), text);
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }

    let calls = CALLERS * CALLS_EACH;
    let used = writes.load(Ordering::Relaxed) - before;
    assert!(
        used * 3 <= calls,
        "{calls} calls took {used} writes; expected at most a third as many"
    );
    server.shutdown().await;
}
