//! StableIO runtime: a byte stream that survives dropped TCP connections.
//!
//! [`StableStream`] is what a zs connection runs over when the client used
//! [`ClientBuilder::connect_stable`](crate::ClientBuilder::connect_stable). Underneath, a
//! driver task moves the bytes of a sans-IO [`StableEndpoint`] over a sequence of *links*:
//! TCP connections, each with its own handshake and record layer ([`EncryptedStream`]), so
//! every link is authenticated (pin, token) and encrypted, and its resume proof is keyed by
//! secrets from that link's handshake. When a link drops, the client dials again with
//! backoff, proves it owns the session, and both sides resend what the other has not
//! received; the zs session on top sees nothing. After the give-up time without a link the
//! session expires and reads and writes fail with a clear error.
//!
//! A StableIO client sets a flag in its handshake's first message; that is how the server
//! tells the two kinds apart on one port, without waiting for the client to speak. Then the
//! StableIO link protocol of [`zs_wire::stable`] runs inside the records: the server sends
//! its challenge first.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use zs_wire::stable::{
    LinkRequest, PendingLink, StableConfig, StableEndpoint, StableError, StableEvent,
};

use crate::transport::encrypted::EncryptedStream;
use crate::transport::read_buf::ReadBuffer;
use crate::transport::security::{Security, SecurityError};

/// Output gathered per write to a link.
const TRANSMIT_BATCH: usize = 256 * 1024;
/// How long a locally closed session waits for the peer's close before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(10);

/// A link: an encrypted connection carrying StableIO frames.
pub(crate) trait LinkIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> LinkIo for T {}
pub(crate) type BoxedLink = Box<dyn LinkIo>;

struct Inner {
    endpoint: StableEndpoint,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    peer_closed: bool,
    /// The application dropped its handle.
    dropped: bool,
    /// Why the session ended, once it has.
    ended: Option<String>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake_driver: Notify,
}

impl Shared {
    fn new(endpoint: StableEndpoint) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                endpoint,
                read_waker: None,
                write_waker: None,
                peer_closed: false,
                dropped: false,
                ended: None,
            }),
            wake_driver: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }

    /// Acts on the endpoint's events: wakes the reader and writer, notes the end.
    fn process_events(&mut self) -> Vec<StableEvent> {
        let mut seen = Vec::new();
        while let Some(event) = self.endpoint.poll_event() {
            match &event {
                StableEvent::Readable => wake(&mut self.read_waker),
                StableEvent::Writable => wake(&mut self.write_waker),
                StableEvent::PeerClosed => {
                    self.peer_closed = true;
                    wake(&mut self.read_waker);
                }
                StableEvent::Expired => self.end("StableIO session expired: no link within the give-up time, or the server refused to resume it"),
                StableEvent::Closed => self.end("StableIO session closed"),
                StableEvent::Opened | StableEvent::Resumed => {}
                _ => {}
            }
            seen.push(event);
        }
        seen
    }

    fn end(&mut self, why: &str) {
        if self.ended.is_none() {
            self.ended = Some(why.to_owned());
        }
        wake(&mut self.read_waker);
        wake(&mut self.write_waker);
    }

    fn is_over(&self) -> bool {
        self.ended.is_some() || self.endpoint.is_expired() || self.endpoint.is_closed()
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

fn session_error(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_owned())
}

/// The application's end of a StableIO session: a byte stream that outlives its links.
pub(crate) struct StableStream {
    shared: Arc<Shared>,
    pending: BytesMut,
}

impl StableStream {
    fn new(shared: Arc<Shared>) -> Self {
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
            drop(inner);
            // Reading may have made an ack due.
            this.shared.wake_driver.notify_one();
        }
        let len = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..len]);
        this.pending.advance(len);
        if this.pending.is_empty() {
            this.pending = BytesMut::new();
        }
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
        let written = inner.endpoint.write(buf);
        if written == 0 && !buf.is_empty() {
            inner.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        drop(inner);
        self.shared.wake_driver.notify_one();
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes sit in the endpoint's resend buffer; the driver sends them.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.lock().endpoint.close();
        self.shared.wake_driver.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for StableStream {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.endpoint.close();
        inner.dropped = true;
        drop(inner);
        self.shared.wake_driver.notify_one();
    }
}

/// A link a resuming client opened, handed to its session's driver.
pub(crate) struct IncomingLink {
    pub(crate) io: BoxedLink,
    pub(crate) pending: PendingLink,
    pub(crate) proof: [u8; 32],
    pub(crate) next_expected: u64,
    pub(crate) leftover: BytesMut,
}

/// How a client makes its next link.
struct Dialer {
    addrs: Vec<SocketAddr>,
    security: Security,
    connect_timeout: Duration,
}

impl Dialer {
    /// TCP connect, handshake, magic: a link ready for the StableIO link protocol.
    async fn dial(&self) -> Result<(BoxedLink, [u8; 32], EncryptedInfo), LinkError> {
        let mut last = None;
        for addr in &self.addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    let remote = tcp.peer_addr().unwrap_or(*addr);
                    let local = tcp.local_addr().unwrap_or(*addr);
                    let stream = EncryptedStream::connect_stable_link(tcp, &self.security).await?;
                    let secret = *stream.link_secret();
                    let info = EncryptedInfo {
                        suite: stream.suite(),
                        peer_fingerprint: stream.peer_fingerprint(),
                        remote,
                        local,
                    };
                    return Ok((Box::new(stream), secret, info));
                }
                Ok(Err(error)) => last = Some(error),
                Err(_) => last = Some(io::ErrorKind::TimedOut.into()),
            }
        }
        Err(LinkError::Io(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        })))
    }
}

/// What the first link's handshake established.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncryptedInfo {
    pub(crate) suite: zs_wire::crypto::record::Suite,
    pub(crate) peer_fingerprint: zs_wire::handshake::Fingerprint,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// Why a link could not be made or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(transparent)]
    Stable(#[from] StableError),
    #[error("nothing received on the link for {0:?}")]
    Silent(Duration),
}

/// Where a session's next link comes from.
enum LinkSource {
    Dial(Box<Dialer>),
    Accept(mpsc::UnboundedReceiver<IncomingLink>),
}

/// How one link ended.
enum LinkEnd {
    Lost(LinkError),
    /// Server: the client resumed on a newer link, already attached.
    Replaced((BoxedLink, BytesMut)),
    /// The session is over.
    Finished,
}

struct Driver {
    shared: Arc<Shared>,
    source: LinkSource,
    link_timeout: Duration,
    reconnect_attempt: u32,
    config: StableConfig,
    /// After the application dropped its stream: when to stop waiting for the peer's close.
    linger_until: Option<Instant>,
    /// Server: shared with the session table while the session waits for a link.
    detached: Option<DetachedSince>,
}

/// Client: dials the first link, opens the session, and returns the stream plus what the
/// first handshake established; a driver task keeps the session alive from then on.
pub(crate) async fn connect(
    addrs: Vec<SocketAddr>,
    security: Security,
    connect_timeout: Duration,
    config: StableConfig,
    link_timeout: Duration,
) -> Result<(StableStream, EncryptedInfo), crate::ConnectError> {
    let dialer = Dialer {
        addrs,
        security,
        connect_timeout,
    };
    let (io, secret, info) = dialer.dial().await.map_err(|error| match error {
        LinkError::Io(error) => crate::ConnectError::Io(error),
        LinkError::Security(error) => crate::ConnectError::Security(error),
        other => crate::ConnectError::Io(io::Error::other(other.to_string())),
    })?;
    let now = Instant::now().into_std();
    let mut endpoint = StableEndpoint::new_client(config.clone(), now);
    endpoint.link_established(now, &secret);
    let shared = Shared::new(endpoint);
    let (opened_sender, opened) = tokio::sync::oneshot::channel();
    let driver = Driver {
        shared: shared.clone(),
        source: LinkSource::Dial(Box::new(dialer)),
        link_timeout,
        reconnect_attempt: 0,
        config,
        linger_until: None,
        detached: None,
    };
    tokio::spawn(driver.run(Some((io, BytesMut::new())), Some(opened_sender)));
    match tokio::time::timeout(connect_timeout, opened).await {
        Ok(Ok(Ok(()))) => Ok((StableStream::new(shared), info)),
        Ok(Ok(Err(why))) => Err(crate::ConnectError::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            why,
        ))),
        Ok(Err(_)) => Err(crate::ConnectError::Io(session_error(
            "StableIO driver stopped",
        ))),
        Err(_) => {
            shared.lock().end("StableIO open timed out");
            shared.wake_driver.notify_one();
            Err(crate::ConnectError::Timeout(connect_timeout))
        }
    }
}

/// Server: a session opened on `io` by `endpoint`. Returns the stream for the zs session
/// and the session's entry for the session table (through which resuming links reach the
/// session's driver); the driver ends (and `on_end` runs) when the session is over.
pub(crate) fn serve(
    endpoint: StableEndpoint,
    io: BoxedLink,
    leftover: BytesMut,
    config: StableConfig,
    link_timeout: Duration,
    on_end: impl FnOnce() + Send + 'static,
) -> (StableStream, SessionEntry) {
    let shared = Shared::new(endpoint);
    let (links, receiver) = mpsc::unbounded_channel();
    let detached = DetachedSince::default();
    let driver = Driver {
        shared: shared.clone(),
        source: LinkSource::Accept(receiver),
        link_timeout,
        reconnect_attempt: 0,
        config,
        linger_until: None,
        detached: Some(detached.clone()),
    };
    tokio::spawn(async move {
        driver.run(Some((io, leftover)), None).await;
        on_end();
    });
    (StableStream::new(shared), SessionEntry { links, detached })
}

impl Driver {
    async fn run(
        mut self,
        mut link: Option<(BoxedLink, BytesMut)>,
        mut opened: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) {
        loop {
            if let Some((io, leftover)) = link.take() {
                let end = self.run_link(io, leftover, &mut opened).await;
                let mut inner = self.shared.lock();
                let now = inner.now();
                match end {
                    LinkEnd::Replaced(new_link) => {
                        link = Some(new_link);
                        continue;
                    }
                    LinkEnd::Lost(error) => {
                        tracing::debug!(%error, "StableIO link lost");
                        inner.endpoint.link_lost(now);
                    }
                    LinkEnd::Finished => {}
                }
            }
            {
                let mut inner = self.shared.lock();
                inner.process_events();
                if lingered_out(&mut self.linger_until, &inner) || inner.is_over() {
                    inner.end("StableIO session ended");
                    break;
                }
            }
            if let Some(opened) = opened.take_if(|_| self.shared.lock().endpoint.is_expired()) {
                let _ = opened.send(Err("StableIO session refused".into()));
                break;
            }
            self.mark_detached(true);
            link = self.next_link(&mut opened).await;
            if link.is_some() {
                self.mark_detached(false);
            }
            if link.is_none() && self.shared.lock().is_over() {
                break;
            }
        }
        let mut inner = self.shared.lock();
        inner.process_events();
        inner.end("StableIO session ended");
        if let Some(opened) = opened.take() {
            let why = inner.ended.clone().unwrap_or_default();
            let _ = opened.send(Err(why));
        }
    }

    /// Server: records whether the session is waiting for its client to come back.
    fn mark_detached(&self, detached: bool) {
        if let Some(since) = &self.detached {
            let mut since = lock_detached(since);
            match (detached, since.is_some()) {
                (true, false) => *since = Some(Instant::now()),
                (false, _) => *since = None,
                (true, true) => {}
            }
        }
    }

    /// Waits for the next link: dials with backoff (client) or waits for a resume
    /// (server), until the give-up time.
    async fn next_link(
        &mut self,
        opened: &mut Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) -> Option<(BoxedLink, BytesMut)> {
        let give_up = self
            .shared
            .lock()
            .endpoint
            .poll_timeout()
            .map(Instant::from_std);
        let sleep_give_up = async {
            match give_up {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let expire = || {
            let mut inner = self.shared.lock();
            let now = inner.now();
            inner.endpoint.handle_timeout(now);
            inner.process_events();
        };
        match &mut self.source {
            LinkSource::Dial(dialer) => {
                // The first open gets no second try: `connect` reports its failure.
                if opened.is_some() {
                    let mut inner = self.shared.lock();
                    inner.end("StableIO: the first link failed before the session opened");
                    return None;
                }
                let delay = self.config.reconnect_delay(self.reconnect_attempt);
                self.reconnect_attempt = self.reconnect_attempt.saturating_add(1);
                let attempt = async {
                    tokio::time::sleep(delay).await;
                    dialer.dial().await
                };
                tokio::select! {
                    result = attempt => match result {
                        Ok((io, secret, _)) => {
                            let mut inner = self.shared.lock();
                            let now = inner.now();
                            inner.endpoint.link_established(now, &secret);
                            Some((io, BytesMut::new()))
                        }
                        Err(error) => {
                            tracing::debug!(%error, "StableIO reconnect failed");
                            None
                        }
                    },
                    () = sleep_give_up => {
                        expire();
                        None
                    }
                }
            }
            LinkSource::Accept(incoming) => {
                tokio::select! {
                    received = incoming.recv() => match received {
                        Some(link) => self.attach(link).await,
                        None => {
                            self.shared.lock().end("StableIO server stopped");
                            None
                        }
                    },
                    () = sleep_give_up => {
                        expire();
                        None
                    }
                    () = self.shared.wake_driver.notified() => None,
                }
            }
        }
    }

    /// Server: checks a resuming link's proof and binds the session to it, or refuses it.
    async fn attach(&mut self, link: IncomingLink) -> Option<(BoxedLink, BytesMut)> {
        let IncomingLink {
            io,
            mut pending,
            proof,
            next_expected,
            leftover,
        } = link;
        let result = {
            let mut inner = self.shared.lock();
            let now = inner.now();
            let result = inner
                .endpoint
                .resume_server(&mut pending, &proof, next_expected, now);
            inner.process_events();
            result
        };
        match result {
            Ok(()) => Some((io, leftover)),
            Err(error) => {
                tracing::warn!(%error, "StableIO resume refused");
                send_refusal(io, &mut pending).await;
                None
            }
        }
    }

    /// Moves frames over one link until it fails, is replaced, or the session ends.
    async fn run_link(
        &mut self,
        io: BoxedLink,
        received: BytesMut,
        opened: &mut Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) -> LinkEnd {
        let (mut reader, mut writer) = tokio::io::split(io);
        // Both sized to what flows: an idle session holds neither.
        let mut received = ReadBuffer::with_leftover(received);
        let mut output = BytesMut::new();
        let mut last_received = Instant::now();
        // Bytes read past the server's first frames belong to this link.
        let mut feed_now = !received.is_empty();
        loop {
            let (deadline, over) = {
                let mut inner = self.shared.lock();
                let now = inner.now();
                if feed_now {
                    feed_now = false;
                    let handled = inner.endpoint.handle_link_bytes(received.bytes(), now);
                    received.settle();
                    if let Err(error) = handled {
                        if let StableError::Refused { reason } = &error {
                            inner.end(&format!("StableIO server refused the session: {reason}"));
                        }
                        inner.process_events();
                        return LinkEnd::Lost(error.into());
                    }
                }
                if output.is_empty() {
                    inner
                        .endpoint
                        .poll_link_transmit(&mut output, TRANSMIT_BATCH);
                }
                for event in inner.process_events() {
                    if matches!(event, StableEvent::Opened | StableEvent::Resumed) {
                        self.reconnect_attempt = 0;
                        if let Some(opened) = opened.take() {
                            let _ = opened.send(Ok(()));
                        }
                    }
                }
                if lingered_out(&mut self.linger_until, &inner) {
                    inner.end("StableIO session closed locally; the peer did not close in time");
                }
                let deadline = inner.endpoint.poll_timeout().map(Instant::from_std);
                let deadline = match (deadline, self.linger_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (deadline, inner.is_over())
            };
            if over && output.is_empty() {
                let _ = writer.flush().await;
                return LinkEnd::Finished;
            }
            let silent_at = last_received + self.link_timeout;
            let deadline = deadline.map_or(silent_at, |at| at.min(silent_at));
            let incoming = async {
                match &mut self.source {
                    LinkSource::Accept(incoming) => incoming.recv().await,
                    LinkSource::Dial(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                result = writer.write(&output), if !output.is_empty() => match result {
                    Ok(0) => return LinkEnd::Lost(io::Error::from(io::ErrorKind::WriteZero).into()),
                    Ok(written) => {
                        output.advance(written);
                        if output.is_empty() {
                            if written < TRANSMIT_BATCH / 4 {
                                output = BytesMut::new();
                            }
                            if let Err(error) = writer.flush().await {
                                return LinkEnd::Lost(error.into());
                            }
                        }
                    }
                    Err(error) => return LinkEnd::Lost(error.into()),
                },
                result = std::future::poll_fn(|cx| received.poll_fill(Pin::new(&mut reader), cx)) => match result {
                    Ok(0) => {
                        return LinkEnd::Lost(
                            io::Error::new(io::ErrorKind::UnexpectedEof, "link closed").into(),
                        );
                    }
                    Ok(_) => {
                        last_received = Instant::now();
                        feed_now = true;
                    }
                    Err(error) => return LinkEnd::Lost(error.into()),
                },
                link = incoming => match link {
                    // A failed resume (a bad proof) leaves the current link alone.
                    Some(link) => if let Some(attached) = self.attach(link).await {
                        return LinkEnd::Replaced(attached);
                    },
                    None => {
                        self.shared.lock().end("StableIO server stopped");
                        return LinkEnd::Finished;
                    }
                },
                () = self.shared.wake_driver.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= silent_at {
                        return LinkEnd::Lost(LinkError::Silent(self.link_timeout));
                    }
                    received.release_if_empty();
                    if output.is_empty() {
                        output = BytesMut::new();
                    }
                    let mut inner = self.shared.lock();
                    let now = inner.now();
                    inner.endpoint.handle_timeout(now);
                }
            }
        }
    }
}

/// Starts the linger clock once the application dropped its stream; true when it ran out.
fn lingered_out(linger_until: &mut Option<Instant>, inner: &Inner) -> bool {
    if inner.dropped && linger_until.is_none() {
        *linger_until = Some(Instant::now() + CLOSE_LINGER);
    }
    linger_until.is_some_and(|until| Instant::now() >= until)
}

/// Server: the StableIO sessions alive, by id, so a resuming link finds its driver.
#[derive(Default)]
pub(crate) struct Sessions {
    drivers: Mutex<HashMap<zs_wire::stable::SessionId, SessionEntry>>,
}

/// What the server keeps of one StableIO session: where resuming links go, and since when
/// the session has had no link.
pub(crate) struct SessionEntry {
    links: mpsc::UnboundedSender<IncomingLink>,
    detached: DetachedSince,
}

/// When a server session lost its link; `None` while one is attached. Shared between the
/// session's driver and the session table, so a full server can find the session that has
/// waited longest for its client.
pub(crate) type DetachedSince = Arc<Mutex<Option<Instant>>>;

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<zs_wire::stable::SessionId, SessionEntry>> {
        self.drivers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sessions held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn insert(&self, id: zs_wire::stable::SessionId, entry: SessionEntry) {
        self.lock().insert(id, entry);
    }

    /// Ends the session that has been without a link the longest, if any: its slot goes to
    /// a client that is here now instead of one that may never come back. Returns whether a
    /// session was ended (its connection slot frees once its driver has stopped).
    pub(crate) fn evict_longest_detached(&self) -> bool {
        let mut drivers = self.lock();
        let oldest = drivers
            .iter()
            .filter_map(|(id, entry)| Some(((*lock_detached(&entry.detached))?, *id)))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((since, id)) => {
                // Dropping the sender ends the driver's wait for a resume.
                drivers.remove(&id);
                tracing::info!(?id, detached_for = ?since.elapsed(), "server full: StableIO session without a link ended");
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&self, id: zs_wire::stable::SessionId) {
        self.lock().remove(&id);
    }

    /// Forgets every session: their drivers end (server shutdown).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Hands a resuming link to its session; gives it back when there is no such session.
    pub(crate) fn route(
        &self,
        id: zs_wire::stable::SessionId,
        link: IncomingLink,
    ) -> Result<(), Box<IncomingLink>> {
        let sender = self.lock().get(&id).map(|entry| entry.links.clone());
        match sender {
            Some(sender) => sender.send(link).map_err(|refused| Box::new(refused.0)),
            None => Err(Box::new(link)),
        }
    }
}

fn lock_detached(detached: &DetachedSince) -> MutexGuard<'_, Option<Instant>> {
    detached
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Server: reads a new link's first StableIO frame after sending the challenge.
pub(crate) async fn read_link_request(
    io: &mut BoxedLink,
    pending: &mut PendingLink,
    timeout: Duration,
) -> Result<(LinkRequest, BytesMut), LinkError> {
    let mut challenge = BytesMut::new();
    pending.poll_transmit(&mut challenge, usize::MAX);
    io.write_all(&challenge).await?;
    io.flush().await?;
    let mut input = BytesMut::with_capacity(256);
    let request = tokio::time::timeout(timeout, async {
        loop {
            if let Some(request) = pending.handle_input(&mut input)? {
                return Ok::<_, LinkError>(request);
            }
            if io.read_buf(&mut input).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    })
    .await
    .map_err(|_| LinkError::Silent(timeout))??;
    Ok((request, input))
}

/// Writes a pending link's refusal and closes the link.
pub(crate) async fn refuse_link(
    io: BoxedLink,
    pending: &mut PendingLink,
    reason: zs_wire::stable::RefuseReason,
) {
    pending.refuse(reason);
    send_refusal(io, pending).await;
}

/// Writes whatever refusal `pending` holds, then closes the link (bounded in time).
async fn send_refusal(mut io: BoxedLink, pending: &mut PendingLink) {
    let mut refusal = BytesMut::new();
    pending.poll_transmit(&mut refusal, usize::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        io.write_all(&refusal).await?;
        io.shutdown().await
    })
    .await;
}
