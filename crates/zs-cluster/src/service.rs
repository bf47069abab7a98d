//! [`DispatchService`]: the registry served to servers and clients (ZServer4D's
//! `ManagerServer`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zs::dispatch::{Namespace, Service, Status};
use zs::{Context, DataFrame};

use crate::{Backend, Change, ClusterError, Registration};

/// The service's namespace.
pub const NAMESPACE: &str = "__zs.dispatch";
/// Longest time to live a registration may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// The one-way message a watching connection receives per change: `[0u8, registration
/// JSON]` (up) or `[1u8, type, id]` (down).
pub const CHANGED: &str = "__zs.dispatch.changed";
/// Types one connection may watch.
pub const MAX_WATCHES_PER_CONNECTION: usize = 16;
/// Longest HostQuery pattern, bytes.
pub const MAX_PATTERN_LEN: usize = 256;
/// Shortest time to live.
pub const MIN_TTL: Duration = Duration::from_millis(100);

/// The registry over zserver connections. Commands (namespace `__zs.dispatch`, DataFrames):
///
/// | command | input | reply |
/// |---|---|---|
/// | `register` | `[registration: JSON, ttl_ms: u64]` | `[]` (also the keep-alive) |
/// | `unregister` | `[type, id]` | `[existed: bool]` |
/// | `list` | `[type]` | `[registration: JSON]*` by id |
/// | `best` | `[type]` | `[registration: JSON]`, or `NOT_FOUND` |
/// | `query` | `[pattern]` (HostQuery: `*`, `?` over `type/id`) | `[host: "ip:port"]*` |
/// | `watch` | `[type]` | `[]`; then the connection gets [`CHANGED`] messages |
///
/// A registration is the JSON of [`Registration`]; bounds are checked
/// (`INVALID_ARGUMENT`), and the time to live must be within [`MIN_TTL`]..=[`MAX_TTL`].
pub struct DispatchService {
    backend: Arc<dyn Backend>,
    /// Per connection, the types it watches.
    watches: Arc<Mutex<HashMap<u64, HashSet<String>>>>,
}

impl Clone for DispatchService {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            watches: self.watches.clone(),
        }
    }
}

impl std::fmt::Debug for DispatchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchService").finish_non_exhaustive()
    }
}

fn invalid(error: impl ToString) -> Status {
    Status::invalid_argument(error.to_string())
}

fn json(registration: &Registration) -> Result<String, Status> {
    serde_json::to_string(registration).map_err(|error| Status::internal(error.to_string()))
}

impl DispatchService {
    /// The registry in `backend`.
    pub fn new(backend: impl Backend) -> Self {
        Self {
            backend: Arc::new(backend),
            watches: Arc::default(),
        }
    }

    /// Every live registration, by type then id (the admin listener's cluster table).
    pub fn registrations(&self) -> Vec<Registration> {
        self.backend.snapshot()
    }

    /// Sends `peer` the changes of `service_type` (as one-way `__zs.dispatch.changed`
    /// messages) until its connection ends.
    fn watch<S: Send + Sync + 'static>(
        &self,
        peer: zs::Peer<S>,
        service_type: String,
    ) -> Result<(), Status> {
        {
            let mut watches = self
                .watches
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mine = watches.entry(peer.id()).or_default();
            if mine.contains(&service_type) {
                return Ok(());
            }
            if mine.len() >= MAX_WATCHES_PER_CONNECTION {
                return Err(Status::resource_exhausted(format!(
                    "at most {MAX_WATCHES_PER_CONNECTION} watches per connection"
                )));
            }
            mine.insert(service_type.clone());
        }
        let mut changes = self.backend.watch();
        let watches = self.watches.clone();
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    change = changes.recv() => change,
                    _ = peer.closed() => break,
                };
                let change = match change {
                    Ok(change) => change,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a watcher fell behind; changes skipped");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let frame = match &change {
                    Change::Up(registration) if registration.service_type == service_type => {
                        match serde_json::to_string(registration) {
                            Ok(json) => DataFrame::new().with(0u8).with(json),
                            Err(_) => continue,
                        }
                    }
                    Change::Down {
                        service_type: kind,
                        id,
                    } if *kind == service_type => DataFrame::new()
                        .with(1u8)
                        .with(kind.as_str())
                        .with(id.as_str()),
                    _ => continue,
                };
                if peer.send_direct_stream(CHANGED, &frame).await.is_err() {
                    break;
                }
            }
            watches
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&peer.id());
        });
        Ok(())
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    async fn register(&self, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let registration: Registration =
            serde_json::from_str(reader.read_str().map_err(invalid)?).map_err(invalid)?;
        let ttl = Duration::from_millis(reader.read_u64().map_err(invalid)?);
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(invalid(format!(
                "a time to live of {ttl:?}; {MIN_TTL:?} to {MAX_TTL:?}"
            )));
        }
        self.backend
            .put(registration, ttl)
            .await
            .map_err(ClusterError::into_status)?;
        Ok(DataFrame::new())
    }
}

impl<S: Send + Sync + 'static> Service<S> for DispatchService {
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let service = self.clone();
        commands.register_stream("register", move |_ctx: Context<S>, input: DataFrame| {
            let service = service.clone();
            async move { service.register(input).await }
        });
        let service = self.clone();
        commands.register_stream("unregister", move |_ctx: Context<S>, input: DataFrame| {
            let service = service.clone();
            async move {
                let mut reader = input.reader();
                let service_type = reader.read_string().map_err(invalid)?;
                let id = reader.read_string().map_err(invalid)?;
                let existed = service
                    .backend
                    .remove(&service_type, &id)
                    .await
                    .map_err(ClusterError::into_status)?;
                Ok(DataFrame::new().with(existed))
            }
        });
        let service = self.clone();
        commands.register_stream("list", move |_ctx: Context<S>, input: DataFrame| {
            let service = service.clone();
            async move {
                let service_type = input.reader().read_string().map_err(invalid)?;
                let servers = service
                    .backend
                    .list(&service_type)
                    .await
                    .map_err(ClusterError::into_status)?;
                let mut frame = DataFrame::new();
                for server in &servers {
                    frame.push(json(server)?);
                }
                Ok(frame)
            }
        });
        let service = self.clone();
        commands.register_stream("best", move |_ctx: Context<S>, input: DataFrame| {
            let service = service.clone();
            async move {
                let service_type = input.reader().read_string().map_err(invalid)?;
                let chosen = service
                    .backend
                    .best(&service_type)
                    .await
                    .map_err(ClusterError::into_status)?
                    .ok_or_else(|| ClusterError::NoServer(service_type).into_status())?;
                Ok(DataFrame::new().with(json(&chosen)?))
            }
        });
        let service = self.clone();
        commands.register_stream("watch", move |ctx: Context<S>, input: DataFrame| {
            let service = service.clone();
            async move {
                let service_type = input.reader().read_string().map_err(invalid)?;
                service.watch(ctx.peer().clone(), service_type)?;
                Ok(DataFrame::new())
            }
        });
        commands.register_stream("query", move |_ctx: Context<S>, input: DataFrame| {
            let service = self.clone();
            async move {
                let pattern = input.reader().read_string().map_err(invalid)?;
                if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
                    return Err(invalid(format!(
                        "a pattern of 1 to {MAX_PATTERN_LEN} bytes, please"
                    )));
                }
                let hosts = service
                    .backend
                    .hosts(&pattern)
                    .await
                    .map_err(ClusterError::into_status)?;
                Ok(hosts.into_iter().fold(DataFrame::new(), DataFrame::with))
            }
        });
    }
}
