//! Running one handler: decode the input, call it inside `catch_unwind`, encode the output.
//! Errors become a [`Status`] for the caller.

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use zs_wire::DataFrame;

use crate::dispatch::Status;
use crate::dispatch::context::Context;
use crate::dispatch::registry::Handler;

pub(super) async fn run_transfer<S: Send + Sync + 'static>(
    handler: &Handler<S>,
    context: Context<S>,
    stream: crate::transfer::large::BigStream,
) -> Result<Bytes, Status> {
    let outcome = match handler {
        Handler::BigStream(handler) => {
            AssertUnwindSafe(async { handler(context, stream).await })
                .catch_unwind()
                .await
        }
        Handler::CompleteBuffer(handler) => {
            let buffer = crate::transfer::large::collect_complete(stream)
                .await
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
            AssertUnwindSafe(async { handler(context, buffer).await })
                .catch_unwind()
                .await
        }
        _ => return Err(Status::unimplemented("not a transfer command")),
    };
    match outcome {
        Ok(Ok(frame)) => Ok(Bytes::from(frame.encode())),
        Ok(Err(status)) => Err(status),
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            tracing::error!(
                panic = message,
                "transfer handler panicked; only its transfer fails"
            );
            Err(Status::internal(format!("handler panicked: {message}")))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

pub(super) async fn run_handler<S: Send + Sync + 'static>(
    handler: &Handler<S>,
    context: Context<S>,
    body: Bytes,
) -> Result<Bytes, Status> {
    let text = |body: &Bytes| {
        std::str::from_utf8(body)
            .map(str::to_owned)
            .map_err(|_| Status::invalid_argument("console text is not UTF-8"))
    };
    let frame = |body: &Bytes| {
        DataFrame::decode(body)
            .map_err(|error| Status::invalid_argument(format!("invalid DataFrame: {error}")))
    };
    // The handler call itself and its future both run inside catch_unwind: a panic in either
    // becomes an error reply for this request only.
    let outcome = match handler {
        Handler::BigStream(_) | Handler::CompleteBuffer(_) => {
            return Err(Status::unimplemented("a transfer command takes a transfer"));
        }
        Handler::Console(handler) => {
            let input = text(&body)?;
            AssertUnwindSafe(async { handler(context, input).await.map(Bytes::from) })
                .catch_unwind()
                .await
        }
        Handler::Stream(handler) => {
            let input = frame(&body)?;
            AssertUnwindSafe(async {
                handler(context, input)
                    .await
                    .map(|output| Bytes::from(output.encode()))
            })
            .catch_unwind()
            .await
        }
        Handler::DirectConsole(handler) => {
            let input = text(&body)?;
            AssertUnwindSafe(async { handler(context, input).await.map(|()| Bytes::new()) })
                .catch_unwind()
                .await
        }
        Handler::DirectStream(handler) => {
            let input = frame(&body)?;
            AssertUnwindSafe(async { handler(context, input).await.map(|()| Bytes::new()) })
                .catch_unwind()
                .await
        }
    };
    match outcome {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(status)) => Err(status),
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            tracing::error!(panic = message, "handler panicked; only its request fails");
            Err(Status::internal(format!("handler panicked: {message}")))
        }
    }
}
