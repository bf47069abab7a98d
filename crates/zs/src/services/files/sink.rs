//! The receiving side of downloads: [`FileSink`], installed on a client, and the state it
//! shares with that client's [`FileClient`](super::FileClient)s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::fs::File;
use tokio::sync::oneshot;
use zs_wire::DataFrame;

use super::client::ProgressFn;
use super::disk::{WriteFailure, write_stream};
use super::error::FileError;
use super::paths::{PathGuard, PathLocks};
use super::protocol::{NAMESPACE, SinkHeader, read_header};
use crate::dispatch::{Context, Namespace, Service, Status};
use crate::transfer::large::BigStream;

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

pub(super) struct SinkOutcome {
    pub(super) written: u64,
    pub(super) result: Result<(), FileError>,
    /// Kept by the download until it has renamed the `.part`.
    pub(super) _lock: PathGuard,
}

/// What a [`FileSink`] shares with the [`FileClient`](super::FileClient)s of its client:
/// the downloads waiting for the server's push, the transfer counter and the locks on local
/// `.part` files. One per client, owned by the sink's handler and the client's app state.
#[derive(Default)]
pub(super) struct SinkState {
    pending: Mutex<HashMap<u64, PendingSink>>,
    next_transfer: AtomicU64,
    /// Local `.part` files being written, so a resumed download waits for an abandoned one.
    pub(super) locks: PathLocks,
}

/// The handle the client's app state holds (a newtype, so no other `Arc<SinkState>` can
/// collide with it).
pub(super) struct SinkHandle(pub(super) Arc<SinkState>);

impl SinkState {
    fn pending(&self) -> MutexGuard<'_, HashMap<u64, PendingSink>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a download the sink will accept from connection `peer_id`; returns its
    /// transfer id, the receiver of its outcome and a guard that forgets it if the sink
    /// never took it.
    pub(super) fn expect(
        self: &Arc<Self>,
        peer_id: u64,
        offset: u64,
        path: PathBuf,
        file: File,
        progress: Option<ProgressFn>,
        lock: PathGuard,
    ) -> (u64, oneshot::Receiver<SinkOutcome>, ForgetSink) {
        let transfer = self.next_transfer.fetch_add(1, Ordering::Relaxed) + 1;
        let (done, outcome) = oneshot::channel();
        self.pending().insert(
            transfer,
            PendingSink {
                peer_id,
                offset,
                path,
                file,
                progress,
                lock,
                done,
            },
        );
        (transfer, outcome, ForgetSink(self.clone(), transfer))
    }
}

/// Removes a download's entry if the sink never took it.
pub(super) struct ForgetSink(Arc<SinkState>, u64);

impl Drop for ForgetSink {
    fn drop(&mut self) {
        self.0.pending().remove(&self.1);
    }
}

/// The client side of the file service: `__zs.files.sink`, the command a server pushes
/// downloaded files to. [`FileClient::get`](super::FileClient::get) needs it; install it
/// before connecting with [`ClientBuilder::install`](crate::ClientBuilder::install). Only
/// transfers this client asked for, on its connection, are accepted.
///
/// Its state (downloads waiting for their push, the transfer counter, the locks on local
/// `.part` files) belongs to the sink, so clients in one process never share it; the sink
/// also adds it to the client's app state, where [`FileClient::new`](super::FileClient::new)
/// finds it. ZServer4D's counterpart is the receiving half of the dual-tunnel client's
/// `GetFile`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use zs::services::files::FileSink;
/// let mut builder = zs::Client::builder();
/// builder.install(FileSink::new());
/// let client = builder.connect("127.0.0.1:4920").await?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct FileSink {
    state: Arc<SinkState>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink").finish_non_exhaustive()
    }
}

impl FileSink {
    /// A sink with no download waiting.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Installs `sink` (as `__zs.files.sink`) and puts the sink's state in the app state.
impl<S: Send + Sync + 'static> Service<S> for FileSink {
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let state = self.state;
        commands.insert_app_state(SinkHandle(state.clone()));
        commands.register_big_stream("sink", move |ctx: Context<S>, stream: BigStream| {
            let state = state.clone();
            async move {
                sink(&state, ctx.peer().id(), stream)
                    .await
                    .map_err(Status::failed_precondition)
            }
        });
    }
}

async fn sink(state: &SinkState, peer_id: u64, mut stream: BigStream) -> Result<DataFrame, String> {
    let (header, first): (SinkHeader, Bytes) = read_header(&mut stream).await?;
    let slot = {
        let mut pending = state.pending();
        match pending.get(&header.transfer) {
            Some(slot) if slot.peer_id == peer_id => pending.remove(&header.transfer),
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
