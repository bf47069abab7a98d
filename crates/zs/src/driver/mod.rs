//! The connection driver: one task per connection owns its [`Session`] and moves bytes.
//!
//! The driver loops: drain the session's events (dispatching requests to handler tasks and
//! replies to waiting callers), then wait for whichever comes first — socket readable, socket
//! writable with bytes pending, a command from a [`Peer`] handle, a handler's reply, a timer,
//! or shutdown.
//!
//! Request handlers run as futures inside the driver task (a `FuturesUnordered`), not as
//! spawned tasks: this saves a task spawn and two cross-task wake-ups per request, which is
//! most of the per-request cost on a busy server. They still run concurrently with each other
//! and with the connection's I/O — a handler awaiting a database or calling the peer back does
//! not stall anything — but a handler that burns CPU without awaiting holds up its own
//! connection (only): move such work to `tokio::task::spawn_blocking` or a worker pool.
//! One-way (direct) handlers are spawned, since nobody waits for them. A panicking handler
//! costs only its request. A request the caller cancels (its call timed out) has its handler
//! dropped at the handler's next await; work already handed to `Context::offload` finishes
//! on its thread, unobserved.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::future::{AbortHandle, Aborted, abortable};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use zs_wire::DataFrame;
use zs_wire::frame::{CloseCode, Payload, RequestId};
use zs_wire::ids::IdMap;
use zs_wire::session::{Event, SendError as SessionSendError, Session};
use zs_wire::status::StatusCode;

use crate::Config;
use crate::dispatch::Status;
use crate::dispatch::context::{Context, HandlerEnv};
use crate::dispatch::registry::Commands;
use crate::endpoint::peer::{Command, CommandReceiver, Peer};
use crate::error::{BadReply, CallError, DisconnectReason, Lost};
use crate::metrics::ServerCounters;
use crate::transport::read_buf::ReadBuffer;

mod handler;
mod transfer;

use handler::run_handler;
use transfer::{Inbound, Outbound, transfer_kind};

/// Stop taking new commands from handles while this much output is unsent: the socket is
/// the bottleneck, and queuing more would only grow memory.
const TRANSMIT_HIGH_WATER: usize = 1024 * 1024;

/// Pieces of output handed to one vectored write: eight queued BigStream chunks with their
/// headers (about 512 KiB, twice what the record layer seals per write). Kept small because
/// the array lives in every connection's task.
const WRITE_SLICES: usize = 16;

/// A write at least this large means bulk traffic: the output buffer is kept for the next.
const BULK_WRITE: usize = 64 * 1024;

/// How long the last bytes (a close frame, final replies) may take to flush at the end.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

type ReplySender = oneshot::Sender<Result<Bytes, CallError>>;

struct HandlerReply {
    id: RequestId,
    outcome: Result<Bytes, Status>,
}

/// Everything a driver needs besides the byte stream.
pub(crate) struct DriverParts<S> {
    pub(crate) peer: Peer<S>,
    pub(crate) commands: CommandReceiver,
    pub(crate) registry: Arc<Commands<S>>,
    pub(crate) tasks: TaskTracker,
    /// Cancelled: close after draining (graceful shutdown). Must be a child of `abort`: the
    /// driver waits on this token alone until it fires, then tells the two apart.
    pub(crate) drain: CancellationToken,
    /// Cancelled: close now.
    pub(crate) abort: CancellationToken,
    /// Told once the preamble exchange succeeded or failed.
    pub(crate) established: Option<oneshot::Sender<Result<(), DisconnectReason>>>,
    /// What every handler's `Context` shares: app state, server, offload slots.
    pub(crate) env: Arc<HandlerEnv<S>>,
    /// The server's counters; `None` on a client.
    pub(crate) counters: Option<Arc<ServerCounters>>,
}

struct Driver<S> {
    session: Session<ReplySender>,
    peer: Peer<S>,
    registry: Arc<Commands<S>>,
    tasks: TaskTracker,
    /// Handlers in progress; each yields the reply to send (`None` for one-way messages,
    /// which run here only in ordered mode).
    running: FuturesUnordered<BoxFuture<'static, Option<HandlerReply>>>,
    /// When the peer asked for strict order, handlers wait here and run one at a time.
    queue: std::collections::VecDeque<BoxFuture<'static, Option<HandlerReply>>>,
    queue_limit: usize,
    env: Arc<HandlerEnv<S>>,
    /// Our transfers still sending: their credit semaphores.
    outbound: IdMap<u64, Outbound>,
    /// The peer's transfers still arriving: where their chunks go.
    inbound: IdMap<u64, Inbound>,
    /// Request handlers running or queued, by request id: a `Cancel` from the peer aborts
    /// its handler (the future is dropped at its next await).
    abort_handles: IdMap<u64, AbortHandle>,
    max_complete_buffer: u64,
    /// Window of the peer's transfers ([`Config::stream_window`]).
    stream_window: u32,
    reason: Option<DisconnectReason>,
    /// Whether calls and bytes are counted ([`Config::metrics`]).
    metrics: bool,
    /// Whether the transport takes vectored writes (set when the loop starts).
    vectored: bool,
    /// The server's counters (transfers); `None` on a client.
    counters: Option<Arc<ServerCounters>>,
    /// Callers handed a reply since the last write: they may be about to call again.
    replies_since_write: usize,
}

/// Runs one connection to its end and returns why it ended.
///
/// Set-up happens here, before the returned future exists: the future keeps neither the
/// configuration nor the stream inline (the stream lives in `split`'s shared half), so an
/// idle connection's task holds only the loop's state (issue 12).
pub(crate) fn drive<S, IO>(
    io: IO,
    config: &Config,
    parts: DriverParts<S>,
) -> impl Future<Output = DisconnectReason> + Send + use<S, IO>
where
    S: Send + Sync + 'static,
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let DriverParts {
        peer,
        commands,
        registry,
        tasks,
        drain,
        abort,
        established,
        env,
        counters,
    } = parts;
    let driver = Driver {
        session: Session::new(config.session.clone(), Instant::now().into_std()),
        peer,
        registry,
        tasks,
        running: FuturesUnordered::new(),
        queue: std::collections::VecDeque::new(),
        queue_limit: config.session.max_concurrent_requests,
        env,
        outbound: IdMap::default(),
        inbound: IdMap::default(),
        abort_handles: IdMap::default(),
        max_complete_buffer: config.max_complete_buffer,
        stream_window: config.stream_window,
        reason: None,
        metrics: config.metrics,
        vectored: false,
        counters,
        replies_since_write: 0,
    };
    let (reader, writer) = tokio::io::split(io);
    run(driver, reader, writer, commands, drain, abort, established)
}

async fn run<S, IO>(
    mut driver: Driver<S>,
    mut reader: tokio::io::ReadHalf<IO>,
    mut writer: tokio::io::WriteHalf<IO>,
    mut commands: CommandReceiver,
    drain: CancellationToken,
    abort: CancellationToken,
    mut established: Option<oneshot::Sender<Result<(), DisconnectReason>>>,
) -> DisconnectReason
where
    S: Send + Sync + 'static,
    IO: AsyncRead + AsyncWrite + Send + Unpin,
{
    // Sized to what flows: nothing while idle (see `ReadBuffer`).
    let mut received = ReadBuffer::default();
    let timer = tokio::time::sleep_until(next_deadline(&driver.session));
    tokio::pin!(timer);
    let mut draining = false;
    let mut unflushed = false;
    // Commands taken since the last write (see the coalescing in the command branch).
    let mut taken_since_write = 0usize;
    // Pinned once: a fresh `cancelled()` future per loop turn would register with the
    // token's waiter list every time.
    let drain_requested = drain.cancelled();
    let abort_requested = abort.cancelled();
    tokio::pin!(drain_requested, abort_requested);
    // Whether the transport gathers (TCP, the record layer) or needs one buffer (a virtual
    // stream, StableIO): transfer chunks are queued without a copy only for the first kind.
    driver.vectored = writer.is_write_vectored();

    loop {
        driver.process_events();
        if let Some(sender) =
            established.take_if(|_| driver.session.is_established() || driver.session.is_finished())
        {
            let outcome = match &driver.reason {
                Some(reason) if driver.session.is_finished() => Err(reason.clone()),
                _ => Ok(()),
            };
            if let Some(max) = driver.session.peer_max_frame_size() {
                driver.peer.set_peer_max_frame_size(max);
            }
            let _ = sender.send(outcome);
        }
        if driver.session.is_finished() {
            break;
        }

        let take_commands = driver.session.transmit_len() < TRANSMIT_HIGH_WATER;
        let mut slices = [std::io::IoSlice::new(&[]); WRITE_SLICES];
        let used = driver.session.transmit_vectored(&mut slices);
        let pending = &slices[..used];
        // Biased, in this order: finish handlers, take commands, read, timers, and write
        // last — so a write carries everything that was ready (fewer, larger syscalls), and
        // it still happens as soon as nothing else is (commands pause at the high-water mark,
        // reads at the concurrency limit, so neither can starve it).
        tokio::select! {
            biased;
            Some(reply) = driver.running.next(), if !driver.running.is_empty() => {
                driver.finished(reply);
                // Take every other finished handler too, so their replies share one write.
                while let Some(Some(reply)) = driver.running.next().now_or_never() {
                    driver.finished(reply);
                }
            }
            command = commands.recv(), if take_commands => {
                // The driver's own Peer keeps the channel open, so `None` cannot happen
                // while it runs; treat it as a close anyway.
                let Some(command) = command else {
                    driver.session.close(CloseCode::Normal, "all handles dropped");
                    continue;
                };
                driver.handle_command(*command);
                let mut taken = 1;
                // Batch: take whatever else is queued, up to the high-water mark, so that
                // one write carries many frames.
                while driver.session.transmit_len() < TRANSMIT_HIGH_WATER {
                    let Ok(command) = commands.try_recv() else { break };
                    driver.handle_command(*command);
                    taken += 1;
                }
                driver.peer.release_credit(taken);
                // Coalesce: callers this driver woke with replies since the last write are
                // runnable now, and most will call again; one pass of the scheduler lets
                // them queue those calls, which then share this write. Only while more
                // callers were woken than calls came in, so a lone caller never waits.
                let woken = driver.replies_since_write;
                taken_since_write += taken;
                if taken_since_write < woken {
                    driver.replies_since_write = 0;
                    tokio::task::yield_now().await;
                }
            }
            result = std::future::poll_fn(|cx| received.poll_fill(std::pin::Pin::new(&mut reader), cx)), if driver.session.wants_read() && driver.queue.len() < driver.queue_limit => {
                match result {
                    Ok(0) => {
                        driver.lost(Lost::Eof);
                        break;
                    }
                    Ok(read) => {
                        if driver.metrics {
                            driver.peer.traffic_counters().bytes_in.fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                        // A protocol error also arrives as Event::Closed; the close frame
                        // naming it is already queued for the peer.
                        let _ = driver.session.handle_received(received.bytes(), Instant::now().into_std());
                        received.settle();
                    }
                    Err(error) => {
                        driver.io_failed(&error);
                        break;
                    }
                }
            }
            () = &mut timer => {
                // Quiet long enough for a timer: give buffers back.
                release_transmit(&mut driver.session);
                received.release_if_empty();
                driver.session.handle_timeout(Instant::now().into_std());
                timer.as_mut().reset(next_deadline(&driver.session));
            }
            // One cancellation future per turn, not two: polling one locks its token's
            // waiter list, a server-wide one. `drain` is a child of `abort`, so it fires for
            // both; only then is `abort` watched.
            () = &mut drain_requested, if !draining => {
                draining = true;
                if abort.is_cancelled() {
                    driver.session.close(CloseCode::ShuttingDown, "connection closed");
                } else {
                    driver.session.close_after_drain(CloseCode::ShuttingDown, "server shutting down");
                }
            }
            () = &mut abort_requested, if draining => {
                driver.session.close(CloseCode::ShuttingDown, "connection closed");
            }
            // Write pending bytes; once there are none, flush streams that buffer (the record
            // layer). For a bare TCP stream the flush is a no-op.
            result = write_or_flush(&mut writer, pending), if !pending.is_empty() || unflushed => {
                match result {
                    Ok(Some(written)) => {
                        if driver.metrics {
                            driver.peer.traffic_counters().bytes_out.fetch_add(written as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                        driver.session.advance_transmit(written);
                        driver.replies_since_write = 0;
                        taken_since_write = 0;
                        if written < BULK_WRITE {
                            // Small traffic: keep no output buffer between writes. A bulk
                            // sender keeps its buffer until the next timer tick.
                            release_transmit(&mut driver.session);
                        }
                        unflushed = true;
                    }
                    Ok(None) => unflushed = false,
                    Err(error) => {
                        driver.io_failed(&error);
                        break;
                    }
                }
            }
        }
    }

    // Best effort: deliver the close frame and any final replies, then end the stream.
    let _ = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, async {
        writer.write_all(driver.session.transmit_buffer()).await?;
        writer.flush().await?;
        writer.shutdown().await
    })
    .await;
    driver.process_events();
    let reason = driver
        .reason
        .clone()
        .unwrap_or(DisconnectReason::ConnectionLost(Lost::Eof));
    driver.peer.close_queue();
    for (_, waiting) in driver.session.take_in_flight() {
        let _ = waiting.send(Err(CallError::ConnectionClosed(reason.clone())));
    }
    if let Some(sender) = established {
        let _ = sender.send(Err(reason.clone()));
    }
    reason
}

/// Drops the session's output buffer once everything in it is written. (Checked first: with
/// transfer chunks still queued, `transmit_buffer` would join them into one buffer.)
fn release_transmit<T>(session: &mut Session<T>) {
    if session.transmit_len() > 0 {
        return;
    }
    let transmit = session.transmit_buffer();
    if transmit.capacity() > 0 {
        *transmit = BytesMut::new();
    }
}

/// Writes some of `pending`, or flushes when nothing is pending (`None`).
async fn write_or_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    pending: &[std::io::IoSlice<'_>],
) -> std::io::Result<Option<usize>> {
    match pending {
        [] => writer.flush().await.map(|()| None),
        [one] => writer.write(one).await.map(Some),
        many => writer.write_vectored(many).await.map(Some),
    }
}

/// The session's next deadline, or far in the future when it has none.
fn next_deadline<T>(session: &Session<T>) -> Instant {
    session.poll_timeout().map_or_else(
        || Instant::now() + Duration::from_secs(86_400),
        Instant::from_std,
    )
}

impl<S: Send + Sync + 'static> Driver<S> {
    /// The transport failed: a record-layer violation is a security event, anything else a
    /// lost connection.
    fn io_failed(&mut self, error: &std::io::Error) {
        let violation = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<crate::transport::secure::RecordViolation>());
        if let Some(violation) = violation {
            tracing::warn!(%violation, "closing connection: record layer violation");
            if self.reason.is_none() {
                self.reason = Some(DisconnectReason::Security(violation.0.clone()));
            }
        }
        self.lost(Lost::from(error));
    }

    /// Why new work fails on a connection that is closing.
    fn closing_reason(&self) -> DisconnectReason {
        self.reason.clone().unwrap_or(DisconnectReason::Local {
            code: CloseCode::Normal,
            reason: "connection is closing".to_owned(),
        })
    }

    fn lost(&mut self, why: Lost) {
        let text = why.to_string();
        if self.reason.is_none() {
            self.reason = Some(DisconnectReason::ConnectionLost(why));
        }
        // Finish the session so nothing more is queued.
        self.session.close(CloseCode::Normal, &text);
        while self.session.poll_event().is_some() {}
    }

    fn process_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Request {
                    id,
                    payload,
                    name,
                    body,
                } => self.dispatch(Some(id), payload, &name, body),
                Event::Direct {
                    payload,
                    name,
                    body,
                } => self.dispatch(None, payload, &name, body),
                Event::StreamOpen { id, name, info } => self.dispatch_transfer(id, &name, info),
                Event::StreamData { id, body } => {
                    if let Some(inbound) = self.inbound.get(&id.0) {
                        if let Some(counted) = &inbound.counted {
                            counted.bytes(body.len());
                        }
                        let _ = inbound
                            .chunks
                            .send(crate::transfer::large::Inbound::Chunk(body));
                    }
                }
                Event::StreamEnd { id } => {
                    // Dropping the sender ends the handler's stream.
                    self.inbound.remove(&id.0);
                }
                Event::StreamCredit { id, credit } => {
                    if let Some(outbound) = self.outbound.get(&id.0) {
                        outbound.window.add_permits(credit as usize);
                    }
                }
                Event::Reply { id, token, result } => {
                    self.stop_transfer(id);
                    let result = result.map_err(|error| {
                        CallError::Remote(Status::from_wire(
                            error.code,
                            error.message,
                            &error.details,
                        ))
                    });
                    // The caller may have given up already; that is fine.
                    if token.send(result).is_ok() {
                        self.replies_since_write += 1;
                    }
                }
                // The caller gave up: its handler is dropped (a transfer's handler is told
                // the sender gave up instead, so it can clean up).
                Event::Cancelled { id } => {
                    if let Some(inbound) = self.inbound.remove(&id.0) {
                        let _ = inbound
                            .chunks
                            .send(crate::transfer::large::Inbound::Cancelled);
                    }
                    if let Some(handle) = self.abort_handles.remove(&id.0) {
                        handle.abort();
                    }
                }
                Event::Closed(reason) => {
                    let reason = DisconnectReason::from(reason);
                    match &reason {
                        DisconnectReason::Protocol(error) => {
                            tracing::warn!(%error, "protocol error, closing connection")
                        }
                        other => tracing::debug!(reason = %other, "connection closing"),
                    }
                    if self.reason.is_none() {
                        self.reason = Some(reason);
                    }
                }
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Call {
                id,
                payload,
                name,
                body,
                reply,
            } => match self.session.send_request(id, payload, &name, &body, reply) {
                Ok(_) => {}
                Err(SessionSendError::Closed(reply)) => {
                    let reason = self.closing_reason();
                    let _ = reply.send(Err(CallError::ConnectionClosed(reason)));
                }
                Err(SessionSendError::Encode(error, reply)) => {
                    let _ = reply.send(Err(CallError::Encode(error)));
                }
                Err(SessionSendError::BadRequestId(id, reply)) => {
                    let _ = reply.send(Err(CallError::BadReply(BadReply::IdInUse(id.0))));
                }
                Err(_) => {}
            },
            Command::Direct {
                payload,
                name,
                body,
            } => {
                if let Err(error) = self.session.send_direct(payload, &name, &body) {
                    tracing::debug!(%error, command = name, "direct message dropped");
                }
            }
            Command::Cancel(id) => {
                self.session.cancel_request(id);
                self.stop_transfer(id);
            }
            Command::StreamOpen {
                id,
                name,
                info,
                reply,
                credit,
            } => match self.session.send_stream_open(id, &name, &info, reply) {
                Ok(_) => {
                    let counted = self
                        .counters
                        .as_ref()
                        .map(|counters| counters.transfer(transfer_kind(info.mode)));
                    self.outbound.insert(
                        id.0,
                        Outbound {
                            window: credit,
                            _counted: counted,
                        },
                    );
                }
                Err(error) => {
                    credit.close();
                    let (reply, error) = match error {
                        SessionSendError::Closed(reply) => {
                            (reply, CallError::ConnectionClosed(self.closing_reason()))
                        }
                        SessionSendError::Encode(error, reply) => (reply, CallError::Encode(error)),
                        SessionSendError::BadRequestId(id, reply) => {
                            (reply, CallError::BadReply(BadReply::IdInUse(id.0)))
                        }
                        _ => return,
                    };
                    let _ = reply.send(Err(error));
                }
            },
            Command::StreamData { id, chunk } => {
                // Refused only when the transfer is over; its reply says why.
                let len = chunk.len();
                // Without vectored writes every queued piece would leave on its own (a 14-byte
                // header alone, then the chunk); copying the chunk behind its header is cheaper.
                let sent = if self.vectored {
                    self.session.send_stream_bytes(id, chunk)
                } else {
                    self.session.send_stream_data(id, &chunk)
                };
                if let Err(error) = sent {
                    tracing::debug!(%error, %id, "transfer chunk dropped");
                } else if let Some(Outbound {
                    _counted: Some(counted),
                    ..
                }) = self.outbound.get(&id.0)
                {
                    counted.bytes(len);
                }
            }
            Command::StreamEnd { id } => {
                let _ = self.session.send_stream_end(id);
            }
            Command::Credit { id, credit } => self.session.grant_stream_credit(id, credit),
            Command::Close {
                code,
                reason,
                drain,
            } => {
                if drain {
                    self.session.close_after_drain(code, &reason);
                } else {
                    self.session.close(code, &reason);
                }
            }
        }
    }

    /// An answered or cancelled transfer stops sending: its sender sees the semaphore close.
    /// (Checked on every reply, so the common no-transfer case skips the hash lookup.)
    fn stop_transfer(&mut self, id: RequestId) {
        if !self.outbound.is_empty()
            && let Some(outbound) = self.outbound.remove(&id.0)
        {
            outbound.window.close();
        }
    }

    /// A handler finished: send its reply, and in ordered mode start the next one.
    fn finished(&mut self, reply: Option<HandlerReply>) {
        if let Some(reply) = reply {
            self.send_reply(reply);
        }
        if self.session.peer_wants_order()
            && self.running.is_empty()
            && let Some(next) = self.queue.pop_front()
        {
            self.running.push(next);
        }
    }

    fn send_reply(&mut self, reply: HandlerReply) {
        self.abort_handles.remove(&reply.id.0);
        match &reply.outcome {
            Ok(body) => self.session.send_reply(reply.id, body),
            Err(status) => self.send_status(reply.id, status),
        };
    }

    /// Counts a call the connection handles; returns whether metrics are on.
    fn count_call(&self) -> bool {
        if self.metrics {
            self.peer
                .traffic_counters()
                .calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.metrics
    }

    /// Answers request `id` with an error status.
    fn send_status(&mut self, id: RequestId, status: &Status) -> bool {
        let details = status.details().map(DataFrame::encode).unwrap_or_default();
        self.session
            .send_error(id, status.code(), status.message(), &details)
    }

    fn dispatch(&mut self, id: Option<RequestId>, payload: Payload, name: &str, body: Bytes) {
        let Some(entry) = self.registry.get(name) else {
            match id {
                Some(id) => {
                    let message = format!("no command named {name:?}");
                    self.session
                        .send_error(id, StatusCode::UNIMPLEMENTED, &message, &[]);
                }
                None => tracing::warn!(command = name, "direct message for an unknown command"),
            }
            return;
        };
        let expected_direct = id.is_none();
        if entry.handler.is_direct() != expected_direct || entry.handler.payload() != Some(payload)
        {
            let message = format!("{name:?} is a {} command", entry.handler.kind_name());
            match id {
                Some(id) => {
                    self.session
                        .send_error(id, StatusCode::UNIMPLEMENTED, &message, &[]);
                }
                None => tracing::warn!(command = name, "{message}; message dropped"),
            }
            return;
        }
        if let Some(requirement) = &entry.requirement
            && let Err(status) = requirement.check_peer(&self.peer, name)
        {
            match id {
                Some(id) => {
                    self.send_status(id, &status);
                }
                None => tracing::warn!(command = name, %status, "direct message refused"),
            }
            return;
        }
        let entry = entry.clone();
        let context = Context {
            peer: self.peer.clone(),
            command: entry.name.clone(),
            request_id: id,
            env: self.env.clone(),
        };
        let span = tracing::debug_span!("handler", command = name);
        let metrics = self.count_call();
        let run = async move {
            let started = Instant::now();
            let bytes_in = body.len();
            let outcome = run_handler(&entry.handler, context, body).await;
            let bytes_out = outcome.as_ref().map_or(0, Bytes::len);
            if metrics {
                let error = outcome.as_ref().err().map(Status::code);
                entry
                    .counters
                    .record(bytes_in, bytes_out, started.elapsed(), error);
            }
            outcome
        }
        .instrument(span);
        let job: BoxFuture<'static, Option<HandlerReply>> = match id {
            Some(id) => {
                let (run, handle) = abortable(run);
                self.abort_handles.insert(id.0, handle);
                Box::pin(run.map(move |outcome| {
                    // An aborted handler still answers, so the request id is released; the
                    // caller has given up and ignores it.
                    let outcome = outcome.unwrap_or_else(|Aborted| {
                        Err(Status::cancelled("cancelled by the caller"))
                    });
                    Some(HandlerReply { id, outcome })
                }))
            }
            None => Box::pin(run.map(|outcome| {
                if let Err(status) = outcome {
                    tracing::warn!(%status, "direct handler failed");
                }
                None
            })),
        };
        if self.session.peer_wants_order() {
            // Strict order (the peer's request): one handler at a time, in arrival order,
            // one-way messages included.
            if self.running.is_empty() {
                self.running.push(job);
            } else {
                self.queue.push_back(job);
            }
        } else if id.is_some() {
            self.running.push(job);
        } else {
            // Nobody waits for a one-way message: run it beside the connection.
            self.tasks.spawn(job);
        }
    }
}
