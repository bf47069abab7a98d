//! Queries: a filter over a database's records, run in parallel, results streamed in
//! fragments with back-pressure; running queries can be listed, paused, resumed and stopped.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::scan::{self, Control, Ended, Found, Plan};
use crate::{Database, DbError, Record};

/// Records per fragment unless the query says otherwise.
pub const DEFAULT_FRAGMENT: usize = 256;
/// Fragments a query may have ready before its scan waits for the consumer.
const FRAGMENTS_AHEAD: usize = 4;

/// What to look for (the original's `TZDBPipeline` settings: the filter, order, limit and
/// time budget of a query).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Query {
    /// A ZExpression over the record's fields (`age >= 18 and city = 'Oslo'`); none matches
    /// every record.
    pub filter: Option<String>,
    /// Newest (highest id) first.
    pub reverse: bool,
    /// At most this many results.
    pub limit: Option<u64>,
    /// Stop after this long, with the results found so far.
    pub time_budget: Option<Duration>,
    /// Records per fragment (default [`DEFAULT_FRAGMENT`]).
    pub fragment: Option<usize>,
}

impl Query {
    /// Every record, in id order.
    pub fn all() -> Self {
        Self::default()
    }

    /// Records matching `filter`.
    pub fn filter(filter: impl Into<String>) -> Self {
        Self {
            filter: Some(filter.into()),
            ..Self::default()
        }
    }

    /// Newest first.
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    /// At most `limit` results.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Stops after `budget`.
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }

    /// Records per fragment.
    pub fn fragment(mut self, records: usize) -> Self {
        self.fragment = Some(records.max(1));
        self
    }
}

/// Whether a query is running, paused or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    /// Scanning.
    Running,
    /// Paused by [`QueryRun::pause`] or [`Store::pause_query`](crate::Store::pause_query).
    Paused,
}

/// A running query as listed by [`Store::queries`](crate::Store::queries).
#[derive(Debug, Clone)]
pub struct QueryInfo {
    /// Its id.
    pub id: u64,
    /// The database it scans.
    pub database: String,
    /// Its filter.
    pub filter: Option<String>,
    /// Records looked at so far.
    pub scanned: u64,
    /// Records matched so far.
    pub matched: u64,
    /// Running or paused.
    pub state: QueryState,
    /// Time since it started.
    pub elapsed: Duration,
}

/// How a finished query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryEnd {
    /// Every record was looked at, or the limit was reached.
    Complete,
    /// Stopped before that.
    Stopped,
    /// The time budget ran out first.
    OutOfTime,
}

/// What the scan thread hands the reader: found records (decoded or not), or the end.
pub(crate) enum Batch {
    Found(Vec<Found>),
    End(QueryEnd),
}

/// One fragment of results in the records' stored form ([`Record::encode`]), as the network
/// service sends them without decoding; see [`QueryRun::next_stored`].
#[derive(Debug)]
pub enum StoredFragment {
    /// Matching records' ids and stored forms, in query order.
    Records(Vec<(u64, Vec<u8>)>),
    /// The query is over; nothing follows.
    End(QueryEnd),
}

/// One fragment of results, or the end.
#[derive(Debug)]
pub enum Fragment {
    /// Matching records with their ids, in query order.
    Records(Vec<(u64, Record)>),
    /// The query is over; nothing follows.
    End(QueryEnd),
}

pub(crate) struct Entry {
    pub(crate) database: String,
    pub(crate) filter: Option<String>,
    pub(crate) control: Arc<Control>,
    pub(crate) started: Instant,
}

/// The running queries of a store.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: Mutex<u64>,
    pub(crate) running: Mutex<std::collections::HashMap<u64, Entry>>,
    /// Records scanned by queries that ended (running ones are summed at read time).
    scanned_ended: std::sync::atomic::AtomicU64,
}

/// What a store's queries did ([`Store::query_metrics`](crate::Store::query_metrics)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueryMetrics {
    /// Queries started.
    pub started: u64,
    /// Queries running now.
    pub running: u64,
    /// Records scanned, all queries.
    pub scanned: u64,
}

impl Registry {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Entry>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add(&self, entry: Entry) -> u64 {
        let mut next = self
            .next_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *next += 1;
        let id = *next;
        drop(next);
        self.lock().insert(id, entry);
        id
    }

    pub(crate) fn control(&self, id: u64) -> Result<Arc<Control>, DbError> {
        self.lock()
            .get(&id)
            .map(|entry| entry.control.clone())
            .ok_or(DbError::NoSuchQuery(id))
    }

    pub(crate) fn metrics(&self) -> QueryMetrics {
        let running = self.lock();
        let live: u64 = running
            .values()
            .map(|entry| entry.control.scanned.load(Ordering::Relaxed))
            .sum();
        QueryMetrics {
            started: *self
                .next_id
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            running: running.len() as u64,
            scanned: self.scanned_ended.load(Ordering::Relaxed) + live,
        }
    }

    pub(crate) fn list(&self) -> Vec<QueryInfo> {
        let mut list: Vec<QueryInfo> = self
            .lock()
            .iter()
            .map(|(&id, entry)| QueryInfo {
                id,
                database: entry.database.clone(),
                filter: entry.filter.clone(),
                scanned: entry.control.scanned.load(Ordering::Relaxed),
                matched: entry.control.matched.load(Ordering::Relaxed),
                state: if entry.control.is_paused() {
                    QueryState::Paused
                } else {
                    QueryState::Running
                },
                elapsed: entry.started.elapsed(),
            })
            .collect();
        list.sort_by_key(|info| info.id);
        list
    }
}

/// A running query: iterate it for its fragments (blocking; the scan waits while
/// four fragments are unread). Dropping it stops the scan.
pub struct QueryRun {
    id: u64,
    uses_index: bool,
    fragments: Receiver<Result<Batch, DbError>>,
    control: Arc<Control>,
    done: bool,
}

impl std::fmt::Debug for QueryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRun")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl QueryRun {
    /// Starts `query` on `database`, compiled with `functions`, on a thread of its own;
    /// with `decode`, matches are decoded by the scan, in parallel.
    pub(crate) fn start(
        registry: Arc<Registry>,
        database: Arc<Database>,
        query: Query,
        functions: &zs_expr::Functions,
        decode: bool,
    ) -> Result<Self, DbError> {
        let plan = Plan::new(&database, query.filter.as_deref(), functions)?;
        let uses_index = plan.uses_index();
        let control = Arc::new(Control::default());
        let id = registry.add(Entry {
            database: database.name().to_owned(),
            filter: query.filter.clone(),
            control: control.clone(),
            started: Instant::now(),
        });
        let (sender, fragments) = sync_channel(FRAGMENTS_AHEAD);
        let scan_control = control.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("zdb-query-{id}"))
            .spawn(move || {
                let result = produce(&database, &plan, &query, decode, &scan_control, &sender);
                let _ = sender.send(result.map(Batch::End));
                let mut running = registry.lock();
                // Moved to the ended total under the lock `metrics` reads under: counted once.
                if let Some(entry) = running.remove(&id) {
                    registry.scanned_ended.fetch_add(
                        entry.control.scanned.load(Ordering::Relaxed),
                        Ordering::Relaxed,
                    );
                }
            });
        if let Err(error) = spawned {
            return Err(DbError::io("cannot start a query thread")(error));
        }
        Ok(Self {
            id,
            uses_index,
            fragments,
            control,
            done: false,
        })
    }

    /// The query's id (for [`Store::queries`](crate::Store::queries) and the controls).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the scan goes through an index (the filter requires `field = literal` on an
    /// indexed field) instead of over every record.
    pub fn uses_index(&self) -> bool {
        self.uses_index
    }

    /// Pauses the scan after the current window.
    pub fn pause(&self) {
        self.control.set_paused(true);
    }

    /// Resumes a paused scan.
    pub fn resume(&self) {
        self.control.set_paused(false);
    }

    /// Stops the scan; the fragments already found can still be read, then the end.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Records looked at and matched so far.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.control.scanned.load(Ordering::Relaxed),
            self.control.matched.load(Ordering::Relaxed),
        )
    }

    /// Reads every remaining fragment: the records and how the query ended.
    pub fn collect_all(self) -> Result<(Vec<(u64, Record)>, QueryEnd), DbError> {
        let mut records = Vec::new();
        for fragment in self {
            match fragment? {
                Fragment::Records(found) => records.extend(found),
                Fragment::End(end) => return Ok((records, end)),
            }
        }
        Err(DbError::Storage(
            "the query ended without an end mark".to_owned(),
        ))
    }
}

impl QueryRun {
    fn next_batch(&mut self) -> Option<Result<Batch, DbError>> {
        if self.done {
            return None;
        }
        let item = self.fragments.recv().ok()?;
        if matches!(item, Ok(Batch::End(_)) | Err(_)) {
            self.done = true;
        }
        Some(item)
    }

    /// The next fragment with the records in their stored form (what a server forwards as
    /// it is; not decoded at all when the run came from
    /// [`Store::query_stored`](crate::Store::query_stored)); `None` after the end. Blocks
    /// like the iterator.
    pub fn next_stored(&mut self) -> Option<Result<StoredFragment, DbError>> {
        Some(self.next_batch()?.and_then(|batch| {
            match batch {
                Batch::Found(found) => found
                    .into_iter()
                    .map(Found::into_stored)
                    .collect::<Result<Vec<_>, DbError>>()
                    .map(StoredFragment::Records),
                Batch::End(end) => Ok(StoredFragment::End(end)),
            }
        }))
    }
}

impl Iterator for QueryRun {
    type Item = Result<Fragment, DbError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_batch()?.and_then(|batch| {
            match batch {
                Batch::Found(found) => found
                    .into_iter()
                    .map(Found::into_record)
                    .collect::<Result<Vec<_>, DbError>>()
                    .map(Fragment::Records),
                Batch::End(end) => Ok(Fragment::End(end)),
            }
        }))
    }
}

impl Drop for QueryRun {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// The scan thread's work: windows of matches, cut to the limit, sent in fragments.
fn produce(
    database: &Database,
    plan: &Plan,
    query: &Query,
    decode: bool,
    control: &Control,
    sender: &SyncSender<Result<Batch, DbError>>,
) -> Result<QueryEnd, DbError> {
    let fragment = query.fragment.unwrap_or(DEFAULT_FRAGMENT).max(1);
    let deadline = query.time_budget.map(|budget| Instant::now() + budget);
    let mut remaining = query.limit.unwrap_or(u64::MAX);
    if remaining == 0 {
        return Ok(QueryEnd::Complete);
    }
    let mut pending: Vec<Found> = Vec::with_capacity(fragment);
    let mut consumer_gone = false;
    let ended = scan::run(
        database,
        plan,
        query.reverse,
        deadline,
        control,
        Vec::new,
        if decode { Found::decode } else { Found::keep },
        |window| {
            for found in window.into_iter().flatten() {
                pending.push(found);
                remaining -= 1;
                if pending.len() == fragment {
                    let full = std::mem::replace(&mut pending, Vec::with_capacity(fragment));
                    if sender.send(Ok(Batch::Found(full))).is_err() {
                        consumer_gone = true;
                        return ControlFlow::Break(());
                    }
                }
                if remaining == 0 {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    if !pending.is_empty() && !consumer_gone {
        let _ = sender.send(Ok(Batch::Found(pending)));
    }
    Ok(match ended {
        Ended::Complete => QueryEnd::Complete,
        Ended::Stopped => QueryEnd::Stopped,
        Ended::OutOfTime => QueryEnd::OutOfTime,
    })
}
