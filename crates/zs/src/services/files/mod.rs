//! File transfer: a [`FileService`] serves one directory; [`put_file`] and [`get_file`] move
//! whole files over a connection, resume interrupted transfers, and check SHA3-256 of the
//! whole file on both sides.
//!
//! The public pieces are re-exported at the crate root; [`FileService`] documents the
//! commands and their wire format.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::oneshot;
use zs_wire::DataFrame;
use zs_wire::crypto::hash::{HashAlgorithm, Hasher, hex};

use crate::dispatch::{Commands, Context, Status, StatusCode};
use crate::endpoint::client::{Client, ClientBuilder};
use crate::endpoint::peer::Peer;
use crate::error::CallError;
use crate::transfer::large::{BigStream, StreamError};

const STAT: &str = "__zs.files.stat";
const PUT: &str = "__zs.files.put";
const COMMIT: &str = "__zs.files.commit";
const GET: &str = "__zs.files.get";
const SINK: &str = "__zs.files.sink";

/// Appended to a file's name while it is being received.
const PART_SUFFIX: &str = ".part";
/// Largest transfer header accepted.
const MAX_HEADER: usize = 64 * 1024;
/// Timeout of calls that hash whole files or carry a whole download: a dead connection ends
/// them anyway (keep-alive); this only bounds a stuck handler.
const LONG_CALL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a server operation waits for another one on the same file (an interrupted
/// transfer still writing its last chunks) before answering "busy".
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Read size when hashing files.
const HASH_BUFFER: usize = 1 << 20;
/// Tags in the details of the service's error statuses, so the client tells failures
/// apart by code and details, never by message text.
const DETAIL_NOT_FOUND: &str = "not-found";
const DETAIL_MISMATCH: &str = "sha3-mismatch";
const DETAIL_NO_SINK: &str = "no-sink";

// ---------------------------------------------------------------------------------------
// Messages

#[derive(Debug, Serialize, Deserialize)]
struct StatRequest {
    path: String,
    #[serde(default)]
    part: bool,
    #[serde(default = "yes")]
    hash: bool,
    #[serde(default)]
    hash_len: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
struct StatReply {
    found: bool,
    #[serde(default)]
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha3: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PutHeader {
    path: String,
    size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CommitRequest {
    path: String,
    sha3: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CommitReply {
    size: u64,
    sha3: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct GetRequest {
    path: String,
    offset: u64,
    transfer: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct GetReply {
    size: u64,
    sha3: String,
    sent: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SinkHeader {
    transfer: u64,
    size: u64,
}

fn encode_header<T: Serialize>(header: &T) -> Vec<u8> {
    // Our headers are plain structs of strings and numbers: serializing cannot fail.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// Reads a transfer's header; returns it with the bytes that followed it in its chunk.
async fn read_header<T: DeserializeOwned>(stream: &mut BigStream) -> Result<(T, Bytes), String> {
    let mut buffer = BytesMut::new();
    loop {
        if buffer.len() >= 4 {
            let mut len = [0u8; 4];
            len.copy_from_slice(&buffer[..4]);
            let len = u32::from_le_bytes(len) as usize;
            if len > MAX_HEADER {
                return Err(format!(
                    "transfer header of {len} bytes exceeds {MAX_HEADER}"
                ));
            }
            if buffer.len() >= 4 + len {
                let header = serde_json::from_slice(&buffer[4..4 + len])
                    .map_err(|error| format!("bad transfer header: {error}"))?;
                let rest = buffer.split_off(4 + len).freeze();
                return Ok((header, rest));
            }
        }
        match stream.next_chunk().await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk),
            Ok(None) => return Err("the transfer ended inside its header".to_owned()),
            Err(error) => return Err(error.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Paths, locks, hashing (both sides)

/// Splits a remote path into its normal components, or says why it is refused.
fn parse_remote(remote: &str) -> Result<Vec<&str>, &'static str> {
    if remote.is_empty() {
        return Err("the path is empty");
    }
    if remote.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if remote.contains('\\') {
        return Err("backslashes are not allowed; separate with /");
    }
    if remote.contains('\0') {
        return Err("NUL bytes are not allowed");
    }
    let mut parts = Vec::new();
    for part in remote.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err("\"..\" components are not allowed"),
            _ => {}
        }
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => parts.push(part),
            // A drive prefix ("C:") or anything else a platform reads as more than a name.
            _ => return Err("absolute paths are not allowed"),
        }
    }
    if parts.is_empty() {
        return Err("the path names no file");
    }
    Ok(parts)
}

fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PART_SUFFIX);
    PathBuf::from(name)
}

type LockTable = HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>;

/// One async lock per file path, so two operations never write the same `.part`.
#[derive(Debug, Default, Clone)]
struct PathLocks {
    table: Arc<Mutex<LockTable>>,
}

impl PathLocks {
    fn table(&self) -> MutexGuard<'_, LockTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn lock(&self, path: &Path) -> PathGuard {
        let mutex = self.table().entry(path.to_owned()).or_default().clone();
        let held = mutex.lock_owned().await;
        PathGuard {
            locks: self.clone(),
            path: path.to_owned(),
            held: Some(held),
        }
    }
}

struct PathGuard {
    locks: PathLocks,
    path: PathBuf,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        self.held = None;
        let mut table = self.locks.table();
        if table
            .get(&self.path)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            table.remove(&self.path);
        }
    }
}

/// Sets its flag when dropped: tells a blocking job its result is no longer wanted.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// SHA3-256 (hex) of the file's first `limit` bytes (all of it for `None`), on the blocking
/// pool, with the number of bytes hashed. Dropping the future stops the job.
async fn hash_file(path: PathBuf, limit: Option<u64>) -> io::Result<(String, u64)> {
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
enum WriteFailure {
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
async fn write_stream(
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

// ---------------------------------------------------------------------------------------
// Server side

/// Why a file command was refused; [`ServeError::into_status`] gives the caller its code.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("bad path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error(
        "sha3-256 mismatch: expected {expected}, the .part has {actual}; the .part is kept for a resume"
    )]
    Mismatch { expected: String, actual: String },
    #[error("the client cannot receive files (no file sink installed)")]
    NoSink,
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
}

impl ServeError {
    /// The status the caller receives: a code, and details the client decodes.
    fn into_status(self) -> Status {
        let message = self.to_string();
        match self {
            Self::BadPath { .. } => Status::invalid_argument(message),
            Self::NotFound(path) => Status::not_found(message)
                .with_details(DataFrame::new().with(DETAIL_NOT_FOUND).with(path)),
            Self::Mismatch { expected, actual } => Status::failed_precondition(message)
                .with_details(
                    DataFrame::new()
                        .with(DETAIL_MISMATCH)
                        .with(expected)
                        .with(actual),
                ),
            Self::NoSink => Status::failed_precondition(message)
                .with_details(DataFrame::new().with(DETAIL_NO_SINK)),
            Self::Refused(_) => Status::failed_precondition(message),
            Self::Io { error, .. } => {
                let code = Status::from(error).code();
                Status::new(code, message)
            }
        }
    }
}

fn bad_path(path: &str, reason: &str) -> ServeError {
    ServeError::BadPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

fn io_error(what: &str) -> impl FnOnce(io::Error) -> ServeError + '_ {
    move |error| ServeError::Io {
        what: what.to_owned(),
        error,
    }
}

fn parse_json<T: DeserializeOwned>(command: &str, text: &str) -> Result<T, ServeError> {
    serde_json::from_str(text)
        .map_err(|error| ServeError::Refused(format!("{command}: bad request: {error}")))
}

fn reply_json<T: Serialize>(reply: &T) -> Result<String, ServeError> {
    serde_json::to_string(reply).map_err(|error| ServeError::Refused(error.to_string()))
}

/// Serves one directory to [`put_file`] and [`get_file`]: register it on a server's command
/// table with [`FileService::register`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::path::Path;
/// use zs::{Client, FileService, Server, TransferOptions};
///
/// let mut server = Server::bind("127.0.0.1:0").await?;
/// FileService::new("/srv/shared")?.register(server.commands_mut());
/// let addr = server.local_addr()?;
/// let server = server.spawn();
///
/// // `get_file` needs the client-side sink registered before connecting.
/// let client = zs::register_sink(Client::builder()).connect(addr).await?;
/// let sent = zs::put_file(&client, Path::new("big.iso"), "isos/big.iso",
///     TransferOptions::new().resume(true)).await?;
/// let got = zs::get_file(&client, "isos/big.iso", Path::new("copy.iso"),
///     TransferOptions::new()).await?;
/// assert_eq!(sent.sha3_hex, got.sha3_hex);
/// server.shutdown().await;
/// # Ok(()) }
/// ```
///
/// ## Commands (registered by [`FileService::register`])
///
/// Paths are relative to the served root, `/`-separated; absolute paths, `..` components,
/// backslashes and anything that resolves outside the root (through a symbolic link) are
/// refused with a `bad path` error reply. Anyone who can connect can read and write the
/// root: serve only what the server's clients may see (a token or pinned keys restrict who
/// connects).
///
/// - `__zs.files.stat` (console, JSON): `{"path", "part": bool, "hash": bool, "hash_len":
///   n|null}` → `{"found": false, "size": 0}` or `{"found": true, "size", "sha3"}`; with
///   `part` it describes `<path>.part` (waiting for a transfer still writing it), with
///   `hash_len` the hash covers only the first `hash_len` bytes (how a resumed download
///   checks its local prefix).
/// - `__zs.files.put` (BigStream): the stream starts with a header (below) naming the path
///   and the file size, then the file's bytes from the stream's offset. They go to
///   `<path>.part`: offset 0 starts it anew, any other offset must equal the current size
///   of the `.part` (a resume). Replies with the `.part`'s size as one `u64`. Nothing is
///   renamed here.
/// - `__zs.files.commit` (console, JSON): `{"path", "sha3"}`: hashes the `.part` and renames
///   it to the final name if the hash is the expected one; otherwise an error reply
///   (`sha3-256 mismatch: ...`) and the `.part` stays for a later resume. Replies
///   `{"size", "sha3"}`.
/// - `__zs.files.get` (console, JSON): `{"path", "offset", "transfer"}`: pushes the file from
///   `offset` to the calling client's `__zs.files.sink` (a BigStream whose header carries
///   `transfer` and the file's size) and, once the sink has answered, replies `{"size",
///   "sha3", "sent"}` with the whole file's size and SHA3-256.
///
/// A transfer header is a `u32` little-endian length followed by that many bytes of JSON
/// (at most 64 KiB): a BigStream carries no request body, so the header travels as the
/// stream's first bytes. The stream's offset ([`BigStream::offset`]) is where the file bytes
/// after the header start in the file.
#[derive(Debug, Clone)]
pub struct FileService {
    inner: Arc<Service>,
}

#[derive(Debug)]
struct Service {
    /// Canonical.
    root: PathBuf,
    locks: PathLocks,
}

impl FileService {
    /// Serves `root`, which must be an existing directory.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = std::fs::canonicalize(root.into())?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self {
            inner: Arc::new(Service {
                root,
                locks: PathLocks::default(),
            }),
        })
    }

    /// The served directory (canonical).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Registers the `__zs.files.*` commands on `commands` (a server's
    /// [`commands_mut`](crate::Server::commands_mut)).
    pub fn register<S: Send + Sync + 'static>(&self, commands: &mut Commands<S>) {
        let service = self.inner.clone();
        commands.register_console(STAT, move |_ctx: Context<S>, text: String| {
            let service = service.clone();
            async move { service.stat(&text).await.map_err(ServeError::into_status) }
        });
        let service = self.inner.clone();
        commands.register_big_stream(PUT, move |_ctx: Context<S>, stream: BigStream| {
            let service = service.clone();
            async move { service.put(stream).await.map_err(ServeError::into_status) }
        });
        let service = self.inner.clone();
        commands.register_console(COMMIT, move |_ctx: Context<S>, text: String| {
            let service = service.clone();
            async move { service.commit(&text).await.map_err(ServeError::into_status) }
        });
        let service = self.inner.clone();
        commands.register_console(GET, move |ctx: Context<S>, text: String| {
            let service = service.clone();
            let peer = ctx.peer().clone();
            async move {
                service
                    .get(&peer, &text)
                    .await
                    .map_err(ServeError::into_status)
            }
        });
    }
}

impl Service {
    /// The local path of `remote`, checked to lie inside the root; with `create`, missing
    /// parent directories are created (after checking where they would be).
    async fn resolve(&self, remote: &str, create: bool) -> Result<PathBuf, ServeError> {
        let parts = parse_remote(remote).map_err(|reason| bad_path(remote, reason))?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(bad_path(remote, "the path names no file"));
        };
        let mut parent = self.root.clone();
        parent.extend(dirs);
        if create {
            // Where the new directories would go must already be inside the root.
            let mut existing = parent.as_path();
            loop {
                match tokio::fs::symlink_metadata(existing).await {
                    Ok(_) => break,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        existing = existing.parent().unwrap_or(&self.root);
                    }
                    Err(error) => return Err(io_error(remote)(error)),
                }
            }
            self.check_inside(remote, existing).await?;
            tokio::fs::create_dir_all(&parent)
                .await
                .map_err(io_error(remote))?;
        }
        let parent = match tokio::fs::canonicalize(&parent).await {
            Ok(parent) => parent,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ServeError::NotFound(remote.to_owned()));
            }
            Err(error) => return Err(io_error(remote)(error)),
        };
        if !parent.starts_with(&self.root) {
            return Err(bad_path(remote, "it resolves outside the served directory"));
        }
        let path = parent.join(name);
        self.check_link(remote, &path).await?;
        Ok(path)
    }

    async fn check_inside(&self, remote: &str, path: &Path) -> Result<(), ServeError> {
        match tokio::fs::canonicalize(path).await {
            Ok(path) if path.starts_with(&self.root) => Ok(()),
            _ => Err(bad_path(remote, "it resolves outside the served directory")),
        }
    }

    /// A symbolic link inside the root may point anywhere: followed only if it stays inside.
    async fn check_link(&self, remote: &str, path: &Path) -> Result<(), ServeError> {
        match tokio::fs::symlink_metadata(path).await {
            Ok(meta) if meta.file_type().is_symlink() => self.check_inside(remote, path).await,
            _ => Ok(()),
        }
    }

    async fn lock(&self, remote: &str, path: &Path) -> Result<PathGuard, ServeError> {
        tokio::time::timeout(LOCK_WAIT, self.locks.lock(path))
            .await
            .map_err(|_| ServeError::Refused(format!("busy: another transfer is using {remote}")))
    }

    async fn stat(&self, text: &str) -> Result<String, ServeError> {
        let request: StatRequest = parse_json(STAT, text)?;
        let not_found = || {
            reply_json(&StatReply {
                found: false,
                size: 0,
                sha3: None,
            })
        };
        let path = match self.resolve(&request.path, false).await {
            Ok(path) => path,
            Err(ServeError::NotFound(_)) => return not_found(),
            Err(error) => return Err(error),
        };
        // A `.part` may still be written by an interrupted transfer: wait for it to settle.
        let (target, _guard) = if request.part {
            let part = part_of(&path);
            self.check_link(&request.path, &part).await?;
            (part, Some(self.lock(&request.path, &path).await?))
        } else {
            (path, None)
        };
        let meta = match tokio::fs::metadata(&target).await {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return not_found(),
            Err(error) => return Err(io_error(&request.path)(error)),
        };
        if !meta.is_file() {
            return Err(ServeError::Refused(format!(
                "{} is not a regular file",
                request.path
            )));
        }
        let sha3 = if request.hash {
            let (sha3, _) = hash_file(target, request.hash_len)
                .await
                .map_err(io_error(&request.path))?;
            Some(sha3)
        } else {
            None
        };
        reply_json(&StatReply {
            found: true,
            size: meta.len(),
            sha3,
        })
    }

    async fn put(&self, mut stream: BigStream) -> Result<DataFrame, ServeError> {
        let (header, first): (PutHeader, Bytes) = read_header(&mut stream)
            .await
            .map_err(ServeError::Refused)?;
        let remote = header.path.as_str();
        let path = self.resolve(remote, true).await?;
        if tokio::fs::metadata(&path)
            .await
            .is_ok_and(|meta| meta.is_dir())
        {
            return Err(ServeError::Refused(format!("{remote} is a directory")));
        }
        let part = part_of(&path);
        self.check_link(remote, &part).await?;
        let _guard = self.lock(remote, &path).await?;
        let offset = stream.offset();
        let mut file = open_part(remote, &part, offset).await?;
        let (written, result) = write_stream(
            &mut stream,
            first,
            &mut file,
            &mut |_| {},
            std::future::pending(),
        )
        .await;
        tracing::debug!(
            path = remote,
            offset,
            written,
            ok = result.is_ok(),
            "put received"
        );
        match result {
            Ok(()) => Ok(DataFrame::new().with(offset + written)),
            Err(WriteFailure::Io(error)) => Err(io_error(remote)(error)),
            Err(other) => Err(ServeError::Refused(format!(
                "{remote}: transfer stopped after {} bytes: {other}",
                offset + written
            ))),
        }
    }

    async fn commit(&self, text: &str) -> Result<String, ServeError> {
        let request: CommitRequest = parse_json(COMMIT, text)?;
        let remote = request.path.as_str();
        let path = self.resolve(remote, false).await?;
        let part = part_of(&path);
        self.check_link(remote, &part).await?;
        let _guard = self.lock(remote, &path).await?;
        let (sha3, size) = match hash_file(part.clone(), None).await {
            Ok(hashed) => hashed,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ServeError::Refused(format!(
                    "nothing to commit: no {remote}{PART_SUFFIX}"
                )));
            }
            Err(error) => return Err(io_error(remote)(error)),
        };
        if !sha3.eq_ignore_ascii_case(&request.sha3) {
            return Err(ServeError::Mismatch {
                expected: request.sha3,
                actual: sha3,
            });
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&part)
            .await
            .map_err(io_error(remote))?;
        file.sync_all().await.map_err(io_error(remote))?;
        drop(file);
        tokio::fs::rename(&part, &path)
            .await
            .map_err(io_error(remote))?;
        tracing::info!(path = remote, size, %sha3, "file stored");
        reply_json(&CommitReply { size, sha3 })
    }

    async fn get<S: Send + Sync + 'static>(
        &self,
        peer: &Peer<S>,
        text: &str,
    ) -> Result<String, ServeError> {
        let request: GetRequest = parse_json(GET, text)?;
        let remote = request.path.as_str();
        let path = self.resolve(remote, false).await?;
        let mut file = match File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ServeError::NotFound(remote.to_owned()));
            }
            Err(error) => return Err(io_error(remote)(error)),
        };
        let meta = file.metadata().await.map_err(io_error(remote))?;
        if !meta.is_file() {
            return Err(ServeError::Refused(format!(
                "{remote} is not a regular file"
            )));
        }
        let size = meta.len();
        let offset = request.offset;
        if offset > size {
            return Err(ServeError::Refused(format!(
                "offset {offset} is past the end of {remote} ({size} bytes)"
            )));
        }
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(io_error(remote))?;
        let remaining = size - offset;
        let header = encode_header(&SinkHeader {
            transfer: request.transfer,
            size,
        });
        let total = header.len() as u64 + remaining;
        let reader = std::io::Cursor::new(header).chain(file.take(remaining));
        let send = async {
            let reply = peer
                .send_big_stream(SINK, reader, Some(total))
                .offset(offset)
                .await
                .map_err(|error| {
                    if error.is_unknown_command() {
                        ServeError::NoSink
                    } else {
                        ServeError::Refused(format!("cannot send {remote} to the client: {error}"))
                    }
                })?;
            reply
                .reader()
                .read_u64()
                .map_err(|error| ServeError::Refused(format!("bad reply from the sink: {error}")))
        };
        let hash = async {
            hash_file(path.clone(), Some(size))
                .await
                .map_err(io_error(remote))
        };
        let (sent, (sha3, _)) = tokio::try_join!(send, hash)?;
        tracing::debug!(path = remote, offset, sent, "file sent");
        reply_json(&GetReply { size, sha3, sent })
    }
}

/// Opens `<path>.part` to write at `offset`: 0 starts anew; a resume must continue exactly
/// where the `.part` ends.
async fn open_part(remote: &str, part: &Path, offset: u64) -> Result<File, ServeError> {
    if offset == 0 {
        return File::create(part).await.map_err(io_error(remote));
    }
    let mut file = match OpenOptions::new().write(true).open(part).await {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(ServeError::Refused(format!(
                "cannot resume {remote} at byte {offset}: there is no {PART_SUFFIX} file"
            )));
        }
        Err(error) => return Err(io_error(remote)(error)),
    };
    let size = file.metadata().await.map_err(io_error(remote))?.len();
    if size != offset {
        return Err(ServeError::Refused(format!(
            "cannot resume {remote} at byte {offset}: the {PART_SUFFIX} file holds {size} bytes"
        )));
    }
    file.seek(SeekFrom::Start(offset))
        .await
        .map_err(io_error(remote))?;
    Ok(file)
}

// ---------------------------------------------------------------------------------------
// Client side

/// A file transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A local file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The local file.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// A call to the server failed (connection, timeout, protocol).
    #[error(transparent)]
    Call(CallError),
    /// The server refused or failed the operation.
    #[error("server: {0}")]
    Remote(Status),
    /// The file's SHA3-256 differs between the two sides (the `.part` is kept; a resume
    /// checks its prefix again and starts over if that differs).
    #[error("sha3-256 mismatch: local {local}, remote {remote}")]
    HashMismatch {
        /// This side's hash (hex).
        local: String,
        /// The server's hash (hex).
        remote: String,
    },
    /// The remote path is refused before anything is sent.
    #[error("bad remote path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: String,
    },
    /// The remote file does not exist.
    #[error("not found on the server: {0}")]
    NotFound(String),
    /// Fewer (or more) bytes arrived than the file has.
    #[error("transfer incomplete: expected {expected} bytes, got {got}")]
    Incomplete {
        /// The file's size.
        expected: u64,
        /// What the receiver holds.
        got: u64,
    },
    /// The server does not serve files (no [`FileService`] registered there).
    #[error("the server does not serve files (start it with a FileService)")]
    NotServed,
    /// The client cannot receive files: it was built without [`register_sink`].
    #[error("this client cannot receive files: build it with zs::register_sink")]
    NoSink,
    /// The server's reply is not what the command promises.
    #[error("malformed reply: {0}")]
    BadReply(String),
}

impl From<CallError> for FileError {
    fn from(error: CallError) -> Self {
        let CallError::Remote(status) = error else {
            return Self::Call(error);
        };
        if status.code() == StatusCode::UNIMPLEMENTED {
            return Self::NotServed;
        }
        let mut details = status.details().map(DataFrame::reader);
        let tag = details
            .as_mut()
            .and_then(|details| details.read_string().ok());
        match (tag.as_deref(), details) {
            (Some(DETAIL_NOT_FOUND), Some(mut details)) => {
                Self::NotFound(details.read_string().unwrap_or_default())
            }
            (Some(DETAIL_MISMATCH), Some(mut details)) => Self::HashMismatch {
                local: details.read_string().unwrap_or_default(),
                remote: details.read_string().unwrap_or_default(),
            },
            (Some(DETAIL_NO_SINK), _) => Self::NoSink,
            _ => Self::Remote(status),
        }
    }
}

fn check_remote(remote: &str) -> Result<(), FileError> {
    parse_remote(remote)
        .map(drop)
        .map_err(|reason| FileError::BadPath {
            path: remote.to_owned(),
            reason: reason.to_owned(),
        })
}

fn local_error(path: &Path) -> impl Fn(io::Error) -> FileError + Copy + '_ {
    move |error| FileError::Io {
        path: path.to_owned(),
        error,
    }
}

async fn call_json<S: Send + Sync + 'static, Q: Serialize, R: DeserializeOwned>(
    peer: &Peer<S>,
    command: &str,
    request: &Q,
) -> Result<R, FileError> {
    let text =
        serde_json::to_string(request).map_err(|error| FileError::BadReply(error.to_string()))?;
    let reply = peer.call_console(command, &text).timeout(LONG_CALL).await?;
    serde_json::from_str(&reply).map_err(|error| FileError::BadReply(format!("{command}: {error}")))
}

type ProgressFn = Box<dyn FnMut(u64, u64) + Send>;

/// How to run one transfer.
#[derive(Default)]
#[non_exhaustive]
pub struct TransferOptions {
    /// Continue an interrupted transfer from its `.part` (on the server for a put, locally
    /// for a get) when the `.part`'s bytes are the file's first bytes; otherwise start over.
    pub resume: bool,
    /// Called with `(bytes of the file transferred so far, file size)` as the transfer runs.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("resume", &self.resume)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl TransferOptions {
    /// No resume, no progress callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`TransferOptions::resume`](#structfield.resume).
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Calls `callback(done, total)` as bytes of the file move.
    pub fn on_progress(mut self, callback: impl FnMut(u64, u64) + Send + 'static) -> Self {
        self.progress = Some(Box::new(callback));
        self
    }
}

/// What a finished transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransferReport {
    /// Bytes of the file carried in this transfer (the file's size less `resumed_from`).
    pub bytes_sent: u64,
    /// The file's size.
    pub total: u64,
    /// Where this transfer started in the file: 0, or the size of the `.part` it resumed.
    pub resumed_from: u64,
    /// SHA3-256 of the whole file, lower-case hex, the same on both sides.
    pub sha3_hex: String,
}

/// Uploads `local` to the server's `remote` path (relative to its served directory):
/// streams it to `<remote>.part`, then commits it with the file's SHA3-256, which the server
/// checks against the whole `.part` before renaming it. With `resume`, continues from an
/// earlier attempt's `.part` if that is a prefix of the local file.
///
/// Dropping the future cancels the transfer; the server keeps what arrived for a resume.
pub async fn put_file<S: Send + Sync + 'static>(
    client: &Client<S>,
    local: &Path,
    remote: &str,
    mut options: TransferOptions,
) -> Result<TransferReport, FileError> {
    check_remote(remote)?;
    let peer = client.peer();
    let local_io = local_error(local);
    let mut file = File::open(local).await.map_err(local_io)?;
    let meta = file.metadata().await.map_err(local_io)?;
    if !meta.is_file() {
        return Err(local_io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let total = meta.len();
    let mut offset = 0;
    if options.resume {
        let request = StatRequest {
            path: remote.to_owned(),
            part: true,
            hash: true,
            hash_len: None,
        };
        let stat: StatReply = call_json(peer, STAT, &request).await?;
        if stat.found && stat.size > 0 && stat.size <= total {
            let (prefix, hashed) = hash_file(local.to_owned(), Some(stat.size))
                .await
                .map_err(local_io)?;
            if hashed == stat.size
                && stat
                    .sha3
                    .is_some_and(|sha3| sha3.eq_ignore_ascii_case(&prefix))
            {
                offset = stat.size;
            } else {
                tracing::debug!(remote, "the remote .part is not a prefix of the file");
            }
        }
    }
    file.seek(SeekFrom::Start(offset)).await.map_err(local_io)?;
    let header = encode_header(&PutHeader {
        path: remote.to_owned(),
        size: total,
    });
    let header_len = header.len() as u64;
    let remaining = total - offset;
    let reader = std::io::Cursor::new(header).chain(file.take(remaining));
    let mut upload = peer
        .send_big_stream(PUT, reader, Some(header_len + remaining))
        .offset(offset);
    if let Some(mut progress) = options.progress.take() {
        upload = upload.on_progress(move |sent, _| {
            progress(offset + sent.saturating_sub(header_len), total);
        });
    }
    let send = async {
        let reply = upload.await?;
        reply
            .reader()
            .read_u64()
            .map_err(|error| FileError::BadReply(format!("{PUT}: {error}")))
    };
    let hash = async {
        hash_file(local.to_owned(), Some(total))
            .await
            .map_err(local_io)
    };
    let (stored, (sha3, hashed)) = tokio::try_join!(send, hash)?;
    if hashed != total {
        return Err(local_io(io::Error::other(
            "the file shrank during the transfer",
        )));
    }
    if stored != total {
        return Err(FileError::Incomplete {
            expected: total,
            got: stored,
        });
    }
    let request = CommitRequest {
        path: remote.to_owned(),
        sha3: sha3.clone(),
    };
    let committed: CommitReply = call_json(peer, COMMIT, &request).await?;
    if !committed.sha3.eq_ignore_ascii_case(&sha3) || committed.size != total {
        return Err(FileError::HashMismatch {
            local: sha3,
            remote: committed.sha3,
        });
    }
    Ok(TransferReport {
        bytes_sent: remaining,
        total,
        resumed_from: offset,
        sha3_hex: sha3,
    })
}

/// A download waiting for the server's push, found by the sink through its transfer id.
struct PendingSink {
    /// Only the connection that asked may deliver.
    peer_id: u64,
    offset: u64,
    path: PathBuf,
    file: File,
    progress: Option<ProgressFn>,
    lock: PathGuard,
    done: oneshot::Sender<SinkOutcome>,
}

struct SinkOutcome {
    written: u64,
    result: Result<(), FileError>,
    /// Kept by the download until it has renamed the `.part`.
    _lock: PathGuard,
}

static SINKS: LazyLock<Mutex<HashMap<u64, PendingSink>>> = LazyLock::new(Mutex::default);
static NEXT_TRANSFER: AtomicU64 = AtomicU64::new(1);
/// Local `.part` files being written, so a resumed download waits for an abandoned one.
static LOCAL_LOCKS: LazyLock<PathLocks> = LazyLock::new(PathLocks::default);

fn sinks() -> MutexGuard<'static, HashMap<u64, PendingSink>> {
    SINKS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes a download's entry if the sink never took it.
struct ForgetSink(u64);

impl Drop for ForgetSink {
    fn drop(&mut self) {
        sinks().remove(&self.0);
    }
}

/// Registers `__zs.files.sink`, the client-side command a server pushes downloaded files to;
/// [`get_file`] needs it. Only transfers this process asked for, on the connection they
/// were asked on, are accepted.
pub fn register_sink<S: Send + Sync + 'static>(builder: ClientBuilder<S>) -> ClientBuilder<S> {
    builder.register_big_stream(SINK, |ctx: Context<S>, stream: BigStream| async move {
        sink(ctx.peer().id(), stream)
            .await
            .map_err(Status::failed_precondition)
    })
}

async fn sink(peer_id: u64, mut stream: BigStream) -> Result<DataFrame, String> {
    let (header, first): (SinkHeader, Bytes) = read_header(&mut stream).await?;
    let slot = {
        let mut sinks = sinks();
        match sinks.get(&header.transfer) {
            Some(slot) if slot.peer_id == peer_id => sinks.remove(&header.transfer),
            _ => None,
        }
    };
    let Some(mut slot) = slot else {
        return Err(format!("no download {} is waiting here", header.transfer));
    };
    let offset = slot.offset;
    if stream.offset() != offset {
        let message = format!(
            "the server sent from byte {}, asked for {offset}",
            stream.offset()
        );
        let _ = slot.done.send(SinkOutcome {
            written: 0,
            result: Err(FileError::BadReply(message.clone())),
            _lock: slot.lock,
        });
        return Err(message);
    }
    let size = header.size;
    let progress = &mut slot.progress;
    let mut report = |written| {
        if let Some(progress) = progress {
            progress(offset + written, size);
        }
    };
    let (written, mut result) = write_stream(
        &mut stream,
        first,
        &mut slot.file,
        &mut report,
        slot.done.closed(),
    )
    .await;
    if result.is_ok() {
        result = slot.file.sync_all().await.map_err(WriteFailure::Io);
    }
    let reply = match &result {
        Ok(()) => Ok(DataFrame::new().with(written)),
        Err(failure) => Err(failure.to_string()),
    };
    let result = result.map_err(|failure| match failure {
        WriteFailure::Io(error) => FileError::Io {
            path: slot.path.clone(),
            error,
        },
        other => FileError::Remote(Status::aborted(other.to_string())),
    });
    let _ = slot.done.send(SinkOutcome {
        written,
        result,
        _lock: slot.lock,
    });
    reply
}

/// Downloads the server's `remote` file to `local`: the server pushes it to this client's
/// sink (see [`register_sink`]), which writes `<local>.part`; once the whole file's
/// SHA3-256 matches the server's, the `.part` is renamed to `local`. With `resume`,
/// continues from an earlier attempt's `<local>.part` if that is a prefix of the remote
/// file.
///
/// Dropping the future stops the transfer; `<local>.part` keeps what arrived.
pub async fn get_file<S: Send + Sync + 'static>(
    client: &Client<S>,
    remote: &str,
    local: &Path,
    mut options: TransferOptions,
) -> Result<TransferReport, FileError> {
    check_remote(remote)?;
    if tokio::fs::metadata(local)
        .await
        .is_ok_and(|meta| meta.is_dir())
    {
        return Err(local_error(local)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory",
        )));
    }
    let peer = client.peer();
    let part = part_of(local);
    let part_io = local_error(&part);
    let key = std::path::absolute(&part).map_err(part_io)?;
    // An abandoned download of the same file may still be flushing its last chunk.
    let lock = LOCAL_LOCKS.lock(&key).await;
    let mut offset = 0;
    if options.resume
        && let Ok(meta) = tokio::fs::metadata(&part).await
        && meta.is_file()
        && meta.len() > 0
    {
        let have = meta.len();
        let request = StatRequest {
            path: remote.to_owned(),
            part: false,
            hash: true,
            hash_len: Some(have),
        };
        let stat: StatReply = call_json(peer, STAT, &request).await?;
        if stat.found && have <= stat.size {
            let (prefix, hashed) = hash_file(part.clone(), Some(have)).await.map_err(part_io)?;
            if hashed == have
                && stat
                    .sha3
                    .is_some_and(|sha3| sha3.eq_ignore_ascii_case(&prefix))
            {
                offset = have;
            } else {
                tracing::debug!(remote, "the local .part is not a prefix of the file");
            }
        }
    }
    let file = if offset == 0 {
        File::create(&part).await.map_err(part_io)?
    } else {
        let mut file = OpenOptions::new()
            .write(true)
            .open(&part)
            .await
            .map_err(part_io)?;
        file.seek(SeekFrom::Start(offset)).await.map_err(part_io)?;
        file
    };
    let progress = options.progress.take();
    let result = async {
        let transfer = NEXT_TRANSFER.fetch_add(1, Ordering::Relaxed);
        let (done, outcome) = oneshot::channel();
        sinks().insert(
            transfer,
            PendingSink {
                peer_id: peer.id(),
                offset,
                path: part.clone(),
                file,
                progress,
                lock,
                done,
            },
        );
        let forget = ForgetSink(transfer);
        let request = GetRequest {
            path: remote.to_owned(),
            offset,
            transfer,
        };
        let mut outcome = outcome;
        let reply: GetReply = match call_json(peer, GET, &request).await {
            Ok(reply) => reply,
            Err(error) => {
                // A local write failure explains more than the server's echo of it.
                if let Ok(SinkOutcome {
                    result: Err(local), ..
                }) = outcome.try_recv()
                {
                    return Err(local);
                }
                return Err(error);
            }
        };
        drop(forget);
        let Ok(SinkOutcome {
            written,
            result,
            _lock,
        }) = outcome.await
        else {
            return Err(FileError::BadReply(
                "the server answered without sending the file".to_owned(),
            ));
        };
        result?;
        if offset + written != reply.size {
            return Err(FileError::Incomplete {
                expected: reply.size,
                got: offset + written,
            });
        }
        let (sha3, _) = hash_file(part.clone(), None).await.map_err(part_io)?;
        if !sha3.eq_ignore_ascii_case(&reply.sha3) {
            return Err(FileError::HashMismatch {
                local: sha3,
                remote: reply.sha3,
            });
        }
        tokio::fs::rename(&part, local)
            .await
            .map_err(local_error(local))?;
        Ok(TransferReport {
            bytes_sent: written,
            total: reply.size,
            resumed_from: offset,
            sha3_hex: sha3,
        })
    }
    .await;
    if result.is_err()
        && offset == 0
        && tokio::fs::metadata(&part)
            .await
            .is_ok_and(|meta| meta.len() == 0)
    {
        // Nothing arrived (the file is missing, a refused path...): leave no empty .part.
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}
