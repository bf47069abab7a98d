//! [`Batch`] and the per-connection stores behind a [`BatchService`](super::BatchService):
//! items in memory, or in a spill file past the memory cap.

use std::collections::{HashMap, VecDeque};
use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use zs_wire::DataFrame;

/// Bytes of one connection's items in memory and on disk, shared with taken batches so that
/// the memory cap also covers batches a handler is still reading.
#[derive(Debug, Default)]
pub(super) struct Usage {
    pub(super) memory: AtomicU64,
    pub(super) disk: AtomicU64,
}

/// A batch's temporary file: items appended, offsets recorded. Removed when dropped.
pub(super) struct Spill {
    // Declared before `_path`: the file is closed before it is removed.
    file: tokio::fs::File,
    _path: TempPath,
    /// Bytes of items written.
    len: u64,
}

impl Spill {
    pub(super) async fn create(dir: PathBuf, peer_id: u64) -> io::Result<Self> {
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
    pub(super) async fn append(&mut self, data: &[u8]) -> io::Result<u64> {
        let offset = self.len;
        // Seek first: a failed earlier write may have left a partial item past `len`.
        self.file.seek(SeekFrom::Start(offset)).await?;
        self.file.write_all(data).await?;
        self.file.flush().await?;
        self.len += data.len() as u64;
        Ok(offset)
    }
}

pub(super) enum Item {
    Memory(Bytes),
    Spilled { offset: u64, len: u64 },
}

/// One batch's items, in post order, as a consuming command gets it from
/// [`BatchService::take`](super::BatchService::take). Items spilled to disk are read back as they come; the batch's file
/// is removed when the `Batch` is dropped.
pub struct Batch {
    pub(super) name: String,
    pub(super) items: VecDeque<Item>,
    /// Bytes of the remaining items.
    pub(super) bytes: u64,
    /// Bytes of the remaining items held in memory.
    pub(super) memory: u64,
    pub(super) spill: Option<Spill>,
    pub(super) usage: Arc<Usage>,
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
    pub(super) fn new(name: String, usage: Arc<Usage>) -> Self {
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

    pub(super) async fn read_spilled(&mut self, offset: u64, len: u64) -> io::Result<Bytes> {
        let spill = self
            .spill
            .as_mut()
            .ok_or_else(|| io::Error::other("spilled item without a spill file"))?;
        let mut data = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
        spill.file.seek(SeekFrom::Start(offset)).await?;
        spill.file.read_exact(&mut data).await?;
        Ok(Bytes::from(data))
    }

    pub(super) fn push_memory(&mut self, data: Bytes) {
        let len = data.len() as u64;
        self.usage.memory.fetch_add(len, Ordering::Relaxed);
        self.memory += len;
        self.bytes += len;
        self.items.push_back(Item::Memory(data));
    }

    pub(super) async fn push_spilled(
        &mut self,
        data: &[u8],
        dir: PathBuf,
        peer_id: u64,
    ) -> io::Result<()> {
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

/// What one batch holds, as [`BatchClient::state`](super::BatchClient::state) reports it.
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

/// The batches of one connection, as [`BatchClient::state`](super::BatchClient::state) reports them.
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
pub(super) struct PeerBatches {
    pub(super) batches: HashMap<String, Batch>,
    /// Items over all stored batches.
    pub(super) items: usize,
    pub(super) usage: Arc<Usage>,
}

impl PeerBatches {
    pub(super) fn remove(&mut self, name: &str) -> Option<Batch> {
        let batch = self.batches.remove(name)?;
        self.items -= batch.len();
        Some(batch)
    }
}

pub(super) type Store = Arc<tokio::sync::Mutex<PeerBatches>>;

impl BatchState {
    pub(super) fn to_frame(&self) -> DataFrame {
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

    pub(super) fn from_frame(frame: &DataFrame) -> Result<Self, zs_wire::dataframe::ReadError> {
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
