//! [`NatServer`]: the public side. It accepts agent links (or dials agents, in reverse
//! mode), registers their mappings, opens each mapping's public port while an agent serves
//! it, and forwards every public connection to an agent on a virtual stream of its own.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use zs::mux::{MuxLink, Role};
use zs::{EncryptedStream, Fingerprint, StaticKeypair};

use crate::Secret;
use crate::backoff::Backoff;
use crate::balance::Balancer;
use crate::codec::{
    CONTROL_SERVICE, ControlMessage, PROTOCOL_VERSION, RefuseReason, mapping_service,
};
use crate::config::{ConfigError, LinkSettings, ServerConfig};
use crate::link::{ControlChannel, Cuttable, LinkError, Metered, within};
use crate::stats::{AgentStats, MappingCounters, MappingStats, ServerStats};

/// The console command of the admin endpoint that returns [`ServerStats`] as JSON.
pub const STATS_COMMAND: &str = "nat.stats";

/// Registrations one agent link may attempt; past it the link is closed.
const MAX_REGISTRATIONS_PER_LINK: usize = 1024;

/// How long an agent that left gracefully may keep its link for connections in flight.
const LEAVE_DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// How long a peer that broke the protocol gets to read our `Error` before the link is cut.
const ERROR_LINGER: Duration = Duration::from_secs(2);

/// A server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listening address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The key file could not be read, parsed or created, or no key could be made.
    #[error(transparent)]
    KeyFile(#[from] zs::key_file::KeyFileError),
}

/// The public side of XNat, configured and ready to [`start`](Self::start).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use zs_nat::{NatServer, ServerConfig, ServerMapping};
/// let mut config = ServerConfig::default();
/// config.mappings.insert("web".into(), ServerMapping::new("0.0.0.0:8080", "change-me"));
/// let server = NatServer::new(config).start().await?;
/// println!("agents connect to {:?}, pin {}", server.local_addr(), server.fingerprint());
/// // ... later
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatServer {
    config: ServerConfig,
    keypair: Option<StaticKeypair>,
}

impl NatServer {
    /// A server with `config`.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            keypair: None,
        }
    }

    /// The server's identity (instead of `key_file` or a fresh key).
    pub fn with_keypair(mut self, keypair: StaticKeypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Validates the configuration, binds the agent port (and the admin endpoint) and starts
    /// serving in the background. Public ports open later, as agents register.
    pub async fn start(self) -> Result<NatServerHandle, ServerError> {
        let config = self.config;
        config.validate()?;
        let link = config.link_settings()?;
        let keypair = match (self.keypair, &config.key_file) {
            (Some(keypair), _) => keypair,
            (None, Some(path)) => {
                let (keypair, created) = zs::key_file::load_or_create(path)?;
                if created {
                    info!(path = %path.display(), "created a new server key");
                }
                keypair
            }
            (None, None) => StaticKeypair::generate()
                .map_err(|error| zs::key_file::KeyFileError::Generate(error.to_string()))?,
        };
        let listener =
            if config.listen.is_empty() {
                None
            } else {
                Some(TcpListener::bind(&config.listen).await.map_err(|source| {
                    ServerError::Bind {
                        address: config.listen.clone(),
                        source,
                    }
                })?)
            };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let mappings = config
            .mappings
            .iter()
            .map(|(name, mapping)| {
                let entry = Mapping {
                    name: name.clone(),
                    public: mapping.public.clone(),
                    token: mapping.token.clone(),
                    counters: Arc::new(MappingCounters::default()),
                    permits: Arc::new(Semaphore::new(mapping.max_connections)),
                    state: Mutex::new(MappingState::default()),
                };
                (name.clone(), Arc::new(entry))
            })
            .collect();
        let shared = Arc::new(Shared {
            link,
            keypair,
            open_timeout: Duration::from_secs(config.open_timeout_secs.max(1)),
            mappings,
            agents: Mutex::new(BTreeMap::new()),
            next_agent: AtomicU64::new(1),
            agent_permits: Arc::new(Semaphore::new(config.max_agents)),
            accepting: CancellationToken::new(),
            closing: CancellationToken::new(),
            tasks: TaskTracker::new(),
            connections: TaskTracker::new(),
        });
        let admin = match &config.admin {
            Some(address) => Some(Arc::new(
                start_admin(address, &shared, config.admin_token.as_ref()).await?,
            )),
            None => None,
        };
        if let Some(listener) = listener {
            shared.tasks.spawn(accept_agents(shared.clone(), listener));
            info!(address = ?local_addr, fingerprint = %shared.keypair.fingerprint(), "accepting agents");
        }
        for address in &config.dial {
            let backoff = Backoff::new(
                Duration::from_millis(config.reconnect_min_ms),
                Duration::from_millis(config.reconnect_max_ms),
            );
            shared
                .tasks
                .spawn(dial_agent(shared.clone(), address.clone(), backoff));
        }
        if config.stats_interval_secs > 0 {
            shared.tasks.spawn(log_stats(
                shared.clone(),
                Duration::from_secs(config.stats_interval_secs),
            ));
        }
        Ok(NatServerHandle {
            shared,
            local_addr,
            admin_addr: admin.as_ref().map(|admin| admin.local_addr()),
            admin,
            grace: Duration::from_secs(config.shutdown_grace_secs),
        })
    }
}

/// Controls a running [`NatServer`]. Dropping it stops the server at once (links cut);
/// [`Self::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct NatServerHandle {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    admin: Option<Arc<zs::ServerHandle>>,
    admin_addr: Option<SocketAddr>,
    grace: Duration,
}

impl NatServerHandle {
    /// The address agents connect to (`None` when `listen` is empty).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The admin endpoint's address, if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The fingerprint agents pin (`pin = "..."` in their configuration).
    pub fn fingerprint(&self) -> Fingerprint {
        self.shared.keypair.fingerprint()
    }

    /// The address mapping `name`'s public port is bound to, while it is open.
    pub fn public_addr(&self, name: &str) -> Option<SocketAddr> {
        let mapping = self.shared.mappings.get(name)?;
        mapping.lock().port.as_ref().map(|port| port.address)
    }

    /// Counters of every mapping and the agents connected.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// Stops accepting agents and public connections (public ports close), lets forwarded
    /// connections finish for up to `shutdown_grace_secs`, then closes every agent link.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.accepting.cancel();
        shared.connections.close();
        if !shared.connections.is_empty() {
            info!(
                connections = shared.connections.len(),
                grace = ?self.grace,
                "shutting down: waiting for forwarded connections"
            );
        }
        let _ = tokio::time::timeout(self.grace, shared.connections.wait()).await;
        shared.closing.cancel();
        shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), shared.tasks.wait())
            .await
            .is_err()
        {
            warn!("some agent links did not close in time");
        }
        if let Some(admin) = &self.admin {
            admin.shutdown().await;
        }
        info!("server stopped");
    }
}

impl Drop for NatServerHandle {
    fn drop(&mut self) {
        self.shared.accepting.cancel();
        self.shared.closing.cancel();
        if let (Some(admin), Ok(runtime)) =
            (self.admin.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move { admin.shutdown().await });
        }
    }
}

type AgentId = u64;

struct Shared {
    link: LinkSettings,
    keypair: StaticKeypair,
    open_timeout: Duration,
    mappings: BTreeMap<String, Arc<Mapping>>,
    agents: Mutex<BTreeMap<AgentId, AgentStats>>,
    next_agent: AtomicU64,
    agent_permits: Arc<Semaphore>,
    /// Cancelled when shutdown starts: nothing new is accepted, public ports close.
    accepting: CancellationToken,
    /// Cancelled when the grace period is over: every agent link is cut.
    closing: CancellationToken,
    /// Every task but the forwarded connections.
    tasks: TaskTracker,
    /// One task per forwarded public connection.
    connections: TaskTracker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("mappings", &self.mappings.keys())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stats(&self) -> ServerStats {
        ServerStats {
            agents: lock(&self.agents).values().cloned().collect(),
            mappings: self.mappings.values().map(|m| m.stats()).collect(),
        }
    }
}

/// One configured mapping and its live state.
struct Mapping {
    name: String,
    public: String,
    token: Secret,
    counters: Arc<MappingCounters>,
    permits: Arc<Semaphore>,
    state: Mutex<MappingState>,
}

#[derive(Default)]
struct MappingState {
    balancer: Balancer<AgentId>,
    routes: HashMap<AgentId, MuxLink>,
    port: Option<PublicPort>,
}

struct PublicPort {
    address: SocketAddr,
    stop: CancellationToken,
}

enum AttachError {
    AlreadyRegistered,
    Bind(io::Error),
}

impl Mapping {
    fn lock(&self) -> MutexGuard<'_, MappingState> {
        lock(&self.state)
    }

    fn stats(&self) -> MappingStats {
        let state = self.lock();
        let [total, active, bytes_in, bytes_out, refused] = self.counters.load();
        MappingStats {
            name: self.name.clone(),
            public: self.public.clone(),
            bound: state.port.as_ref().map(|port| port.address.to_string()),
            agents: state.routes.len(),
            connections_total: total,
            connections_active: active,
            bytes_in,
            bytes_out,
            refused,
        }
    }

    /// Adds an agent; opens the public port if it is the first. Retries briefly when the
    /// port is still held by the accept loop that just closed it.
    async fn attach(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        agent: AgentId,
        link: &MuxLink,
        weight: u16,
    ) -> Result<(SocketAddr, usize), (RefuseReason, String)> {
        let mut attempts = 0;
        loop {
            match self.try_attach(shared, agent, link, weight) {
                Ok(attached) => return Ok(attached),
                Err(AttachError::AlreadyRegistered) => {
                    return Err((
                        RefuseReason::AlreadyRegistered,
                        format!("mapping {:?} is already registered on this link", self.name),
                    ));
                }
                Err(AttachError::Bind(error))
                    if error.kind() == io::ErrorKind::AddrInUse && attempts < 20 =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(AttachError::Bind(error)) => {
                    return Err((
                        RefuseReason::PublicPortUnavailable,
                        format!("the server cannot open {}: {error}", self.public),
                    ));
                }
            }
        }
    }

    fn try_attach(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        agent: AgentId,
        link: &MuxLink,
        weight: u16,
    ) -> Result<(SocketAddr, usize), AttachError> {
        let mut state = self.lock();
        if state.routes.contains_key(&agent) {
            return Err(AttachError::AlreadyRegistered);
        }
        let address = match &state.port {
            Some(port) => port.address,
            None => {
                let listener = bind_public(&self.public).map_err(AttachError::Bind)?;
                let address = listener.local_addr().map_err(AttachError::Bind)?;
                let stop = shared.accepting.child_token();
                shared.tasks.spawn(accept_public(
                    self.clone(),
                    shared.clone(),
                    listener,
                    stop.clone(),
                ));
                info!(mapping = %self.name, %address, "public port opened");
                state.port = Some(PublicPort { address, stop });
                address
            }
        };
        state.balancer.insert(agent, u32::from(weight));
        state.routes.insert(agent, link.clone());
        Ok((address, state.routes.len()))
    }

    /// Removes an agent; closes the public port if it was the last. Connections forwarded
    /// to other agents are not touched.
    fn detach(&self, agent: AgentId) {
        let mut state = self.lock();
        if state.routes.remove(&agent).is_none() {
            return;
        }
        state.balancer.remove(agent);
        if state.routes.is_empty()
            && let Some(port) = state.port.take()
        {
            port.stop.cancel();
            info!(mapping = %self.name, address = %port.address, "public port closed: no agent left");
        }
    }

    /// The agent for a new connection (counted active there), skipping `tried`.
    fn pick(&self, tried: &[AgentId]) -> Option<(AgentId, MuxLink)> {
        let mut state = self.lock();
        let agent = state.balancer.pick_excluding(tried)?;
        match state.routes.get(&agent) {
            Some(link) => Some((agent, link.clone())),
            None => {
                state.balancer.release(agent);
                None
            }
        }
    }
}

/// Counts a forwarded connection on its agent until dropped.
struct AgentLoad {
    mapping: Arc<Mapping>,
    agent: AgentId,
}

impl Drop for AgentLoad {
    fn drop(&mut self) {
        self.mapping.lock().balancer.release(self.agent);
    }
}

/// Counts a connection as active in its mapping until dropped.
struct ActiveConnection(Arc<MappingCounters>);

impl ActiveConnection {
    fn new(counters: &Arc<MappingCounters>) -> Self {
        counters.connections_total.fetch_add(1, Ordering::Relaxed);
        counters.connections_active.fetch_add(1, Ordering::Relaxed);
        Self(counters.clone())
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Binds a public port now (synchronously, so a failure is reported to the registering
/// agent).
fn bind_public(address: &str) -> io::Result<TcpListener> {
    let address = std::net::ToSocketAddrs::to_socket_addrs(address)?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolves to nothing",
            )
        })?;
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

async fn accept_public(
    mapping: Arc<Mapping>,
    shared: Arc<Shared>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!(mapping = %mapping.name, %error, "cannot accept a public connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = mapping.permits.clone().try_acquire_owned() else {
            mapping.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(mapping = %mapping.name, %peer, "max_connections reached; public connection closed");
            continue;
        };
        shared.connections.spawn(forward_public(
            mapping.clone(),
            shared.open_timeout,
            socket,
            peer,
            permit,
        ));
    }
}

/// Forwards one public connection through an agent.
async fn forward_public(
    mapping: Arc<Mapping>,
    open_timeout: Duration,
    socket: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    let service = mapping_service(&mapping.name);
    let mut tried = Vec::new();
    let (_load, mut stream) = loop {
        let Some((agent, link)) = mapping.pick(&tried) else {
            mapping.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(mapping = %mapping.name, %peer, "no agent accepted the connection; closed");
            return;
        };
        let load = AgentLoad {
            mapping: mapping.clone(),
            agent,
        };
        match tokio::time::timeout(open_timeout, link.connect(&service)).await {
            Ok(Ok(stream)) => break (load, stream),
            Ok(Err(error)) => {
                debug!(mapping = %mapping.name, agent, %error, "agent did not take a connection");
            }
            Err(_) => {
                warn!(mapping = %mapping.name, agent, "agent did not take a connection in time");
            }
        }
        tried.push(agent);
    };
    let _active = ActiveConnection::new(&mapping.counters);
    let header = match (ControlMessage::Open { peer }).to_bytes() {
        Ok(header) => header,
        Err(error) => {
            warn!(%error, "cannot encode a stream header");
            return;
        }
    };
    if stream.write_all(&header).await.is_err() {
        return;
    }
    let mut public = Metered::new(socket, mapping.counters.clone());
    match crate::relay::relay(&mut public, &mut stream).await {
        Ok((to_service, to_user)) => {
            debug!(mapping = %mapping.name, %peer, to_service, to_user, "connection finished");
        }
        Err(error) => {
            debug!(mapping = %mapping.name, %peer, %error, "connection ended by an error");
        }
    }
}

async fn accept_agents(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = shared.accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "cannot accept an agent connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = shared.agent_permits.clone().try_acquire_owned() else {
            warn!(%address, "max_agents reached; agent connection closed");
            continue;
        };
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            serve_agent(task_shared, socket, address).await;
            drop(permit);
        });
    }
}

/// Reverse mode: keeps a link to the agent listening at `address`.
async fn dial_agent(shared: Arc<Shared>, address: String, mut backoff: Backoff) {
    loop {
        let connect = within(
            shared.link.handshake_timeout,
            "the TCP connection",
            TcpStream::connect(address.as_str()),
        );
        let connected = tokio::select! {
            () = shared.accepting.cancelled() => break,
            connected = connect => connected,
        };
        match connected {
            Ok(socket) => {
                let peer = socket
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                if serve_agent(shared.clone(), socket, peer).await {
                    backoff.reset();
                }
            }
            Err(error) => debug!(agent = %address, %error, "cannot dial the agent"),
        }
        let delay = backoff.next_delay();
        debug!(agent = %address, ?delay, "redialing the agent");
        tokio::select! {
            () = shared.accepting.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Serves one agent link until it ends; true if a mapping was registered on it.
async fn serve_agent(shared: Arc<Shared>, socket: TcpStream, address: SocketAddr) -> bool {
    let _ = socket.set_nodelay(true);
    let encrypted =
        match EncryptedStream::accept(socket, &shared.link.security, &shared.keypair).await {
            Ok(encrypted) => encrypted,
            Err(error) => {
                warn!(%address, %error, "agent handshake failed; connection closed");
                return false;
            }
        };
    let channel_binding = encrypted.channel_binding();
    let cut = shared.closing.child_token();
    let link = MuxLink::new(
        Cuttable::new(encrypted, &cut),
        Role::Acceptor,
        shared.link.mux.clone(),
    );
    let served = run_agent_link(&shared, &link, address, &channel_binding).await;
    cut.cancel();
    served
}

async fn run_agent_link(
    shared: &Arc<Shared>,
    link: &MuxLink,
    address: SocketAddr,
    channel_binding: &[u8; 32],
) -> bool {
    let limit = shared.link.handshake_timeout;
    let control = match link.listen(CONTROL_SERVICE) {
        Ok(mut listener) => {
            within(limit, "the control stream", async move {
                listener.accept().await.ok_or(LinkError::Closed)
            })
            .await
        }
        Err(error) => Err(error.into()),
    };
    let mut channel = match control {
        Ok(stream) => ControlChannel::new(stream),
        Err(error) => {
            warn!(%address, %error, "agent opened no control stream; link closed");
            return false;
        }
    };
    let name = match within(limit, "Hello", channel.receive()).await {
        Ok(Some(ControlMessage::Hello { version, agent })) if version == PROTOCOL_VERSION => agent,
        Ok(Some(ControlMessage::Hello { version, .. })) => {
            warn!(%address, version, "agent speaks another protocol version; link closed");
            let message = format!(
                "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
            );
            channel.close_with_error(message, ERROR_LINGER).await;
            return false;
        }
        Ok(other) => {
            warn!(%address, message = ?other, "agent did not start with Hello; link closed");
            channel
                .close_with_error("expected Hello".into(), ERROR_LINGER)
                .await;
            return false;
        }
        Err(error) => {
            warn!(%address, %error, "agent link failed before Hello; link closed");
            if matches!(error, LinkError::Codec(_)) {
                channel
                    .close_with_error(error.to_string(), ERROR_LINGER)
                    .await;
            }
            return false;
        }
    };
    if channel
        .send(&ControlMessage::Welcome {
            version: PROTOCOL_VERSION,
        })
        .await
        .is_err()
    {
        return false;
    }
    let id = shared.next_agent.fetch_add(1, Ordering::Relaxed);
    let label = if name.is_empty() {
        address.to_string()
    } else {
        format!("{name:?} ({address})")
    };
    lock(&shared.agents).insert(
        id,
        AgentStats {
            id,
            name,
            address: address.to_string(),
            mappings: Vec::new(),
        },
    );
    info!(agent = %label, "agent connected");
    let mut registered: Vec<Arc<Mapping>> = Vec::new();
    let mut served = false;
    let mut attempts = 0;
    let reason = loop {
        let message = tokio::select! {
            () = shared.closing.cancelled() => break "the server is shutting down".to_owned(),
            message = channel.receive() => message,
        };
        match message {
            Ok(Some(ControlMessage::Register {
                mapping,
                proof,
                weight,
            })) => {
                attempts += 1;
                if attempts > MAX_REGISTRATIONS_PER_LINK {
                    channel
                        .close_with_error("too many registrations".into(), ERROR_LINGER)
                        .await;
                    break "too many registrations".to_owned();
                }
                let reply = register(
                    shared,
                    id,
                    link,
                    &label,
                    &mapping,
                    &TokenProof {
                        proof,
                        channel_binding,
                    },
                    weight,
                    &mut registered,
                )
                .await;
                if let Err(error) = channel.send(&reply).await {
                    break format!("control stream failed: {error}");
                }
            }
            Ok(Some(ControlMessage::Error { message })) => {
                break format!("the agent reported: {message:?}");
            }
            Ok(Some(other)) => {
                warn!(agent = %label, message = ?other, "unexpected control message; link closed");
                channel
                    .close_with_error("unexpected control message".into(), ERROR_LINGER)
                    .await;
                break "protocol violation".to_owned();
            }
            Ok(None) => {
                // A graceful leave: no new connections for this agent; those in flight get
                // the agent's grace period, after which it closes the link.
                for mapping in registered.drain(..) {
                    mapping.detach(id);
                    served = true;
                }
                channel.finish().await;
                let drained = async {
                    while link.ended().is_none() && link.stream_count() > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    () = drained => {}
                    () = shared.closing.cancelled() => {}
                    () = tokio::time::sleep(LEAVE_DRAIN_LIMIT) => {}
                }
                break "the agent left".to_owned();
            }
            Err(LinkError::Codec(error)) => {
                warn!(agent = %label, %error, "malformed control message; link closed");
                channel
                    .close_with_error(format!("malformed control message: {error}"), ERROR_LINGER)
                    .await;
                break "malformed control message".to_owned();
            }
            Err(error) => break format!("link lost: {error}"),
        }
    };
    for mapping in &registered {
        mapping.detach(id);
    }
    lock(&shared.agents).remove(&id);
    info!(agent = %label, %reason, "agent disconnected");
    served || !registered.is_empty()
}

/// A `Register`'s proof of the mapping token, and the link it must be bound to.
struct TokenProof<'a> {
    proof: [u8; 32],
    channel_binding: &'a [u8; 32],
}

/// Handles one `Register`: the reply to send.
#[allow(clippy::too_many_arguments)]
async fn register(
    shared: &Arc<Shared>,
    id: AgentId,
    link: &MuxLink,
    label: &str,
    name: &str,
    token: &TokenProof<'_>,
    weight: u16,
    registered: &mut Vec<Arc<Mapping>>,
) -> ControlMessage {
    let refuse = |reason: RefuseReason, message: String| {
        warn!(agent = %label, mapping = ?name, %reason, "{message}");
        ControlMessage::Refused {
            mapping: name.to_owned(),
            reason,
            message,
        }
    };
    let Some(mapping) = shared.mappings.get(name) else {
        return refuse(
            RefuseReason::UnknownMapping,
            format!("the server has no mapping {name:?}"),
        );
    };
    if !mapping
        .token
        .verify_register_proof(name, token.channel_binding, &token.proof)
    {
        return refuse(
            RefuseReason::WrongToken,
            format!("wrong token for mapping {name:?}"),
        );
    }
    match mapping.attach(shared, id, link, weight).await {
        Ok((address, agents)) => {
            registered.push(mapping.clone());
            if let Some(agent) = lock(&shared.agents).get_mut(&id) {
                agent.mappings.push(name.to_owned());
            }
            info!(agent = %label, mapping = %name, public = %address, agents, "mapping registered");
            ControlMessage::Registered {
                mapping: name.to_owned(),
                public: address.to_string(),
            }
        }
        Err((reason, message)) => refuse(reason, message),
    }
}

/// Logs each mapping's counters every `interval` when they changed.
async fn log_stats(shared: Arc<Shared>, interval: Duration) {
    let mut last: HashMap<String, MappingStats> = HashMap::new();
    loop {
        tokio::select! {
            () = shared.accepting.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        for mapping in shared.mappings.values() {
            let stats = mapping.stats();
            if last.get(&stats.name) == Some(&stats) {
                continue;
            }
            info!(
                mapping = %stats.name,
                agents = stats.agents,
                active = stats.connections_active,
                total = stats.connections_total,
                bytes_in = stats.bytes_in,
                bytes_out = stats.bytes_out,
                refused = stats.refused,
                "mapping statistics"
            );
            last.insert(stats.name.clone(), stats);
        }
    }
}

/// The admin endpoint: a zs server answering [`STATS_COMMAND`].
async fn start_admin(
    address: &str,
    shared: &Arc<Shared>,
    token: Option<&Secret>,
) -> Result<zs::ServerHandle, ServerError> {
    let mut server = zs::Server::bind(address)
        .await
        .map_err(|source| ServerError::Bind {
            address: address.to_owned(),
            source,
        })?;
    let security = server.config_mut().security();
    *security = shared.link.security.clone();
    security.keypair(shared.keypair.clone());
    if let Some(token) = token {
        security.token(token.expose().as_bytes().to_vec());
    }
    let weak = Arc::downgrade(shared);
    server.register_console(STATS_COMMAND, move |_ctx, _text: String| {
        let weak = weak.clone();
        async move {
            let shared = weak
                .upgrade()
                .ok_or_else(|| zs::Status::unavailable("the server has stopped"))?;
            Ok(serde_json::to_string(&shared.stats())?)
        }
    });
    let handle = server.spawn();
    info!(address = %handle.local_addr(), "admin endpoint: {STATS_COMMAND}");
    Ok(handle)
}
