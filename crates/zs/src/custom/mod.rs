//! The custom-protocol mode (ZServer4D's `cpCustom`): a [`Server`](crate::Server) serving a
//! foreign byte protocol — C, C++ or Java clients speaking line-based or length-prefixed
//! messages — with the server's own machinery: the connection limit, the idle timeout,
//! graceful shutdown, statistics, a table of connections and broadcast.
//!
//! The application gives a [`tokio_util::codec`] codec (a `Decoder` for what arrives, an
//! `Encoder` for what it sends) and a handler run for each decoded message, in order, one at
//! a time per connection. A port serves the custom protocol beside the zs protocol — a zs
//! client's first bytes are the handshake's `ZSHS` magic; anything else, or silence for the
//! [detection time](CustomProtocol::detect_timeout), is the custom protocol — or alone
//! ([`CustomProtocol::exclusive`]). Input the codec rejects, and a handler's error, close
//! that connection only.
//!
//! **StableIO underneath**: a client built on zserver can carry the custom protocol over a
//! StableIO session instead of one TCP connection —
//! [`ClientBuilder::connect_stable_stream`](crate::ClientBuilder::connect_stable_stream)
//! gives the raw byte stream, which survives dropped connections with nothing lost or
//! repeated; the server serves such a session with its custom protocol (a session that does
//! not start with the zs preamble is taken for it).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tokio_util::codec::LinesCodec;
//! use zs::custom::CustomProtocol;
//!
//! let mut server = zs::Server::bind("127.0.0.1:4920").await?;
//! server.serve_custom(CustomProtocol::new(
//!     || LinesCodec::new_with_max_length(4096),
//!     |peer, line: String| async move {
//!         peer.send(format!("you said: {line}")).await?;
//!         Ok(())
//!     },
//! ));
//! let handle = server.spawn(); // `nc 127.0.0.1 4920` talks to it; zs clients still work
//! # Ok(()) }
//! ```

mod connection;

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::metrics::ServerCounters;

pub(crate) use connection::{Prefixed, detect, detect_stream};

/// Any byte stream a custom connection runs over: TCP, or a StableIO session.
pub(crate) type BoxedIo = Box<dyn Io>;

/// `AsyncRead + AsyncWrite`, as one trait object.
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// What a handler returns: an error closes its connection (and is logged).
pub type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Default for [`CustomProtocol::detect_timeout`].
pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Default for [`CustomProtocol::send_queue`].
pub const DEFAULT_SEND_QUEUE: usize = 256;

type Handler<Item, Out> =
    Arc<dyn Fn(CustomPeer<Out>, Item) -> BoxFuture<'static, HandlerResult> + Send + Sync>;
type Hook<Out> = Arc<dyn Fn(CustomPeer<Out>) -> BoxFuture<'static, HandlerResult> + Send + Sync>;

/// What a custom protocol's codec must be: a `tokio_util` decoder of messages that can
/// cross threads and an encoder of `Out`, whose errors can be logged. Every such codec is one.
pub trait CustomCodec<Out>:
    Decoder<Item: Send + 'static, Error: std::fmt::Display + Send>
    + Encoder<Out, Error: std::fmt::Display + Send>
    + Send
    + 'static
{
}

impl<C, Out> CustomCodec<Out> for C where
    C: Decoder<Item: Send + 'static, Error: std::fmt::Display + Send>
        + Encoder<Out, Error: std::fmt::Display + Send>
        + Send
        + 'static
{
}

/// A foreign protocol for [`Server::serve_custom`](crate::Server::serve_custom): a codec
/// and a handler (ZServer4D `cpCustom` with `OnReceiveBuffer`).
pub struct CustomProtocol<C: Decoder, Out> {
    make_codec: Arc<dyn Fn() -> C + Send + Sync>,
    handler: Handler<C::Item, Out>,
    on_connect: Option<Hook<Out>>,
    exclusive: bool,
    detect_timeout: Duration,
    send_queue: usize,
}

impl<C: Decoder, Out> std::fmt::Debug for CustomProtocol<C, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomProtocol")
            .field("exclusive", &self.exclusive)
            .field("detect_timeout", &self.detect_timeout)
            .field("send_queue", &self.send_queue)
            .finish_non_exhaustive()
    }
}

impl<C, Out> CustomProtocol<C, Out>
where
    C: CustomCodec<Out>,
    Out: Send + 'static,
{
    /// A protocol whose connections use a codec from `make_codec` (one for reading and one
    /// for writing, per connection) and run `handler` for each message received.
    pub fn new<H, Fut>(make_codec: impl Fn() -> C + Send + Sync + 'static, handler: H) -> Self
    where
        H: Fn(CustomPeer<Out>, C::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Self {
            make_codec: Arc::new(make_codec),
            handler: Arc::new(move |peer, item| Box::pin(handler(peer, item))),
            on_connect: None,
            exclusive: false,
            detect_timeout: DEFAULT_DETECT_TIMEOUT,
            send_queue: DEFAULT_SEND_QUEUE,
        }
    }

    /// Runs `hook` when a connection starts, before anything is read: a greeting, for
    /// protocols where the server speaks first (ZServer4D `OnConnect`).
    pub fn on_connect<H, Fut>(mut self, hook: H) -> Self
    where
        H: Fn(CustomPeer<Out>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.on_connect = Some(Arc::new(move |peer| Box::pin(hook(peer))));
        self
    }

    /// The port speaks only this protocol: no zs clients, no waiting to tell them apart.
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }

    /// How long a new connection on a shared port may stay silent before it is taken for
    /// the custom protocol (default 300 ms; a foreign client that speaks first is told
    /// apart as soon as its first bytes arrive).
    pub fn detect_timeout(mut self, timeout: Duration) -> Self {
        self.detect_timeout = timeout;
        self
    }

    /// Messages that may wait to be written to one connection (default 256): past it,
    /// [`CustomPeer::send`] waits and [`CustomPeer::try_send`] fails.
    pub fn send_queue(mut self, messages: usize) -> Self {
        self.send_queue = messages.max(1);
        self
    }
}

/// A custom connection's shared parts.
struct PeerInner<Out> {
    id: u64,
    remote_addr: SocketAddr,
    outgoing: mpsc::Sender<Out>,
    close: CancellationToken,
}

/// A handle to one connection of a custom protocol: send to it from anywhere, close it.
/// Cheap to clone.
pub struct CustomPeer<Out> {
    inner: Arc<PeerInner<Out>>,
}

impl<Out> Clone for CustomPeer<Out> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<Out> std::fmt::Debug for CustomPeer<Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomPeer")
            .field("id", &self.inner.id)
            .field("remote_addr", &self.inner.remote_addr)
            .finish_non_exhaustive()
    }
}

/// The connection is closed: nothing more can be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the custom connection is closed")]
pub struct Closed;

static NEXT_CUSTOM_ID: AtomicU64 = AtomicU64::new(1);

impl<Out: Send + 'static> CustomPeer<Out> {
    /// A process-unique id of the connection.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The other side's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_addr
    }

    /// Queues `message` to be encoded and written, waiting while the queue is full.
    pub async fn send(&self, message: Out) -> Result<(), Closed> {
        self.inner.outgoing.send(message).await.map_err(|_| Closed)
    }

    /// Queues `message` unless the queue is full or the connection closed.
    pub fn try_send(&self, message: Out) -> Result<(), Closed> {
        self.inner.outgoing.try_send(message).map_err(|_| Closed)
    }

    /// Closes the connection once what is queued is written.
    pub fn close(&self) {
        self.inner.close.cancel();
    }

    /// Whether the connection has ended (or is ending).
    pub fn is_closed(&self) -> bool {
        self.inner.close.is_cancelled() || self.inner.outgoing.is_closed()
    }
}

/// The table of custom connections, type-erased (each entry is a `CustomPeer<Out>`).
pub(crate) type CustomPeers = Arc<Mutex<HashMap<u64, Arc<dyn Any + Send + Sync>>>>;

/// What a custom connection needs from its server.
#[derive(Clone)]
pub(crate) struct CustomEnv {
    pub(crate) peers: CustomPeers,
    pub(crate) counters: Arc<ServerCounters>,
    pub(crate) drain: CancellationToken,
    pub(crate) abort: CancellationToken,
    pub(crate) idle_timeout: Option<Duration>,
}

/// A [`CustomProtocol`] with its types erased, as the server holds it.
pub(crate) trait CustomServe: Send + Sync {
    fn exclusive(&self) -> bool;
    fn detect_timeout(&self) -> Duration;
    fn serve(
        &self,
        stream: BoxedIo,
        remote_addr: SocketAddr,
        env: CustomEnv,
    ) -> BoxFuture<'static, ()>;
}

impl<C, Out> CustomServe for CustomProtocol<C, Out>
where
    C: CustomCodec<Out>,
    Out: Send + Sync + 'static,
{
    fn exclusive(&self) -> bool {
        self.exclusive
    }

    fn detect_timeout(&self) -> Duration {
        self.detect_timeout
    }

    fn serve(
        &self,
        stream: BoxedIo,
        remote_addr: SocketAddr,
        env: CustomEnv,
    ) -> BoxFuture<'static, ()> {
        let (outgoing, queue) = mpsc::channel(self.send_queue);
        let peer = CustomPeer {
            inner: Arc::new(PeerInner {
                id: NEXT_CUSTOM_ID.fetch_add(1, Ordering::Relaxed),
                remote_addr,
                outgoing,
                close: CancellationToken::new(),
            }),
        };
        let parts = connection::Parts {
            reader_codec: (self.make_codec)(),
            writer_codec: (self.make_codec)(),
            handler: self.handler.clone(),
            on_connect: self.on_connect.clone(),
            queue,
        };
        Box::pin(connection::run(stream, peer, parts, env))
    }
}
