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
//! reaches its own caller. A handler returns `Result<T, Status>`: a failure reaches the caller
//! as [`CallError::Remote`] with the handler's [`Status`] (a code from the table in
//! `docs/PROTOCOL.md`, a message, optional details). A handler that panics costs only its own
//! request (`INTERNAL`).
//!
//! ## Layout
//! - [`endpoint`]: `Server`, `ServerHandle`/`ServerRef`, `Client`, `BlockingClient`, `Peer`.
//! - [`dispatch`]: the handler contract: `Status`, `Context` (state, server, offload),
//!   `Commands`, `Service`, statistics.
//! - `driver` (private): the per-connection task that owns the protocol session.
//! - [`transport`]: handshake and AEAD records, `EncryptedStream`, p2pVM `mux`, StableIO.
//! - [`transfer`]: BigStream, CompleteBuffer, delayed response.
//! - [`services`]: files and BatchStream, installed as [`Service`]s.
//!
//! ```no_run
//! use zs::{Client, DataFrame, Server};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut server = Server::bind("127.0.0.1:0").await?;
//! server.register_stream("add", |_ctx, input: DataFrame| async move {
//!     let mut reader = input.reader();
//!     let sum = reader.read_i64()? + reader.read_i64()?;
//!     Ok(DataFrame::new().with(sum))
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

pub mod config;
pub mod custom;
pub mod dispatch;
mod driver;
pub mod endpoint;
mod error;
pub mod metrics;
pub mod services;
pub mod transfer;
pub mod transport;

pub use config::Config;
pub use dispatch::{
    CommandStats, Commands, Context, Namespace, Requirement, Service, Status, StatusCode, User,
};
pub use endpoint::{
    BlockingClient, Call, Client, ClientBuilder, Peer, Server, ServerHandle, ServerRef,
};
pub use error::{BadReply, CallError, ConnectError, DisconnectReason, Lost, SendError};
pub use transfer::{BigStream, Responder, deferred};
pub use transport::{
    EncryptedStream, Entries, EntrySource, Security, SecurityError, StableConfig, key_file, mux,
};
pub use zs_wire::DataFrame;
pub use zs_wire::crypto::record::Suite;
pub use zs_wire::frame::{CloseCode, Compression};
pub use zs_wire::handshake::{Fingerprint, StaticKeypair};

/// The README's library example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExample;
