//! ZDB integration tests: records, batches and indexes in real files, queries and their
//! controls, aggregations, and a writer killed with SIGKILL mid-batch.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod crash;
mod network;
mod queries;
mod records;

use serde_json::json;
use zs_db::{Op, Record, Store};

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// `n` people: `name` "p<i>", `age` i % 90, `city` one of four, `score` i / 2 (float).
pub fn people(store: &Store, name: &str, n: u64) {
    let database = store.create(name).unwrap();
    let cities = ["Oslo", "Rome", "Lima", "Pune"];
    let ops: Vec<Op> = (0..n)
        .map(|i| {
            Op::Insert(Record::Json(json!({
                "name": format!("p{i}"),
                "age": i % 90,
                "city": cities[(i % 4) as usize],
                "score": i as f64 / 2.0,
            })))
        })
        .collect();
    database.write_batch(ops).unwrap();
}
