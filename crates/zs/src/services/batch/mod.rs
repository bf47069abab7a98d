//! BatchStream: queue several buffers at the other side, then run a command that consumes
//! them (ZServer4D's `__@NewBatchStream`, `__@PostBatchStream`, `__@ClearBatchStream`,
//! `__@GetBatchStreamState`).
//!
//! The receiving side installs a [`BatchService`] ([`Server::install`](crate::Server::install)
//! or [`ClientBuilder::install`](crate::ClientBuilder::install)); it keeps, per connection,
//! named batches of items (buffers) in post order. The sending side uses a [`BatchClient`]
//! on its [`Peer`](crate::Peer): it creates a batch with [`BatchClient::new_batch`], posts
//! items with [`BatchClient::post`], then calls an ordinary command of the application that
//! takes the batch with [`BatchService::take`] and reads its items with
//! [`Batch::next_item`]. [`BatchClient::state`] and [`BatchClient::clear`] inspect and drop
//! batches.
//!
//! ZServer4D kept every batch in memory without a cap. Here each connection has a memory cap
//! (default 64 MiB): items past it are appended to a temporary file per batch (in the spill
//! directory, named `zs-batch-<peer id>-…`) and read back when consumed. A disk cap (default
//! 1 GiB), a batch count (default 64) and an item count (default 65,536) per connection bound
//! the rest; a post past them gets an error reply and changes nothing. When the connection
//! ends, its batches and their files are removed.
//!
//! # Wire layout
//!
//! | command | kind | input | reply |
//! |---|---|---|---|
//! | `__zs.batch.new` | stream | `[name: String]` | `[]` |
//! | `__zs.batch.post` | CompleteBuffer | `name_len: u16 LE`, `name: UTF-8`, item bytes | `[items: u64, bytes: u64, spilled: u64]` of the batch after the post |
//! | `__zs.batch.state` | stream | `[]` | `[memory: u64, disk: u64]` then one `Frame [name: String, items: u64, bytes: u64, spilled: u64]` per batch, by name |
//! | `__zs.batch.clear` | stream | `[name: String]`, or `[]` for every batch | `[removed: u64]` (batches removed) |
//!
//! A post is one CompleteBuffer, so it travels in chunks with flow control and may be
//! compressed; the item is everything after the name. Names are 1 to [`MAX_BATCH_NAME`]
//! bytes. `new` on an existing name is an error; so is a post to a batch that does not exist.
//!
//! The pieces: `service` ([`BatchService`], its limits and handlers), `store` ([`Batch`] and
//! the per-connection stores, spill files) and `client` ([`BatchClient`]).

mod client;
mod service;
mod store;

pub use client::BatchClient;
pub use service::{BatchLimits, BatchService};
pub use store::{Batch, BatchInfo, BatchState};

/// The namespace of the BatchStream commands.
const NAMESPACE: &str = "__zs.batch";
/// The command that creates a batch.
pub const BATCH_NEW_COMMAND: &str = "__zs.batch.new";
/// The CompleteBuffer command that appends one item to a batch.
pub const BATCH_POST_COMMAND: &str = "__zs.batch.post";
/// The command that reports the batches of the connection.
pub const BATCH_STATE_COMMAND: &str = "__zs.batch.state";
/// The command that removes one batch or all of them.
pub const BATCH_CLEAR_COMMAND: &str = "__zs.batch.clear";

/// Default memory cap per connection: 64 MiB.
pub const DEFAULT_BATCH_MEMORY_CAP: u64 = 64 * 1024 * 1024;
/// Default disk cap per connection: 1 GiB.
pub const DEFAULT_BATCH_DISK_CAP: u64 = 1024 * 1024 * 1024;
/// Default number of batches per connection.
pub const DEFAULT_MAX_BATCHES: usize = 64;
/// Default number of stored items per connection, over all its batches.
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 65_536;
/// Longest batch name, in bytes.
pub const MAX_BATCH_NAME: usize = 255;
