//! [`Database`]: one named database, a redb file of records by stable id, with secondary
//! indexes on fields.
//!
//! Tables: `records` (`u64` id → stored record), `meta` (`next_id`, and one `index:<field>`
//! entry per indexed field) and one multimap table `index:<field>` per index (index key →
//! ids). Ids come from `next_id` and are never reused or renumbered: compaction rewrites
//! pages, not keys (the original's ZDB moved records and so their positions).

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::index::{self, Pending};
use crate::object::Selector;
use crate::record::{index_key, read_fields};
use crate::{DbError, Record};

pub(crate) const RECORDS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_id";
const INDEX_PREFIX: &str = "index:";
/// Longest indexed field name.
const MAX_FIELD_LEN: usize = 256;

/// One change in a batch ([`Database::write_batch`]).
#[derive(Debug, Clone)]
pub enum Op {
    /// Adds a record under a new id.
    Insert(Record),
    /// Replaces the record with this id (which must exist).
    Modify(u64, Record),
    /// Removes the record with this id, if it exists.
    Delete(u64),
}

/// An [`Op`] with its record encoded.
enum Encoded {
    Insert(Vec<u8>),
    Modify(u64, Vec<u8>),
    Delete(u64),
}

/// One named database (ZServer4D's `TZDB` / ZDB2 file): records under stable ids.
pub struct Database {
    name: String,
    path: PathBuf,
    pub(crate) db: redb::Database,
    indexes: RwLock<Vec<String>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (or creates) the database file at `path`.
    pub(crate) fn open(name: &str, path: &Path) -> Result<Self, DbError> {
        let db = redb::Database::create(path)?;
        let txn = db.begin_write()?;
        let indexes = {
            txn.open_table(RECORDS)?;
            let meta = txn.open_table(META)?;
            let mut indexes = Vec::new();
            for entry in meta.range(INDEX_PREFIX..)? {
                let (key, _) = entry?;
                match key.value().strip_prefix(INDEX_PREFIX) {
                    Some(field) => indexes.push(field.to_owned()),
                    None => break,
                }
            }
            indexes
        };
        txn.commit()?;
        Ok(Self {
            name: name.to_owned(),
            path: path.to_owned(),
            db,
            indexes: RwLock::new(indexes),
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file holding it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fields with an index.
    pub fn indexes(&self) -> Vec<String> {
        self.indexes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Records held.
    pub fn len(&self) -> Result<u64, DbError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(RECORDS)?.len()?)
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> Result<bool, DbError> {
        Ok(self.len()? == 0)
    }

    /// Adds a record; returns its id.
    pub fn insert(&self, record: Record) -> Result<u64, DbError> {
        let ids = self.write_batch([Op::Insert(record)])?;
        ids.first()
            .copied()
            .ok_or_else(|| DbError::Storage("an insert returned no id".to_owned()))
    }

    /// The record with id `id`, if any.
    pub fn get(&self, id: u64) -> Result<Option<Record>, DbError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        match table.get(id)? {
            Some(stored) => Record::decode(stored.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the record with id `id`; [`DbError::NoSuchRecord`] if there is none.
    pub fn modify(&self, id: u64, record: Record) -> Result<(), DbError> {
        self.write([Op::Modify(id, record)]).map(drop)
    }

    /// Removes the record with id `id`; returns whether it existed.
    pub fn delete(&self, id: u64) -> Result<bool, DbError> {
        let touched = self.write([Op::Delete(id)])?;
        Ok(touched.first().is_some_and(Option::is_some))
    }

    /// Applies `ops` in one transaction: all of them are stored, or (on an error) none.
    /// Returns the ids of the inserted records, in order. Once this returns, the batch is
    /// durable (redb commits with fsync).
    pub fn write_batch(&self, ops: impl IntoIterator<Item = Op>) -> Result<Vec<u64>, DbError> {
        let mut inserted = Vec::new();
        let ops = ops
            .into_iter()
            .inspect(|op| inserted.push(matches!(op, Op::Insert(_))));
        let touched = self.write(ops)?;
        Ok(touched
            .into_iter()
            .zip(inserted)
            .filter_map(|(id, insert)| id.filter(|_| insert))
            .collect())
    }

    /// Adds records given in their stored form ([`Record::encode`]) in one transaction, each
    /// checked as [`Record::validate`] does (in the same parse that reads its indexed
    /// fields): the fast path of a network post, which skips building and re-encoding the
    /// records. Returns their ids, consecutive.
    pub fn insert_encoded(&self, stored: Vec<Vec<u8>>) -> Result<std::ops::Range<u64>, DbError> {
        self.batch(|writer| {
            let first = writer.next_id;
            for record in &stored {
                writer.insert_stored(record, true)?;
            }
            Ok(first..writer.next_id)
        })
    }

    /// Applies `ops` in one transaction; per op, the id it touched (none for a delete of a
    /// missing id).
    fn write(&self, ops: impl IntoIterator<Item = Op>) -> Result<Vec<Option<u64>>, DbError> {
        let encoded = ops
            .into_iter()
            .map(|op| {
                Ok(match op {
                    Op::Insert(record) => Encoded::Insert(record.encode()?),
                    Op::Modify(id, record) => Encoded::Modify(id, record.encode()?),
                    Op::Delete(id) => Encoded::Delete(id),
                })
            })
            .collect::<Result<Vec<Encoded>, DbError>>()?;
        self.batch(|writer| encoded.into_iter().map(|op| writer.apply(op)).collect())
    }

    /// Runs `body` on a write transaction's tables, opened once for the whole batch, then
    /// stores the next id and commits; an error drops the transaction (nothing is stored).
    fn batch<R>(
        &self,
        body: impl FnOnce(&mut Writer<'_, '_>) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let txn = self.db.begin_write()?;
        // Read after the transaction began: an index being created is then either complete
        // and listed, or not begun (its writer holds the list until it is committed).
        let fields = self.indexes();
        let names: Vec<String> = fields.iter().map(|field| index_name(field)).collect();
        let result = {
            let mut meta = txn.open_table(META)?;
            let mut indexes = Vec::with_capacity(fields.len());
            for name in &names {
                indexes.push(txn.open_table(index::table(name))?);
            }
            let mut writer = Writer {
                database: &self.name,
                records: txn.open_table(RECORDS)?,
                selector: Selector::new(&fields),
                values: vec![zs_expr::Value::Null; fields.len()],
                indexes,
                pending: Pending::default(),
                next_id: meta.get(NEXT_ID)?.map_or(1, |next| next.value()),
            };
            let result = body(&mut writer)?;
            writer.pending.flush(&mut writer.indexes)?;
            meta.insert(NEXT_ID, writer.next_id)?;
            result
        };
        txn.commit()?;
        Ok(result)
    }

    /// Adds an index on `field` (a top-level or dotted field name) and fills it from the
    /// records held; nothing happens if it exists.
    pub fn create_index(&self, field: &str) -> Result<(), DbError> {
        if field.is_empty() || field.len() > MAX_FIELD_LEN {
            return Err(DbError::BadField(field.to_owned()));
        }
        let mut indexes = self
            .indexes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if indexes.iter().any(|known| known == field) {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let records = txn.open_table(RECORDS)?;
            let name = index_name(field);
            let mut index = [txn.open_table(index::table(&name))?];
            let selector = Selector::new(&[field]);
            let mut value = [zs_expr::Value::Null];
            let mut pending = Pending::default();
            for (n, entry) in records.iter()?.enumerate() {
                let (id, stored) = entry?;
                read_fields(stored.value(), &selector, &mut value, false)?;
                pending.add(0, index::hash(&value[0]), id.value());
                // Bounded memory on a large database.
                if n % 65_536 == 65_535 {
                    pending.flush(&mut index)?;
                }
            }
            pending.flush(&mut index)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(name.as_str(), 1)?;
        }
        txn.commit()?;
        indexes.push(field.to_owned());
        Ok(())
    }

    /// Ids of the records whose `field` equals `value`, in id order, through its index; `None`
    /// when `field` has no index.
    pub fn lookup(&self, field: &str, value: &zs_expr::Value) -> Result<Option<Vec<u64>>, DbError> {
        let Some(candidates) = self.candidates(field, value)? else {
            return Ok(None);
        };
        // The index holds hashes: drop the rare record whose value only shares the hash.
        let key = index_key(value);
        let selector = Selector::new(&[field]);
        let mut found = [zs_expr::Value::Null];
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let mut ids = Vec::with_capacity(candidates.len());
        for id in candidates {
            if let Some(stored) = records.get(id)? {
                read_fields(stored.value(), &selector, &mut found, false)?;
                if index_key(&found[0]) == key {
                    ids.push(id);
                }
            }
        }
        Ok(Some(ids))
    }

    /// Ids of the records whose `field` may equal `value` (its hash matches), in id order;
    /// `None` when `field` has no index. A scan's filter checks each record it reads anyway.
    pub(crate) fn candidates(
        &self,
        field: &str,
        value: &zs_expr::Value,
    ) -> Result<Option<Vec<u64>>, DbError> {
        if !self.indexes().iter().any(|known| known == field) {
            return Ok(None);
        }
        let txn = self.db.begin_read()?;
        let name = index_name(field);
        let index = txn.open_table(index::table(&name))?;
        Ok(Some(index::ids(&index, index::hash(value))?))
    }

    /// Rewrites the file without its free space. Ids do not change. Needs no other
    /// transaction to be running, so it waits for none: it fails instead while queries run.
    pub fn compact(&mut self) -> Result<bool, DbError> {
        Ok(self.db.compact()?)
    }

    /// Writes a consistent copy of the database (one read transaction's view) to `path`,
    /// while writers go on: the backup of a served database.
    pub fn backup_to(&self, path: &Path) -> Result<u64, DbError> {
        let copy = redb::Database::create(path)?;
        let source = self.db.begin_read()?;
        let target = copy.begin_write()?;
        let mut count = 0;
        {
            let records = source.open_table(RECORDS)?;
            let mut out = target.open_table(RECORDS)?;
            for entry in records.iter()? {
                let (id, stored) = entry?;
                out.insert(id.value(), stored.value())?;
                count += 1;
            }
            let meta = source.open_table(META)?;
            let mut out_meta = target.open_table(META)?;
            for entry in meta.iter()? {
                let (key, value) = entry?;
                out_meta.insert(key.value(), value.value())?;
            }
            for field in self.indexes() {
                let name = index_name(&field);
                let index = source.open_table(index::table(&name))?;
                let mut out_index = target.open_table(index::table(&name))?;
                for entry in index.iter()? {
                    let (key, posting) = entry?;
                    out_index.insert(key.value(), posting.value())?;
                }
            }
        }
        target.commit()?;
        Ok(count)
    }
}

/// A batch's open tables.
struct Writer<'t, 'f> {
    database: &'f str,
    records: redb::Table<'t, u64, &'static [u8]>,
    /// The indexed fields compiled for reading stored records, and a buffer for their values.
    selector: Selector,
    values: Vec<zs_expr::Value>,
    indexes: Vec<redb::Table<'t, u128, &'static [u8]>>,
    /// Index entries of the records this batch added, written when it ends.
    pending: Pending,
    next_id: u64,
}

impl Writer<'_, '_> {
    /// One change, keeping the indexes in step. Returns the id touched (none for a delete
    /// of a missing id).
    fn apply(&mut self, op: Encoded) -> Result<Option<u64>, DbError> {
        let (id, new) = match op {
            // Encoded here, so not checked again.
            Encoded::Insert(stored) => return self.insert_stored(&stored, false).map(Some),
            Encoded::Modify(id, stored) => (id, Some(stored)),
            Encoded::Delete(id) => (id, None),
        };
        // The record may be one this batch added: its index entries go in first.
        if !self.pending.is_empty() {
            self.pending.flush(&mut self.indexes)?;
        }
        let old = match &new {
            Some(stored) => self.records.insert(id, stored.as_slice())?,
            None => self.records.remove(id)?,
        };
        let Some(old) = old else {
            return match new {
                Some(_) => Err(DbError::NoSuchRecord {
                    database: self.database.to_owned(),
                    id,
                }),
                None => Ok(None),
            };
        };
        read_fields(old.value(), &self.selector, &mut self.values, false)?;
        drop(old);
        for (value, index) in self.values.iter().zip(&mut self.indexes) {
            index::remove(index, index::hash(value), id)?;
        }
        if let Some(stored) = &new {
            read_fields(stored, &self.selector, &mut self.values, false)?;
            for (value, index) in self.values.iter().zip(&mut self.indexes) {
                index::insert_one(index, index::hash(value), id)?;
            }
        }
        Ok(Some(id))
    }

    /// Adds a record given in its stored form under the next id; with `check`, checked as
    /// [`Record::validate`] does (with indexes, by the parse that reads the indexed fields).
    fn insert_stored(&mut self, stored: &[u8], check: bool) -> Result<u64, DbError> {
        let id = self.next_id;
        if self.indexes.is_empty() {
            if check {
                Record::validate(stored)?;
            }
        } else {
            read_fields(stored, &self.selector, &mut self.values, check)?;
            for (slot, value) in self.values.iter().enumerate() {
                self.pending.add(slot, index::hash(value), id);
            }
        }
        self.records.insert(id, stored)?;
        self.next_id += 1;
        Ok(id)
    }
}

/// The name of `field`'s index table (prefixed, so no field name can clash with `records`
/// or `meta`).
fn index_name(field: &str) -> String {
    format!("{INDEX_PREFIX}{field}")
}
