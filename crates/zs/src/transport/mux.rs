//! p2pVM: many virtual byte streams over one physical connection.
//!
//! [`MuxLink`] runs the sans-IO multiplexer [`zs_wire::mux::Mux`] over any transport and hands
//! out [`VirtualStream`]s — plain `AsyncRead + AsyncWrite` byte streams, so a whole zs
//! [`Server`](crate::Server) or [`Client`](crate::Client) (with its own handshake and
//! encryption) runs on one through [`ServerHandle::serve_stream`](crate::ServerRef::serve_stream)
//! and [`ClientBuilder::connect_stream`](crate::ClientBuilder::connect_stream). Either end may
//! listen and either may connect ("reverse p2pVM"): services are addressed by name (a
//! virtual "address:port" is just a name such as `"10.0.0.1:80"`).
//!
//! Each stream has its own flow-control window, so a stream whose reader is slow stalls only
//! itself; the link's output is shared fairly (round-robin per chunk) between streams.
//!
//! One lock per link guards the mux, shared by the driver task and the stream handles; the
//! hot path is kept short and quiet: stream data leaves in vectored writes of slices of the
//! streams' own buffers (no copy into a link buffer; a transport without vectored writes
//! gets one contiguous buffer instead), the driver takes the lock once per turn, a handle
//! wakes the driver only when it gives it work it did not have (output where there was
//! none), a blocked writer is woken once half its window is free rather than per chunk, and
//! a reader hands its drained buffer back for the next data. Connection-wide memory is
//! bounded with [`MuxConfig::max_buffered`] (see [`zs_wire::mux`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use zs::mux::{MuxLink, Role};
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:4921").await?;
//! let link = MuxLink::new(tcp, Role::Initiator, Default::default());
//! let mut stream = link.connect("echo").await?;
//! stream.write_all(b"hello").await?;
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use zs_wire::mux::{Mux, MuxEvent};

use crate::transport::read_buf::ReadBuffer;
pub use zs_wire::mux::{MuxConfig, MuxError, Role, StreamId};

/// Output gathered per write to the transport.
const TRANSMIT_BATCH: usize = 256 * 1024;

/// A write at least this large is bulk traffic: the output buffer is kept for the next.
const BULK_WRITE: usize = 64 * 1024;

/// Most slices passed to one vectored write.
const MAX_IO_SLICES: usize = 64;

/// Frames taken from the mux, not yet written to the transport.
struct Output {
    /// The transport takes vectored writes: stream data goes out without being copied.
    vectored: bool,
    /// Output for a transport without vectored writes.
    flat: BytesMut,
    /// Output for a vectored transport.
    chunks: VecDeque<Bytes>,
}

impl Output {
    fn new(vectored: bool) -> Self {
        Self {
            vectored,
            // Allocated as output is gathered, released once written (see `advance`).
            flat: BytesMut::new(),
            chunks: VecDeque::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.flat.is_empty() && self.chunks.is_empty()
    }

    /// Takes the next batch of frames from the mux.
    fn fill(&mut self, mux: &mut Mux) {
        if self.vectored {
            mux.poll_transmit_chunks(&mut self.chunks, TRANSMIT_BATCH);
        } else {
            mux.poll_transmit(&mut self.flat, TRANSMIT_BATCH);
        }
    }

    /// Writes some of the output once.
    async fn write_to<W: AsyncWrite + Unpin>(&self, writer: &mut W) -> io::Result<usize> {
        if !self.vectored {
            return writer.write(&self.flat).await;
        }
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let mut count = 0;
        for (slice, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slice = IoSlice::new(chunk);
            count += 1;
        }
        writer.write_vectored(&slices[..count]).await
    }

    /// Drops the first `written` bytes.
    fn advance(&mut self, mut written: usize) {
        if !self.vectored {
            self.flat.advance(written);
            if self.flat.is_empty() && written < BULK_WRITE {
                // Small traffic: no output buffer between writes (an idle link holds none).
                self.flat = BytesMut::new();
            }
            return;
        }
        while written > 0 {
            let Some(chunk) = self.chunks.front_mut() else {
                return;
            };
            if written < chunk.len() {
                chunk.advance(written);
                return;
            }
            written -= chunk.len();
            self.chunks.pop_front();
        }
    }
}

#[derive(Default)]
struct StreamState {
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    peer_finished: bool,
    closed: bool,
    reset: bool,
}

struct Inner {
    mux: Mux,
    streams: HashMap<StreamId, StreamState>,
    listeners: HashMap<String, mpsc::UnboundedSender<VirtualStream>>,
    opening: HashMap<StreamId, oneshot::Sender<io::Result<()>>>,
    /// Streams whose handle was dropped after it shut down its writing side: they finish
    /// gracefully (what still arrives is read and discarded) instead of being reset.
    detached: std::collections::HashSet<StreamId>,
    /// Why the link ended, once it has.
    ended: Option<LinkEnded>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the driver: there is output to send, or events to handle.
    wake_driver: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Releases the lock and wakes the driver if the command just run under it gave the
    /// driver work: output where there was none (`had_output` is what
    /// [`Mux::wants_transmit`] said before the command), or events.
    ///
    /// Output added to output already pending needs no wake-up: the driver takes more from
    /// the mux every time its own batch is written, so a busy link costs no wake-up per
    /// write.
    fn unlock_and_wake(&self, inner: MutexGuard<'_, Inner>, had_output: bool) {
        let wake = (!had_output && inner.mux.wants_transmit()) || inner.mux.has_events();
        drop(inner);
        if wake {
            self.wake_driver.notify_one();
        }
    }
}

/// One physical connection carrying virtual streams. Cheap to clone; the link ends when the
/// transport fails, the peer goes away, or [`MuxLink::close`] is called.
#[derive(Clone)]
pub struct MuxLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MuxLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxLink")
            .field("streams", &self.stream_count())
            .finish()
    }
}

/// Why a [`MuxLink`] ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkEnded {
    /// The mux protocol ended it: a `GoAway` from either side, or a protocol error.
    #[error("mux link ended: {0}")]
    Closed(zs_wire::mux::CloseReason),
    /// The transport under the link failed or reached its end.
    #[error("mux link ended: {0}")]
    Lost(crate::error::Lost),
    /// This side closed the link (every handle dropped, or the driver stopped).
    #[error("mux link ended: closed here")]
    ClosedHere,
}

fn link_ended(why: &LinkEnded) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.clone())
}

impl MuxLink {
    /// Runs a mux over `transport` (a spawned task drives it). `role` must differ between the
    /// two ends: by convention the side that connected is the [`Role::Initiator`].
    pub fn new<IO>(transport: IO, role: Role, config: MuxConfig) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                mux: Mux::new(config, role, Instant::now().into_std()),
                streams: HashMap::new(),
                listeners: HashMap::new(),
                opening: HashMap::new(),
                detached: std::collections::HashSet::new(),
                ended: None,
            }),
            wake_driver: Notify::new(),
        });
        let driver = drive(transport, shared.clone());
        tokio::spawn(async move {
            let links = &crate::metrics::PROCESS.mux_links;
            links.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            driver.await;
            links.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
        Self { shared }
    }

    /// Accepts streams the peer opens to `service` (announced to the peer).
    pub fn listen(&self, service: &str) -> io::Result<VirtualListener> {
        let (sender, incoming) = mpsc::unbounded_channel();
        let mut inner = self.shared.lock();
        if let Some(why) = &inner.ended {
            return Err(link_ended(why));
        }
        let had_output = inner.mux.wants_transmit();
        inner
            .mux
            .listen(service)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        inner.listeners.insert(service.to_owned(), sender);
        self.shared.unlock_and_wake(inner, had_output);
        Ok(VirtualListener { incoming })
    }

    /// Opens a stream to the peer's `service` and waits until the peer accepts it.
    pub async fn connect(&self, service: &str) -> io::Result<VirtualStream> {
        let (accepted, answer) = oneshot::channel();
        let id = {
            let mut inner = self.shared.lock();
            if let Some(why) = &inner.ended {
                return Err(link_ended(why));
            }
            let had_output = inner.mux.wants_transmit();
            let id = inner.mux.open_stream(service).map_err(io::Error::other)?;
            inner.streams.insert(id, StreamState::default());
            inner.opening.insert(id, accepted);
            self.shared.unlock_and_wake(inner, had_output);
            id
        };
        let stream = VirtualStream::new(id, self.shared.clone());
        match answer.await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(link_ended(&LinkEnded::ClosedHere)),
        }
    }

    /// Virtual streams open now.
    pub fn stream_count(&self) -> usize {
        self.shared.lock().mux.stream_count()
    }

    /// Why the link ended, if it has.
    pub fn ended(&self) -> Option<LinkEnded> {
        self.shared.lock().ended.clone()
    }

    /// Ends the link: no new streams; the peer is told with `GoAway`.
    pub fn close(&self) {
        let mut inner = self.shared.lock();
        let had_output = inner.mux.wants_transmit();
        inner.mux.go_away();
        self.shared.unlock_and_wake(inner, had_output);
    }
}

/// Streams the peer opens to one service.
#[derive(Debug)]
pub struct VirtualListener {
    incoming: mpsc::UnboundedReceiver<VirtualStream>,
}

impl VirtualListener {
    /// The next stream the peer opened; `None` once the link has ended.
    pub async fn accept(&mut self) -> Option<VirtualStream> {
        self.incoming.recv().await
    }
}

/// One virtual connection: a byte stream like a TCP stream.
pub struct VirtualStream {
    id: StreamId,
    shared: Arc<Shared>,
    /// Received bytes taken from the mux but not yet read.
    pending: BytesMut,
    shut_down: bool,
}

impl std::fmt::Debug for VirtualStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualStream")
            .field("id", &self.id)
            .finish()
    }
}

impl VirtualStream {
    fn new(id: StreamId, shared: Arc<Shared>) -> Self {
        // Matched by the decrement in `Drop`.
        crate::metrics::PROCESS
            .mux_streams
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            id,
            shared,
            pending: BytesMut::new(),
            shut_down: false,
        }
    }

    /// The stream's id on its link.
    pub fn id(&self) -> StreamId {
        self.id
    }
}

impl AsyncRead for VirtualStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            let mut inner = this.shared.lock();
            let had_output = inner.mux.wants_transmit();
            let taken = inner.mux.read(this.id, &mut this.pending);
            if taken == 0 {
                let ended = inner.ended.clone();
                let state = inner.streams.entry(this.id).or_default();
                if state.reset {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                if state.peer_finished || state.closed {
                    return Poll::Ready(Ok(()));
                }
                if let Some(why) = ended {
                    return Poll::Ready(Err(link_ended(&why)));
                }
                state.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            // Reading may have queued a window update.
            this.shared.unlock_and_wake(inner, had_output);
        }
        crate::transport::read_buf::hand_out(&mut this.pending, buf);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for VirtualStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut inner = this.shared.lock();
        if let Some(why) = &inner.ended {
            return Poll::Ready(Err(link_ended(why)));
        }
        let had_output = inner.mux.wants_transmit();
        let written = match inner.mux.write(this.id, buf) {
            Ok(written) => written,
            Err(error) => {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, error)));
            }
        };
        if written == 0 && !buf.is_empty() {
            inner.streams.entry(this.id).or_default().write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        this.shared.unlock_and_wake(inner, had_output);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are queued in the mux, and the driver was woken when they were
        // written: it sends them as soon as the transport takes them.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut_down {
            this.shut_down = true;
            let mut inner = this.shared.lock();
            let had_output = inner.mux.wants_transmit();
            let _ = inner.mux.close(this.id);
            this.shared.unlock_and_wake(inner, had_output);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for VirtualStream {
    fn drop(&mut self) {
        crate::metrics::PROCESS
            .mux_streams
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let mut inner = self.shared.lock();
        let had_output = inner.mux.wants_transmit();
        if inner.mux.contains_stream(self.id) {
            if self.shut_down {
                // Like a TCP socket closed after `shutdown`: finish gracefully, discarding
                // whatever the peer still sends.
                let mut scratch = BytesMut::new();
                inner.mux.read(self.id, &mut scratch);
                if inner.mux.contains_stream(self.id) {
                    inner.detached.insert(self.id);
                }
            } else {
                // Dropped while still writable: abort rather than leave the peer waiting.
                let _ = inner.mux.reset(self.id);
            }
        }
        inner.streams.remove(&self.id);
        self.shared.unlock_and_wake(inner, had_output);
    }
}

/// Acts on the mux's events; called with the lock held after every input. Returns streams
/// nobody accepted: the caller drops them *after* releasing the lock (their `Drop` locks).
#[must_use = "drop the orphaned streams after releasing the lock"]
fn process_events(inner: &mut Inner, shared: &Arc<Shared>) -> Vec<VirtualStream> {
    let mut orphans = Vec::new();
    while let Some(event) = inner.mux.poll_event() {
        match event {
            MuxEvent::IncomingStream { id, service } => {
                inner.streams.insert(id, StreamState::default());
                let stream = VirtualStream::new(id, shared.clone());
                match inner.listeners.get(&service) {
                    Some(listener) => {
                        if let Err(refused) = listener.send(stream) {
                            // The listener was dropped: the stream is reset when dropped.
                            orphans.push(refused.0);
                        }
                    }
                    None => orphans.push(stream),
                }
            }
            MuxEvent::Accepted { id } => {
                if let Some(accepted) = inner.opening.remove(&id) {
                    let _ = accepted.send(Ok(()));
                }
            }
            MuxEvent::Readable { id } if inner.detached.contains(&id) => {
                let mut scratch = BytesMut::new();
                inner.mux.read(id, &mut scratch);
                if !inner.mux.contains_stream(id) {
                    inner.detached.remove(&id);
                }
            }
            MuxEvent::Readable { id } => {
                if let Some(waker) = inner.streams.get_mut(&id).and_then(|s| s.read_waker.take()) {
                    waker.wake();
                }
            }
            MuxEvent::Writable { id } => {
                if let Some(waker) = inner
                    .streams
                    .get_mut(&id)
                    .and_then(|s| s.write_waker.take())
                {
                    waker.wake();
                }
            }
            MuxEvent::PeerFinished { id } => {
                if let Some(state) = inner.streams.get_mut(&id) {
                    state.peer_finished = true;
                    if let Some(waker) = state.read_waker.take() {
                        waker.wake();
                    }
                }
            }
            MuxEvent::StreamClosed { id, reset } => {
                inner.detached.remove(&id);
                if let Some(accepted) = inner.opening.remove(&id) {
                    let _ = accepted.send(Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "the peer refused the stream (no such service, or too many streams)",
                    )));
                }
                if let Some(state) = inner.streams.get_mut(&id) {
                    state.closed = true;
                    state.reset = reset;
                    for waker in [state.read_waker.take(), state.write_waker.take()]
                        .into_iter()
                        .flatten()
                    {
                        waker.wake();
                    }
                }
            }
            MuxEvent::Closed { reason } => end(inner, LinkEnded::Closed(reason)),
            MuxEvent::ListenerAnnounced { .. }
            | MuxEvent::ListenerRemoved { .. }
            | MuxEvent::GoAway { .. } => {}
        }
    }
    orphans
}

/// Marks the link ended and wakes everyone waiting on it.
fn end(inner: &mut Inner, why: LinkEnded) {
    let why = inner.ended.get_or_insert(why).clone();
    for (_, accepted) in inner.opening.drain() {
        let _ = accepted.send(Err(link_ended(&why)));
    }
    inner.listeners.clear();
    for state in inner.streams.values_mut() {
        for waker in [state.read_waker.take(), state.write_waker.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }
}

/// What woke the driver, to be handled under the next lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Nothing to hand to the mux (a write completed, or the driver was notified).
    Nothing,
    /// Bytes were read into the receive buffer.
    Received,
    /// The timer fired.
    Timer,
}

async fn drive<IO>(transport: IO, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(transport);
    // Sized to what flows: nothing while the link is idle.
    let mut received = ReadBuffer::default();
    let mut output = Output::new(writer.is_write_vectored());
    // One timer, moved only when the mux's deadline comes earlier than the one armed (a
    // later deadline is picked up when the armed one fires early and finds nothing due).
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let mut wake = Wake::Nothing;
    loop {
        // One lock per turn: hand over what arrived, take output, act on events.
        let (deadline, wants_read, finished, orphans) = {
            let mut inner = shared.lock();
            match wake {
                Wake::Received => {
                    let now = Instant::now().into_std();
                    let _ = inner.mux.handle_received(received.bytes(), now);
                    received.settle();
                }
                Wake::Timer => inner.mux.handle_timeout(Instant::now().into_std()),
                Wake::Nothing => {}
            }
            if output.is_empty() {
                output.fill(&mut inner.mux);
            }
            let orphans = process_events(&mut inner, &shared);
            let deadline = inner.mux.poll_timeout().map(Instant::from_std);
            (
                deadline,
                inner.mux.wants_read(),
                inner.mux.is_finished(),
                orphans,
            )
        };
        drop(orphans);
        if finished && output.is_empty() {
            break;
        }
        if wake == Wake::Timer {
            armed = None;
            received.release_if_empty();
        }
        if let Some(deadline) = deadline
            && armed.is_none_or(|armed| deadline < armed)
        {
            timer.as_mut().reset(deadline);
            armed = Some(deadline);
        }
        wake = tokio::select! {
            result = output.write_to(&mut writer), if !output.is_empty() => match result {
                Ok(written) => {
                    output.advance(written);
                    Wake::Nothing
                }
                Err(error) => {
                    end(&mut shared.lock(), LinkEnded::Lost((&error).into()));
                    return;
                }
            },
            result = std::future::poll_fn(|cx| received.poll_fill(std::pin::Pin::new(&mut reader), cx)), if wants_read => match result {
                Ok(0) => {
                    end(&mut shared.lock(), LinkEnded::Lost(crate::error::Lost::Eof));
                    return;
                }
                Ok(_) => Wake::Received,
                Err(error) => {
                    end(&mut shared.lock(), LinkEnded::Lost((&error).into()));
                    return;
                }
            },
            () = shared.wake_driver.notified() => Wake::Nothing,
            () = &mut timer, if armed.is_some() => Wake::Timer,
        };
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    end(&mut shared.lock(), LinkEnded::ClosedHere);
}
