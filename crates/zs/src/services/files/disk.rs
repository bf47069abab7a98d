//! File I/O shared by both sides: SHA3-256 of (a prefix of) a file on the blocking pool,
//! and writing a received BigStream to a file.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;
use zs_wire::crypto::hash::{HashAlgorithm, Hasher, hex};

use super::protocol::HASH_BUFFER;
use crate::transfer::large::{BigStream, StreamError};

/// Sets its flag when dropped: tells a blocking job its result is no longer wanted.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// SHA3-256 (hex) of the file's first `limit` bytes (all of it for `None`), on the blocking
/// pool, with the number of bytes hashed. Dropping the future stops the job.
pub(super) async fn hash_file(path: PathBuf, limit: Option<u64>) -> io::Result<(String, u64)> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel = CancelOnDrop(cancelled.clone());
    tokio::task::spawn_blocking(move || hash_blocking(&path, limit, &cancelled))
        .await
        .map_err(io::Error::other)?
}

fn hash_blocking(
    path: &Path,
    limit: Option<u64>,
    cancelled: &AtomicBool,
) -> io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hasher::new(HashAlgorithm::Sha3_256);
    let mut buffer = vec![0u8; HASH_BUFFER];
    let limit = limit.unwrap_or(u64::MAX);
    let mut hashed = 0u64;
    while hashed < limit {
        if cancelled.load(Ordering::Relaxed) {
            return Err(io::Error::other("hashing cancelled"));
        }
        let want = usize::try_from(limit - hashed)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        let read = match file.read(&mut buffer[..want]) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        hashed += read as u64;
    }
    Ok((hex(&hasher.finalize()), hashed))
}

/// Why writing a received stream to its file stopped.
#[derive(Debug)]
pub(super) enum WriteFailure {
    Stream(StreamError),
    Io(io::Error),
    /// The side that asked for the file is gone.
    Abandoned,
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stream(error) => error.fmt(f),
            Self::Io(error) => write!(f, "cannot write the file: {error}"),
            Self::Abandoned => f.write_str("the receiving side gave up"),
        }
    }
}

/// Writes `first` and then the rest of `stream` to `file`, calling `progress(written)` after
/// each write, until the stream ends, fails, or `stop` completes. The file is flushed in
/// every case, so a later resume sees every byte written. Returns the bytes written.
pub(super) async fn write_stream(
    stream: &mut BigStream,
    first: Bytes,
    file: &mut File,
    progress: &mut (dyn FnMut(u64) + Send),
    stop: impl Future<Output = ()>,
) -> (u64, Result<(), WriteFailure>) {
    tokio::pin!(stop);
    let mut written = 0u64;
    let mut result = Ok(());
    if !first.is_empty() {
        match file.write_all(&first).await {
            Ok(()) => {
                written += first.len() as u64;
                progress(written);
            }
            Err(error) => result = Err(WriteFailure::Io(error)),
        }
    }
    while result.is_ok() {
        let chunk = tokio::select! {
            chunk = stream.next_chunk() => chunk,
            () = &mut stop => {
                result = Err(WriteFailure::Abandoned);
                break;
            }
        };
        match chunk {
            Ok(Some(chunk)) => match file.write_all(&chunk).await {
                Ok(()) => {
                    written += chunk.len() as u64;
                    progress(written);
                }
                Err(error) => result = Err(WriteFailure::Io(error)),
            },
            Ok(None) => break,
            Err(error) => result = Err(WriteFailure::Stream(error)),
        }
    }
    let flushed = file.flush().await.map_err(WriteFailure::Io);
    (written, result.and(flushed))
}
