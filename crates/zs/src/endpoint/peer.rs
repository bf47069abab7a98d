//! [`Peer`]: a cheap, cloneable handle to one connection, for calling the other side.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use zs_wire::DataFrame;
use zs_wire::crypto::record::Suite;
use zs_wire::frame::{
    CloseCode, Compression, EncodeError, MAX_COMMAND_NAME, Payload, RequestId, StreamInfo,
};
use zs_wire::handshake::Fingerprint;

use crate::dispatch::auth::User;
use crate::error::{BadReply, CallError, DisconnectReason, Lost, SendError};

/// What a caller's task sends to the connection's driver task.
/// The queue from handles to a connection's driver. Commands travel boxed: tokio's channel
/// allocates its first block of 32 slots up front, so small slots keep an idle connection's
/// queue at half a kilobyte instead of several.
pub(crate) type CommandSender = mpsc::UnboundedSender<Box<Command>>;
/// The driver's end of [`CommandSender`].
pub(crate) type CommandReceiver = mpsc::UnboundedReceiver<Box<Command>>;

pub(crate) enum Command {
    Call {
        id: RequestId,
        payload: Payload,
        name: String,
        body: Bytes,
        reply: oneshot::Sender<Result<Bytes, CallError>>,
    },
    Direct {
        payload: Payload,
        name: String,
        body: Bytes,
    },
    Cancel(RequestId),
    StreamOpen {
        id: RequestId,
        name: String,
        info: StreamInfo,
        reply: oneshot::Sender<Result<Bytes, CallError>>,
        /// The transfer's window in bytes; the driver adds permits as credit arrives and
        /// closes it when the transfer is answered.
        credit: Arc<tokio::sync::Semaphore>,
    },
    StreamData {
        id: RequestId,
        chunk: Bytes,
    },
    StreamEnd {
        id: RequestId,
    },
    /// Grant the peer more window on an inbound transfer.
    Credit {
        id: RequestId,
        credit: u32,
    },
    Close {
        code: CloseCode,
        reason: String,
        drain: bool,
    },
}

pub(crate) struct PeerShared<S> {
    id: u64,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    state: S,
    /// Unbounded so that commands keep the order in which callers issued them (a bounded
    /// channel orders waiting senders by wake-up, not by arrival); `credit` bounds it.
    commands: CommandSender,
    /// Back-pressure: each queued command takes a permit *after* it is queued, and the
    /// driver returns one per command it takes. The queue therefore holds at most
    /// `command_queue` commands plus one per caller still waiting for a permit.
    credit: Arc<tokio::sync::Semaphore>,
    next_request_id: AtomicU64,
    closed: CancellationToken,
    disconnect_reason: OnceLock<DisconnectReason>,
    call_timeout: Duration,
    security: SecurityInfo,
    /// The peer's frame limit (from its preamble; ours until then), checked before queuing
    /// so an oversize call fails locally instead of costing the connection.
    max_frame_size: AtomicU32,
    compression: Compression,
    /// Who the connection is logged in as.
    user: std::sync::RwLock<Option<User>>,
    /// Whether `user` is set: the check of a login-gated command reads only this.
    logged_in: std::sync::atomic::AtomicBool,
    /// Bytes and calls, for the admin API.
    traffic: crate::metrics::TrafficCounters,
}

/// A handle to one connection: the server's view of a client, or a client's view of its
/// server. Clones are cheap and all refer to the same connection.
///
/// Through it either side calls the other (`call_console`, `call_stream`), sends one-way
/// messages, reads the per-connection state, and closes. In ZServer4D terms this is the
/// `TPeerIO`.
pub struct Peer<S = ()> {
    shared: Arc<PeerShared<S>>,
}

impl<S> Clone for Peer<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Peer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.shared.id)
            .field("remote_addr", &self.shared.remote_addr)
            .finish_non_exhaustive()
    }
}

/// What the handshake established for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SecurityInfo {
    pub(crate) suite: Suite,
    pub(crate) peer_fingerprint: Fingerprint,
}

static NEXT_PEER_ID: AtomicU64 = AtomicU64::new(1);

impl<S> Peer<S> {
    pub(crate) fn new(
        remote_addr: SocketAddr,
        local_addr: SocketAddr,
        state: S,
        commands: CommandSender,
        config: &crate::Config,
        security: SecurityInfo,
    ) -> Self {
        Self {
            shared: Arc::new(PeerShared {
                id: NEXT_PEER_ID.fetch_add(1, Ordering::Relaxed),
                remote_addr,
                local_addr,
                state,
                commands,
                credit: Arc::new(tokio::sync::Semaphore::new(config.command_queue)),
                next_request_id: AtomicU64::new(1),
                closed: CancellationToken::new(),
                disconnect_reason: OnceLock::new(),
                call_timeout: config.call_timeout,
                security,
                max_frame_size: AtomicU32::new(config.session.max_frame_size),
                compression: config.complete_buffer_compression,
                user: std::sync::RwLock::new(None),
                logged_in: std::sync::atomic::AtomicBool::new(false),
                traffic: crate::metrics::TrafficCounters::new(),
            }),
        }
    }

    /// A process-unique id of this connection (ZServer4D's IO id).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// What this connection moved so far, and since when (zero counts when
    /// [`Config::metrics`](crate::Config::metrics) is off).
    pub fn traffic(&self) -> crate::metrics::Traffic {
        self.shared.traffic.snapshot()
    }

    pub(crate) fn traffic_counters(&self) -> &crate::metrics::TrafficCounters {
        &self.shared.traffic
    }

    /// The other side's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.shared.remote_addr
    }

    /// This side's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The cipher suite protecting this connection.
    pub fn suite(&self) -> Suite {
        self.shared.security.suite
    }

    /// The fingerprint of the other side's static key (a server's identity, as a client
    /// pins it).
    pub fn peer_fingerprint(&self) -> Fingerprint {
        self.shared.security.peer_fingerprint
    }

    /// The per-connection user state.
    pub fn state(&self) -> &S {
        &self.shared.state
    }

    /// The user this connection is logged in as, if any (ZServer4D: the dual-tunnel
    /// client's `UserID` once `TunnelLink` succeeded).
    pub fn user(&self) -> Option<User> {
        self.with_user(|user| user.cloned())
    }

    /// Sets (or with `None` clears) the user this connection is logged in as. Whatever
    /// decides logins calls it — the accounts service, or the application's own check (the
    /// original's `VirtualAuth`); commands marked with
    /// [`Commands::require`](crate::Commands::require) then accept the connection's calls.
    pub fn set_user(&self, user: Option<User>) {
        let mut slot = self
            .shared
            .user
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.shared
            .logged_in
            .store(user.is_some(), Ordering::Release);
        *slot = user;
    }

    /// Whether a user is logged in on this connection (one atomic load).
    pub fn is_logged_in(&self) -> bool {
        self.shared.logged_in.load(Ordering::Acquire)
    }

    /// Runs `f` on the logged-in user without cloning it.
    pub(crate) fn with_user<R>(&self, f: impl FnOnce(Option<&User>) -> R) -> R {
        let user = self
            .shared
            .user
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(user.as_ref())
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Why the connection ended, once it has.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.shared.disconnect_reason.get().cloned()
    }

    /// Waits until the connection has ended and returns why.
    pub async fn closed(&self) -> DisconnectReason {
        self.shared.closed.cancelled().await;
        self.reason_or_lost()
    }

    pub(crate) fn mark_closed(&self, reason: DisconnectReason) {
        let _ = self.shared.disconnect_reason.set(reason);
        self.shared.closed.cancel();
    }

    pub(crate) fn reason_or_lost(&self) -> DisconnectReason {
        self.disconnect_reason()
            .unwrap_or(DisconnectReason::ConnectionLost(Lost::TaskEnded))
    }

    /// The next request id of this connection.
    pub(crate) fn next_request_id(&self) -> RequestId {
        RequestId(self.shared.next_request_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn complete_buffer_compression(&self) -> Compression {
        self.shared.compression
    }

    /// A sender for the driver's queue, for handles that live beside the peer (transfers).
    pub(crate) fn command_sender(&self) -> CommandSender {
        self.shared.commands.clone()
    }

    /// Queues a command without waiting for queue space (from `Drop`, for small commands).
    pub(crate) fn send_now(&self, command: Command) {
        let _ = self.shared.commands.send(Box::new(command));
    }

    /// Like `enqueue`, with the connection's end as a call error.
    pub(crate) async fn enqueue_checked(&self, command: Command) -> Result<(), CallError> {
        self.enqueue(command)
            .await
            .map_err(|()| CallError::ConnectionClosed(self.reason_or_lost()))
    }

    /// Queues a command for the driver, then waits for queue space (see `credit`).
    pub(crate) async fn enqueue(&self, command: Command) -> Result<(), ()> {
        self.shared
            .commands
            .send(Box::new(command))
            .map_err(|_| ())?;
        if let Ok(permit) = self.shared.credit.acquire().await {
            permit.forget();
        }
        Ok(())
    }

    /// The driver took `count` commands off the queue.
    pub(crate) fn release_credit(&self, count: usize) {
        self.shared.credit.add_permits(count);
    }

    /// The driver is gone: wake every caller waiting for queue space.
    pub(crate) fn close_queue(&self) {
        self.shared.credit.close();
    }

    pub(crate) fn set_peer_max_frame_size(&self, max: u32) {
        self.shared.max_frame_size.store(max, Ordering::Relaxed);
    }

    fn check_size(&self, name: &str, body_len: usize) -> Result<(), EncodeError> {
        if name.is_empty() || name.len() > MAX_COMMAND_NAME {
            return Err(EncodeError::BadCommandName { len: name.len() });
        }
        let len = 1 + name.len() + body_len;
        let max = self.shared.max_frame_size.load(Ordering::Relaxed);
        if len as u64 > u64::from(max) {
            return Err(EncodeError::FrameTooLarge {
                len: len as u64,
                max,
            });
        }
        Ok(())
    }

    /// Calls a console command on the other side: text in, text out (ZServer4D
    /// `SendConsoleCmd`). Await the returned [`Call`]; `.timeout(d)` overrides the default.
    ///
    /// ```no_run
    /// # async fn demo(client: zs::Client) -> Result<(), zs::CallError> {
    /// use std::time::Duration;
    /// let text = client.call_console("echo", "hi").timeout(Duration::from_secs(2)).await?;
    /// # Ok(()) }
    /// ```
    pub fn call_console(&self, name: &str, text: &str) -> Call<'_, S, String> {
        self.call(
            Payload::Console,
            name,
            Bytes::copy_from_slice(text.as_bytes()),
        )
    }

    /// Calls a stream command on the other side: DataFrame in, DataFrame out (ZServer4D
    /// `SendStreamCmd`).
    pub fn call_stream(&self, name: &str, frame: &DataFrame) -> Call<'_, S, DataFrame> {
        self.call(Payload::Stream, name, Bytes::from(frame.encode()))
    }

    fn call<T>(&self, payload: Payload, name: &str, body: Bytes) -> Call<'_, S, T> {
        Call {
            peer: self,
            payload,
            name: name.to_owned(),
            body,
            timeout: self.shared.call_timeout,
            _reply: PhantomData,
        }
    }

    /// Sends a one-way console message (ZServer4D `SendDirectConsoleCmd`). Returns once it is
    /// queued; waits only while the connection's send queue is full.
    pub async fn send_direct_console(&self, name: &str, text: &str) -> Result<(), SendError> {
        self.send_direct(
            Payload::Console,
            name,
            Bytes::copy_from_slice(text.as_bytes()),
        )
        .await
    }

    /// Sends a one-way stream message (ZServer4D `SendDirectStreamCmd`).
    pub async fn send_direct_stream(&self, name: &str, frame: &DataFrame) -> Result<(), SendError> {
        self.send_direct(Payload::Stream, name, Bytes::from(frame.encode()))
            .await
    }

    async fn send_direct(
        &self,
        payload: Payload,
        name: &str,
        body: Bytes,
    ) -> Result<(), SendError> {
        self.check_size(name, body.len())?;
        let command = Command::Direct {
            payload,
            name: name.to_owned(),
            body,
        };
        self.enqueue(command)
            .await
            .map_err(|()| SendError::ConnectionClosed(self.reason_or_lost()))
    }

    /// Closes the connection now; calls still waiting fail with `ConnectionClosed`.
    pub async fn close(&self, reason: &str) {
        self.send_close(reason, false).await;
    }

    /// Closes the connection once every request in flight — both ways — is answered and
    /// flushed (ZServer4D's delayed close). New requests from the peer are refused meanwhile.
    pub async fn close_after_flush(&self, reason: &str) {
        self.send_close(reason, true).await;
    }

    async fn send_close(&self, reason: &str, drain: bool) {
        let command = Command::Close {
            code: CloseCode::Normal,
            reason: reason.to_owned(),
            drain,
        };
        // An error means the driver is gone: the connection is already closed.
        let _ = self.enqueue(command).await;
    }
}

/// The reply types a call can decode: `String` for console, `DataFrame` for stream commands.
pub trait Reply: Sized + Send + 'static {
    /// Decodes a reply body.
    fn decode(body: Bytes) -> Result<Self, CallError>;
}

impl Reply for String {
    fn decode(body: Bytes) -> Result<Self, CallError> {
        String::from_utf8(body.to_vec()).map_err(|_| CallError::BadReply(BadReply::NotUtf8))
    }
}

impl Reply for DataFrame {
    fn decode(body: Bytes) -> Result<Self, CallError> {
        DataFrame::decode(&body).map_err(|error| CallError::BadReply(BadReply::NotDataFrame(error)))
    }
}

/// A call being prepared; `.await` it to send it and wait for the reply.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<'a, S, T> {
    peer: &'a Peer<S>,
    payload: Payload,
    name: String,
    body: Bytes,
    timeout: Duration,
    _reply: PhantomData<fn() -> T>,
}

impl<S, T> Call<'_, S, T> {
    /// How long to wait for the reply; past it the call fails with [`CallError::Timeout`]
    /// and the request is cancelled at the peer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<'a, S: Send + Sync + 'static, T: Reply> IntoFuture for Call<'a, S, T> {
    type Output = Result<T, CallError>;
    type IntoFuture = BoxFuture<'a, Result<T, CallError>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<S: Send + Sync + 'static, T: Reply> Call<'_, S, T> {
    fn run(self) -> impl Future<Output = Result<T, CallError>> + Send {
        let peer = self.peer;
        async move {
            peer.check_size(&self.name, self.body.len())?;
            let id = peer.next_request_id();
            let (reply, receiver) = oneshot::channel();
            let command = Command::Call {
                id,
                payload: self.payload,
                name: self.name,
                body: self.body,
                reply,
            };
            if peer.enqueue(command).await.is_err() {
                return Err(CallError::ConnectionClosed(peer.reason_or_lost()));
            }
            match tokio::time::timeout(self.timeout, receiver).await {
                Ok(Ok(result)) => T::decode(result?),
                Ok(Err(_)) => Err(CallError::ConnectionClosed(peer.reason_or_lost())),
                Err(_) => {
                    let _ = peer.enqueue(Command::Cancel(id)).await;
                    Err(CallError::Timeout(self.timeout))
                }
            }
        }
    }
}
