//! # zs — zserver's runtime
//!
//! The tokio runtime of zserver: it moves bytes and timers for the sans-IO protocol in
//! [`zs_wire`] and runs your command handlers. It is *not* a protocol implementation of its
//! own: every wire rule lives in `zs-wire`.
//!
//! ## Central types
//! - [`Server`]: binds, accepts, serves registered commands; [`ServerHandle`] controls it
//!   (peers, broadcast, statistics, graceful shutdown).
//! - [`Client`] / [`ClientBuilder`] / [`BlockingClient`]: connect and call; clients register
//!   commands too, so the server can call them.
//! - [`Peer`]: a cheap handle to one connection, from either side: call the other end,
//!   read the per-connection state, close.
//!
//! ## Command kinds (ZServer4D names in parentheses)
//! - console (`RegisterConsole`): text in, text out;
//! - stream (`RegisterStream`): [`DataFrame`] in, `DataFrame` out;
//! - direct console / direct stream (`RegisterDirectConsole`, `RegisterDirectStream`): one-way, no reply.
//!
//! Many calls may be in flight at once in both directions on one connection; each reply
//! reaches its own caller. A handler that returns an error produces an error reply with its
//! message; a handler that panics costs only its own request.
//!
//! ```no_run
//! use zs::{BoxError, Client, Server};
//! use zs_wire::DataFrame;
//!
//! # async fn demo() -> Result<(), BoxError> {
//! let mut server = Server::bind("127.0.0.1:0").await?;
//! server.register_stream("add", |_ctx, input: DataFrame| async move {
//!     let mut reader = input.reader();
//!     let sum = reader.read_i64()? + reader.read_i64()?;
//!     Ok::<_, BoxError>(DataFrame::new().with(sum))
//! });
//! let addr = server.local_addr()?;
//! let server = server.spawn();
//!
//! let client = Client::connect(addr).await?;
//! let reply = client.call_stream("add", &DataFrame::new().with(2i64).with(3i64)).await?;
//! assert_eq!(reply.reader().read_i64()?, 5);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod batch;
mod blocking;
mod client;
mod config;
mod connection;
mod encrypted;
mod error;
mod files;
pub mod key_file;
mod large;
pub mod mux;
mod peer;
mod registry;
mod responder;
mod secure;
mod security;
mod server;
mod stable;
mod stats;

pub use batch::{
    BATCH_CLEAR_COMMAND, BATCH_NEW_COMMAND, BATCH_POST_COMMAND, BATCH_STATE_COMMAND, Batch,
    BatchInfo, BatchLimits, BatchService, BatchState, DEFAULT_BATCH_DISK_CAP,
    DEFAULT_BATCH_MEMORY_CAP, DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_BATCHES, MAX_BATCH_NAME,
    batch_clear, batch_clear_all, batch_new, batch_post, batch_state,
};
pub use blocking::BlockingClient;
pub use client::{Client, ClientBuilder};
pub use config::{
    Config, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_STABLE_LINK_TIMEOUT,
};
pub use encrypted::EncryptedStream;
pub use error::{BoxError, CallError, ConnectError, DisconnectReason, SendError};
pub use files::{
    FileError, FileService, TransferOptions, TransferReport, get_file, put_file, register_sink,
};
pub use large::{
    BigStream, CHUNK_SIZE, DEFAULT_MAX_COMPLETE_BUFFER, Progress, StreamError, Upload,
};
pub use peer::{Call, Peer, Reply};
pub use registry::{Commands, Context, OffloadError};
pub use responder::{PendingReply, RequestGone, Responder, deferred};
pub use security::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_REKEY_AFTER, DEFAULT_REKEY_AFTER_BYTES, Security,
    SecurityError,
};
pub use server::{Server, ServerHandle};
pub use stats::CommandStats;
pub use zs_wire::DataFrame;
pub use zs_wire::crypto::record::Suite;
pub use zs_wire::frame::{CloseCode, Compression, ErrorCode};
pub use zs_wire::handshake::{Fingerprint, StaticKeypair};
pub use zs_wire::stable::StableConfig;

/// The README's library example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExample;
