//! [`NatAgent`]: the side behind NAT. It keeps an encrypted link to the server (dialing it,
//! or accepting the server's dial in reverse mode), registers its mappings, and serves each
//! forwarded connection by connecting to the local service, or by handing the stream to a
//! [`VirtualService`] (a zs server with no socket of its own).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};
use zs::EncryptedStream;
use zs::mux::{MuxLink, Role, VirtualListener, VirtualStream};

use crate::Secret;
use crate::backoff::Backoff;
use crate::codec::{
    CONTROL_SERVICE, ControlMessage, PROTOCOL_VERSION, RefuseReason, mapping_service,
};
use crate::config::{AgentConfig, ConfigError, LinkSettings};
use crate::link::{ControlChannel, Cuttable, LinkError, read_open, within};

/// Server links a listening (reverse-mode) agent serves at once.
const MAX_SERVER_LINKS: usize = 16;

/// Serves forwarded connections without a local socket: each public connection of the
/// mapping arrives as a [`VirtualStream`].
///
/// Implemented for [`zs::ServerHandle`]: the agent then runs a whole zs server on the mapping
/// (its handshake and commands), and zs clients reach it through the public port.
pub trait VirtualService: Send + Sync + 'static {
    /// Serves one connection from the public client at `peer`. Must not block: spawn the work.
    fn serve(&self, stream: VirtualStream, peer: SocketAddr);
}

impl<S: Send + Sync + 'static> VirtualService for zs::ServerHandle<S> {
    fn serve(&self, stream: VirtualStream, peer: SocketAddr) {
        self.serve_stream(stream, peer, self.local_addr());
    }
}

/// The agent stopped for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server refused every mapping for reasons retrying cannot fix (unknown mapping,
    /// wrong token).
    #[error("the server refused every mapping: {0}")]
    Refused(String),
    /// Reverse mode: the listening address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The agent's task panicked or was aborted.
    #[error("the agent task failed: {0}")]
    Task(String),
}

/// Where one mapping stands on the current link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingStatus {
    /// Not registered (no link, or waiting for the server's answer).
    Pending,
    /// Served; users connect to `public`.
    Registered {
        /// The public address the server reported.
        public: String,
    },
    /// The server refused it.
    Refused {
        /// Why.
        reason: RefuseReason,
        /// The server's explanation.
        message: String,
    },
}

/// What the agent is doing, published on every change ([`AgentHandle::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    /// A link to the server is up and registered.
    pub connected: bool,
    /// Each mapping's state.
    pub mappings: BTreeMap<String, MappingStatus>,
    /// Set once the agent has stopped: why.
    pub stopped: Option<String>,
}

impl AgentStatus {
    /// Whether every mapping has the server's answer (or the agent stopped).
    pub fn is_settled(&self) -> bool {
        self.stopped.is_some()
            || self
                .mappings
                .values()
                .all(|status| *status != MappingStatus::Pending)
    }
}

#[derive(Clone)]
enum Target {
    Local(String),
    Service(Arc<dyn VirtualService>),
}

#[derive(Clone)]
struct Plan {
    name: String,
    token: Secret,
    weight: u16,
    target: Target,
}

struct Context {
    name: String,
    link: LinkSettings,
    connect_timeout: Duration,
    grace: Duration,
    plans: Vec<Plan>,
    status: watch::Sender<AgentStatus>,
    /// Graceful stop: unregister, let forwarded connections finish within `grace`.
    shutdown: CancellationToken,
    /// Immediate stop: every link cut.
    cut: CancellationToken,
}

/// An agent, configured and ready to [`start`](Self::start).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use zs_nat::{AgentConfig, AgentMapping, NatAgent};
/// let mut config = AgentConfig::new("nat.example.com:4921");
/// config.pin = Some("sha3-256:...".into());
/// config.mappings.insert("web".into(), AgentMapping::local("127.0.0.1:8000", "change-me"));
/// let agent = NatAgent::new(config).start().await?;
/// println!("{:?}", agent.wait_settled().await);
/// agent.shutdown().await?;
/// # Ok(()) }
/// ```
///
/// A virtual-server mapping serves a zs server with no local socket:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use zs_nat::{AgentConfig, AgentMapping, NatAgent};
/// let mut server = zs::Server::bind("127.0.0.1:0").await?; // its own port stays unused
/// server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
/// let handle = Arc::new(server.spawn());
/// let mut config = AgentConfig::new("nat.example.com:4921");
/// config.mappings.insert("rpc".into(), AgentMapping::virtual_server("change-me"));
/// let mut agent = NatAgent::new(config);
/// agent.serve_virtual("rpc", handle.clone());
/// let agent = agent.start().await?;
/// # Ok(()) }
/// ```
pub struct NatAgent {
    config: AgentConfig,
    services: BTreeMap<String, Arc<dyn VirtualService>>,
}

impl std::fmt::Debug for NatAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatAgent")
            .field("config", &self.config)
            .field("services", &self.services.keys())
            .finish()
    }
}

impl NatAgent {
    /// An agent with `config`.
    pub fn new(config: AgentConfig) -> Self {
        Self {
            config,
            services: BTreeMap::new(),
        }
    }

    /// Serves mapping `name` (configured with `virtual_server = true`) with `service`.
    pub fn serve_virtual(&mut self, name: &str, service: Arc<dyn VirtualService>) -> &mut Self {
        self.services.insert(name.to_owned(), service);
        self
    }

    /// Validates the configuration and starts the agent in the background (reverse mode:
    /// binds its `listen` address first).
    pub async fn start(mut self) -> Result<AgentHandle, AgentError> {
        let config = &self.config;
        config.validate()?;
        for name in self.services.keys() {
            if !config.mappings.get(name).is_some_and(|m| m.virtual_server) {
                return Err(ConfigError::Invalid(format!(
                    "a virtual service is attached to {name:?}, which is not a `virtual_server = true` mapping"
                ))
                .into());
            }
        }
        let mut plans = Vec::new();
        for (name, mapping) in &config.mappings {
            let target = match (&mapping.local, self.services.remove(name)) {
                (Some(local), _) => Target::Local(local.clone()),
                (None, Some(service)) => Target::Service(service),
                (None, None) => {
                    return Err(ConfigError::Invalid(format!(
                        "mapping {name:?} is a virtual server but no service is attached (NatAgent::serve_virtual)"
                    ))
                    .into());
                }
            };
            plans.push(Plan {
                name: name.clone(),
                token: mapping.token.clone(),
                weight: mapping.weight,
                target,
            });
        }
        let initial = AgentStatus {
            connected: false,
            mappings: plans
                .iter()
                .map(|plan| (plan.name.clone(), MappingStatus::Pending))
                .collect(),
            stopped: None,
        };
        let (status, receiver) = watch::channel(initial);
        let shutdown = CancellationToken::new();
        let cut = CancellationToken::new();
        let context = Arc::new(Context {
            name: config.name.clone(),
            link: config.link_settings()?,
            connect_timeout: Duration::from_secs(config.connect_timeout_secs.max(1)),
            grace: Duration::from_secs(config.shutdown_grace_secs),
            plans,
            status,
            shutdown: shutdown.clone(),
            cut: cut.clone(),
        });
        let backoff = Backoff::new(
            Duration::from_millis(config.reconnect_min_ms),
            Duration::from_millis(config.reconnect_max_ms),
        );
        let mut local_addr = None;
        let task = match (&config.server, &config.listen) {
            (_, Some(address)) => {
                let listener =
                    TcpListener::bind(address)
                        .await
                        .map_err(|source| AgentError::Bind {
                            address: address.clone(),
                            source,
                        })?;
                local_addr = listener.local_addr().ok();
                info!(address = ?local_addr, "waiting for the server to dial in");
                tokio::spawn(finish(context.clone(), run_listening(context, listener)))
            }
            (Some(server), None) => {
                let server = server.clone();
                tokio::spawn(finish(
                    context.clone(),
                    run_dialing(context, server, backoff),
                ))
            }
            (None, None) => {
                return Err(ConfigError::Invalid("no server and no listen address".into()).into());
            }
        };
        Ok(AgentHandle {
            local_addr,
            shutdown,
            cut,
            status: receiver,
            task: Some(task),
        })
    }
}

/// Runs the agent and records why it stopped.
async fn finish(
    context: Arc<Context>,
    run: impl std::future::Future<Output = Result<(), AgentError>>,
) -> Result<(), AgentError> {
    let result = run.await;
    let why = match &result {
        Ok(()) => "shut down".to_owned(),
        Err(error) => error.to_string(),
    };
    context.status.send_modify(|status| {
        status.connected = false;
        status.stopped = Some(why);
    });
    result
}

/// Controls a running [`NatAgent`]. Dropping it cuts the links at once;
/// [`Self::shutdown`] stops gracefully.
#[derive(Debug)]
pub struct AgentHandle {
    local_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    cut: CancellationToken,
    status: watch::Receiver<AgentStatus>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

impl AgentHandle {
    /// Reverse mode: the address the agent waits for the server on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The current status.
    pub fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn subscribe(&self) -> watch::Receiver<AgentStatus> {
        self.status.clone()
    }

    /// Waits until every mapping has the server's answer, or the agent stopped.
    pub async fn wait_settled(&self) -> AgentStatus {
        let mut receiver = self.status.clone();
        match receiver.wait_for(AgentStatus::is_settled).await {
            Ok(status) => status.clone(),
            Err(_) => self.status(),
        }
    }

    /// Waits until the agent stops by itself (every mapping refused for good). Cancel-safe:
    /// use it in `select!` beside a shutdown signal, then call [`Self::shutdown`].
    pub async fn finished(&mut self) -> Result<(), AgentError> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let result = task
            .await
            .unwrap_or_else(|error| Err(AgentError::Task(error.to_string())));
        self.task = None;
        result
    }

    /// Unregisters, lets forwarded connections finish for up to `shutdown_grace_secs`, and
    /// closes the link.
    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        self.shutdown.cancel();
        self.finished().await
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.cut.cancel();
    }
}

/// How a link ended.
enum SessionEnd {
    /// The agent is shutting down.
    Shutdown,
    /// The link dropped after serving (`served`: at least one mapping was registered).
    Lost { served: bool },
    /// The server refused every mapping; `permanent` if retrying cannot help.
    NothingRegistered { summary: String, permanent: bool },
}

async fn run_dialing(
    context: Arc<Context>,
    server: String,
    mut backoff: Backoff,
) -> Result<(), AgentError> {
    loop {
        let connect = within(
            context.connect_timeout,
            "the TCP connection",
            TcpStream::connect(server.as_str()),
        );
        let connected = tokio::select! {
            () = context.shutdown.cancelled() => return Ok(()),
            connected = connect => connected,
        };
        match connected {
            Ok(socket) => match run_session(&context, socket).await {
                Ok(SessionEnd::Shutdown) => return Ok(()),
                Ok(SessionEnd::Lost { served }) => {
                    if served {
                        backoff.reset();
                    }
                    warn!(%server, "link to the server lost; reconnecting");
                }
                Ok(SessionEnd::NothingRegistered { summary, permanent }) => {
                    if permanent {
                        return Err(AgentError::Refused(summary));
                    }
                    warn!(%server, %summary, "no mapping registered; retrying");
                }
                Err(error) => warn!(%server, %error, "link to the server failed"),
            },
            Err(error) => warn!(%server, %error, "cannot connect to the server"),
        }
        let delay = backoff.next_delay();
        debug!(?delay, "reconnecting after a delay");
        tokio::select! {
            () = context.shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

async fn run_listening(context: Arc<Context>, listener: TcpListener) -> Result<(), AgentError> {
    let sessions = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(MAX_SERVER_LINKS));
    loop {
        let accepted = tokio::select! {
            () = context.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%address, "too many server links; connection closed");
            continue;
        };
        info!(%address, "the server dialed in");
        let context = context.clone();
        sessions.spawn(async move {
            match run_session(&context, socket).await {
                Ok(SessionEnd::NothingRegistered { summary, .. }) => {
                    warn!(%address, %summary, "no mapping registered on this link");
                }
                Ok(_) => info!(%address, "server link ended"),
                Err(error) => warn!(%address, %error, "server link failed"),
            }
            drop(permit);
        });
    }
    sessions.close();
    sessions.wait().await;
    Ok(())
}

/// One link: handshake, mappings' listeners, registration, then serving until it ends.
async fn run_session(context: &Arc<Context>, socket: TcpStream) -> Result<SessionEnd, LinkError> {
    let _ = socket.set_nodelay(true);
    let encrypted = tokio::select! {
        () = context.shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
        encrypted = EncryptedStream::connect(socket, &context.link.security) => encrypted?,
    };
    let channel_binding = encrypted.channel_binding();
    let cut = context.cut.child_token();
    // Whatever way this function returns, the link is cut.
    let _cut_on_return = cut.clone().drop_guard();
    let link = MuxLink::new(
        Cuttable::new(encrypted, &cut),
        Role::Initiator,
        context.link.mux.clone(),
    );
    let forwards = TaskTracker::new();
    for plan in &context.plans {
        let listener = link.listen(&mapping_service(&plan.name))?;
        tokio::spawn(serve_mapping(
            listener,
            plan.clone(),
            forwards.clone(),
            context.connect_timeout,
            context.link.handshake_timeout,
        ));
    }
    let limit = context.link.handshake_timeout;
    let mut channel = ControlChannel::new(
        within(limit, "the control stream", link.connect(CONTROL_SERVICE)).await?,
    );
    channel
        .send(&ControlMessage::Hello {
            version: PROTOCOL_VERSION,
            agent: context.name.clone(),
        })
        .await?;
    match within(limit, "Welcome", channel.receive()).await? {
        Some(ControlMessage::Welcome { .. }) => {}
        Some(ControlMessage::Error { message }) => return Err(LinkError::Peer(message)),
        Some(other) => {
            return Err(LinkError::Protocol(format!(
                "expected Welcome, got {other:?}"
            )));
        }
        None => return Err(LinkError::Closed),
    }
    for plan in &context.plans {
        channel
            .send(&ControlMessage::Register {
                mapping: plan.name.clone(),
                proof: plan.token.register_proof(&plan.name, &channel_binding),
                weight: plan.weight,
            })
            .await?;
    }
    let registered = register_replies(context, &mut channel).await?;
    if let Err(end) = registered {
        return Ok(end);
    }
    context.status.send_modify(|status| status.connected = true);
    let end = loop {
        let message = tokio::select! {
            () = context.shutdown.cancelled() => break SessionEnd::Shutdown,
            message = channel.receive() => message,
        };
        match message {
            Ok(Some(ControlMessage::Error { message })) => {
                warn!(%message, "the server closed the link");
                break SessionEnd::Lost { served: true };
            }
            Ok(Some(other)) => warn!(message = ?other, "unexpected control message ignored"),
            Ok(None) => {
                info!("the server closed the control stream");
                break SessionEnd::Lost { served: true };
            }
            Err(error) => {
                warn!(%error, "link to the server lost");
                break SessionEnd::Lost { served: true };
            }
        }
    };
    context.status.send_modify(|status| {
        status.connected = false;
        for mapping in status.mappings.values_mut() {
            if matches!(mapping, MappingStatus::Registered { .. }) {
                *mapping = MappingStatus::Pending;
            }
        }
    });
    if matches!(end, SessionEnd::Shutdown) {
        // The server unregisters us on the control stream's end; what is in flight may
        // finish within the grace period.
        channel.finish().await;
        forwards.close();
        if !forwards.is_empty() {
            info!(connections = forwards.len(), grace = ?context.grace, "waiting for forwarded connections");
        }
        let _ = tokio::time::timeout(context.grace, forwards.wait()).await;
        // The server closes the link once it has unregistered us.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(Some(_)) = channel.receive().await {}
        })
        .await;
    }
    Ok(end)
}

/// Reads the answers to every `Register`; `Err(end)` when none was accepted.
async fn register_replies(
    context: &Arc<Context>,
    channel: &mut ControlChannel,
) -> Result<Result<(), SessionEnd>, LinkError> {
    let mut pending: BTreeSet<&str> = context.plans.iter().map(|p| p.name.as_str()).collect();
    let mut refusals = Vec::new();
    while !pending.is_empty() {
        let message = within(
            context.link.handshake_timeout,
            "registration",
            channel.receive(),
        )
        .await?
        .ok_or(LinkError::Closed)?;
        let (mapping, status) = match message {
            ControlMessage::Registered { mapping, public } => {
                info!(mapping = %mapping, %public, "mapping registered: users connect to the public address");
                (mapping, MappingStatus::Registered { public })
            }
            ControlMessage::Refused {
                mapping,
                reason,
                message,
            } => {
                error!(mapping = %mapping, %reason, %message, "the server refused the mapping");
                refusals.push((mapping.clone(), reason, message.clone()));
                (mapping, MappingStatus::Refused { reason, message })
            }
            ControlMessage::Error { message } => return Err(LinkError::Peer(message)),
            other => {
                return Err(LinkError::Protocol(format!(
                    "expected a registration answer, got {other:?}"
                )));
            }
        };
        if !pending.remove(mapping.as_str()) {
            return Err(LinkError::Protocol(format!(
                "an answer for mapping {mapping:?}, which was not asked for"
            )));
        }
        context.status.send_modify(|all| {
            all.mappings.insert(mapping, status);
        });
    }
    if refusals.len() < context.plans.len() {
        return Ok(Ok(()));
    }
    let summary = refusals
        .iter()
        .map(|(mapping, reason, message)| format!("{mapping}: {reason} ({message})"))
        .collect::<Vec<_>>()
        .join("; ");
    let permanent = refusals.iter().all(|(_, reason, _)| reason.is_permanent());
    Ok(Err(SessionEnd::NothingRegistered { summary, permanent }))
}

async fn serve_mapping(
    mut listener: VirtualListener,
    plan: Plan,
    forwards: TaskTracker,
    connect_timeout: Duration,
    header_timeout: Duration,
) {
    while let Some(stream) = listener.accept().await {
        forwards.spawn(forward_stream(
            stream,
            plan.clone(),
            connect_timeout,
            header_timeout,
        ));
    }
}

/// Serves one forwarded connection.
async fn forward_stream(
    mut stream: VirtualStream,
    plan: Plan,
    connect_timeout: Duration,
    header_timeout: Duration,
) {
    let peer = match within(header_timeout, "the stream header", read_open(&mut stream)).await {
        Ok(peer) => peer,
        Err(error) => {
            warn!(mapping = %plan.name, %error, "bad forwarded stream; reset");
            return;
        }
    };
    match &plan.target {
        Target::Service(service) => service.serve(stream, peer),
        Target::Local(address) => {
            let connect = within(
                connect_timeout,
                "the local service",
                TcpStream::connect(address.as_str()),
            );
            let mut local = match connect.await {
                Ok(local) => local,
                Err(error) => {
                    // Dropping the stream resets it: the public client is closed at once.
                    warn!(mapping = %plan.name, local = %address, %peer, %error, "cannot reach the local service; public connection closed");
                    return;
                }
            };
            let _ = local.set_nodelay(true);
            match crate::relay::relay(&mut stream, &mut local).await {
                Ok((to_service, to_user)) => {
                    debug!(mapping = %plan.name, %peer, to_service, to_user, "connection finished");
                }
                Err(error) => {
                    debug!(mapping = %plan.name, %peer, %error, "connection ended by an error");
                }
            }
        }
    }
}
