//! [`BatchService`]: the receiving side of BatchStream, its [`BatchLimits`] and its four
//! command handlers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use zs_wire::DataFrame;
use zs_wire::dataframe::Value;

use super::store::{Batch, BatchInfo, BatchState, Store};
use super::{
    DEFAULT_BATCH_DISK_CAP, DEFAULT_BATCH_MEMORY_CAP, DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_BATCHES,
    MAX_BATCH_NAME, NAMESPACE,
};
use crate::dispatch::{Namespace, Service, Status};
use crate::endpoint::peer::Peer;

/// Limits of a [`BatchService`], per connection.
///
/// ```
/// let mut limits = zs::services::batch::BatchLimits::default();
/// limits.disk_per_connection = 256 * 1024 * 1024;
/// let service = zs::services::batch::BatchService::with_limits(limits);
/// # drop(service);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatchLimits {
    /// Bytes of items kept in memory; items past it go to disk. Items of taken batches
    /// count until they are read or the batch is dropped.
    pub memory_per_connection: u64,
    /// Bytes of items on disk; a post past it is refused.
    pub disk_per_connection: u64,
    /// Batches that may exist at once.
    pub batches_per_connection: usize,
    /// Items stored over all batches (taken batches no longer count).
    pub items_per_connection: usize,
    /// Where spill files go; `None` is [`std::env::temp_dir`].
    pub spill_dir: Option<PathBuf>,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            memory_per_connection: DEFAULT_BATCH_MEMORY_CAP,
            disk_per_connection: DEFAULT_BATCH_DISK_CAP,
            batches_per_connection: DEFAULT_MAX_BATCHES,
            items_per_connection: DEFAULT_MAX_BATCH_ITEMS,
            spill_dir: None,
        }
    }
}

struct Inner {
    limits: BatchLimits,
    stores: Mutex<HashMap<u64, Store>>,
}

impl Inner {
    fn stores(&self) -> MutexGuard<'_, HashMap<u64, Store>> {
        self.stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The receiving side of BatchStream (ZServer4D's `BatchStream` commands of the dual-tunnel
/// servers): per-connection batch stores with memory, disk and count limits, and the four
/// `__zs.batch.*` commands, installed as a [`Service`]. Clones share the stores.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use zs::services::batch::BatchService;
/// use zs::{DataFrame, Server, Status};
///
/// let mut server = Server::bind("127.0.0.1:0").await?;
/// let batches = BatchService::default();
/// server.install(batches.clone());
/// let store = batches;
/// server.register_stream("sum_batch", move |ctx, input: DataFrame| {
///     let store = store.clone();
///     async move {
///         let name = input.reader().read_string()?;
///         let mut batch = store.take(ctx.peer(), &name).await
///             .ok_or_else(|| Status::not_found("no such batch"))?;
///         let mut total = 0u64;
///         while let Some(item) = batch.next_item().await? {
///             total += item.len() as u64;
///         }
///         Ok(DataFrame::new().with(total))
///     }
/// });
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BatchService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BatchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchService")
            .field("limits", &self.inner.limits)
            .field("connections", &self.inner.stores().len())
            .finish()
    }
}

impl Default for BatchService {
    fn default() -> Self {
        Self::with_limits(BatchLimits::default())
    }
}

impl BatchService {
    /// A service keeping at most `memory_cap_per_connection` bytes of items in memory per
    /// connection and spilling the rest to `spill_dir` (`None`: the system's temporary
    /// directory); other limits are the defaults.
    pub fn new(memory_cap_per_connection: u64, spill_dir: Option<PathBuf>) -> Self {
        Self::with_limits(BatchLimits {
            memory_per_connection: memory_cap_per_connection,
            spill_dir,
            ..BatchLimits::default()
        })
    }

    /// A service with the given limits.
    pub fn with_limits(limits: BatchLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                stores: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &BatchLimits {
        &self.inner.limits
    }

    /// Takes batch `name` of `peer`'s connection out of the store, for a command that
    /// consumes it; `None` if there is no such batch.
    pub async fn take<S>(&self, peer: &Peer<S>, name: &str) -> Option<Batch> {
        let store = self.existing(peer.id())?;
        let mut store = store.lock().await;
        store.remove(name)
    }

    /// The batches of `peer`'s connection.
    pub async fn state<S>(&self, peer: &Peer<S>) -> BatchState {
        let Some(store) = self.existing(peer.id()) else {
            return BatchState {
                memory: 0,
                disk: 0,
                batches: Vec::new(),
            };
        };
        let store = store.lock().await;
        let mut batches: Vec<BatchInfo> = store
            .batches
            .values()
            .map(|batch| BatchInfo {
                name: batch.name.clone(),
                items: batch.len() as u64,
                bytes: batch.bytes,
                spilled: batch.spilled_bytes(),
            })
            .collect();
        batches.sort_by(|a, b| a.name.cmp(&b.name));
        BatchState {
            memory: store.usage.memory.load(Ordering::Relaxed),
            disk: store.usage.disk.load(Ordering::Relaxed),
            batches,
        }
    }

    /// Removes batch `name` of `peer`'s connection (and its file); false if there was none.
    pub async fn clear<S>(&self, peer: &Peer<S>, name: &str) -> bool {
        let Some(store) = self.existing(peer.id()) else {
            return false;
        };
        let removed = store.lock().await.remove(name);
        removed.is_some()
    }

    /// Removes every batch of `peer`'s connection; returns how many there were.
    pub async fn clear_all<S>(&self, peer: &Peer<S>) -> u64 {
        let Some(store) = self.existing(peer.id()) else {
            return 0;
        };
        let removed: Vec<Batch> = {
            let mut store = store.lock().await;
            store.items = 0;
            store.batches.drain().map(|(_, batch)| batch).collect()
        };
        removed.len() as u64
    }

    fn existing(&self, peer_id: u64) -> Option<Store> {
        self.inner.stores().get(&peer_id).cloned()
    }

    /// The store of `peer`'s connection, created on first use with a task that removes it
    /// (batches and files) when the connection ends.
    fn store<S: Send + Sync + 'static>(&self, peer: &Peer<S>) -> Store {
        let id = peer.id();
        let store = {
            let mut stores = self.inner.stores();
            if let Some(store) = stores.get(&id) {
                return store.clone();
            }
            let store = Store::default();
            stores.insert(id, store.clone());
            store
        };
        let peer = peer.clone();
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            peer.closed().await;
            if let Some(inner) = inner.upgrade() {
                let removed = inner.stores().remove(&id);
                // Dropped outside the lock: removing files takes system calls.
                drop(removed);
            }
        });
        store
    }

    async fn create<S: Send + Sync + 'static>(
        &self,
        peer: &Peer<S>,
        name: String,
    ) -> Result<(), Status> {
        check_name(&name)?;
        let store = self.store(peer);
        let mut store = store.lock().await;
        if store.batches.contains_key(&name) {
            return Err(Status::already_exists(format!(
                "batch {name:?} already exists"
            )));
        }
        let max = self.inner.limits.batches_per_connection;
        if store.batches.len() >= max {
            return Err(Status::resource_exhausted(format!(
                "at most {max} batches per connection"
            )));
        }
        let batch = Batch::new(name.clone(), store.usage.clone());
        store.batches.insert(name, batch);
        Ok(())
    }

    async fn post<S: Send + Sync + 'static>(
        &self,
        peer: &Peer<S>,
        data: Bytes,
    ) -> Result<DataFrame, Status> {
        let (name, item) = split_post(data)?;
        let limits = &self.inner.limits;
        let store = self.store(peer);
        let mut store = store.lock().await;
        if store.items >= limits.items_per_connection {
            return Err(Status::resource_exhausted(format!(
                "at most {} batch items per connection",
                limits.items_per_connection
            )));
        }
        let usage = store.usage.clone();
        let batch = store
            .batches
            .get_mut(&name)
            .ok_or_else(|| Status::not_found(format!("no batch named {name:?}")))?;
        let len = item.len() as u64;
        let memory = usage.memory.load(Ordering::Relaxed);
        let disk = usage.disk.load(Ordering::Relaxed);
        if memory.saturating_add(len) <= limits.memory_per_connection {
            batch.push_memory(item);
        } else if disk.saturating_add(len) <= limits.disk_per_connection {
            let dir = limits.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
            batch
                .push_spilled(&item, dir, peer.id())
                .await
                .map_err(|error| Status::internal(format!("batch spill file: {error}")))?;
        } else {
            return Err(Status::resource_exhausted(format!(
                "batch item of {len} bytes refused: {memory} of {} bytes in memory and \
                 {disk} of {} bytes on disk already used by this connection",
                limits.memory_per_connection, limits.disk_per_connection
            )));
        }
        let reply = DataFrame::new()
            .with(batch.len() as u64)
            .with(batch.bytes)
            .with(batch.spilled_bytes());
        store.items += 1;
        Ok(reply)
    }
}

/// Installs `new`, `post`, `state` and `clear` under `__zs.batch` (the wire names
/// [`BATCH_NEW_COMMAND`](super::BATCH_NEW_COMMAND) and its siblings). Keep a clone of the
/// service to [`take`](BatchService::take) batches in the consuming commands.
impl<S: Send + Sync + 'static> Service<S> for BatchService {
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let service = self.clone();
        commands.register_stream("new", move |ctx, input: DataFrame| {
            let service = service.clone();
            async move {
                let name = input.reader().read_string()?;
                service.create(ctx.peer(), name).await?;
                Ok(DataFrame::new())
            }
        });
        let service = self.clone();
        commands.register_complete_buffer("post", move |ctx, data: Bytes| {
            let service = service.clone();
            async move { service.post(ctx.peer(), data).await }
        });
        let service = self.clone();
        commands.register_stream("state", move |ctx, _input: DataFrame| {
            let service = service.clone();
            async move { Ok(service.state(ctx.peer()).await.to_frame()) }
        });
        let service = self;
        commands.register_stream("clear", move |ctx, input: DataFrame| {
            let service = service.clone();
            async move {
                let removed = match input.get(0) {
                    None | Some(Value::Null) => service.clear_all(ctx.peer()).await,
                    Some(_) => {
                        let name = input.reader().read_string()?;
                        u64::from(service.clear(ctx.peer(), &name).await)
                    }
                };
                Ok(DataFrame::new().with(removed))
            }
        });
    }
}

pub(super) fn check_name(name: &str) -> Result<(), Status> {
    if name.is_empty() || name.len() > MAX_BATCH_NAME {
        return Err(Status::invalid_argument(format!(
            "batch name must be 1 to {MAX_BATCH_NAME} bytes, not {}",
            name.len()
        )));
    }
    Ok(())
}

/// Splits a post into its batch name and item (see the module's wire layout).
pub(super) fn split_post(data: Bytes) -> Result<(String, Bytes), Status> {
    let Some(prefix) = data.get(..2) else {
        return Err(Status::invalid_argument(
            "batch post shorter than its name length",
        ));
    };
    let name_len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
    let Some(name) = data.get(2..2 + name_len) else {
        return Err(Status::invalid_argument("batch post shorter than its name"));
    };
    let name = std::str::from_utf8(name)
        .map_err(|_| Status::invalid_argument("batch name is not UTF-8"))?
        .to_owned();
    check_name(&name)?;
    Ok((name, data.slice(2 + name_len..)))
}
