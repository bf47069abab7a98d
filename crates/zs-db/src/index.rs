//! Field indexes: for each indexed field, a redb table of *postings* — the ids of records
//! whose field has one value, in id order.
//!
//! ```text
//! key   u128: XXH3-64 of the value's index key (record::index_key) << 64 | the posting's first id
//! value ids, u64 little-endian each, ascending, at most POSTING_IDS of them
//! ```
//!
//! A batch of inserts adds one posting per distinct value (and per [`POSTING_IDS`] ids), not
//! one B-tree entry per record: a batch of 10,000 records over 100 cities writes 100 entries.
//! Changing or deleting a record rewrites the one posting that holds its id; a changed
//! record's new value gets a posting of its own. The hash is of a fixed algorithm (it is
//! stored); a record whose value only shares the hash is dropped by whoever reads the
//! records (a scan's filter, [`Database::lookup`](crate::Database::lookup)).

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition};
use zs_expr::Value;

use crate::DbError;
use crate::record::index_key;

/// Most ids in one posting (8 KiB): bounds what a change to one record rewrites.
pub(crate) const POSTING_IDS: usize = 1024;

/// The table of the index called `name`.
pub(crate) fn table(name: &str) -> TableDefinition<'_, u128, &'static [u8]> {
    TableDefinition::new(name)
}

/// The hash under which `value`'s records are posted.
pub(crate) fn hash(value: &Value) -> u64 {
    twox_hash::XxHash3_64::oneshot(&index_key(value))
}

fn key(hash: u64, first: u64) -> u128 {
    (u128::from(hash) << 64) | u128::from(first)
}

fn encode(ids: &[u64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

fn decode(posting: &[u8]) -> Result<Vec<u64>, DbError> {
    let (chunks, rest) = posting.as_chunks::<8>();
    if !rest.is_empty() || chunks.is_empty() {
        return Err(DbError::Storage(format!(
            "an index posting of {} bytes",
            posting.len()
        )));
    }
    Ok(chunks
        .iter()
        .map(|bytes| u64::from_le_bytes(*bytes))
        .collect())
}

/// Ids of the records posted under `hash`, in id order.
pub(crate) fn ids(
    table: &impl ReadableTable<u128, &'static [u8]>,
    hash: u64,
) -> Result<Vec<u64>, DbError> {
    let mut ids = Vec::new();
    let mut sorted = true;
    for entry in table.range(key(hash, 0)..=key(hash, u64::MAX))? {
        let (_, posting) = entry?;
        let posting = decode(posting.value())?;
        sorted &= ids.last().is_none_or(|last| Some(last) < posting.first());
        ids.extend(posting);
    }
    // Postings of changed records may interleave with older ones.
    if !sorted {
        ids.sort_unstable();
    }
    Ok(ids)
}

/// Removes `id` from the postings under `hash` (nothing if it is not there).
pub(crate) fn remove(
    table: &mut redb::Table<'_, u128, &'static [u8]>,
    hash: u64,
    id: u64,
) -> Result<(), DbError> {
    // The posting holding `id` starts at or before it; most often it is the nearest.
    let mut found = None;
    for entry in table.range(key(hash, 0)..=key(hash, id))?.rev() {
        let (first, posting) = entry?;
        let mut ids = decode(posting.value())?;
        if let Ok(at) = ids.binary_search(&id) {
            ids.remove(at);
            found = Some((first.value(), ids));
            break;
        }
    }
    let Some((first, ids)) = found else {
        return Ok(());
    };
    table.remove(first)?;
    if let Some(&new_first) = ids.first() {
        table.insert(key(hash, new_first), encode(&ids).as_slice())?;
    }
    Ok(())
}

/// Posts `id` under `hash` alone (a changed record's new value).
pub(crate) fn insert_one(
    table: &mut redb::Table<'_, u128, &'static [u8]>,
    hash: u64,
    id: u64,
) -> Result<(), DbError> {
    table.insert(key(hash, id), id.to_le_bytes().as_slice())?;
    Ok(())
}

/// Ids of records added in one batch, gathered per index and value, written as postings
/// when the batch ends (or before it changes an existing record).
#[derive(Default)]
pub(crate) struct Pending {
    postings: HashMap<(usize, u64), Vec<u64>>,
}

impl Pending {
    /// Notes that record `id` — newer than every id noted before — has the value hashed to
    /// `hash` in index `index`.
    pub(crate) fn add(&mut self, index: usize, hash: u64, id: u64) {
        self.postings.entry((index, hash)).or_default().push(id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.postings.is_empty()
    }

    /// Writes what was noted into `tables` (by index) and forgets it.
    pub(crate) fn flush(
        &mut self,
        tables: &mut [redb::Table<'_, u128, &'static [u8]>],
    ) -> Result<(), DbError> {
        for ((index, hash), ids) in self.postings.drain() {
            let Some(table) = tables.get_mut(index) else {
                continue;
            };
            for posting in ids.chunks(POSTING_IDS) {
                if let Some(&first) = posting.first() {
                    table.insert(key(hash, first), encode(posting).as_slice())?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn postings_follow_inserts_changes_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("x.redb")).unwrap();
        let (a, b) = (hash(&Value::Str("a".into())), hash(&Value::Int(7)));
        assert_eq!(a, hash(&Value::Str("a".into())), "the hash is stable");
        assert_ne!(a, b);
        let txn = db.begin_write().unwrap();
        {
            let mut tables = vec![txn.open_table(table("i")).unwrap()];
            let mut pending = Pending::default();
            // More ids than one posting holds.
            for id in 1..=2500 {
                pending.add(0, if id % 2 == 0 { a } else { b }, id);
            }
            pending.flush(&mut tables).unwrap();
            assert!(pending.is_empty());
            let table = &mut tables[0];
            let evens: Vec<u64> = (1..=2500).filter(|id| id % 2 == 0).collect();
            assert_eq!(ids(table, a).unwrap(), evens);
            // Record 4 changes from a to b; 2 (a posting's first id) and 2500 go.
            remove(table, a, 4).unwrap();
            insert_one(table, b, 4).unwrap();
            remove(table, a, 2).unwrap();
            remove(table, a, 2500).unwrap();
            remove(table, a, 3).unwrap(); // not there: nothing happens
            let left: Vec<u64> = evens
                .iter()
                .copied()
                .filter(|id| ![2, 4, 2500].contains(id))
                .collect();
            assert_eq!(ids(table, a).unwrap(), left);
            let mut odds: Vec<u64> = (1..=2500).filter(|id| id % 2 == 1).collect();
            odds.push(4);
            odds.sort_unstable();
            assert_eq!(ids(table, b).unwrap(), odds, "in id order");
            assert!(ids(table, hash(&Value::Null)).unwrap().is_empty());
        }
        txn.commit().unwrap();
    }

    #[test]
    fn broken_postings_are_errors() {
        assert!(decode(&[1, 2, 3]).is_err());
        assert!(decode(&[]).is_err());
        assert_eq!(decode(&encode(&[5, 9])).unwrap(), vec![5, 9]);
    }
}
