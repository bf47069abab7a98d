//! [`Client`]: one connection to a server, with its own command table so the server can call
//! back.

use crate::dispatch::registry::forward_register;
use std::sync::Arc;

use tokio::net::ToSocketAddrs;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use zs_wire::DataFrame;

use crate::Config;
use crate::dispatch::context::{AppState, HandlerEnv};
use crate::dispatch::registry::Commands;
use crate::dispatch::stats::CommandStats;
use crate::driver::{DriverParts, drive};
use crate::endpoint::peer::{Call, Peer, SecurityInfo};
use crate::error::{ConnectError, DisconnectReason, SendError};
use crate::transport::encrypted::EncryptedStream;

/// A connection to a zserver server (ZServer4D `TPhysicsClient`).
///
/// Calls go out with [`Client::call_console`] / [`Client::call_stream`]; many may be in
/// flight at once. Commands registered on the [`ClientBuilder`] answer calls the server makes
/// to this client. Dropping the client closes the connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = zs::Client::connect("127.0.0.1:4920").await?;
/// assert_eq!(client.call_console("echo", "hello").await?, "hello");
/// # Ok(()) }
/// ```
pub struct Client<S = ()> {
    peer: Peer<S>,
    registry: Arc<Commands<S>>,
    app: Arc<AppState>,
    _close_on_drop: DropGuard,
}

impl<S> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Client<()> {
    /// Connects with the default configuration and no client-side commands.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, ConnectError> {
        ClientBuilder::new().connect(addr).await
    }

    /// A builder to set configuration, client-side commands and state before connecting.
    pub fn builder() -> ClientBuilder<()> {
        ClientBuilder::new()
    }
}

impl<S: Send + Sync + 'static> Client<S> {
    /// The connection handle (clone it to call from other tasks).
    pub fn peer(&self) -> &Peer<S> {
        &self.peer
    }

    /// See [`Peer::call_console`].
    pub fn call_console(&self, name: &str, text: &str) -> Call<'_, S, String> {
        self.peer.call_console(name, text)
    }

    /// See [`Peer::call_stream`].
    pub fn call_stream(&self, name: &str, frame: &DataFrame) -> Call<'_, S, DataFrame> {
        self.peer.call_stream(name, frame)
    }

    /// See [`Peer::send_direct_console`].
    pub async fn send_direct_console(&self, name: &str, text: &str) -> Result<(), SendError> {
        self.peer.send_direct_console(name, text).await
    }

    /// See [`Peer::send_direct_stream`].
    pub async fn send_direct_stream(&self, name: &str, frame: &DataFrame) -> Result<(), SendError> {
        self.peer.send_direct_stream(name, frame).await
    }

    /// The application state of type `T` given to
    /// [`ClientBuilder::with_state`] or added by an installed service
    /// ([`Namespace::insert_app_state`](crate::Namespace::insert_app_state)); `None` if there
    /// is none. Typed clients use it to find the state of their client-side service, e.g.
    /// [`FileClient`](crate::services::files::FileClient) finds its
    /// [`FileSink`](crate::services::files::FileSink).
    pub fn app_state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.app.get::<T>()
    }

    /// Statistics of the client-side commands.
    pub fn stats(&self) -> Vec<CommandStats> {
        self.registry.stats()
    }

    /// Closes after every request in flight both ways is answered, and waits for the end.
    pub async fn close(self) -> DisconnectReason {
        self.peer.close_after_flush("client closed").await;
        self.peer.closed().await
    }
}

/// Configures a [`Client`] before it connects.
pub struct ClientBuilder<S = ()> {
    commands: Commands<S>,
    config: Config,
    state: S,
    app: AppState,
}

impl ClientBuilder<()> {
    /// A builder with the default configuration and no state.
    pub fn new() -> Self {
        Self::with_connection_state(())
    }
}

impl Default for ClientBuilder<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Send + Sync + 'static> ClientBuilder<S> {
    /// A builder whose connection carries `state` (reachable as `ctx.state()` in client-side
    /// handlers and `client.peer().state()`; ZServer4D `UserDefine`).
    pub fn with_connection_state(state: S) -> Self {
        Self {
            commands: Commands::new(),
            config: Config::default(),
            state,
            app: AppState::default(),
        }
    }

    /// Shares `state` with the client's handlers, reached as
    /// [`ctx.app_state::<T>()`](crate::Context::app_state); one value per type.
    pub fn with_state<T: Send + Sync + 'static>(&mut self, state: T) -> &mut Self {
        self.app.insert(state);
        self
    }

    /// Installs a [`Service`](crate::Service) the server may call: its commands under its
    /// namespace.
    pub fn install(&mut self, service: impl crate::Service<S>) -> &mut Self {
        crate::dispatch::service::Namespace::install(&mut self.commands, &mut self.app, service);
        self
    }

    /// The configuration.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Replaces the configuration.
    pub fn config(&mut self, config: Config) -> &mut Self {
        self.config = config;
        self
    }

    /// The command table the server may call.
    pub fn commands_mut(&mut self) -> &mut Commands<S> {
        &mut self.commands
    }

    crate::dispatch::registry::command_kinds!(forward_register);

    /// Connects over TCP, runs the secure handshake (verifying a pinned fingerprint if one is
    /// set) and waits for the server's preamble. When `addr` gives several addresses (a name
    /// with A and AAAA records), they are raced with Happy Eyeballs (RFC 8305).
    pub async fn connect(self, addr: impl ToSocketAddrs) -> Result<Client<S>, ConnectError> {
        let addresses: Vec<_> = tokio::net::lookup_host(addr).await?.collect();
        let timeout = self.config.connect_timeout;
        let connecting = crate::transport::entries::connect_tcp(
            &addresses,
            None,
            self.config.connection_attempt_delay,
            timeout,
        );
        let (stream, _) = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| ConnectError::Timeout(timeout))??;
        let remote_addr = stream.peer_addr()?;
        let local_addr = stream.local_addr()?;
        self.connect_stream(stream, remote_addr, local_addr).await
    }

    /// Connects with StableIO: the connection survives dropped TCP connections. When one
    /// drops, the client reconnects (with backoff), proves it owns the session with a secret
    /// from the handshake, and both sides resend whatever the other missed: calls in flight,
    /// pushes and transfers carry on without an error, a loss or a duplicate. Only when no
    /// link can be made within the give-up time (`Config::stable_config`, default 5 minutes)
    /// does the connection end, with a "StableIO session expired" reason.
    ///
    /// Every link runs its own handshake (pin, token and suites as for [`Self::connect`]);
    /// the server accepts StableIO and plain clients on one port.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = zs::Client::builder().connect_stable("127.0.0.1:4920").await?;
    /// let answer = client.call_console("echo", "still here").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_stable(self, addr: impl ToSocketAddrs) -> Result<Client<S>, ConnectError> {
        let addresses: Vec<_> = tokio::net::lookup_host(addr).await?.collect();
        self.connect_pool(addresses).await
    }

    /// A raw StableIO byte stream to `addr`, without the zs protocol on it: for a custom
    /// protocol ([`crate::custom`]) that should survive dropped connections. The server
    /// serves it with its custom protocol (a stream that does not start with the zs
    /// preamble is taken for it). Pin, token, suites and StableIO settings come from this
    /// builder's configuration; handlers registered on the builder are not used.
    pub async fn connect_stable_stream(
        self,
        addr: impl ToSocketAddrs,
    ) -> Result<crate::transport::StableStream, ConnectError> {
        let addresses: Vec<_> = tokio::net::lookup_host(addr).await?.collect();
        let (stream, _first) = self.stable_session(addresses.into()).await?;
        Ok(stream)
    }

    /// A StableIO session through `entries`, with this builder's security and timing.
    async fn stable_session(
        &self,
        entries: crate::Entries,
    ) -> Result<
        (
            crate::transport::StableStream,
            crate::transport::stable::EncryptedInfo,
        ),
        ConnectError,
    > {
        crate::transport::stable::connect(
            entries,
            self.config.security.clone(),
            self.config.connect_timeout,
            self.config.connection_attempt_delay,
            self.config.stable.clone(),
            self.config.stable_link_timeout,
        )
        .await
    }

    /// Connects with StableIO through an entry pool (ZServer4D's "IP pools and entry
    /// networks"): several addresses that reach the same server — its interfaces on
    /// separate networks, or relays in front of it. The pool is asked again before every
    /// link ([`Entries::Name`] resolved anew, an [`EntrySource`] such as the dispatcher's
    /// HostQuery queried anew), the addresses are raced with Happy Eyeballs (RFC 8305), and
    /// after a lost link the entry that carried it is tried last. The session itself lives
    /// in the server process, so the client resumes it through whichever entry answers:
    /// calls in flight carry on with nothing lost or repeated.
    ///
    /// How fast a dead entry is left is `Config::stable_link_timeout` (silence before a
    /// link counts as lost; keep it above `Config::keepalive_interval`) plus one connect.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let mut builder = zs::Client::builder();
    /// builder
    ///     .config_mut()
    ///     .keepalive_interval(Some(Duration::from_millis(100)))
    ///     .stable_link_timeout(Duration::from_millis(500));
    /// let entries = vec!["[2001:db8::10]:4920".parse()?, "198.51.100.10:4920".parse()?];
    /// let client = builder.connect_pool(entries).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`Entries::Name`]: crate::Entries::Name
    /// [`EntrySource`]: crate::EntrySource
    pub async fn connect_pool(
        mut self,
        entries: impl Into<crate::Entries>,
    ) -> Result<Client<S>, ConnectError> {
        let (stream, first) = self.stable_session(entries.into()).await?;
        // The session outlives links: StableIO's give-up time, not the idle timer, ends it.
        self.config.session.idle_timeout = None;
        let info = SecurityInfo {
            suite: first.suite,
            peer_fingerprint: first.peer_fingerprint,
        };
        self.start(stream, info, first.remote, first.local).await
    }

    /// Runs the client over an already connected byte stream — any `AsyncRead +
    /// AsyncWrite`: a TCP stream, an in-memory pipe, a virtual stream. `remote_addr` and
    /// `local_addr` are what [`Peer::remote_addr`] and [`Peer::local_addr`] report.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let (client_side, _server_side) = tokio::io::duplex(64 * 1024);
    /// let here: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    /// // ... hand `_server_side` to `ServerHandle::serve_stream`, then:
    /// # drop(_server_side); let _ =
    /// zs::Client::builder().connect_stream(client_side, here, here).await;
    /// # Ok(()) }
    /// ```
    pub async fn connect_stream<IO>(
        self,
        stream: IO,
        remote_addr: std::net::SocketAddr,
        local_addr: std::net::SocketAddr,
    ) -> Result<Client<S>, ConnectError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let stream = EncryptedStream::connect(stream, &self.config.security).await?;
        let info = SecurityInfo {
            suite: stream.suite(),
            peer_fingerprint: stream.peer_fingerprint(),
        };
        tracing::debug!(suite = %info.suite, server = %info.peer_fingerprint, "handshake done");
        self.start(stream, info, remote_addr, local_addr).await
    }

    /// Runs the driver over a stream whose security is settled and waits for the server's
    /// preamble.
    async fn start<IO>(
        self,
        stream: IO,
        info: SecurityInfo,
        remote_addr: std::net::SocketAddr,
        local_addr: std::net::SocketAddr,
    ) -> Result<Client<S>, ConnectError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let timeout = self.config.connect_timeout;
        let (commands_sender, commands) = mpsc::unbounded_channel();
        let peer = Peer::new(
            remote_addr,
            local_addr,
            self.state,
            commands_sender,
            &self.config,
            info,
        );
        let registry = Arc::new(self.commands);
        let app = Arc::new(self.app);
        let abort = CancellationToken::new();
        let (established_sender, established) = oneshot::channel();
        let parts = DriverParts {
            peer: peer.clone(),
            commands,
            registry: registry.clone(),
            tasks: TaskTracker::new(),
            drain: abort.child_token(),
            abort: abort.clone(),
            established: Some(established_sender),
            env: Arc::new(HandlerEnv {
                app: app.clone(),
                server: None,
                offload: Arc::new(tokio::sync::Semaphore::new(self.config.max_offload)),
            }),
            counters: None,
        };
        let driver = drive(stream, &self.config, parts);
        let driver_peer = peer.clone();
        let span = tracing::info_span!("client", server = %remote_addr);
        tokio::spawn(
            async move {
                let reason = driver.await;
                tracing::debug!(%reason, "disconnected");
                driver_peer.mark_closed(reason);
            }
            .instrument(span),
        );
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(Ok(()))) => Ok(Client {
                peer,
                registry,
                app,
                _close_on_drop: abort.drop_guard(),
            }),
            Ok(Ok(Err(reason))) => Err(ConnectError::Refused(reason)),
            Ok(Err(_)) => Err(ConnectError::Refused(peer.closed().await)),
            Err(_) => {
                abort.cancel();
                Err(ConnectError::Timeout(timeout))
            }
        }
    }
}
