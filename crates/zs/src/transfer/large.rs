//! Large data: BigStream (chunks with credit-based flow control) and CompleteBuffer (one
//! whole buffer, optionally compressed), in both directions.
//!
//! A transfer is a request whose body follows in chunks. The sender's task reads its source
//! and queues 64 KiB chunks only while it holds credit (the receiver's window, 1 MiB at first,
//! extended as the receiving handler consumes), so a 10 GiB file never fills memory and
//! small calls on the same connection pass between chunks instead of waiting behind the file.
//! The receiving handler's result is the transfer's reply.
//!
//! ZServer4D's BigStream was stop-and-wait (one 1 MiB chunk per acknowledgement) and blocked
//! the connection's queue until done; its CompleteBuffer was unencrypted and disconnected on
//! oversize. Here several chunks are in flight, other traffic interleaves, everything is
//! inside the record layer, and an oversize buffer is refused with an error reply before a
//! byte of it is buffered.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use zs_wire::DataFrame;
use zs_wire::frame::{Compression, RequestId, StreamInfo, StreamMode};
use zs_wire::session::INITIAL_STREAM_WINDOW;

use crate::dispatch::Status;
use crate::endpoint::peer::{Command, CommandSender, Peer};
use crate::error::{BadReply, CallError, Lost};

/// Bytes per chunk on the wire.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Default for [`Config::max_complete_buffer`](crate::Config::max_complete_buffer): 64 MiB,
/// as in ZServer4D.
pub const DEFAULT_MAX_COMPLETE_BUFFER: u64 = 64 * 1024 * 1024;

/// Default for [`Config::stream_window`](crate::Config::stream_window): 4 MiB. With the
/// protocol's initial 1 MiB, a BigStream over loopback ran at 0.6–0.7 of a rustls transfer,
/// the sender waiting for credit; with 4 MiB at 1.0–1.2 (`zs-bench stream`, BENCHMARKS.md).
pub const DEFAULT_STREAM_WINDOW: u32 = 4 * 1024 * 1024;

/// Largest [`Config::stream_window`](crate::Config::stream_window).
pub const MAX_STREAM_WINDOW: u32 = 256 * 1024 * 1024;

/// What the driver hands a receiving transfer.
pub(crate) enum Inbound {
    Chunk(Bytes),
    /// The sender gave up.
    Cancelled,
}

/// Why a transfer's bytes stopped arriving early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The sender cancelled the transfer.
    #[error("the sender cancelled the transfer")]
    Cancelled,
    /// The connection ended.
    #[error("the connection ended during the transfer")]
    ConnectionClosed,
}

/// The receiving side of a BigStream, handed to a handler registered with
/// [`Commands::register_big_stream`](crate::Commands::register_big_stream).
///
/// Read chunks with [`BigStream::next_chunk`] until it returns `Ok(None)` (the sender sent
/// everything). Reading grants the sender more window, so a slow handler slows the sender,
/// never the connection.
pub struct BigStream {
    id: RequestId,
    chunks: mpsc::UnboundedReceiver<Inbound>,
    commands: CommandSender,
    info: StreamInfo,
    completed: u64,
    ungranted: u64,
    /// Credit goes back to the sender once this much has been consumed: a quarter of the
    /// window keeps several chunks in flight without a credit frame per chunk.
    credit_batch: u64,
    /// Window still to grant on the first read (see `new`).
    widen: u64,
    finished: bool,
}

impl std::fmt::Debug for BigStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigStream")
            .field("id", &self.id)
            .field("total", &self.info.total)
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

impl BigStream {
    pub(crate) fn new(
        id: RequestId,
        info: StreamInfo,
        chunks: mpsc::UnboundedReceiver<Inbound>,
        commands: CommandSender,
        window: u32,
    ) -> Self {
        // The protocol opens every transfer with INITIAL_STREAM_WINDOW; the rest of the window
        // is granted when the handler first reads, so a handler that never reads holds no
        // more than the protocol's minimum.
        let widen = u64::from(window).saturating_sub(INITIAL_STREAM_WINDOW);
        Self {
            id,
            chunks,
            commands,
            info,
            completed: 0,
            ungranted: 0,
            credit_batch: (u64::from(window) / 4).max(1),
            widen,
            finished: false,
        }
    }

    /// The announced size, when the sender knew it.
    pub fn total(&self) -> Option<u64> {
        self.info.total
    }

    /// Bytes received so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Where the sent bytes start in the sender's source (for resumed transfers).
    pub fn offset(&self) -> u64 {
        self.info.offset
    }

    /// The next chunk; `Ok(None)` once the sender has sent everything.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, StreamError> {
        if self.finished {
            return Ok(None);
        }
        if self.widen > 0 {
            let credit = u32::try_from(self.widen).unwrap_or(u32::MAX);
            self.widen = 0;
            let _ = self.commands.send(Box::new(Command::Credit {
                id: self.id,
                credit,
            }));
        }
        match self.chunks.recv().await {
            Some(Inbound::Chunk(chunk)) => {
                self.completed += chunk.len() as u64;
                self.ungranted += chunk.len() as u64;
                if self.ungranted >= self.credit_batch {
                    let credit = u32::try_from(self.ungranted).unwrap_or(u32::MAX);
                    self.ungranted -= u64::from(credit);
                    let _ = self.commands.send(Box::new(Command::Credit {
                        id: self.id,
                        credit,
                    }));
                }
                Ok(Some(chunk))
            }
            Some(Inbound::Cancelled) => {
                self.finished = true;
                Err(StreamError::Cancelled)
            }
            None => {
                self.finished = true;
                Ok(None)
            }
        }
    }

    /// Reads the rest of the transfer into `sink`, returning the bytes written. A cancelled
    /// transfer is an error of kind `ConnectionAborted` whose source is the [`StreamError`].
    pub async fn copy_to<W: tokio::io::AsyncWrite + Unpin>(
        &mut self,
        sink: &mut W,
    ) -> std::io::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut written = 0;
        while let Some(chunk) = self
            .next_chunk()
            .await
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::ConnectionAborted, error))?
        {
            sink.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        sink.flush().await?;
        Ok(written)
    }
}

/// Collects a CompleteBuffer: chunks into one buffer of the announced size, then
/// decompression. The size was checked against the limit before this runs.
pub(crate) async fn collect_complete(mut stream: BigStream) -> Result<Bytes, Status> {
    let total = stream.total().unwrap_or(0);
    let too_large =
        |_| Status::resource_exhausted("complete buffer larger than this machine can hold");
    let mut buffer = BytesMut::with_capacity(usize::try_from(total).map_err(too_large)?);
    while let Some(chunk) = stream.next_chunk().await? {
        if (buffer.len() + chunk.len()) as u64 > total {
            return Err(Status::invalid_argument(format!(
                "complete buffer exceeds its announced {total} bytes"
            )));
        }
        buffer.extend_from_slice(&chunk);
    }
    if buffer.len() as u64 != total {
        return Err(Status::invalid_argument(format!(
            "complete buffer ended at {} of {total} bytes",
            buffer.len()
        )));
    }
    if stream.info.compression == Compression::None {
        return Ok(buffer.freeze());
    }
    // The announced size was checked against the limit before a byte was buffered;
    // `decompress` holds the output to exactly that size.
    let original = usize::try_from(stream.info.original_len).map_err(too_large)?;
    zs_wire::compress::decompress(
        stream.info.compression,
        &buffer,
        stream.info.original_len,
        original,
    )
    .map(Bytes::from)
    .map_err(|error| Status::invalid_argument(error.to_string()))
}

/// Progress of an outbound transfer, shared with the caller.
#[derive(Debug, Default)]
pub struct Progress {
    sent: AtomicU64,
}

impl Progress {
    /// Bytes handed to the connection so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

type ProgressCallback = Box<dyn FnMut(u64, Option<u64>) + Send>;

/// An outbound BigStream being prepared; `.await` it to run the transfer. Resolves to the
/// receiving handler's reply.
#[must_use = "a transfer does nothing until it is awaited"]
pub struct Upload<'a, S, R> {
    peer: &'a Peer<S>,
    name: String,
    reader: R,
    info: StreamInfo,
    progress: Option<ProgressCallback>,
    shared_progress: Option<Arc<Progress>>,
}

impl<'a, S, R> Upload<'a, S, R> {
    pub(crate) fn new(peer: &'a Peer<S>, name: &str, reader: R, total: Option<u64>) -> Self {
        Self {
            peer,
            name: name.to_owned(),
            reader,
            info: StreamInfo {
                total,
                offset: 0,
                mode: StreamMode::Chunks,
                compression: Compression::None,
                original_len: total.unwrap_or(0),
            },
            progress: None,
            shared_progress: None,
        }
    }

    /// Tells the receiver where these bytes start in the source (a resumed transfer); the
    /// reader must already be positioned there.
    pub fn offset(mut self, offset: u64) -> Self {
        self.info.offset = offset;
        self
    }

    /// Calls `callback(sent, total)` after every chunk handed to the connection.
    pub fn on_progress(mut self, callback: impl FnMut(u64, Option<u64>) + Send + 'static) -> Self {
        self.progress = Some(Box::new(callback));
        self
    }

    /// Shares a [`Progress`] counter another task can read.
    pub fn progress(mut self, progress: Arc<Progress>) -> Self {
        self.shared_progress = Some(progress);
        self
    }

    fn complete_buffer(mut self, compression: Compression, original_len: u64) -> Self {
        self.info.mode = StreamMode::Complete;
        self.info.compression = compression;
        self.info.original_len = original_len;
        self
    }
}

/// Sends `Cancel` if the upload is dropped before it finished (the caller gave up).
struct CancelOnDrop<'a, S> {
    peer: &'a Peer<S>,
    id: RequestId,
    armed: bool,
}

impl<S> Drop for CancelOnDrop<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            self.peer.send_now(Command::Cancel(self.id));
        }
    }
}

impl<'a, S: Send + Sync + 'static, R: AsyncRead + Unpin + Send + 'a> IntoFuture
    for Upload<'a, S, R>
{
    type Output = Result<DataFrame, CallError>;
    type IntoFuture = BoxFuture<'a, Result<DataFrame, CallError>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<'a, S: Send + Sync + 'static, R: AsyncRead + Unpin + Send + 'a> Upload<'a, S, R> {
    async fn run(mut self) -> Result<DataFrame, CallError> {
        {
            let peer = self.peer;
            let id = peer.next_request_id();
            let credit = Arc::new(Semaphore::new(INITIAL_STREAM_WINDOW as usize));
            let (reply, mut receiver) = oneshot::channel();
            peer.enqueue_checked(Command::StreamOpen {
                id,
                name: self.name.clone(),
                info: self.info,
                reply,
                credit: credit.clone(),
            })
            .await?;
            let mut guard = CancelOnDrop {
                peer,
                id,
                armed: true,
            };
            let mut sent = 0u64;
            // Read straight into the chunk that goes on the queue: no copy per chunk.
            let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
            loop {
                buffer.reserve(CHUNK_SIZE);
                let read = match (&mut self.reader)
                    .take(CHUNK_SIZE as u64)
                    .read_buf(&mut buffer)
                    .await
                {
                    Ok(read) => read,
                    Err(error) => {
                        // Dropping the guard cancels the transfer at the receiver.
                        drop(guard);
                        return Err(CallError::Source(Lost::from(&error)));
                    }
                };
                if read == 0 {
                    break;
                }
                // Wait for window; a closed semaphore means the transfer was answered early
                // (refused or failed) or the connection ended: the reply says which.
                let permits = u32::try_from(read).unwrap_or(u32::MAX);
                let acquired = tokio::select! {
                    permit = credit.acquire_many(permits) => permit.ok(),
                    early = &mut receiver => {
                        guard.armed = false;
                        return decode_reply(peer, early);
                    }
                };
                let Some(permit) = acquired else {
                    guard.armed = false;
                    return decode_reply(peer, receiver.await);
                };
                permit.forget();
                peer.enqueue(Command::StreamData {
                    id,
                    chunk: buffer.split().freeze(),
                })
                .await
                .map_err(|()| CallError::ConnectionClosed(peer.reason_or_lost()))?;
                sent += read as u64;
                if let Some(progress) = &self.shared_progress {
                    progress.sent.store(sent, Ordering::Relaxed);
                }
                if let Some(callback) = &mut self.progress {
                    callback(sent, self.info.total);
                }
            }
            peer.enqueue(Command::StreamEnd { id })
                .await
                .map_err(|()| CallError::ConnectionClosed(peer.reason_or_lost()))?;
            guard.armed = false;
            decode_reply(peer, receiver.await)
        }
    }
}

/// The transfer's reply, as its handler's DataFrame.
fn decode_reply<S>(
    peer: &Peer<S>,
    reply: Result<Result<Bytes, CallError>, oneshot::error::RecvError>,
) -> Result<DataFrame, CallError> {
    match reply {
        Ok(result) => DataFrame::decode(&result?)
            .map_err(|error| CallError::BadReply(BadReply::NotDataFrame(error))),
        Err(_) => Err(CallError::ConnectionClosed(peer.reason_or_lost())),
    }
}

/// Compresses `data` with `compression` when that saves at least an eighth; otherwise
/// returns it as is (compression "only when it pays").
pub(crate) fn maybe_compress(data: Bytes, compression: Compression) -> (Bytes, Compression) {
    match zs_wire::compress::compress_if_smaller(compression, &data) {
        Some(compressed) => (Bytes::from(compressed), compression),
        None => (data, Compression::None),
    }
}

impl<S: Send + Sync + 'static> Peer<S> {
    /// Sends a stream of any size to the other side's BigStream handler `name`, in chunks
    /// with flow control (ZServer4D `SendBigStream`). `total` is the size if known (shown to
    /// the receiver as progress). Other calls on the connection keep flowing meanwhile.
    /// Dropping the returned future cancels the transfer at the receiver.
    ///
    /// ```no_run
    /// # async fn demo(client: zs::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let file = tokio::fs::File::open("big.iso").await?;
    /// let size = file.metadata().await?.len();
    /// let reply = client.peer().send_big_stream("store", file, Some(size))
    ///     .on_progress(|sent, total| eprintln!("{sent}/{total:?}"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn send_big_stream<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        reader: R,
        total: Option<u64>,
    ) -> Upload<'_, S, R> {
        Upload::new(self, name, reader, total)
    }

    /// Sends one whole buffer to the other side's CompleteBuffer handler `name`
    /// (ZServer4D `SendCompleteBuffer`), compressed with the configured codec when that pays.
    /// The receiver refuses buffers over its limit before any byte is buffered.
    pub async fn send_complete_buffer(
        &self,
        name: &str,
        data: Bytes,
    ) -> Result<DataFrame, CallError> {
        let original_len = data.len() as u64;
        let (data, compression) = maybe_compress(data, self.complete_buffer_compression());
        let total = data.len() as u64;
        Upload::new(self, name, std::io::Cursor::new(data), Some(total))
            .complete_buffer(compression, original_len)
            .await
    }
}
