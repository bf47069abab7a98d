//! [`NatServer`]: the public side. It accepts agent links (or dials agents, in reverse
//! mode), registers their mappings, opens each mapping's public port while an agent serves
//! it, and forwards every public connection to an agent on a virtual stream of its own.

mod admin;
mod agents;
mod public;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use zs::{Fingerprint, StaticKeypair};

use crate::backoff::Backoff;
use crate::config::{ConfigError, LinkSettings, ServerConfig};
use crate::stats::{AgentStats, MappingCounters, ServerStats};

use admin::{log_stats, start_admin};
use agents::{accept_agents, dial_agent};
use public::{Mapping, MappingState};

/// The console command of the admin endpoint that returns [`ServerStats`] as JSON.
pub const STATS_COMMAND: &str = "nat.stats";

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
                    enabled: std::sync::atomic::AtomicBool::new(true),
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

    /// Turns mapping `name`'s public connections away (`false`) or lets them through again
    /// (`true`); agents stay registered. False if there is no such mapping.
    pub fn set_mapping_enabled(&self, name: &str, enabled: bool) -> bool {
        let Some(mapping) = self.shared.mappings.get(name) else {
            return false;
        };
        mapping
            .enabled
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
        info!(mapping = %name, enabled, "mapping switched by the operator");
        true
    }

    /// Closes agent link `id` (its mappings' connections move to other agents; the agent
    /// reconnects after its back-off). False if no such agent is connected.
    pub fn kick_agent(&self, id: u64) -> bool {
        match lock(&self.shared.agents).get(&id) {
            Some(agent) => {
                agent.kick.cancel();
                true
            }
            None => false,
        }
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

/// A connected agent: what the admin API shows, and the token that kicks it.
struct AgentEntry {
    stats: AgentStats,
    kick: CancellationToken,
}

struct Shared {
    link: LinkSettings,
    keypair: StaticKeypair,
    open_timeout: Duration,
    mappings: BTreeMap<String, Arc<Mapping>>,
    agents: Mutex<BTreeMap<AgentId, AgentEntry>>,
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
            agents: lock(&self.agents)
                .values()
                .map(|agent| agent.stats.clone())
                .collect(),
            mappings: self.mappings.values().map(|m| m.stats()).collect(),
        }
    }
}
