//! Work that outlives one request/reply exchange: BigStream and CompleteBuffer transfers
//! ([`large`]) and the delayed response ([`responder`]).

pub(crate) mod large;
mod responder;

pub use large::{
    BigStream, CHUNK_SIZE, DEFAULT_MAX_COMPLETE_BUFFER, Progress, StreamError, Upload,
};
pub use responder::{PendingReply, RequestGone, Responder, deferred};
