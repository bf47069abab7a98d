//! Bulk transfers in the driver: the peer's BigStream and CompleteBuffer uploads started as
//! handler futures, and the bookkeeping of transfers each way (credit windows, chunk
//! channels, the metrics guard that counts a transfer until it ends).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use zs_wire::frame::{RequestId, StreamMode};
use zs_wire::status::StatusCode;

use super::handler::run_transfer;
use super::{Driver, HandlerReply};
use crate::dispatch::Status;
use crate::dispatch::context::Context;
use crate::dispatch::registry::Handler;
use crate::metrics::{TransferGuard, TransferKind};

/// One of our transfers still sending.
pub(super) struct Outbound {
    pub(super) window: Arc<tokio::sync::Semaphore>,
    pub(super) _counted: Option<TransferGuard>,
}

/// One of the peer's transfers still arriving.
pub(super) struct Inbound {
    pub(super) chunks: mpsc::UnboundedSender<crate::transfer::large::Inbound>,
    pub(super) counted: Option<TransferGuard>,
}

pub(super) fn transfer_kind(mode: StreamMode) -> TransferKind {
    match mode {
        StreamMode::Complete => TransferKind::CompleteBuffer,
        StreamMode::Chunks => TransferKind::BigStream,
    }
}

impl<S: Send + Sync + 'static> Driver<S> {
    /// Starts the handler of an inbound transfer (BigStream or CompleteBuffer).
    pub(super) fn dispatch_transfer(
        &mut self,
        id: RequestId,
        name: &str,
        info: zs_wire::frame::StreamInfo,
    ) {
        let refuse = |driver: &mut Self, code: StatusCode, message: String| {
            driver.session.send_error(id, code, &message, &[]);
        };
        let Some(entry) = self.registry.get(name).cloned() else {
            return refuse(
                self,
                StatusCode::UNIMPLEMENTED,
                format!("no command named {name:?}"),
            );
        };
        let wants_complete = matches!(entry.handler, Handler::CompleteBuffer(_));
        let is_transfer = matches!(
            entry.handler,
            Handler::BigStream(_) | Handler::CompleteBuffer(_)
        );
        if !is_transfer || wants_complete != (info.mode == StreamMode::Complete) {
            let message = format!("{name:?} is a {} command", entry.handler.kind_name());
            return refuse(self, StatusCode::UNIMPLEMENTED, message);
        }
        if let Some(requirement) = &entry.requirement
            && let Err(status) = requirement.check_peer(&self.peer, name)
        {
            self.send_status(id, &status);
            return;
        }
        if wants_complete {
            let announced = info.total.unwrap_or(u64::MAX).max(info.original_len);
            if announced > self.max_complete_buffer {
                // Refused before a byte is buffered; chunks already sent are dropped.
                let message = format!(
                    "complete buffer of {announced} bytes exceeds the limit of {} bytes",
                    self.max_complete_buffer
                );
                return refuse(self, StatusCode::RESOURCE_EXHAUSTED, message);
            }
        }
        let (chunks, receiver) = mpsc::unbounded_channel();
        let counted = self
            .counters
            .as_ref()
            .map(|counters| counters.transfer(transfer_kind(info.mode)));
        self.inbound.insert(id.0, Inbound { chunks, counted });
        let stream = crate::transfer::large::BigStream::new(
            id,
            info,
            receiver,
            self.peer.command_sender(),
            self.stream_window,
        );
        let context = Context {
            peer: self.peer.clone(),
            command: entry.name.clone(),
            request_id: Some(id),
            env: self.env.clone(),
        };
        let span = tracing::debug_span!("transfer", command = name);
        let metrics = self.count_call();
        let run = async move {
            let started = Instant::now();
            let outcome = run_transfer(&entry.handler, context, stream).await;
            let bytes_out = outcome.as_ref().map_or(0, Bytes::len);
            let bytes_in = usize::try_from(info.total.unwrap_or(0)).unwrap_or(usize::MAX);
            if metrics {
                let error = outcome.as_ref().err().map(Status::code);
                entry
                    .counters
                    .record(bytes_in, bytes_out, started.elapsed(), error);
            }
            Some(HandlerReply { id, outcome })
        }
        .instrument(span);
        // Transfers run concurrently even on an ordered connection: their chunks arrive
        // over time and must not wait behind other requests.
        self.running.push(Box::pin(run));
    }
}
