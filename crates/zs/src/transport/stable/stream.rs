//! [`StableStream`]: the application's end of a StableIO session.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

// The shared session state (`Inner`, `Shared`) and link types live in the parent.
use super::*;

/// The application's end of a StableIO session: a byte stream that outlives its links
/// ([`ClientBuilder::connect_stable_stream`](crate::ClientBuilder::connect_stable_stream)).
/// Bytes written are delivered once and in order across dropped connections.
pub struct StableStream {
    pub(super) shared: Arc<Shared>,
    pub(super) pending: BytesMut,
}

impl StableStream {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            pending: BytesMut::new(),
        }
    }
}

impl AsyncRead for StableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            let mut inner = this.shared.lock();
            let wanted = inner.endpoint.wants_transmit();
            let timeout = inner.endpoint.poll_timeout();
            if inner.endpoint.read(&mut this.pending) == 0 {
                if inner.peer_closed || inner.endpoint.is_closed() {
                    return Poll::Ready(Ok(()));
                }
                if let Some(why) = &inner.ended {
                    return Poll::Ready(Err(session_error(why)));
                }
                inner.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            inner.update_charge();
            // Reading may have made an ack due now or later (a new deadline), or ended the
            // session; otherwise the driver has nothing new to do.
            let wake = (!wanted && inner.endpoint.wants_transmit())
                || inner.endpoint.poll_timeout() != timeout
                || inner.endpoint.is_closed();
            drop(inner);
            if wake {
                this.shared.wake_driver.notify();
            }
        }
        crate::transport::read_buf::hand_out(&mut this.pending, buf);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.shared.lock();
        if let Some(why) = &inner.ended {
            return Poll::Ready(Err(session_error(why)));
        }
        // The server-wide budget bounds what is taken, as the session's window does.
        let room = match inner.charge.budget() {
            Some(budget) if !buf.is_empty() => {
                let attached = inner.endpoint.detached_since().is_none();
                budget.room_or_wait(cx.waker(), attached)
            }
            _ => usize::MAX,
        };
        if room == 0 {
            return Poll::Pending;
        }
        let wanted = inner.endpoint.wants_transmit();
        let written = inner.endpoint.write(&buf[..buf.len().min(room)]);
        if written == 0 && !buf.is_empty() {
            inner.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        inner.update_charge();
        // Bytes added to bytes not yet sent need no wake-up: the driver takes all there is
        // each time it has written its last batch.
        let wake = !wanted;
        drop(inner);
        if wake {
            self.shared.wake_driver.notify();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes sit in the endpoint's resend buffer; the driver sends them.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.lock().endpoint.close();
        self.shared.wake_driver.notify();
        Poll::Ready(Ok(()))
    }
}

impl Drop for StableStream {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.endpoint.close();
        inner.dropped = true;
        drop(inner);
        self.shared.wake_driver.notify();
    }
}
