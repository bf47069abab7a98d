//! Delayed response: park a request's reply and answer it later, from anywhere.
//!
//! ZServer4D did this with `PauseResultSend` / `ContinueResultSend`. Here a handler makes a
//! [`Responder`] / [`PendingReply`] pair, hands the responder to whoever will produce the
//! answer (another task, another connection's handler, a timer), and returns the pending
//! reply's result. The connection keeps serving other requests meanwhile, because handlers
//! are futures.
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use zs::{Responder, Server};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let waiting: Arc<Mutex<Vec<Responder<String>>>> = Arc::default();
//! let mut server = Server::bind("127.0.0.1:0").await?;
//! let parked = waiting.clone();
//! server.register_console("wait", move |_ctx, _text: String| {
//!     let (responder, reply) = zs::deferred();
//!     parked.lock().unwrap().push(responder);
//!     reply // answered when someone calls "wake"
//! });
//! server.register_console("wake", move |_ctx, text: String| {
//!     let woken = waiting.lock().unwrap().drain(..).filter_map(|r| r.send(text.clone()).ok()).count();
//!     async move { Ok(format!("woke {woken}")) }
//! });
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use tokio::sync::oneshot;

use crate::dispatch::Status;

/// Makes a responder and the pending reply it completes.
pub fn deferred<T>() -> (Responder<T>, PendingReply<T>) {
    let (sender, receiver) = oneshot::channel();
    (Responder { sender }, PendingReply { receiver })
}

/// The right to answer one parked request; send it anywhere.
#[derive(Debug)]
pub struct Responder<T> {
    sender: oneshot::Sender<Result<T, Status>>,
}

/// The request is gone: its connection ended or its handler was dropped before the answer.
/// The value that could not be delivered is handed back.
#[derive(Debug, thiserror::Error)]
#[error("the request's connection ended before the reply")]
pub struct RequestGone<T>(pub T);

impl<T> Responder<T> {
    /// Answers the request. Fails, handing the value back, if the request is gone.
    pub fn send(self, value: T) -> Result<(), RequestGone<T>> {
        match self.sender.send(Ok(value)) {
            Ok(()) => Ok(()),
            Err(Ok(value)) => Err(RequestGone(value)),
            // We sent Ok; the channel hands back exactly what was sent.
            Err(Err(_)) => Ok(()),
        }
    }

    /// Answers the request with an error reply: a [`Status`], or any error (which converts
    /// as a handler's `?` does).
    pub fn fail(self, error: impl Into<Status>) -> Result<(), RequestGone<()>> {
        self.sender
            .send(Err(error.into()))
            .map_err(|_| RequestGone(()))
    }

    /// True when the request is gone (its peer disconnected), so there is no point in
    /// producing an answer.
    pub fn is_gone(&self) -> bool {
        self.sender.is_closed()
    }

    /// Waits until the request is gone.
    pub async fn gone(&mut self) {
        self.sender.closed().await;
    }
}

/// The reply a handler returns while its [`Responder`] is elsewhere; resolves when the
/// responder answers. If the responder is dropped unanswered, the caller gets an error reply.
#[derive(Debug)]
#[must_use = "return the pending reply from the handler"]
pub struct PendingReply<T> {
    receiver: oneshot::Receiver<Result<T, Status>>,
}

impl<T> Future for PendingReply<T> {
    type Output = Result<T, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|result| match result {
                Ok(answer) => answer,
                Err(_) => Err(Status::internal(
                    "the responder was dropped without answering",
                )),
            })
    }
}
