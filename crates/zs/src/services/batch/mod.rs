//! BatchStream: queue several buffers at the other side, then run a command that consumes
//! them (ZServer4D's `__@NewBatchStream`, `__@PostBatchStream`, `__@ClearBatchStream`,
//! `__@GetBatchStreamState`).
//!
//! The receiving side registers a [`BatchService`] onto its command table; it keeps, per
//! connection, named batches of items (buffers) in post order. The sending side creates a
//! batch with [`batch_new`], posts items with [`batch_post`], then calls an ordinary command
//! of the application that takes the batch with [`BatchService::take`] and reads its items
//! with [`Batch::next_item`]. [`batch_state`] and [`batch_clear`] inspect and drop batches.
//!
//! ZServer4D kept every batch in memory without a cap. Here each connection has a memory cap
//! (default 64 MiB): items past it are appended to a temporary file per batch (in the spill
//! directory, named `zs-batch-<peer id>-…`) and read back when consumed. A disk cap (default
//! 1 GiB), a batch count (default 64) and an item count (default 65,536) per connection bound
//! the rest; a post past them gets an error reply and changes nothing. When the connection
//! ends, its batches and their files are removed.
//!
//! # Wire layout
//!
//! | command | kind | input | reply |
//! |---|---|---|---|
//! | `__zs.batch.new` | stream | `[name: String]` | `[]` |
//! | `__zs.batch.post` | CompleteBuffer | `name_len: u16 LE`, `name: UTF-8`, item bytes | `[items: u64, bytes: u64, spilled: u64]` of the batch after the post |
//! | `__zs.batch.state` | stream | `[]` | `[memory: u64, disk: u64]` then one `Frame [name: String, items: u64, bytes: u64, spilled: u64]` per batch, by name |
//! | `__zs.batch.clear` | stream | `[name: String]`, or `[]` for every batch | `[removed: u64]` (batches removed) |
//!
//! A post is one CompleteBuffer, so it travels in chunks with flow control and may be
//! compressed; the item is everything after the name. Names are 1 to [`MAX_BATCH_NAME`]
//! bytes. `new` on an existing name is an error; so is a post to a batch that does not exist.

use std::collections::{HashMap, VecDeque};
use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use zs_wire::DataFrame;
use zs_wire::dataframe::Value;

use crate::dispatch::Status;
use crate::dispatch::registry::Commands;
use crate::endpoint::peer::Peer;
use crate::error::{BadReply, CallError};

/// The command that creates a batch.
pub const BATCH_NEW_COMMAND: &str = "__zs.batch.new";
/// The CompleteBuffer command that appends one item to a batch.
pub const BATCH_POST_COMMAND: &str = "__zs.batch.post";
/// The command that reports the batches of the connection.
pub const BATCH_STATE_COMMAND: &str = "__zs.batch.state";
/// The command that removes one batch or all of them.
pub const BATCH_CLEAR_COMMAND: &str = "__zs.batch.clear";

/// Default memory cap per connection: 64 MiB.
pub const DEFAULT_BATCH_MEMORY_CAP: u64 = 64 * 1024 * 1024;
/// Default disk cap per connection: 1 GiB.
pub const DEFAULT_BATCH_DISK_CAP: u64 = 1024 * 1024 * 1024;
/// Default number of batches per connection.
pub const DEFAULT_MAX_BATCHES: usize = 64;
/// Default number of stored items per connection, over all its batches.
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 65_536;
/// Longest batch name, in bytes.
pub const MAX_BATCH_NAME: usize = 255;

/// Limits of a [`BatchService`], per connection.
///
/// ```
/// let mut limits = zs::BatchLimits::default();
/// limits.disk_per_connection = 256 * 1024 * 1024;
/// let service = zs::BatchService::with_limits(limits);
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

/// Bytes of one connection's items in memory and on disk, shared with taken batches so that
/// the memory cap also covers batches a handler is still reading.
#[derive(Debug, Default)]
struct Usage {
    memory: AtomicU64,
    disk: AtomicU64,
}

/// A batch's temporary file: items appended, offsets recorded. Removed when dropped.
struct Spill {
    // Declared before `_path`: the file is closed before it is removed.
    file: tokio::fs::File,
    _path: TempPath,
    /// Bytes of items written.
    len: u64,
}

impl Spill {
    async fn create(dir: PathBuf, peer_id: u64) -> io::Result<Self> {
        let prefix = format!("zs-batch-{peer_id}-");
        let named = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new().prefix(&prefix).tempfile_in(dir)
        })
        .await
        .map_err(io::Error::other)??;
        let (file, path) = named.into_parts();
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            _path: path,
            len: 0,
        })
    }

    /// Appends `data`, returning its offset.
    async fn append(&mut self, data: &[u8]) -> io::Result<u64> {
        let offset = self.len;
        // Seek first: a failed earlier write may have left a partial item past `len`.
        self.file.seek(SeekFrom::Start(offset)).await?;
        self.file.write_all(data).await?;
        self.file.flush().await?;
        self.len += data.len() as u64;
        Ok(offset)
    }
}

enum Item {
    Memory(Bytes),
    Spilled { offset: u64, len: u64 },
}

/// One batch's items, in post order, as a consuming command gets it from
/// [`BatchService::take`]. Items spilled to disk are read back as they come; the batch's file
/// is removed when the `Batch` is dropped.
pub struct Batch {
    name: String,
    items: VecDeque<Item>,
    /// Bytes of the remaining items.
    bytes: u64,
    /// Bytes of the remaining items held in memory.
    memory: u64,
    spill: Option<Spill>,
    usage: Arc<Usage>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("name", &self.name)
            .field("items", &self.items.len())
            .field("bytes", &self.bytes)
            .field("spilled", &self.spilled_bytes())
            .finish_non_exhaustive()
    }
}

impl Batch {
    fn new(name: String, usage: Arc<Usage>) -> Self {
        Self {
            name,
            items: VecDeque::new(),
            bytes: 0,
            memory: 0,
            spill: None,
            usage,
        }
    }

    /// The batch's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Items not yet read.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when every item has been read (or none was posted).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of the items not yet read.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes written to the batch's spill file (0 if everything fit in memory).
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, |spill| spill.len)
    }

    /// The next item in post order; `Ok(None)` once all are read. An item on disk is read
    /// back; if that fails the item stays next.
    pub async fn next_item(&mut self) -> io::Result<Option<Bytes>> {
        let Some(item) = self.items.pop_front() else {
            return Ok(None);
        };
        match item {
            Item::Memory(data) => {
                let len = data.len() as u64;
                self.bytes -= len;
                self.memory -= len;
                self.usage.memory.fetch_sub(len, Ordering::Relaxed);
                Ok(Some(data))
            }
            Item::Spilled { offset, len } => match self.read_spilled(offset, len).await {
                Ok(data) => {
                    self.bytes -= len;
                    Ok(Some(data))
                }
                Err(error) => {
                    self.items.push_front(Item::Spilled { offset, len });
                    Err(error)
                }
            },
        }
    }

    async fn read_spilled(&mut self, offset: u64, len: u64) -> io::Result<Bytes> {
        let spill = self
            .spill
            .as_mut()
            .ok_or_else(|| io::Error::other("spilled item without a spill file"))?;
        let mut data = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
        spill.file.seek(SeekFrom::Start(offset)).await?;
        spill.file.read_exact(&mut data).await?;
        Ok(Bytes::from(data))
    }

    fn push_memory(&mut self, data: Bytes) {
        let len = data.len() as u64;
        self.usage.memory.fetch_add(len, Ordering::Relaxed);
        self.memory += len;
        self.bytes += len;
        self.items.push_back(Item::Memory(data));
    }

    async fn push_spilled(&mut self, data: &[u8], dir: PathBuf, peer_id: u64) -> io::Result<()> {
        if self.spill.is_none() {
            self.spill = Some(Spill::create(dir, peer_id).await?);
        }
        let spill = self
            .spill
            .as_mut()
            .ok_or_else(|| io::Error::other("spill file missing"))?;
        let offset = spill.append(data).await?;
        let len = data.len() as u64;
        self.usage.disk.fetch_add(len, Ordering::Relaxed);
        self.bytes += len;
        self.items.push_back(Item::Spilled { offset, len });
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.usage.memory.fetch_sub(self.memory, Ordering::Relaxed);
        // The spill file is removed with `self.spill` right after this.
        self.usage
            .disk
            .fetch_sub(self.spilled_bytes(), Ordering::Relaxed);
    }
}

/// What one batch holds, as [`batch_state`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchInfo {
    /// The batch's name.
    pub name: String,
    /// Items posted.
    pub items: u64,
    /// Bytes of those items.
    pub bytes: u64,
    /// Bytes of them on disk.
    pub spilled: u64,
}

/// The batches of one connection, as [`batch_state`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchState {
    /// Bytes of the connection's items in memory (including batches being consumed).
    pub memory: u64,
    /// Bytes of the connection's items on disk (including batches being consumed).
    pub disk: u64,
    /// Every stored batch, by name.
    pub batches: Vec<BatchInfo>,
}

/// One connection's stored batches.
#[derive(Default)]
struct PeerBatches {
    batches: HashMap<String, Batch>,
    /// Items over all stored batches.
    items: usize,
    usage: Arc<Usage>,
}

impl PeerBatches {
    fn remove(&mut self, name: &str) -> Option<Batch> {
        let batch = self.batches.remove(name)?;
        self.items -= batch.len();
        Some(batch)
    }
}

type Store = Arc<tokio::sync::Mutex<PeerBatches>>;

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

/// The receiving side of BatchStream: per-connection batch stores with memory, disk and count
/// limits, and the four `__zs.batch.*` commands. Clones share the stores.
///
/// ```no_run
/// # async fn demo() -> Result<(), zs::BoxError> {
/// use zs::{BatchService, BoxError, DataFrame, Server};
///
/// let mut server = Server::bind("127.0.0.1:0").await?;
/// let batches = BatchService::default();
/// batches.register(server.commands_mut());
/// let store = batches.clone();
/// server.register_stream("sum_batch", move |ctx, input: DataFrame| {
///     let store = store.clone();
///     async move {
///         let name = input.reader().read_string()?;
///         let mut batch = store.take(ctx.peer(), &name).await.ok_or("no such batch")?;
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

    /// Registers `__zs.batch.new`, `__zs.batch.post`, `__zs.batch.state` and
    /// `__zs.batch.clear` on `commands`.
    pub fn register<S: Send + Sync + 'static>(&self, commands: &mut Commands<S>) {
        let service = self.clone();
        commands.register_stream(BATCH_NEW_COMMAND, move |ctx, input: DataFrame| {
            let service = service.clone();
            async move {
                let name = input.reader().read_string()?;
                service.create(ctx.peer(), name).await?;
                Ok(DataFrame::new())
            }
        });
        let service = self.clone();
        commands.register_complete_buffer(BATCH_POST_COMMAND, move |ctx, data: Bytes| {
            let service = service.clone();
            async move { service.post(ctx.peer(), data).await }
        });
        let service = self.clone();
        commands.register_stream(BATCH_STATE_COMMAND, move |ctx, _input: DataFrame| {
            let service = service.clone();
            async move { Ok(service.state(ctx.peer()).await.to_frame()) }
        });
        let service = self.clone();
        commands.register_stream(BATCH_CLEAR_COMMAND, move |ctx, input: DataFrame| {
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

impl BatchState {
    fn to_frame(&self) -> DataFrame {
        let mut frame = DataFrame::new().with(self.memory).with(self.disk);
        for batch in &self.batches {
            frame.push(
                DataFrame::new()
                    .with(batch.name.as_str())
                    .with(batch.items)
                    .with(batch.bytes)
                    .with(batch.spilled),
            );
        }
        frame
    }

    fn from_frame(frame: &DataFrame) -> Result<Self, zs_wire::dataframe::ReadError> {
        let mut reader = frame.reader();
        let memory = reader.read_u64()?;
        let disk = reader.read_u64()?;
        let mut batches = Vec::with_capacity(reader.remaining());
        while reader.remaining() > 0 {
            let entry = reader.read_frame()?;
            let mut entry = entry.reader();
            batches.push(BatchInfo {
                name: entry.read_string()?,
                items: entry.read_u64()?,
                bytes: entry.read_u64()?,
                spilled: entry.read_u64()?,
            });
        }
        Ok(Self {
            memory,
            disk,
            batches,
        })
    }
}

fn check_name(name: &str) -> Result<(), Status> {
    if name.is_empty() || name.len() > MAX_BATCH_NAME {
        return Err(Status::invalid_argument(format!(
            "batch name must be 1 to {MAX_BATCH_NAME} bytes, not {}",
            name.len()
        )));
    }
    Ok(())
}

/// Splits a post into its batch name and item (see the module's wire layout).
fn split_post(data: Bytes) -> Result<(String, Bytes), Status> {
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

/// Encodes a post (see the module's wire layout).
fn encode_post(name: &str, item: &[u8]) -> Result<Bytes, CallError> {
    check_name(name).map_err(CallError::Remote)?;
    let mut post = BytesMut::with_capacity(2 + name.len() + item.len());
    post.put_u16_le(name.len() as u16);
    post.put_slice(name.as_bytes());
    post.put_slice(item);
    Ok(post.freeze())
}

/// Creates batch `name` at the other side of `peer` (ZServer4D `NewBatchStream`); an error
/// if it exists or the connection has its maximum of batches.
pub async fn batch_new<S: Send + Sync + 'static>(
    peer: &Peer<S>,
    name: &str,
) -> Result<(), CallError> {
    peer.call_stream(BATCH_NEW_COMMAND, &DataFrame::new().with(name))
        .await
        .map(drop)
}

/// Appends `item` to batch `name` at the other side of `peer` (ZServer4D
/// `PostBatchStream`). Returns the batch's item count, bytes and spilled bytes after the
/// post. Refused with [`CallError::Remote`] (nothing stored) for an unknown batch or past the
/// receiver's disk or item limits; a name outside 1 to [`MAX_BATCH_NAME`] bytes fails
/// locally with [`CallError::Source`].
pub async fn batch_post<S: Send + Sync + 'static>(
    peer: &Peer<S>,
    name: &str,
    item: &[u8],
) -> Result<BatchInfo, CallError> {
    let post = encode_post(name, item)?;
    let reply = peer.send_complete_buffer(BATCH_POST_COMMAND, post).await?;
    let mut reader = reply.reader();
    let bad = |error: zs_wire::dataframe::ReadError| CallError::BadReply(BadReply::Values(error));
    Ok(BatchInfo {
        name: name.to_owned(),
        items: reader.read_u64().map_err(bad)?,
        bytes: reader.read_u64().map_err(bad)?,
        spilled: reader.read_u64().map_err(bad)?,
    })
}

/// The batches at the other side of `peer` (ZServer4D `GetBatchStreamState`).
pub async fn batch_state<S: Send + Sync + 'static>(
    peer: &Peer<S>,
) -> Result<BatchState, CallError> {
    let reply = peer
        .call_stream(BATCH_STATE_COMMAND, &DataFrame::new())
        .await?;
    BatchState::from_frame(&reply).map_err(|error| CallError::BadReply(BadReply::Values(error)))
}

/// Removes batch `name` at the other side of `peer` (ZServer4D `ClearBatchStream`); true if
/// it existed.
pub async fn batch_clear<S: Send + Sync + 'static>(
    peer: &Peer<S>,
    name: &str,
) -> Result<bool, CallError> {
    let reply = peer
        .call_stream(BATCH_CLEAR_COMMAND, &DataFrame::new().with(name))
        .await?;
    let removed = reply
        .reader()
        .read_u64()
        .map_err(|error| CallError::BadReply(BadReply::Values(error)))?;
    Ok(removed > 0)
}

/// Removes every batch at the other side of `peer`; returns how many there were.
pub async fn batch_clear_all<S: Send + Sync + 'static>(peer: &Peer<S>) -> Result<u64, CallError> {
    let reply = peer
        .call_stream(BATCH_CLEAR_COMMAND, &DataFrame::new())
        .await?;
    reply
        .reader()
        .read_u64()
        .map_err(|error| CallError::BadReply(BadReply::Values(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_layout_round_trips() {
        let post = encode_post("jobs", b"payload").unwrap();
        assert_eq!(&post[..2], &4u16.to_le_bytes());
        assert_eq!(&post[2..6], b"jobs");
        let (name, item) = split_post(post).unwrap();
        assert_eq!(name, "jobs");
        assert_eq!(&item[..], b"payload");
    }

    #[test]
    fn bad_posts_are_refused() {
        assert!(split_post(Bytes::from_static(b"\x01")).is_err());
        assert!(split_post(Bytes::from_static(b"\x05\x00ab")).is_err());
        assert!(split_post(Bytes::from_static(b"\x00\x00item")).is_err());
        assert!(split_post(Bytes::from_static(b"\x02\x00\xff\xfeitem")).is_err());
        assert!(encode_post("", b"x").is_err());
        assert!(encode_post(&"n".repeat(MAX_BATCH_NAME + 1), b"x").is_err());
    }
}
