//! [`Context`]: what a handler receives besides its input.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use zs_wire::frame::RequestId;

use crate::dispatch::status::Status;
use crate::endpoint::handle::ServerRef;
use crate::endpoint::peer::Peer;

/// What a handler receives besides its input: who called, and which request this is.
#[derive(Debug)]
pub struct Context<S = ()> {
    pub(crate) peer: Peer<S>,
    pub(crate) command: Arc<str>,
    pub(crate) request_id: Option<RequestId>,
    pub(crate) env: Arc<HandlerEnv<S>>,
}

/// What every handler of one connection shares: the application's state, the server (on a
/// server) and the offload pool. One per connection, so a request costs one `Arc` clone.
pub(crate) struct HandlerEnv<S> {
    pub(crate) app: Arc<AppState>,
    pub(crate) server: Option<ServerRef<S>>,
    pub(crate) offload: Arc<tokio::sync::Semaphore>,
}

impl<S> std::fmt::Debug for HandlerEnv<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerEnv").finish_non_exhaustive()
    }
}

/// Application state shared by every handler, one value per type
/// ([`Server::with_state`](crate::Server::with_state)).
#[derive(Default)]
pub(crate) struct AppState {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("values", &self.values.len())
            .finish()
    }
}

impl AppState {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref())
    }
}

impl<S> Context<S> {
    /// The connection the request came from; use it to call back or read its state.
    pub fn peer(&self) -> &Peer<S> {
        &self.peer
    }

    /// The user the connection is logged in as (see [`Peer::set_user`]); `None` before a
    /// login.
    pub fn user(&self) -> Option<crate::User> {
        self.peer.user()
    }

    /// The logged-in user, or an `UNAUTHENTICATED` status for `?` to answer the caller with.
    pub fn require_user(&self) -> Result<crate::User, Status> {
        self.user().ok_or_else(|| {
            Status::unauthenticated(format!("{:?} needs a logged-in user", self.command))
        })
    }

    /// The per-connection user state (ZServer4D's `UserDefine`).
    pub fn state(&self) -> &S {
        self.peer.state()
    }

    /// The application state of type `T` given to
    /// [`Server::with_state`](crate::Server::with_state) (or
    /// [`ClientBuilder::with_state`](crate::ClientBuilder::with_state)), shared by
    /// every connection. A missing type is an `INTERNAL` status, so `?` answers the caller.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// struct Hits(AtomicU64);
    /// let mut server = zs::Server::bind("127.0.0.1:0").await?;
    /// server.with_state(Hits(AtomicU64::new(0)));
    /// server.register_console("hit", |ctx, _text: String| async move {
    ///     let hits = ctx.app_state::<Hits>()?;
    ///     Ok(hits.0.fetch_add(1, Ordering::Relaxed).to_string())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn app_state<T: Send + Sync + 'static>(&self) -> Result<&T, Status> {
        self.env.app.get::<T>().ok_or_else(|| {
            Status::internal(format!(
                "no application state of type {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The server this request arrived at (peers, broadcast, statistics); `None` on a
    /// client.
    pub fn server(&self) -> Option<&ServerRef<S>> {
        self.env.server.as_ref()
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
    /// # async fn demo(ctx: zs::Context) -> Result<(), zs::Status> {
    /// let digest = ctx.offload(|| (0..10_000_000u64).fold(0u64, |acc, x| acc ^ x.wrapping_mul(31))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn offload<R, F>(&self, job: F) -> Result<R, OffloadError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .env
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
