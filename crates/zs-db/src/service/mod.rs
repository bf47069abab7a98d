//! ZDB over zserver: [`DbService`] serves a [`Store`](crate::Store) to the connections of a
//! zs `Server` (installed as a service), and [`DbClient`] is its typed client (ZServer4D's
//! ZDB client/server demo pair).
//!
//! Every store call runs on tokio's blocking pool (redb commits fsync; scans use rayon), so
//! the connection keeps serving. A query started by a connection belongs to it: the client
//! pulls its fragments one `next` call at a time, which is the back-pressure (the scan waits
//! once a few fragments are unread), and the query is stopped when the connection ends.
//!
//! # Wire layout (namespace `__zs.db`; stream commands take and return DataFrames)
//!
//! | command | input | reply |
//! |---|---|---|
//! | `list` | `[]` | `[name: String]*` |
//! | `create` / `remove` | `[db: String]` | `[]` |
//! | `index` | `[db, field: String]` | `[]` |
//! | `insert` | `[db, record]` | `[id: u64]` |
//! | `get` | `[db, id: u64]` | `[]` (no such record) or `[record]` |
//! | `modify` | `[db, id: u64, record]` | `[]` |
//! | `delete` | `[db, id: u64]` | `[existed: bool]` |
//! | `post` (CompleteBuffer) | an encoded DataFrame `[db, stored: bytes*]`, each `stored` a record's stored form (`u8 kind` 1 JSON text / 2 bytes / 3 DataFrame / 4 JSON object in a field layout; see docs/PROTOCOL.md §12) | `[first_id: u64, count: u64]` (ids are consecutive) |
//! | `query` | `[db, filter: String ("" = all), reverse: bool, limit: u64 (0 = none), budget_ms: u64 (0 = none), fragment: u32]` | `[query: u64]` |
//! | `next` | `[query: u64]` | `[state: u8 (0 records, 1 end), end: u8 (0 complete, 1 stopped, 2 out of time), scanned: u64, matched: u64, (id: u64, stored: bytes)*]` (records in their stored form, as in `post`) |
//! | `control` | `[query: u64, action: String ("pause", "resume", "stop")]` | `[]` |
//! | `queries` | `[]` | one frame `[query: u64, db, filter, scanned: u64, matched: u64, paused: bool, elapsed_ms: u64]` per running query |
//! | `aggregate` | `[db, filter, field, group_by: String ("" = none)]` | one frame `[key: JSON, count: u64, values: u64, sum: f64, min, max, average: f64 or null]` per group |
//! | `query_into` | `[db, filter, reverse: bool, limit: u64, output: String]` | `[written: u64]` (results stored as new records of `output`, created if needed) |
//! | `copy` | `[from, to: String]` | `[records: u64]` |
//! | `compact` | `[db]` | `[compacted: bool]` |
//!
//! A `record` is a JSON value (a JSON record), bytes (a byte record) or a nested DataFrame (a
//! DataFrame record). Errors are statuses:
//! `NOT_FOUND` (database, record, query), `ALREADY_EXISTS`, `INVALID_ARGUMENT` (names, records,
//! filters: the message carries the filter error's position), `RESOURCE_EXHAUSTED` (too many
//! queries on one connection), `INTERNAL` (storage).

mod client;
mod server;
mod wire;

pub use client::{DbClient, DbClientError, RemoteQuery};
pub use server::DbService;
pub use wire::RemoteFragment;

/// The service's namespace.
pub const NAMESPACE: &str = "__zs.db";
/// Queries one connection may have running at once.
pub const MAX_QUERIES_PER_CONNECTION: usize = 16;
