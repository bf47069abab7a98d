//! [`Server`]: accepts connections and serves registered commands.

use crate::dispatch::registry::forward_register;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zs_wire::handshake::{Fingerprint, StaticKeypair};

use crate::Config;
use crate::custom::{CustomPeers, CustomProtocol, CustomServe};
use crate::dispatch::context::AppState;
use crate::dispatch::registry::Commands;
use crate::dispatch::service::{Namespace, Service};
use crate::endpoint::handle::ServerHandle;
use crate::endpoint::peer::Peer;
use crate::error::DisconnectReason;
use crate::transport::stable;

type ConnectedHook<S> = Arc<dyn Fn(&Peer<S>) + Send + Sync>;
type DisconnectedHook<S> = Arc<dyn Fn(&Peer<S>, &DisconnectReason) + Send + Sync>;
type StateFactory<S> = Arc<dyn Fn(SocketAddr) -> S + Send + Sync>;

/// A bound server, not yet serving: register commands and hooks, then [`Server::spawn`] or
/// [`Server::run_until`].
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let mut server = zs::Server::bind("127.0.0.1:4920").await?;
/// server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
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
    app: AppState,
    custom: Option<Arc<dyn CustomServe>>,
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
            app: AppState::default(),
            custom: None,
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

    crate::dispatch::registry::command_kinds!(forward_register);

    /// Shares `state` with every handler of every connection, reached as
    /// [`ctx.app_state::<T>()`](crate::Context::app_state): a database, a cache, counters.
    /// One value per type; a second value of the same type replaces the first. (ZServer4D
    /// handlers reach such state as fields of the server object.)
    pub fn with_state<T: Send + Sync + 'static>(&mut self, state: T) -> &mut Self {
        self.app.insert(state);
        self
    }

    /// Installs a [`Service`]: its commands under its namespace.
    pub fn install(&mut self, service: impl Service<S>) -> &mut Self {
        Namespace::install(&mut self.commands, &mut self.app, service);
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

    /// Serves a foreign byte protocol on this port too (ZServer4D `cpCustom`): a codec and
    /// a handler, with this server's connection limit, idle timeout, shutdown and
    /// statistics. Beside the zs protocol unless the protocol is
    /// [`exclusive`](crate::custom::CustomProtocol::exclusive); see [`crate::custom`]. A
    /// second call replaces the first.
    pub fn serve_custom<C, Out>(&mut self, protocol: CustomProtocol<C, Out>) -> &mut Self
    where
        C: crate::custom::CustomCodec<Out>,
        Out: Send + Sync + 'static,
    {
        self.custom = Some(Arc::new(protocol));
        self
    }

    /// Starts serving in the background and returns a handle to control the server.
    pub fn spawn(self) -> ServerHandle<S> {
        let local_addr = self
            .listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let keypair = self.config.security.keypair.clone().unwrap_or(self.keypair);
        let stable_sessions =
            stable::Sessions::new(self.config.stable.max_sessions, self.config.stable_memory);
        let abort = CancellationToken::new();
        let shared = Arc::new(Shared {
            local_addr,
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
            drain: abort.child_token(),
            abort,
            stable_sessions,
            app: Arc::new(self.app),
            counters: Arc::default(),
            custom: self.custom,
            custom_peers: CustomPeers::default(),
        });
        let accept = tokio::spawn(super::serve::accept_loop(self.listener, shared.clone()));
        ServerHandle::new(shared, accept)
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        let handle = self.spawn();
        signal.await;
        handle.shutdown().await;
    }
}

/// What a running server's tasks and handles share.
pub(crate) struct Shared<S> {
    /// The listening address.
    pub(crate) local_addr: SocketAddr,
    pub(crate) keypair: StaticKeypair,
    /// One per connection being served; `max_connections` of them.
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) offload: Arc<Semaphore>,
    pub(crate) registry: Arc<Commands<S>>,
    pub(crate) config: Config,
    pub(crate) peers: Mutex<HashMap<u64, Peer<S>>>,
    pub(crate) state_factory: StateFactory<S>,
    pub(crate) on_connected: Option<ConnectedHook<S>>,
    pub(crate) on_disconnected: Option<DisconnectedHook<S>>,
    /// Connection drivers and handler tasks, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    pub(crate) stop_accepting: CancellationToken,
    /// Cancelled: close after draining. A child of `abort`, so a driver waits on this one
    /// token while it runs (see `driver::run`).
    pub(crate) drain: CancellationToken,
    /// Cancelled: close now.
    pub(crate) abort: CancellationToken,
    /// StableIO sessions, so a resuming link finds its session.
    pub(crate) stable_sessions: stable::Sessions,
    /// Application state for handlers.
    pub(crate) app: Arc<AppState>,
    /// Connection, handshake and transfer counters (the admin API's).
    pub(crate) counters: Arc<crate::metrics::ServerCounters>,
    /// The custom protocol served beside (or instead of) the zs protocol, and its connections.
    pub(crate) custom: Option<Arc<dyn CustomServe>>,
    pub(crate) custom_peers: CustomPeers,
}
