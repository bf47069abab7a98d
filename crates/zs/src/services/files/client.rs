//! The calling side: [`FileClient`], the typed client of the file service, with its
//! [`TransferOptions`] and [`TransferReport`].

use std::io::{self, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::disk::hash_file;
use super::error::{FileError, check_remote, local_error};
use super::paths::part_of;
use super::protocol::{
    COMMIT, CommitReply, CommitRequest, GET, GetReply, GetRequest, LONG_CALL, PUT, PutHeader, STAT,
    StatReply, StatRequest, encode_header,
};
use super::sink::{SinkHandle, SinkOutcome, SinkState};
use crate::endpoint::client::Client;
use crate::endpoint::peer::Peer;

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

pub(super) type ProgressFn = Box<dyn FnMut(u64, u64) + Send>;

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

/// A typed client of a [`FileService`](super::FileService): uploads and downloads whole
/// files over one connection, resumes interrupted transfers, and checks SHA3-256 of the
/// whole file on both sides (ZServer4D's dual-tunnel client `PostFile` / `GetFile`).
/// Downloads need the client built with a [`FileSink`](super::FileSink).
///
/// ```no_run
/// # async fn demo(client: zs::Client) -> Result<(), zs::services::files::FileError> {
/// use std::path::Path;
/// use zs::services::files::{FileClient, TransferOptions};
///
/// let files = FileClient::new(&client);
/// files.put(Path::new("notes.txt"), "docs/notes.txt", TransferOptions::new()).await?;
/// # Ok(()) }
/// ```
pub struct FileClient<'a, S = ()> {
    peer: &'a Peer<S>,
    sink: Option<Arc<SinkState>>,
}

impl<S> std::fmt::Debug for FileClient<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileClient")
            .field("peer", &self.peer.id())
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

impl<'a, S: Send + Sync + 'static> FileClient<'a, S> {
    /// The file client of `client`; it finds the client's [`FileSink`](super::FileSink), if
    /// one was installed, in the client's app state.
    pub fn new(client: &'a Client<S>) -> Self {
        Self {
            peer: client.peer(),
            sink: client
                .app_state::<SinkHandle>()
                .map(|handle| handle.0.clone()),
        }
    }

    /// Uploads `local` to the server's `remote` path (relative to its served directory):
    /// streams it to `<remote>.part`, then commits it with the file's SHA3-256, which the
    /// server checks against the whole `.part` before renaming it. With `resume`, continues
    /// from an earlier attempt's `.part` if that is a prefix of the local file.
    ///
    /// Dropping the future cancels the transfer; the server keeps what arrived for a
    /// resume.
    pub async fn put(
        &self,
        local: &Path,
        remote: &str,
        options: TransferOptions,
    ) -> Result<TransferReport, FileError> {
        put(self.peer, local, remote, options).await
    }

    /// The entries of directory `remote` on the server (`""` for the top of the served
    /// directory or of the caller's area), sorted by name.
    pub async fn list(&self, remote: &str) -> Result<Vec<super::DirEntry>, FileError> {
        let frame = self
            .peer
            .call_stream(
                super::protocol::LIST,
                &zs_wire::DataFrame::new().with(remote),
            )
            .await?;
        super::DirEntry::read_all(&frame).map_err(FileError::BadReply)
    }

    /// Up to `len` bytes (at most [`MAX_READ`](super::MAX_READ)) of `remote` from `offset`,
    /// fewer at its end: a piece of a file without a transfer (ZServer4D's fragment
    /// download).
    pub async fn read(&self, remote: &str, offset: u64, len: u32) -> Result<Vec<u8>, FileError> {
        check_remote(remote)?;
        let frame = self
            .peer
            .call_stream(
                super::protocol::READ,
                &zs_wire::DataFrame::new()
                    .with(remote)
                    .with(offset)
                    .with(len),
            )
            .await?;
        frame
            .reader()
            .read_bytes()
            .map_err(|error| FileError::BadReply(error.to_string()))
    }

    /// Downloads the server's `remote` file to `local`: the server pushes it to this
    /// client's [`FileSink`](super::FileSink), which writes `<local>.part`; once the whole
    /// file's SHA3-256 matches the server's, the `.part` is renamed to `local`. With
    /// `resume`, continues from an earlier attempt's `<local>.part` if that is a prefix of
    /// the remote file. Without a sink on the client it fails with [`FileError::NoSink`].
    ///
    /// Dropping the future stops the transfer; `<local>.part` keeps what arrived.
    pub async fn get(
        &self,
        remote: &str,
        local: &Path,
        options: TransferOptions,
    ) -> Result<TransferReport, FileError> {
        check_remote(remote)?;
        let Some(sink) = &self.sink else {
            return Err(FileError::NoSink);
        };
        get(self.peer, sink, remote, local, options).await
    }
}

async fn put<S: Send + Sync + 'static>(
    peer: &Peer<S>,
    local: &Path,
    remote: &str,
    mut options: TransferOptions,
) -> Result<TransferReport, FileError> {
    check_remote(remote)?;
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

async fn get<S: Send + Sync + 'static>(
    peer: &Peer<S>,
    sink: &Arc<SinkState>,
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
    let part = part_of(local);
    let part_io = local_error(&part);
    let key = std::path::absolute(&part).map_err(part_io)?;
    // An abandoned download of the same file may still be flushing its last chunk.
    let lock = sink.locks.lock(&key).await;
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
        let (transfer, outcome, forget) =
            sink.expect(peer.id(), offset, part.clone(), file, progress, lock);
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
