//! Command registration: named handlers of the four kinds, shared by servers and clients.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use zs_wire::DataFrame;
use zs_wire::frame::Payload;

use crate::dispatch::auth::{Requirement, Rule};
use crate::dispatch::context::Context;
use crate::dispatch::stats::{CommandCounters, CommandStats};
use crate::dispatch::status::Status;

/// A type-erased handler: input in, boxed future of its result out.
type HandlerFn<S, I, O> =
    dyn Fn(Context<S>, I) -> BoxFuture<'static, Result<O, Status>> + Send + Sync;
type ConsoleFn<S> = HandlerFn<S, String, String>;
type StreamFn<S> = HandlerFn<S, DataFrame, DataFrame>;
type DirectConsoleFn<S> = HandlerFn<S, String, ()>;
type BigStreamFn<S> = HandlerFn<S, crate::transfer::large::BigStream, DataFrame>;
type CompleteBufferFn<S> = HandlerFn<S, bytes::Bytes, DataFrame>;
type DirectStreamFn<S> = HandlerFn<S, DataFrame, ()>;

/// Erases a handler's concrete future type.
fn erase<S, I, O, F, Fut>(handler: F) -> Arc<HandlerFn<S, I, O>>
where
    F: Fn(Context<S>, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, Status>> + Send + 'static,
{
    Arc::new(
        move |context, input| -> BoxFuture<'static, Result<O, Status>> {
            Box::pin(handler(context, input))
        },
    )
}

/// The six command kinds, once: `$method!` is called with each kind's method name, handler
/// variant, input and output types and doc line. `Commands`, `Server` and `ClientBuilder`
/// each expand their `register_*` methods from this list, so bounds and docs cannot drift.
macro_rules! command_kinds {
    ($method:ident) => {
        $method!(
            register_console, Console, String, String,
            "Registers a console command: text in, text out (ZServer4D `RegisterConsole`)."
        );
        $method!(
            register_stream, Stream, $crate::DataFrame, $crate::DataFrame,
            "Registers a stream command: DataFrame in, DataFrame out (ZServer4D `RegisterStream`)."
        );
        $method!(
            register_direct_console, DirectConsole, String, (),
            "Registers a one-way console message (ZServer4D `RegisterDirectConsole`). Errors are logged and counted; the sender is not told."
        );
        $method!(
            register_direct_stream, DirectStream, $crate::DataFrame, (),
            "Registers a one-way stream message (ZServer4D `RegisterDirectStream`). Errors are logged and counted; the sender is not told."
        );
        $method!(
            register_big_stream, BigStream, $crate::BigStream, $crate::DataFrame,
            "Registers a BigStream handler (ZServer4D `RegisterBigStream`): it reads the transfer chunk by chunk from the [`BigStream`](crate::BigStream) and its result is the reply."
        );
        $method!(
            register_complete_buffer, CompleteBuffer, bytes::Bytes, $crate::DataFrame,
            "Registers a CompleteBuffer handler (ZServer4D `RegisterCompleteBuffer`): it receives the whole buffer, decompressed, as one `Bytes` (which it may keep). Buffers over [`Config::max_complete_buffer`](crate::Config::max_complete_buffer) are refused before they are buffered."
        );
    };
}
pub(crate) use command_kinds;

/// The `register_*` methods of `Server` and `ClientBuilder`: each forwards to the type's
/// `commands` table, in the one builder style (`&mut self` setters returning `&mut Self`).
macro_rules! forward_register {
    ($name:ident, $variant:ident, $input:ty, $output:ty, $doc:literal) => {
        #[doc = $doc]
        pub fn $name<F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
        where
            F: Fn($crate::Context<S>, $input) -> Fut + Send + Sync + 'static,
            Fut: std::future::Future<Output = Result<$output, $crate::Status>> + Send + 'static,
        {
            self.commands.$name(name, handler);
            self
        }
    };
}
pub(crate) use forward_register;

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
    /// What the caller needs before the handler runs.
    pub(crate) requirement: Option<Requirement>,
}

/// The commands one side answers: a name → handler table.
///
/// Servers and clients both own one, so a server can call its clients exactly as clients call
/// it. Registering a name again replaces the earlier handler.
pub struct Commands<S = ()> {
    entries: HashMap<String, Arc<Entry<S>>>,
    /// Requirements by name or prefix, in the order given (a later rule wins).
    rules: Vec<Rule>,
}

impl<S> Default for Commands<S> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            rules: Vec::new(),
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

macro_rules! register_method {
    ($name:ident, $variant:ident, $input:ty, $output:ty, $doc:literal) => {
        #[doc = $doc]
        pub fn $name<F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
        where
            F: Fn(Context<S>, $input) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<$output, Status>> + Send + 'static,
        {
            self.insert(name, Handler::$variant(erase(handler)))
        }
    };
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
            requirement: self.requirement_of(name),
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

    command_kinds!(register_method);

    /// Makes the commands `pattern` names — one name, or every name under a prefix with a
    /// trailing `*` (`"chat.*"`) — refuse callers that do not meet `requirement`: without a
    /// logged-in [`User`](crate::User) they get `UNAUTHENTICATED`, without the role
    /// `PERMISSION_DENIED`, before the handler runs (ZServer4D refuses a dual-tunnel
    /// client's commands until it has logged in). Covers commands registered before and
    /// after; a later rule for the same command wins.
    ///
    /// ```
    /// let mut commands: zs::Commands = zs::Commands::new();
    /// commands.require("admin.*", zs::Requirement::Role("admin".into()));
    /// commands.register_console("admin.stop", |ctx, _: String| async move {
    ///     Ok(format!("stopped by {}", ctx.require_user()?.name()))
    /// });
    /// ```
    pub fn require(&mut self, pattern: &str, requirement: Requirement) -> &mut Self {
        let rule = Rule::new(pattern, requirement);
        for (name, entry) in &mut self.entries {
            if rule.covers(name) {
                // Only while being set up: no call has been counted yet.
                *entry = Arc::new(Entry {
                    name: entry.name.clone(),
                    handler: entry.handler.clone(),
                    counters: CommandCounters::default(),
                    requirement: Some(rule.requirement.clone()),
                });
            }
        }
        self.rules.push(rule);
        self
    }

    fn requirement_of(&self, name: &str) -> Option<Requirement> {
        self.rules
            .iter()
            .rev()
            .find(|rule| rule.covers(name))
            .map(|rule| rule.requirement.clone())
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
