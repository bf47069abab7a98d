//! [`Server`]: accepts connections and serves registered commands.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use zs_wire::DataFrame;
use zs_wire::frame::CloseCode;
use zs_wire::handshake::{Fingerprint, StaticKeypair};
use zs_wire::session::Session;
use zs_wire::stable::{LinkRequest, PendingLink, RefuseReason, StableEndpoint};

use crate::connection::{DriverParts, drive};
use crate::encrypted::EncryptedStream;
use crate::error::{BoxError, DisconnectReason};
use crate::peer::{Peer, SecurityInfo};
use crate::registry::{Commands, Context};
use crate::stable;
use crate::stats::CommandStats;
use crate::{Config, SendError};

type ConnectedHook<S> = Arc<dyn Fn(&Peer<S>) + Send + Sync>;
type DisconnectedHook<S> = Arc<dyn Fn(&Peer<S>, &DisconnectReason) + Send + Sync>;
type StateFactory<S> = Arc<dyn Fn(SocketAddr) -> S + Send + Sync>;

/// A bound server, not yet serving: register commands and hooks, then [`Server::spawn`] or
/// [`Server::run_until`].
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let mut server = zs::Server::bind("127.0.0.1:4920").await?;
/// server.register_console("echo", |_ctx, text: String| async move { Ok::<_, zs::BoxError>(text) });
/// let handle = server.spawn();
/// // ... later
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
///
/// ZServer4D: `TPhysicsServer` + `StartService`.
pub struct Server<S = ()> {
    listener: TcpListener,
    keypair: StaticKeypair,
    commands: Commands<S>,
    config: Config,
    state_factory: StateFactory<S>,
    on_connected: Option<ConnectedHook<S>>,
    on_disconnected: Option<DisconnectedHook<S>>,
}

impl Server<()> {
    /// Binds a TCP listener (IPv4 or IPv6, e.g. `"[::1]:0"`); connections carry no user state.
    pub async fn bind(addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        Self::bind_with_state(addr, |_| ()).await
    }
}

impl<S: Send + Sync + 'static> Server<S> {
    /// Binds a TCP listener; each connection's state is made by `state` from the peer's
    /// address and is reachable from handlers as `ctx.state()` (ZServer4D `UserDefine`).
    pub async fn bind_with_state(
        addr: impl ToSocketAddrs,
        state: impl Fn(SocketAddr) -> S + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::from_listener(TcpListener::bind(addr).await?, state)
    }

    /// Serves on an already bound listener. A fresh static key is generated; set one with
    /// `config_mut().security().keypair(..)` to keep the server's identity across restarts.
    pub fn from_listener(
        listener: TcpListener,
        state: impl Fn(SocketAddr) -> S + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let keypair = StaticKeypair::generate().map_err(std::io::Error::other)?;
        Ok(Self {
            listener,
            keypair,
            commands: Commands::new(),
            config: Config::default(),
            state_factory: Arc::new(state),
            on_connected: None,
            on_disconnected: None,
        })
    }

    /// The fingerprint of the server's static key, which clients may pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.config
            .security
            .keypair
            .as_ref()
            .unwrap_or(&self.keypair)
            .fingerprint()
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The configuration, to change before serving.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// The command table, to register commands from a function that takes `&mut Commands`.
    pub fn commands_mut(&mut self) -> &mut Commands<S> {
        &mut self.commands
    }

    /// See [`Commands::register_console`].
    pub fn register_console<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.commands.register_console(name, handler);
        self
    }

    /// See [`Commands::register_stream`].
    pub fn register_stream<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, DataFrame) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DataFrame, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.commands.register_stream(name, handler);
        self
    }

    /// See [`Commands::register_direct_console`].
    pub fn register_direct_console<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.commands.register_direct_console(name, handler);
        self
    }

    /// See [`Commands::register_direct_stream`].
    pub fn register_direct_stream<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, DataFrame) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.commands.register_direct_stream(name, handler);
        self
    }

    /// See [`Commands::register_big_stream`].
    pub fn register_big_stream<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, crate::BigStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DataFrame, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.commands.register_big_stream(name, handler);
        self
    }

    /// See [`Commands::register_complete_buffer`].
    pub fn register_complete_buffer<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, bytes::Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DataFrame, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.commands.register_complete_buffer(name, handler);
        self
    }

    /// Called for each connection once its preamble exchange succeeded
    /// (ZServer4D `DoIOConnectAfter`).
    pub fn on_connected(&mut self, hook: impl Fn(&Peer<S>) + Send + Sync + 'static) -> &mut Self {
        self.on_connected = Some(Arc::new(hook));
        self
    }

    /// Called when an established connection ends, with the reason (ZServer4D
    /// `DoIODisconnect`).
    pub fn on_disconnected(
        &mut self,
        hook: impl Fn(&Peer<S>, &DisconnectReason) + Send + Sync + 'static,
    ) -> &mut Self {
        self.on_disconnected = Some(Arc::new(hook));
        self
    }

    /// Starts serving in the background and returns a handle to control the server.
    pub fn spawn(self) -> ServerHandle<S> {
        let local_addr = self
            .listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let keypair = self.config.security.keypair.clone().unwrap_or(self.keypair);
        let shared = Arc::new(Shared {
            keypair,
            permits: Arc::new(Semaphore::new(self.config.max_connections)),
            offload: Arc::new(Semaphore::new(self.config.max_offload)),
            registry: Arc::new(self.commands),
            config: self.config,
            peers: Mutex::new(HashMap::new()),
            state_factory: self.state_factory,
            on_connected: self.on_connected,
            on_disconnected: self.on_disconnected,
            tasks: TaskTracker::new(),
            stop_accepting: CancellationToken::new(),
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
            stable_sessions: stable::Sessions::default(),
        });
        let accept = tokio::spawn(accept_loop(self.listener, shared.clone()));
        ServerHandle {
            shared,
            local_addr,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        let handle = self.spawn();
        signal.await;
        handle.shutdown().await;
    }
}

struct Shared<S> {
    keypair: StaticKeypair,
    /// One per connection being served; `max_connections` of them.
    permits: Arc<Semaphore>,
    offload: Arc<Semaphore>,
    registry: Arc<Commands<S>>,
    config: Config,
    peers: Mutex<HashMap<u64, Peer<S>>>,
    state_factory: StateFactory<S>,
    on_connected: Option<ConnectedHook<S>>,
    on_disconnected: Option<DisconnectedHook<S>>,
    /// Connection drivers and handler tasks, so shutdown can wait for them.
    tasks: TaskTracker,
    stop_accepting: CancellationToken,
    drain: CancellationToken,
    abort: CancellationToken,
    /// StableIO sessions, so a resuming link finds its session.
    stable_sessions: stable::Sessions,
}

async fn accept_loop<S: Send + Sync + 'static>(listener: TcpListener, shared: Arc<Shared<S>>) {
    let permits = shared.permits.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.stop_accepting.cancelled() => break,
        };
        let (stream, remote_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the limit the connection still gets a handshake, so the client learns why it
        // is refused ("server full") instead of seeing a reset.
        let permit = permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            tracing::warn!(peer = %remote_addr, limit = shared.config.max_connections, "refusing connection: server full");
        }
        let shared_for_task = shared.clone();
        let span = tracing::info_span!("connection", peer = %remote_addr);
        shared.tasks.spawn(
            async move {
                serve_connection(stream, remote_addr, shared_for_task, permit).await;
            }
            .instrument(span),
        );
    }
}

/// Tells a connection why it is dropped: its preamble, then a close frame.
async fn refuse<W: AsyncWrite + Unpin>(
    mut stream: W,
    config: &Config,
    code: CloseCode,
    reason: &str,
) {
    let mut session: Session<()> = Session::new(config.session.clone(), std::time::Instant::now());
    session.close(code, reason);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(session.transmit_pending()).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
}

async fn serve_connection<S: Send + Sync + 'static>(
    stream: TcpStream,
    remote_addr: SocketAddr,
    shared: Arc<Shared<S>>,
    permit: Option<OwnedSemaphorePermit>,
) {
    // Small frames must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let local_addr = stream.local_addr().unwrap_or(remote_addr);
    serve_stream(stream, remote_addr, local_addr, shared, permit).await;
}

/// Serves one connection over any byte stream: handshake, then the driver.
async fn serve_stream<S, IO>(
    stream: IO,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    shared: Arc<Shared<S>>,
    permit: Option<OwnedSemaphorePermit>,
) where
    S: Send + Sync + 'static,
    IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let security = &shared.config.security;
    let stream = match EncryptedStream::accept_any_token(stream, security, &shared.keypair).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "handshake failed; connection dropped");
            return;
        }
    };
    if stream.stable_link() {
        if shared.config.accept_stable {
            serve_stable_link(stream, remote_addr, local_addr, shared, permit).await;
        } else {
            tracing::warn!("StableIO link refused: this server does not accept StableIO");
        }
        return;
    }
    if !stream.client_token_ok() {
        tracing::warn!("client token rejected");
        refuse(
            stream,
            &shared.config,
            CloseCode::Unauthorized,
            "client token rejected",
        )
        .await;
        return;
    }
    let Some(permit) = permit else {
        let reason = format!(
            "server full ({} connections)",
            shared.config.max_connections
        );
        refuse(stream, &shared.config, CloseCode::ServerFull, &reason).await;
        return;
    };
    let info = SecurityInfo {
        suite: stream.suite(),
        peer_fingerprint: stream.peer_fingerprint(),
    };
    serve_secured(stream, info, remote_addr, local_addr, shared, permit, None).await;
}

/// Serves a link whose client spoke StableIO: opens a session (and serves a zs connection
/// over it) or hands the link to the session it resumes.
async fn serve_stable_link<S, IO>(
    stream: EncryptedStream<IO>,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    shared: Arc<Shared<S>>,
    permit: Option<OwnedSemaphorePermit>,
) where
    S: Send + Sync + 'static,
    IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let info = SecurityInfo {
        suite: stream.suite(),
        peer_fingerprint: stream.peer_fingerprint(),
    };
    let token_ok = stream.client_token_ok();
    let mut pending = match PendingLink::new(stream.link_secret()) {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "cannot start a StableIO link");
            return;
        }
    };
    let mut io: stable::BoxedLink = Box::new(stream);
    if !token_ok {
        tracing::warn!("client token rejected (StableIO link)");
        stable::refuse_link(io, &mut pending, RefuseReason::Unauthorized).await;
        return;
    }
    let timeout = shared.config.security.handshake_timeout;
    let (request, leftover) = match stable::read_link_request(&mut io, &mut pending, timeout).await
    {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "bad StableIO link; dropped");
            return;
        }
    };
    match request {
        LinkRequest::Open => {
            let config = &shared.config;
            let Some(permit) = permit else {
                tracing::warn!(
                    limit = config.max_connections,
                    "refusing StableIO session: server full"
                );
                stable::refuse_link(io, &mut pending, RefuseReason::TooManySessions).await;
                return;
            };
            if shared.stable_sessions.len() >= config.stable.max_sessions {
                tracing::warn!(
                    limit = config.stable.max_sessions,
                    "refusing StableIO session: too many sessions"
                );
                stable::refuse_link(io, &mut pending, RefuseReason::TooManySessions).await;
                return;
            }
            let now = std::time::Instant::now();
            let endpoint = match StableEndpoint::open_server(config.stable.clone(), &pending, now) {
                Ok(endpoint) => endpoint,
                Err(error) => {
                    tracing::error!(%error, "cannot open a StableIO session");
                    return;
                }
            };
            let Some(id) = endpoint.session_id() else {
                return;
            };
            let ended = shared.clone();
            let (stream, sender) = stable::serve(
                endpoint,
                io,
                leftover,
                config.stable.clone(),
                config.stable_link_timeout,
                move || ended.stable_sessions.remove(id),
            );
            shared.stable_sessions.insert(id, sender);
            tracing::debug!(?id, "StableIO session opened");
            // The session outlives links, so the zs idle timer must not end it while a
            // link is down: StableIO's give-up time does that.
            let mut session_config = config.clone();
            session_config.session.idle_timeout = None;
            serve_secured(
                stream,
                info,
                remote_addr,
                local_addr,
                shared,
                permit,
                Some(session_config),
            )
            .await;
        }
        LinkRequest::Resume {
            session_id,
            proof,
            next_expected,
        } => {
            drop(permit);
            let link = stable::IncomingLink {
                io,
                pending,
                proof,
                next_expected,
                leftover,
            };
            if let Err(mut link) = shared.stable_sessions.route(session_id, link) {
                tracing::debug!(?session_id, "resume for an unknown StableIO session");
                stable::refuse_link(link.io, &mut link.pending, RefuseReason::UnknownSession).await;
            }
        }
    }
}

/// Serves one connection whose security is settled: peer, hooks, driver.
async fn serve_secured<S, IO>(
    stream: IO,
    info: SecurityInfo,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    shared: Arc<Shared<S>>,
    permit: OwnedSemaphorePermit,
    session_config: Option<Config>,
) where
    S: Send + Sync + 'static,
    IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    tracing::debug!(suite = %info.suite, "handshake done");
    let (commands_sender, commands) = mpsc::unbounded_channel();
    let peer = Peer::new(
        remote_addr,
        local_addr,
        (shared.state_factory)(remote_addr),
        commands_sender,
        &shared.config,
        info,
    );
    shared
        .peers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(peer.id(), peer.clone());
    let (established_sender, established) = tokio::sync::oneshot::channel();
    let hook_peer = peer.clone();
    let hook_shared = shared.clone();
    let connected_hook = async move {
        if let Ok(Ok(())) = established.await {
            tracing::debug!(id = hook_peer.id(), "connected");
            if let Some(hook) = &hook_shared.on_connected {
                hook(&hook_peer);
            }
            true
        } else {
            false
        }
    };
    let parts = DriverParts {
        peer: peer.clone(),
        commands,
        registry: shared.registry.clone(),
        tasks: shared.tasks.clone(),
        drain: shared.drain.clone(),
        abort: shared.abort.clone(),
        established: Some(established_sender),
        offload: shared.offload.clone(),
    };
    let (reason, was_established) = tokio::join!(
        drive(
            stream,
            session_config.as_ref().unwrap_or(&shared.config),
            parts
        ),
        connected_hook
    );
    peer.mark_closed(reason.clone());
    shared
        .peers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&peer.id());
    tracing::debug!(%reason, "disconnected");
    if was_established && let Some(hook) = &shared.on_disconnected {
        hook(&peer, &reason);
    }
    drop(permit);
}

/// Controls a running server: peers, broadcast, statistics, shutdown.
pub struct ServerHandle<S = ()> {
    shared: Arc<Shared<S>>,
    local_addr: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl<S> std::fmt::Debug for ServerHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync + 'static> ServerHandle<S> {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every connected peer.
    pub fn peers(&self) -> Vec<Peer<S>> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The peer with id `id`, if connected.
    pub fn peer(&self, id: u64) -> Option<Peer<S>> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }

    /// The fingerprint of the server's static key, which clients may pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.shared.keypair.fingerprint()
    }

    /// Serves one more connection over an already connected byte stream — any `AsyncRead +
    /// AsyncWrite` (an in-memory pipe, a virtual stream of a multiplexed link) — exactly as
    /// an accepted TCP connection: handshake, limits, hooks, shutdown. `remote_addr` and
    /// `local_addr` are what its [`Peer`] reports.
    pub fn serve_stream<IO>(&self, stream: IO, remote_addr: SocketAddr, local_addr: SocketAddr)
    where
        IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if self.shared.stop_accepting.is_cancelled() {
            return;
        }
        let shared = self.shared.clone();
        let permit = self.shared.permits.clone().try_acquire_owned().ok();
        let span = tracing::info_span!("connection", peer = %remote_addr);
        self.shared.tasks.spawn(
            async move {
                serve_stream(stream, remote_addr, local_addr, shared, permit).await;
            }
            .instrument(span),
        );
    }

    /// Number of connected peers.
    pub fn connection_count(&self) -> usize {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Number of StableIO sessions held: connected ones and ones waiting for their client
    /// to resume (each is also one connection while its client has not given up).
    pub fn stable_session_count(&self) -> usize {
        self.shared.stable_sessions.len()
    }

    /// Sends a one-way console message to every peer; returns how many it was queued for.
    pub async fn broadcast_direct_console(
        &self,
        name: &str,
        text: &str,
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        for peer in self.peers() {
            match peer.send_direct_console(name, text).await {
                Ok(()) => sent += 1,
                Err(SendError::ConnectionClosed(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(sent)
    }

    /// Sends a one-way stream message to every peer; returns how many it was queued for.
    pub async fn broadcast_direct_stream(
        &self,
        name: &str,
        frame: &DataFrame,
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        for peer in self.peers() {
            match peer.send_direct_stream(name, frame).await {
                Ok(()) => sent += 1,
                Err(SendError::ConnectionClosed(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(sent)
    }

    /// Per-command statistics, sorted by command name.
    pub fn stats(&self) -> Vec<CommandStats> {
        self.shared.registry.stats()
    }

    /// Graceful shutdown: stop accepting, let every connection finish the requests in flight
    /// (new ones are refused with `ShuttingDown`), close them, and wait for all handlers —
    /// at most the configured `shutdown_grace`, after which remaining connections are
    /// closed hard.
    pub async fn shutdown(&self) {
        self.shared.stop_accepting.cancel();
        let accept = self
            .accept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(accept) = accept {
            let _ = accept.await;
        }
        self.shared.drain.cancel();
        self.shared.tasks.close();
        let grace = self.shared.config.shutdown_grace;
        if tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "shutdown grace elapsed; closing remaining connections"
            );
            self.shared.abort.cancel();
            // Connections end at once; a handler that never returns is left behind.
            if tokio::time::timeout(Duration::from_secs(1), self.shared.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("handlers still running after shutdown; leaving them");
            }
        }
        // StableIO drivers end once nothing can resume their sessions.
        self.shared.stable_sessions.clear();
    }
}

impl<S> Drop for ServerHandle<S> {
    fn drop(&mut self) {
        // A dropped handle stops the server rather than leaving it orphaned.
        self.shared.stop_accepting.cancel();
        self.shared.abort.cancel();
    }
}
