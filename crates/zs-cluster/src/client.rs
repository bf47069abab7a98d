//! [`DispatchClient`] and [`Registrar`]: asking the dispatcher, and staying registered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use zs::{CallError, Client, DataFrame, Peer};

use crate::service::NAMESPACE;
use crate::{Registration, ServerState};

/// What a [`DispatchClient`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchClientError {
    /// The call failed or the dispatcher answered with an error status (`NOT_FOUND`: no
    /// online server of the type; `INVALID_ARGUMENT`: a registration out of bounds).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The reply is not what the command returns.
    #[error("malformed reply: {0}")]
    Reply(String),
}

impl DispatchClientError {
    /// The status code the dispatcher answered with, if it answered with an error.
    pub fn code(&self) -> Option<zs::StatusCode> {
        match self {
            Self::Call(call) => call.status().map(zs::Status::code),
            Self::Reply(_) => None,
        }
    }
}

fn parse(json: Result<&str, impl ToString>) -> Result<Registration, DispatchClientError> {
    let json = json.map_err(|error| DispatchClientError::Reply(error.to_string()))?;
    serde_json::from_str(json).map_err(|error| DispatchClientError::Reply(error.to_string()))
}

/// The dispatcher at the other side of a connection.
///
/// ```no_run
/// # async fn demo(client: zs::Client) -> Result<(), zs_cluster::DispatchClientError> {
/// let dispatch = zs_cluster::DispatchClient::new(client.peer());
/// let server = dispatch.best("logic").await?;
/// println!("use {} at {:?}", server.id, server.addresses);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DispatchClient<'a, S = ()> {
    peer: &'a Peer<S>,
}

impl<'a, S: Send + Sync + 'static> DispatchClient<'a, S> {
    /// The dispatcher at the other side of `peer`.
    pub fn new(peer: &'a Peer<S>) -> Self {
        Self { peer }
    }

    async fn call(&self, name: &str, input: DataFrame) -> Result<DataFrame, DispatchClientError> {
        Ok(self
            .peer
            .call_stream(&format!("{NAMESPACE}.{name}"), &input)
            .await?)
    }

    /// Registers (or refreshes) `registration` for `ttl`.
    pub async fn register(
        &self,
        registration: &Registration,
        ttl: Duration,
    ) -> Result<(), DispatchClientError> {
        let json = serde_json::to_string(registration)
            .map_err(|error| DispatchClientError::Reply(error.to_string()))?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call("register", DataFrame::new().with(json).with(ttl_ms))
            .await
            .map(drop)
    }

    /// Removes a registration; whether it was there.
    pub async fn unregister(
        &self,
        service_type: &str,
        id: &str,
    ) -> Result<bool, DispatchClientError> {
        let frame = self
            .call("unregister", DataFrame::new().with(service_type).with(id))
            .await?;
        frame
            .reader()
            .read_bool()
            .map_err(|error| DispatchClientError::Reply(error.to_string()))
    }

    /// The live servers of `service_type`, by id.
    pub async fn list(&self, service_type: &str) -> Result<Vec<Registration>, DispatchClientError> {
        let frame = self
            .call("list", DataFrame::new().with(service_type))
            .await?;
        let mut reader = frame.reader();
        let mut servers = Vec::new();
        while reader.peek().is_some() {
            servers.push(parse(reader.read_str())?);
        }
        Ok(servers)
    }

    /// HostQuery (ZServer4D's `HostQuery` `query`): the addresses of every live server
    /// whose `type/id` matches `pattern` (`*` any run, `?` one character).
    pub async fn query_hosts(&self, pattern: &str) -> Result<Vec<String>, DispatchClientError> {
        let frame = self.call("query", DataFrame::new().with(pattern)).await?;
        let mut reader = frame.reader();
        let mut hosts = Vec::new();
        while reader.peek().is_some() {
            hosts.push(
                reader
                    .read_string()
                    .map_err(|error| DispatchClientError::Reply(error.to_string()))?,
            );
        }
        Ok(hosts)
    }

    /// Asks for the changes of `service_type` (servers coming, changing, going) from now on,
    /// delivered to the [`DispatchWatcher`](crate::DispatchWatcher) installed on this
    /// client; until the connection ends.
    pub async fn watch(&self, service_type: &str) -> Result<(), DispatchClientError> {
        self.call("watch", DataFrame::new().with(service_type))
            .await
            .map(drop)
    }

    /// The least-loaded online server of `service_type`.
    pub async fn best(&self, service_type: &str) -> Result<Registration, DispatchClientError> {
        let frame = self
            .call("best", DataFrame::new().with(service_type))
            .await?;
        parse(frame.reader().read_str())
    }
}

struct Shared {
    load: AtomicU64,
    state: AtomicU8,
}

/// Reports a [`Registrar`]'s load from another task.
#[derive(Clone)]
pub struct LoadHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LoadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadHandle").finish_non_exhaustive()
    }
}

impl LoadHandle {
    /// Reports the server's load (sent with the next keep-alive).
    pub fn set(&self, load: u64) {
        self.shared.load.store(load, Ordering::Relaxed);
    }
}

/// Keeps a server registered: registers it now, then again every third of `ttl` with its
/// current load and state, until stopped (then it unregisters) or dropped (then its
/// registration expires after `ttl`, as a crashed server's does).
pub struct Registrar {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    client: Arc<Client>,
    service_type: String,
    id: String,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("type", &self.service_type)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Registrar {
    /// Registers `registration` through `dispatcher` and keeps it alive.
    pub async fn start(
        dispatcher: Arc<Client>,
        registration: Registration,
        ttl: Duration,
    ) -> Result<Self, DispatchClientError> {
        DispatchClient::new(dispatcher.peer())
            .register(&registration, ttl)
            .await?;
        let shared = Arc::new(Shared {
            load: AtomicU64::new(registration.load),
            state: AtomicU8::new(registration.state.code()),
        });
        let (client, keep) = (dispatcher.clone(), shared.clone());
        let (service_type, id) = (registration.service_type.clone(), registration.id.clone());
        let task = tokio::spawn(async move {
            let mut registration = registration;
            let mut ticks = tokio::time::interval(ttl / 3);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                registration.load = keep.load.load(Ordering::Relaxed);
                registration.state =
                    ServerState::from_code(keep.state.load(Ordering::Relaxed)).unwrap_or_default();
                if let Err(error) = DispatchClient::new(client.peer())
                    .register(&registration, ttl)
                    .await
                {
                    tracing::warn!(%error, "keep-alive to the dispatcher failed");
                }
            }
        });
        Ok(Self {
            shared,
            task,
            client: dispatcher,
            service_type,
            id,
        })
    }

    /// Reports the server's load (sent with the next keep-alive).
    pub fn set_load(&self, load: u64) {
        self.shared.load.store(load, Ordering::Relaxed);
    }

    /// A handle that reports the load from elsewhere (another task), while this registrar
    /// lives.
    pub fn load_handle(&self) -> LoadHandle {
        LoadHandle {
            shared: self.shared.clone(),
        }
    }

    /// Reports the server's state (sent with the next keep-alive).
    pub fn set_state(&self, state: ServerState) {
        self.shared.state.store(state.code(), Ordering::Relaxed);
    }

    /// Stops the keep-alive and unregisters.
    pub async fn stop(self) -> Result<(), DispatchClientError> {
        self.task.abort();
        DispatchClient::new(self.client.peer())
            .unregister(&self.service_type, &self.id)
            .await
            .map(drop)
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.task.abort();
    }
}
