//! Raw redb: what a store written by hand on redb does. One `u64 → &[u8]` table of the
//! records' JSON bytes (serde_json), a write transaction per batch, a read transaction per
//! get, and full scans on this thread that decode every record with serde_json and test its
//! fields in Rust. No index: the `city` lookup is a full scan too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde_json::Value;

use super::{FILTER_AGE, FILTER_SCORE, Groups, Matches, Person, System};

const PEOPLE: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("people");

pub struct RawRedb {
    path: PathBuf,
    db: redb::Database,
}

impl RawRedb {
    /// A new database file at `path` with an empty table (redb's default settings, as ZDB
    /// uses them).
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let db = redb::Database::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(PEOPLE)?;
        txn.commit()?;
        Ok(Self {
            path: path.to_owned(),
            db,
        })
    }

    /// Decodes every record in id order and hands it to `visit`.
    fn scan(&self, mut visit: impl FnMut(u64, Value)) -> anyhow::Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PEOPLE)?;
        for entry in table.iter()? {
            let (id, stored) = entry?;
            let id = id.value();
            let value: Value = serde_json::from_slice(stored.value())
                .with_context(|| format!("raw redb: record {id}"))?;
            visit(id, value);
        }
        Ok(())
    }
}

impl System for RawRedb {
    fn name(&self) -> &'static str {
        "raw redb"
    }

    fn insert(&mut self, first_id: u64, batch: &[Person]) -> anyhow::Result<Duration> {
        let values: Vec<Value> = batch.iter().map(Person::json).collect();
        let started = Instant::now();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PEOPLE)?;
            let mut bytes = Vec::with_capacity(256);
            for (id, value) in (first_id..).zip(&values) {
                bytes.clear();
                serde_json::to_writer(&mut bytes, value)?;
                table.insert(id, bytes.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(started.elapsed())
    }

    fn len(&self) -> anyhow::Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(PEOPLE)?.len()?)
    }

    fn get(&self, ids: &[u64]) -> anyhow::Result<u64> {
        let mut ages = 0;
        for &id in ids {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(PEOPLE)?;
            let stored = table
                .get(id)?
                .with_context(|| format!("raw redb: no id {id}"))?;
            let value: Value = serde_json::from_slice(stored.value())?;
            ages += value["age"]
                .as_u64()
                .with_context(|| format!("raw redb: id {id} has no age"))?;
        }
        Ok(ages)
    }

    fn city(&self, city: &str) -> anyhow::Result<Matches> {
        let mut found = Vec::new();
        self.scan(|id, value| {
            if value["city"].as_str() == Some(city) {
                found.push((id, value));
            }
        })?;
        Ok(matches(&found))
    }

    fn filter(&self) -> anyhow::Result<Matches> {
        let mut found = Vec::new();
        self.scan(|id, value| {
            let age = value["age"].as_i64() == Some(FILTER_AGE);
            if age
                && value["score"]
                    .as_f64()
                    .is_some_and(|score| score > FILTER_SCORE)
            {
                found.push((id, value));
            }
        })?;
        Ok(matches(&found))
    }

    fn aggregate(&self) -> anyhow::Result<Groups> {
        let mut sums: HashMap<String, (u64, f64)> = HashMap::new();
        self.scan(|_, value| {
            let (Some(city), Some(score)) = (value["city"].as_str(), value["score"].as_f64())
            else {
                return;
            };
            match sums.get_mut(city) {
                Some((count, sum)) => {
                    *count += 1;
                    *sum += score;
                }
                None => {
                    sums.insert(city.to_owned(), (1, score));
                }
            }
        })?;
        Ok(sums
            .into_iter()
            .map(|(city, (count, sum))| (city, (count, sum / count as f64)))
            .collect())
    }

    fn disk_bytes(&self) -> anyhow::Result<u64> {
        Ok(std::fs::metadata(&self.path)
            .with_context(|| format!("cannot stat {}", self.path.display()))?
            .len())
    }
}

fn matches(found: &[(u64, Value)]) -> Matches {
    let mut matches = Matches::default();
    for (id, _) in found {
        matches.add(*id);
    }
    matches
}
