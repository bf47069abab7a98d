//! The serving side: [`FileService`] and its four command handlers.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use zs_wire::DataFrame;

use super::areas::{Area, AreaError, PUBLIC, UserAreas, usage};
use super::disk::{WriteFailure, hash_file, write_stream};
use super::paths::{PathGuard, PathLocks, parse_remote, part_of};
use super::protocol::{
    COMMIT, CommitReply, CommitRequest, DETAIL_MISMATCH, DETAIL_NO_SINK, DETAIL_NOT_FOUND, GET,
    GetReply, GetRequest, LOCK_WAIT, NAMESPACE, PART_SUFFIX, PutHeader, SINK, STAT, SinkHeader,
    StatReply, StatRequest, encode_header, read_header,
};
use crate::dispatch::{Context, Namespace, Service, Status, User};
use crate::endpoint::peer::Peer;
use crate::transfer::large::BigStream;

/// Why a file command was refused; [`ServeError::into_status`] gives the caller its code.
#[derive(Debug, thiserror::Error)]
pub(super) enum ServeError {
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
    #[error("{0}")]
    NeedsLogin(String),
    #[error("{0}")]
    OverQuota(String),
}

impl ServeError {
    /// The status the caller receives: a code, and details the client decodes.
    pub(super) fn into_status(self) -> Status {
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
            Self::NeedsLogin(_) => Status::unauthenticated(message),
            Self::OverQuota(_) => Status::resource_exhausted(message),
            Self::Io { error, .. } => {
                let code = Status::from(error).code();
                Status::new(code, message)
            }
        }
    }
}

pub(super) fn bad_path(path: &str, reason: &str) -> ServeError {
    ServeError::BadPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

pub(super) fn io_error(what: &str) -> impl FnOnce(io::Error) -> ServeError + '_ {
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

/// Serves one directory to [`FileClient::put`](super::FileClient::put) and
/// [`FileClient::get`](super::FileClient::get): install it on a server with
/// [`Server::install`](crate::Server::install). ZServer4D's counterpart is the file
/// transfer built into its dual-tunnel service (`TCommunicationFramework_DoubleTunnelService`,
/// commands `GetFile` / `PostFile`); here it is a [`Service`] under the `__zs.files`
/// namespace.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::path::Path;
/// use zs::services::files::{FileClient, FileService, FileSink, TransferOptions};
/// use zs::{Client, Server};
///
/// let mut server = Server::bind("127.0.0.1:0").await?;
/// server.install(FileService::new("/srv/shared")?);
/// let addr = server.local_addr()?;
/// let server = server.spawn();
///
/// // `get` needs the client-side sink installed before connecting.
/// let mut builder = Client::builder();
/// builder.install(FileSink::new());
/// let client = builder.connect(addr).await?;
/// let files = FileClient::new(&client);
/// let sent = files.put(Path::new("big.iso"), "isos/big.iso",
///     TransferOptions::new().resume(true)).await?;
/// let got = files.get("isos/big.iso", Path::new("copy.iso"),
///     TransferOptions::new()).await?;
/// assert_eq!(sent.sha3_hex, got.sha3_hex);
/// server.shutdown().await;
/// # Ok(()) }
/// ```
///
/// The commands and their wire format are described in the `protocol` module's source
/// (`crates/zs/src/services/files/protocol.rs`); in short: `stat`, `put` (a BigStream to
/// `<path>.part`), `commit` (check the SHA3-256, rename) and `get` (a push to the client's
/// [`FileSink`](super::FileSink)), all under `__zs.files.`.
///
/// Paths are relative to the served root, `/`-separated; absolute paths, `..` components,
/// backslashes and anything that resolves outside the root (through a symbolic link) are
/// refused with a `bad path` error reply. Anyone who can connect can read and write the
/// root: serve only what the server's clients may see (a token or pinned keys restrict who
/// connects).
#[derive(Debug, Clone)]
pub struct FileService {
    inner: Arc<Served>,
}

/// What every handler of one [`FileService`] shares.
#[derive(Debug)]
pub(super) struct Served {
    /// Canonical.
    root: PathBuf,
    locks: PathLocks,
    /// Per-user areas, when the root is divided.
    areas: Option<UserAreas>,
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
            inner: Arc::new(Served {
                root,
                locks: PathLocks::default(),
                areas: None,
            }),
        })
    }

    /// Divides the root per user (ZServer4D: the dual-tunnel servers' per-user file
    /// directories): paths under `public/` are one shared area everybody reads and
    /// logged-in users write; any other path is in the caller's own area,
    /// `users/<name>/` under the root, reached only by that logged-in user
    /// ([`Peer::set_user`](crate::Peer::set_user), e.g. through the accounts service) —
    /// without a login such requests get `UNAUTHENTICATED`. Nothing resolves outside the
    /// area (`..`, absolute paths, and symbolic links planted inside it are refused).
    /// With `quota`, a user's area holds at most that many bytes (`RESOURCE_EXHAUSTED`).
    pub fn with_user_areas(self, quota: Option<u64>) -> Self {
        Self {
            inner: Arc::new(Served {
                root: self.inner.root.clone(),
                locks: PathLocks::default(),
                areas: Some(UserAreas { quota }),
            }),
        }
    }

    /// The served directory (canonical).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }
}

/// Installs `stat`, `put`, `commit` and `get` under `__zs.files`.
impl<S: Send + Sync + 'static> Service<S> for FileService {
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let service = self.inner.clone();
        commands.register_console("stat", move |ctx: Context<S>, text: String| {
            let service = service.clone();
            async move {
                service
                    .stat(ctx.user().as_ref(), &text)
                    .await
                    .map_err(ServeError::into_status)
            }
        });
        let service = self.inner.clone();
        commands.register_big_stream("put", move |ctx: Context<S>, stream: BigStream| {
            let service = service.clone();
            async move {
                service
                    .put(ctx.user().as_ref(), stream)
                    .await
                    .map_err(ServeError::into_status)
            }
        });
        let service = self.inner.clone();
        commands.register_console("commit", move |ctx: Context<S>, text: String| {
            let service = service.clone();
            async move {
                service
                    .commit(ctx.user().as_ref(), &text)
                    .await
                    .map_err(ServeError::into_status)
            }
        });
        let service = self.inner.clone();
        commands.register_stream("list", move |ctx: Context<S>, input: DataFrame| {
            let service = service.clone();
            async move {
                service
                    .list(ctx.user().as_ref(), &input)
                    .await
                    .map_err(ServeError::into_status)
            }
        });
        let service = self.inner.clone();
        commands.register_stream("read", move |ctx: Context<S>, input: DataFrame| {
            let service = service.clone();
            async move {
                service
                    .read(ctx.user().as_ref(), &input)
                    .await
                    .map_err(ServeError::into_status)
            }
        });
        let service = self.inner;
        commands.register_console("get", move |ctx: Context<S>, text: String| {
            let service = service.clone();
            let peer = ctx.peer().clone();
            async move {
                service
                    .get(&peer, ctx.user().as_ref(), &text)
                    .await
                    .map_err(ServeError::into_status)
            }
        });
    }
}

impl Served {
    /// The area `remote` is in for `user` (the whole root without user areas).
    pub(super) async fn area(
        &self,
        user: Option<&User>,
        remote: &str,
        write: bool,
    ) -> Result<Area, ServeError> {
        let Some(areas) = &self.areas else {
            return Ok(Area {
                root: self.root.clone(),
                path: remote.to_owned(),
                quota: None,
            });
        };
        areas
            .area(&self.root, user, remote, write)
            .await
            .map_err(|error| match error {
                AreaError::NeedsLogin => ServeError::NeedsLogin(format!(
                    "{remote}: private files need a login (public ones are under {PUBLIC})"
                )),
                AreaError::BadUser(name) => {
                    bad_path(remote, &format!("user {name:?} cannot have a file area"))
                }
                AreaError::Io(error) => io_error(remote)(error),
            })
    }

    /// The local path of `remote` for `user`, checked to lie inside its area; with
    /// `create`, missing parent directories are created (after checking where they would
    /// be).
    pub(super) async fn resolve(
        &self,
        user: Option<&User>,
        remote: &str,
        create: bool,
    ) -> Result<(PathBuf, Area), ServeError> {
        let area = self.area(user, remote, create).await?;
        let path = self
            .resolve_in(&area.root, &area.path, remote, create)
            .await?;
        Ok((path, area))
    }

    pub(super) async fn resolve_in(
        &self,
        root: &Path,
        inside: &str,
        remote: &str,
        create: bool,
    ) -> Result<PathBuf, ServeError> {
        let parts = parse_remote(inside).map_err(|reason| bad_path(remote, reason))?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(bad_path(remote, "the path names no file"));
        };
        let mut parent = root.to_path_buf();
        parent.extend(dirs);
        if create {
            // Where the new directories would go must already be inside the area.
            let mut existing = parent.as_path();
            loop {
                match tokio::fs::symlink_metadata(existing).await {
                    Ok(_) => break,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        existing = existing.parent().unwrap_or(root);
                    }
                    Err(error) => return Err(io_error(remote)(error)),
                }
            }
            check_inside(root, remote, existing).await?;
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
        if !parent.starts_with(root) {
            return Err(bad_path(remote, "it resolves outside the served directory"));
        }
        let path = parent.join(name);
        check_link(root, remote, &path).await?;
        Ok(path)
    }

    async fn lock(&self, remote: &str, path: &Path) -> Result<PathGuard, ServeError> {
        tokio::time::timeout(LOCK_WAIT, self.locks.lock(path))
            .await
            .map_err(|_| ServeError::Refused(format!("busy: another transfer is using {remote}")))
    }

    async fn stat(&self, user: Option<&User>, text: &str) -> Result<String, ServeError> {
        let request: StatRequest = parse_json(STAT, text)?;
        let not_found = || {
            reply_json(&StatReply {
                found: false,
                size: 0,
                sha3: None,
            })
        };
        let (path, area) = match self.resolve(user, &request.path, false).await {
            Ok(found) => found,
            Err(ServeError::NotFound(_)) => return not_found(),
            Err(error) => return Err(error),
        };
        // A `.part` may still be written by an interrupted transfer: wait for it to settle.
        let (target, _guard) = if request.part {
            let part = part_of(&path);
            check_link(&area.root, &request.path, &part).await?;
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

    async fn put(
        &self,
        user: Option<&User>,
        mut stream: BigStream,
    ) -> Result<DataFrame, ServeError> {
        let (header, first): (PutHeader, Bytes) = read_header(&mut stream)
            .await
            .map_err(ServeError::Refused)?;
        let remote = header.path.as_str();
        let (path, area) = self.resolve(user, remote, true).await?;
        if let Some(quota) = area.quota {
            // What the area holds besides this file (and its `.part`), plus the file.
            let held = usage(area.root.clone()).await.map_err(io_error(remote))?;
            let mut replaced = 0;
            for existing in [&path, &part_of(&path)] {
                if let Ok(meta) = tokio::fs::symlink_metadata(existing).await {
                    replaced += meta.len();
                }
            }
            let needed = held.saturating_sub(replaced).saturating_add(header.size);
            if needed > quota {
                return Err(ServeError::OverQuota(format!(
                    "{remote}: {needed} bytes would exceed the quota of {quota} bytes"
                )));
            }
        }
        if tokio::fs::metadata(&path)
            .await
            .is_ok_and(|meta| meta.is_dir())
        {
            return Err(ServeError::Refused(format!("{remote} is a directory")));
        }
        let part = part_of(&path);
        check_link(&area.root, remote, &part).await?;
        let _guard = self.lock(remote, &path).await?;
        let offset = stream.offset();
        let mut file = open_part(remote, &part, offset).await?;
        // No more than the announced size is written (the quota was checked against it).
        let (over, overrun) = tokio::sync::oneshot::channel::<()>();
        let mut over = Some(over);
        let limit = header.size;
        let mut watch = move |written: u64| {
            if offset.saturating_add(written) > limit
                && let Some(over) = over.take()
            {
                let _ = over.send(());
            }
        };
        let stop = async move {
            if overrun.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let (written, result) = write_stream(&mut stream, first, &mut file, &mut watch, stop).await;
        if offset.saturating_add(written) > limit {
            return Err(ServeError::Refused(format!(
                "{remote}: more bytes sent than the {limit} announced"
            )));
        }
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

    async fn commit(&self, user: Option<&User>, text: &str) -> Result<String, ServeError> {
        let request: CommitRequest = parse_json(COMMIT, text)?;
        let remote = request.path.as_str();
        let (path, area) = self.resolve(user, remote, true).await?;
        let part = part_of(&path);
        check_link(&area.root, remote, &part).await?;
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
        user: Option<&User>,
        text: &str,
    ) -> Result<String, ServeError> {
        let request: GetRequest = parse_json(GET, text)?;
        let remote = request.path.as_str();
        let (path, _area) = self.resolve(user, remote, false).await?;
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

async fn check_inside(root: &Path, remote: &str, path: &Path) -> Result<(), ServeError> {
    match tokio::fs::canonicalize(path).await {
        Ok(path) if path.starts_with(root) => Ok(()),
        _ => Err(bad_path(remote, "it resolves outside the served directory")),
    }
}

/// A symbolic link inside the area may point anywhere: followed only if it stays inside.
async fn check_link(root: &Path, remote: &str, path: &Path) -> Result<(), ServeError> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.file_type().is_symlink() => check_inside(root, remote, path).await,
        _ => Ok(()),
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
