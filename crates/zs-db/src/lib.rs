//! ZDB: zserver's embedded record store (ZServer4D's ZDB / ZDB2 NoSQL kernel), with parallel
//! queries in ZExpression.
//!
//! A [`Store`] is a directory of named [`Database`]s. A database holds [`Record`]s — JSON
//! values, DataFrames or opaque bytes — under stable `u64` ids that are never reused or renumbered
//! (the original's positions moved on compaction). Writes go one at a time or in batches of
//! [`Op`]s, each batch one transaction; secondary indexes on fields serve `field = value`
//! terms of filters.
//!
//! Storage is [redb](https://docs.rs/redb): copy-on-write B-trees with checksummed, fsynced
//! commits, so a process killed mid-write reopens at the last committed batch — where the
//! original's in-place updates could break on power loss. Many readers run beside one writer
//! (MVCC), which is what lets queries scan in parallel while writes go on.
//!
//! [`Store::query`] runs a [`Query`] — a filter, order, limit and time budget — on a thread
//! of its own, scanning windows of id ranges in parallel on rayon's pool, and streams the
//! matches in [`Fragment`]s through a bounded queue: a slow consumer pauses the scan.
//! Running queries are listed ([`Store::queries`]), paused, resumed and stopped.
//! [`Store::aggregate`] computes count, sum, min, max and average, grouped by a field.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use serde_json::json;
//! use zs_db::{Aggregate, Op, Query, Record, Store};
//!
//! let store = Store::open(dir.path())?;
//! let people = store.create("people")?;
//! people.create_index("city")?;
//! people.write_batch([
//!     Op::Insert(Record::Json(json!({"name": "ann", "age": 41, "city": "Oslo"}))),
//!     Op::Insert(Record::Json(json!({"name": "bob", "age": 17, "city": "Oslo"}))),
//!     Op::Insert(Record::Json(json!({"name": "cid", "age": 33, "city": "Rome"}))),
//! ])?;
//! let (adults, _) = store
//!     .query("people", Query::filter("city = 'Oslo' and age >= 18"))?
//!     .collect_all()?;
//! assert_eq!(adults.len(), 1);
//! let by_city = store.aggregate("people", &Aggregate::of("age").group_by("city"))?;
//! assert_eq!(by_city[0].count, 2); // Oslo
//! # Ok(())
//! # }
//! ```

mod aggregate;
mod database;
mod error;
mod index;
mod lazy;
mod object;
mod query;
mod record;
mod scan;
pub mod service;
mod store;

pub use aggregate::{Aggregate, Group};
pub use database::{Database, Op};
pub use error::DbError;
pub use query::{
    DEFAULT_FRAGMENT, Fragment, Query, QueryEnd, QueryInfo, QueryMetrics, QueryRun, QueryState,
    StoredFragment,
};
pub use record::{MAX_RECORD_LEN, Record};
pub use store::Store;
/// The expression crate filters are written in.
pub use zs_expr;
