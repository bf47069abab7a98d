//! [`DistributedDb`]: one ZDB database split across the nodes of a cluster by record id;
//! queries fan out to every part and their results merge as one stream.
//!
//! Part `p` of `n` holds the records whose id `i` has `i % n == p`, stored there under the
//! local id `i / n`: a record's id names its part, ids from different parts never collide,
//! and merging parts by id keeps the order a single database gives.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::{join_all, try_join_all};
use zs_db::service::{DbClient, DbClientError, RemoteQuery};
use zs_db::{Aggregate, Group, Query, Record};

/// A database split across `parts`: connections to servers running `DbService`, in a fixed
/// order (part `p` is `parts[p]`; reorder them and ids point elsewhere).
#[derive(Debug, Clone)]
pub struct DistributedDb {
    parts: Vec<Arc<zs::Client>>,
    next_part: Arc<AtomicUsize>,
}

/// Why a distributed operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistributedError {
    /// A part failed.
    #[error("part {part}: {error}")]
    Part {
        /// Which.
        part: usize,
        /// Its error.
        #[source]
        error: DbClientError,
    },
    /// An id beyond what the split can express.
    #[error("record id out of range")]
    IdRange,
}

fn at(part: usize) -> impl Fn(DbClientError) -> DistributedError {
    move |error| DistributedError::Part { part, error }
}

impl DistributedDb {
    /// The database split across `parts` (at least one).
    pub fn new(parts: Vec<Arc<zs::Client>>) -> Self {
        assert!(!parts.is_empty(), "a distributed database needs a part");
        Self {
            parts,
            next_part: Arc::default(),
        }
    }

    /// How many parts.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    fn client(&self, part: usize) -> DbClient<'_> {
        DbClient::new(self.parts[part].peer())
    }

    fn global(&self, part: usize, local: u64) -> Result<u64, DistributedError> {
        local
            .checked_mul(self.parts.len() as u64)
            .and_then(|id| id.checked_add(part as u64))
            .ok_or(DistributedError::IdRange)
    }

    fn split(&self, id: u64) -> (usize, u64) {
        let n = self.parts.len() as u64;
        ((id % n) as usize, id / n)
    }

    /// Creates database `name` on every part.
    pub async fn create(&self, name: &str) -> Result<(), DistributedError> {
        try_join_all(
            (0..self.parts.len())
                .map(|part| async move { self.client(part).create(name).await.map_err(at(part)) }),
        )
        .await
        .map(drop)
    }

    /// Indexes `field` of database `name` on every part.
    pub async fn create_index(&self, name: &str, field: &str) -> Result<(), DistributedError> {
        try_join_all((0..self.parts.len()).map(|part| async move {
            self.client(part)
                .create_index(name, field)
                .await
                .map_err(at(part))
        }))
        .await
        .map(drop)
    }

    /// Stores `record` in the next part (round robin); its id.
    pub async fn insert(&self, name: &str, record: Record) -> Result<u64, DistributedError> {
        let part = self.next_part.fetch_add(1, Ordering::Relaxed) % self.parts.len();
        let local = self
            .client(part)
            .insert(name, record)
            .await
            .map_err(at(part))?;
        self.global(part, local)
    }

    /// Stores `records` spread evenly over the parts, each part's share in one fast batch
    /// post, all parts at once; the ids given, in no particular order.
    pub async fn post(
        &self,
        name: &str,
        records: Vec<Record>,
    ) -> Result<Vec<u64>, DistributedError> {
        let n = self.parts.len();
        let mut shares: Vec<Vec<Record>> = (0..n).map(|_| Vec::new()).collect();
        for (index, record) in records.into_iter().enumerate() {
            shares[index % n].push(record);
        }
        let ranges = try_join_all(
            shares
                .into_iter()
                .enumerate()
                .map(|(part, share)| async move {
                    if share.is_empty() {
                        return Ok((part, 0..0));
                    }
                    let ids = self
                        .client(part)
                        .post(name, share)
                        .await
                        .map_err(at(part))?;
                    Ok((part, ids))
                }),
        )
        .await?;
        let mut ids = Vec::new();
        for (part, range) in ranges {
            for local in range {
                ids.push(self.global(part, local)?);
            }
        }
        Ok(ids)
    }

    /// The record with `id`.
    pub async fn get(&self, name: &str, id: u64) -> Result<Option<Record>, DistributedError> {
        let (part, local) = self.split(id);
        self.client(part).get(name, local).await.map_err(at(part))
    }

    /// Deletes the record with `id`; whether it was there.
    pub async fn delete(&self, name: &str, id: u64) -> Result<bool, DistributedError> {
        let (part, local) = self.split(id);
        self.client(part)
            .delete(name, local)
            .await
            .map_err(at(part))
    }

    /// Starts `query` on every part; read the merged results, in id order (reversed with
    /// `reverse`) and cut at the query's limit, with [`DistributedQuery::next`].
    pub async fn query(
        &self,
        name: &str,
        query: &Query,
    ) -> Result<DistributedQuery<'_>, DistributedError> {
        let started = try_join_all((0..self.parts.len()).map(|part| async move {
            self.client(part)
                .query(name, query)
                .await
                .map(|remote| Stream {
                    remote,
                    buffered: VecDeque::new(),
                    done: false,
                })
                .map_err(at(part))
        }))
        .await?;
        Ok(DistributedQuery {
            db: self,
            streams: started,
            reverse: query.reverse,
            left: query.limit,
            fragment: query.fragment.unwrap_or(1000).max(1),
        })
    }

    /// Aggregates over every part and merges the groups (counts and sums add up, minimum
    /// and maximum of the parts', the average from the merged sum and count), by key.
    pub async fn aggregate(
        &self,
        name: &str,
        aggregate: &Aggregate,
    ) -> Result<Vec<Group>, DistributedError> {
        let per_part = try_join_all((0..self.parts.len()).map(|part| async move {
            self.client(part)
                .aggregate(name, aggregate)
                .await
                .map_err(at(part))
        }))
        .await?;
        let mut merged: BTreeMap<String, Group> = BTreeMap::new();
        for group in per_part.into_iter().flatten() {
            let key = group.key.to_string();
            match merged.get_mut(&key) {
                None => {
                    merged.insert(key, group);
                }
                Some(into) => {
                    into.count += group.count;
                    into.values += group.values;
                    into.sum += group.sum;
                    into.min = match (into.min, group.min) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    into.max = match (into.max, group.max) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
        }
        Ok(merged
            .into_values()
            .map(|mut group| {
                #[allow(clippy::cast_precision_loss)]
                let values = group.values as f64;
                group.average = (group.values > 0).then(|| group.sum / values);
                group
            })
            .collect())
    }
}

struct Stream<'a> {
    remote: RemoteQuery<'a>,
    /// Fetched and not yet merged, with global ids.
    buffered: VecDeque<(u64, Record)>,
    done: bool,
}

/// The merged results of a query over every part ([`DistributedDb::query`]).
pub struct DistributedQuery<'a> {
    db: &'a DistributedDb,
    streams: Vec<Stream<'a>>,
    reverse: bool,
    left: Option<u64>,
    fragment: usize,
}

impl std::fmt::Debug for DistributedQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedQuery")
            .field("parts", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl DistributedQuery<'_> {
    /// The next merged fragment (up to the query's fragment size); `None` when every part
    /// is done or the limit is reached. A record leaves only once every part that may still
    /// hold an earlier one has shown its next, so the order is exact.
    pub async fn next(&mut self) -> Result<Option<Vec<(u64, Record)>>, DistributedError> {
        let mut out = Vec::new();
        while out.len() < self.fragment && self.left != Some(0) {
            self.refill().await?;
            let heads = self
                .streams
                .iter()
                .enumerate()
                .filter_map(|(part, stream)| Some((part, stream.buffered.front()?.0)));
            let chosen = if self.reverse {
                heads.max_by_key(|(_, id)| *id)
            } else {
                heads.min_by_key(|(_, id)| *id)
            };
            let Some((part, _)) = chosen else { break };
            if let Some(record) = self.streams[part].buffered.pop_front() {
                out.push(record);
                if let Some(left) = &mut self.left {
                    *left -= 1;
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// Reads every remaining result.
    pub async fn collect_all(&mut self) -> Result<Vec<(u64, Record)>, DistributedError> {
        let mut all = Vec::new();
        while let Some(records) = self.next().await? {
            all.extend(records);
        }
        Ok(all)
    }

    /// Fetches until every part not done has a record buffered (a part may send an empty
    /// fragment), each round fetching from the dry parts at once.
    async fn refill(&mut self) -> Result<(), DistributedError> {
        while self
            .streams
            .iter()
            .any(|stream| stream.buffered.is_empty() && !stream.done)
        {
            self.fetch_dry().await?;
        }
        Ok(())
    }

    async fn fetch_dry(&mut self) -> Result<(), DistributedError> {
        let db = self.db;
        let fetches = self
            .streams
            .iter_mut()
            .enumerate()
            .filter(|(_, stream)| stream.buffered.is_empty() && !stream.done)
            .map(|(part, stream)| async move {
                let fetched = stream.remote.next().await.map_err(at(part))?;
                match fetched {
                    None => stream.done = true,
                    Some(records) => {
                        for (local, record) in records {
                            stream.buffered.push_back((db.global(part, local)?, record));
                        }
                    }
                }
                Ok::<(), DistributedError>(())
            });
        for result in join_all(fetches).await {
            result?;
        }
        Ok(())
    }
}
