//! Work that outlives one request/reply exchange: BigStream and CompleteBuffer transfers
//! ([`BigStream`], [`Upload`]) and the delayed response ([`Responder`], [`deferred`]).

pub(crate) mod large;
mod responder;
mod upload;

pub use large::{
    BigStream, CHUNK_SIZE, DEFAULT_MAX_COMPLETE_BUFFER, DEFAULT_STREAM_WINDOW, MAX_STREAM_WINDOW,
    StreamError,
};
pub use responder::{PendingReply, RequestGone, Responder, deferred};
pub use upload::{Progress, Upload};
