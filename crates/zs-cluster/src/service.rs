//! [`DispatchService`]: the registry served to servers and clients (ZServer4D's
//! `ManagerServer`).

use std::sync::Arc;
use std::time::Duration;

use zs::dispatch::{Namespace, Service, Status};
use zs::{Context, DataFrame};

use crate::{Backend, ClusterError, Registration};

/// The service's namespace.
pub const NAMESPACE: &str = "__zs.dispatch";
/// Longest time to live a registration may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
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
///
/// A registration is the JSON of [`Registration`]; bounds are checked
/// (`INVALID_ARGUMENT`), and the time to live must be within [`MIN_TTL`]..=[`MAX_TTL`].
pub struct DispatchService {
    backend: Arc<dyn Backend>,
}

impl Clone for DispatchService {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
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
        }
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
