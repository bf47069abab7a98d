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

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use zs_wire::frame::{Compression, RequestId, StreamInfo};
use zs_wire::session::INITIAL_STREAM_WINDOW;

use crate::dispatch::Status;
use crate::endpoint::peer::{Command, CommandSender};

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

/// Compresses `data` with `compression` when that saves at least an eighth; otherwise
/// returns it as is (compression "only when it pays").
pub(crate) fn maybe_compress(data: Bytes, compression: Compression) -> (Bytes, Compression) {
    match zs_wire::compress::compress_if_smaller(compression, &data) {
        Some(compressed) => (Bytes::from(compressed), compression),
        None => (data, Compression::None),
    }
}
