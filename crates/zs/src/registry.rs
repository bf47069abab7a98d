//! Command registration: named handlers of the four kinds, shared by servers and clients.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use zs_wire::DataFrame;
use zs_wire::frame::{Payload, RequestId};

use crate::error::BoxError;
use crate::peer::Peer;
use crate::stats::{CommandCounters, CommandStats};

/// What a handler receives besides its input: who called, and which request this is.
#[derive(Debug)]
pub struct Context<S = ()> {
    pub(crate) peer: Peer<S>,
    pub(crate) command: Arc<str>,
    pub(crate) request_id: Option<RequestId>,
    pub(crate) offload: Arc<tokio::sync::Semaphore>,
}

impl<S> Context<S> {
    /// The connection the request came from; use it to call back or read its state.
    pub fn peer(&self) -> &Peer<S> {
        &self.peer
    }

    /// The per-connection user state (ZServer4D's `UserDefine`).
    pub fn state(&self) -> &S {
        self.peer.state()
    }

    /// The command's name.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The caller's request id; `None` for direct (one-way) messages.
    pub fn request_id(&self) -> Option<RequestId> {
        self.request_id
    }

    /// Runs CPU-heavy work on the blocking thread pool and returns its result, so the
    /// connection keeps serving meanwhile (ZServer4D's HPC offload, `RunHPC_Stream`).
    ///
    /// At most `Config::max_offload` jobs run at once across the server; others wait for a
    /// slot. If the request is dropped first (the peer disconnected), the result is dropped
    /// when the job ends. A panicking job is an error, not a crash.
    ///
    /// ```no_run
    /// # async fn demo(ctx: zs::Context) -> Result<(), zs::BoxError> {
    /// let digest = ctx.offload(|| (0..10_000_000u64).fold(0u64, |acc, x| acc ^ x.wrapping_mul(31))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn offload<R, F>(&self, job: F) -> Result<R, OffloadError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .offload
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| OffloadError::Closed)?;
        let handle = tokio::task::spawn_blocking(move || {
            let result = job();
            drop(permit);
            result
        });
        handle.await.map_err(|error| {
            if error.is_panic() {
                OffloadError::Panicked
            } else {
                OffloadError::Closed
            }
        })
    }
}

/// An offloaded job did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// The job panicked.
    #[error("offloaded job panicked")]
    Panicked,
    /// The runtime is shutting down.
    #[error("runtime shutting down")]
    Closed,
}

/// A type-erased handler: input in, boxed future of its result out.
type HandlerFn<S, I, O> =
    dyn Fn(Context<S>, I) -> BoxFuture<'static, Result<O, BoxError>> + Send + Sync;
type ConsoleFn<S> = HandlerFn<S, String, String>;
type StreamFn<S> = HandlerFn<S, DataFrame, DataFrame>;
type DirectConsoleFn<S> = HandlerFn<S, String, ()>;
type BigStreamFn<S> = HandlerFn<S, crate::large::BigStream, DataFrame>;
type CompleteBufferFn<S> = HandlerFn<S, bytes::Bytes, DataFrame>;
type DirectStreamFn<S> = HandlerFn<S, DataFrame, ()>;

/// Erases a handler's concrete future and error types.
fn erase<S, I, O, F, Fut, E>(handler: F) -> Arc<HandlerFn<S, I, O>>
where
    F: Fn(Context<S>, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    E: Into<BoxError>,
{
    Arc::new(
        move |context, input| -> BoxFuture<'static, Result<O, BoxError>> {
            let future = handler(context, input);
            Box::pin(async move { future.await.map_err(Into::into) })
        },
    )
}

pub(crate) enum Handler<S> {
    Console(Arc<ConsoleFn<S>>),
    Stream(Arc<StreamFn<S>>),
    DirectConsole(Arc<DirectConsoleFn<S>>),
    DirectStream(Arc<DirectStreamFn<S>>),
    BigStream(Arc<BigStreamFn<S>>),
    CompleteBuffer(Arc<CompleteBufferFn<S>>),
}

impl<S> Clone for Handler<S> {
    fn clone(&self) -> Self {
        match self {
            Self::Console(handler) => Self::Console(handler.clone()),
            Self::Stream(handler) => Self::Stream(handler.clone()),
            Self::DirectConsole(handler) => Self::DirectConsole(handler.clone()),
            Self::DirectStream(handler) => Self::DirectStream(handler.clone()),
            Self::BigStream(handler) => Self::BigStream(handler.clone()),
            Self::CompleteBuffer(handler) => Self::CompleteBuffer(handler.clone()),
        }
    }
}

impl<S> Handler<S> {
    /// The request payload kind this handler takes; `None` for transfers.
    pub(crate) fn payload(&self) -> Option<Payload> {
        match self {
            Self::Console(_) | Self::DirectConsole(_) => Some(Payload::Console),
            Self::Stream(_) | Self::DirectStream(_) => Some(Payload::Stream),
            Self::BigStream(_) | Self::CompleteBuffer(_) => None,
        }
    }

    pub(crate) fn is_direct(&self) -> bool {
        matches!(self, Self::DirectConsole(_) | Self::DirectStream(_))
    }

    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Self::Console(_) => "console",
            Self::Stream(_) => "stream",
            Self::DirectConsole(_) => "direct console",
            Self::DirectStream(_) => "direct stream",
            Self::BigStream(_) => "big stream",
            Self::CompleteBuffer(_) => "complete buffer",
        }
    }
}

pub(crate) struct Entry<S> {
    pub(crate) name: Arc<str>,
    pub(crate) handler: Handler<S>,
    pub(crate) counters: CommandCounters,
}

/// The commands one side answers: a name → handler table.
///
/// Servers and clients both own one, so a server can call its clients exactly as clients call
/// it. Registering a name again replaces the earlier handler.
pub struct Commands<S = ()> {
    entries: HashMap<String, Arc<Entry<S>>>,
}

impl<S> Default for Commands<S> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<S> std::fmt::Debug for Commands<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.entries.keys().collect();
        names.sort();
        f.debug_struct("Commands").field("names", &names).finish()
    }
}

impl<S: Send + Sync + 'static> Commands<S> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, name: &str, handler: Handler<S>) -> &mut Self {
        let entry = Entry {
            name: Arc::from(name),
            handler,
            counters: CommandCounters::default(),
        };
        if self
            .entries
            .insert(name.to_owned(), Arc::new(entry))
            .is_some()
        {
            tracing::warn!(
                command = name,
                "command registered twice; the later handler wins"
            );
        }
        self
    }

    /// Registers a console command: text in, text out (ZServer4D `RegisterConsole`).
    pub fn register_console<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.insert(name, Handler::Console(erase(handler)))
    }

    /// Registers a stream command: DataFrame in, DataFrame out (ZServer4D `RegisterStream`).
    pub fn register_stream<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, DataFrame) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DataFrame, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.insert(name, Handler::Stream(erase(handler)))
    }

    /// Registers a one-way console message (ZServer4D `RegisterDirectConsole`). Errors are
    /// logged and counted; the sender is not told.
    pub fn register_direct_console<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.insert(name, Handler::DirectConsole(erase(handler)))
    }

    /// Registers a one-way stream message (ZServer4D `RegisterDirectStream`).
    pub fn register_direct_stream<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, DataFrame) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.insert(name, Handler::DirectStream(erase(handler)))
    }

    /// Registers a BigStream handler (ZServer4D `RegisterBigStream`): it reads the transfer
    /// chunk by chunk from the [`BigStream`](crate::BigStream) and its result is the reply.
    pub fn register_big_stream<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, crate::large::BigStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DataFrame, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.insert(name, Handler::BigStream(erase(handler)))
    }

    /// Registers a CompleteBuffer handler (ZServer4D `RegisterCompleteBuffer`): it receives
    /// the whole buffer, decompressed, as one `Bytes` (which it may keep). Buffers over
    /// [`Config::max_complete_buffer`](crate::Config::max_complete_buffer) are refused before
    /// they are buffered.
    pub fn register_complete_buffer<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Context<S>, bytes::Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DataFrame, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.insert(name, Handler::CompleteBuffer(erase(handler)))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Entry<S>>> {
        self.entries.get(name)
    }

    /// Statistics of every registered command, sorted by name.
    pub fn stats(&self) -> Vec<CommandStats> {
        let mut stats: Vec<_> = self
            .entries
            .values()
            .map(|entry| entry.counters.snapshot(&entry.name))
            .collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }
}
