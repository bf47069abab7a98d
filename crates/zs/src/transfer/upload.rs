//! The sending side of BigStream and CompleteBuffer: [`Upload`], from a reader
//! ([`Peer::send_big_stream`]), from chunks already in memory
//! ([`Peer::send_big_stream_chunks`]) or one whole buffer ([`Peer::send_complete_buffer`]).

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Semaphore, oneshot};
use zs_wire::DataFrame;
use zs_wire::frame::{Compression, RequestId, StreamInfo, StreamMode};
use zs_wire::session::INITIAL_STREAM_WINDOW;

use super::large::{CHUNK_SIZE, maybe_compress};
use crate::endpoint::peer::{Command, Peer};
use crate::error::{BadReply, CallError, Lost};

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
pub struct Upload<'a, S> {
    peer: &'a Peer<S>,
    name: String,
    /// The bytes to send, in pieces of any size (cut to [`CHUNK_SIZE`] on the way out).
    source: BoxStream<'a, std::io::Result<Bytes>>,
    info: StreamInfo,
    progress: Option<ProgressCallback>,
    shared_progress: Option<Arc<Progress>>,
}

impl<'a, S> Upload<'a, S> {
    fn new(
        peer: &'a Peer<S>,
        name: &str,
        source: BoxStream<'a, std::io::Result<Bytes>>,
        total: Option<u64>,
    ) -> Self {
        Self {
            peer,
            name: name.to_owned(),
            source,
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
    /// source must already be positioned there.
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

/// A reader as chunks: each read goes straight into the chunk that is queued (one copy, the
/// read itself).
fn read_chunks<'a, R: AsyncRead + Unpin + Send + 'a>(
    reader: R,
) -> BoxStream<'a, std::io::Result<Bytes>> {
    futures_util::stream::unfold(
        (reader, BytesMut::new(), false),
        |(mut reader, mut buffer, failed)| async move {
            if failed {
                return None;
            }
            buffer.reserve(CHUNK_SIZE);
            match (&mut reader)
                .take(CHUNK_SIZE as u64)
                .read_buf(&mut buffer)
                .await
            {
                Ok(0) => None,
                Ok(_) => Some((Ok(buffer.split().freeze()), (reader, buffer, false))),
                Err(error) => Some((Err(error), (reader, buffer, true))),
            }
        },
    )
    .boxed()
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

impl<'a, S: Send + Sync + 'static> IntoFuture for Upload<'a, S> {
    type Output = Result<DataFrame, CallError>;
    type IntoFuture = BoxFuture<'a, Result<DataFrame, CallError>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<S: Send + Sync + 'static> Upload<'_, S> {
    async fn run(mut self) -> Result<DataFrame, CallError> {
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
        // What is left of the source's last piece; chunks are cut from it without a copy.
        let mut pending = Bytes::new();
        loop {
            if pending.is_empty() {
                match self.source.next().await {
                    None => break,
                    Some(Ok(piece)) => {
                        pending = piece;
                        continue;
                    }
                    Some(Err(error)) => {
                        // Dropping the guard cancels the transfer at the receiver.
                        drop(guard);
                        return Err(CallError::Source(Lost::from(&error)));
                    }
                }
            }
            let chunk = pending.split_to(pending.len().min(CHUNK_SIZE));
            // Wait for window; a closed semaphore means the transfer was answered early
            // (refused or failed) or the connection ended: the reply says which.
            let permits = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
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
            sent += chunk.len() as u64;
            peer.enqueue(Command::StreamData { id, chunk })
                .await
                .map_err(|()| CallError::ConnectionClosed(peer.reason_or_lost()))?;
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
    pub fn send_big_stream<'a, R: AsyncRead + Unpin + Send + 'a>(
        &'a self,
        name: &str,
        reader: R,
        total: Option<u64>,
    ) -> Upload<'a, S> {
        Upload::new(self, name, read_chunks(reader), total)
    }

    /// Like [`send_big_stream`](Self::send_big_stream), for bytes already in memory (game
    /// state, a generated report, a cache): the pieces are sent as they are, cut into
    /// chunks of at most [`CHUNK_SIZE`] without a copy, where a reader would be copied
    /// from. Each piece costs at least one frame, so hand over pieces of kilobytes, not
    /// bytes. An `Err` from the stream cancels the transfer at the receiver.
    ///
    /// ```no_run
    /// # async fn demo(client: zs::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let snapshot = bytes::Bytes::from(vec![0u8; 8 << 20]);
    /// let size = snapshot.len() as u64;
    /// let pieces = futures_util::stream::iter([Ok(snapshot)]);
    /// client.peer().send_big_stream_chunks("store", pieces, Some(size)).await?;
    /// # Ok(()) }
    /// ```
    pub fn send_big_stream_chunks<'a>(
        &'a self,
        name: &str,
        pieces: impl Stream<Item = std::io::Result<Bytes>> + Send + 'a,
        total: Option<u64>,
    ) -> Upload<'a, S> {
        Upload::new(self, name, pieces.boxed(), total)
    }

    /// Sends one whole buffer to the other side's CompleteBuffer handler `name`
    /// (ZServer4D `SendCompleteBuffer`), compressed with the configured codec when that pays.
    /// The receiver refuses buffers over its limit before any byte is buffered. The buffer
    /// is sent without a copy.
    pub async fn send_complete_buffer(
        &self,
        name: &str,
        data: Bytes,
    ) -> Result<DataFrame, CallError> {
        let original_len = data.len() as u64;
        let (data, compression) = maybe_compress(data, self.complete_buffer_compression());
        let total = data.len() as u64;
        let pieces = futures_util::stream::iter([Ok(data)]).boxed();
        Upload::new(self, name, pieces, Some(total))
            .complete_buffer(compression, original_len)
            .await
    }
}
