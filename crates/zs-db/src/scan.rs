//! The parallel scan under queries and aggregations.
//!
//! The id space is cut into chunks of [`CHUNK`] ids (or the index's candidate ids into
//! chunks); a window of chunks — twice the worker threads — is scanned in parallel on rayon's
//! pool, each chunk decoding its records and applying the filter, then the window's results
//! are handed on in order. Between windows the scan checks whether it was stopped, paused or
//! ran out of time, so a pause takes effect within one window. Everything runs on the caller's
//! thread and rayon's workers, never on an async runtime's threads.

use std::cell::OnceCell;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use redb::{ReadableDatabase, ReadableTable};
use zs_expr::ast::{BinOp, Expr, ExprKind};
use zs_expr::{Functions, Predicate, Program, Value};

use crate::database::RECORDS;
use crate::lazy::{LazyFields, PREDICATE_SLOTS, test_object};
use crate::object::Selector;
use crate::{Database, DbError, Record};

/// Ids per chunk: one parallel work item.
pub(crate) const CHUNK: u64 = 4096;

/// A compiled filter and, when it allows, the index lookup that narrows the scan.
pub(crate) struct Plan {
    /// The program and the fields it reads.
    filter: Option<(Program, Selector)>,
    /// The program as a predicate, when it is one and reads only top-level fields.
    predicate: Option<Predicate>,
    /// Ids from an index, when the filter requires `field = literal` on an indexed field.
    candidates: Option<Vec<u64>>,
}

impl Plan {
    /// Compiles `filter` with `functions` and looks for an index to use in `database`.
    pub(crate) fn new(
        database: &Database,
        filter: Option<&str>,
        functions: &Functions,
    ) -> Result<Self, DbError> {
        let Some(source) = filter.filter(|source| !source.trim().is_empty()) else {
            return Ok(Self {
                filter: None,
                predicate: None,
                candidates: None,
            });
        };
        let expr = zs_expr::parse(source)?;
        let program = Program::from_expr(&expr, functions)?;
        let selector = Selector::new(program.variables());
        let predicate = Predicate::of(&program)
            .filter(|_| selector.is_flat() && selector.len() <= PREDICATE_SLOTS);
        let mut candidates = None;
        let indexes = database.indexes();
        for (field, value) in equalities(&expr) {
            if indexes.iter().any(|known| known == field) {
                candidates = database.candidates(field, value)?;
                break;
            }
        }
        Ok(Self {
            filter: Some((program, selector)),
            predicate,
            candidates,
        })
    }

    /// Whether the scan goes through an index.
    pub(crate) fn uses_index(&self) -> bool {
        self.candidates.is_some()
    }

    /// Whether the stored record `stored` passes the filter; only the fields the filter
    /// reads are read, as it reads them, into `cells` (kept across records).
    fn matches(
        &self,
        id: u64,
        stored: &[u8],
        cells: &mut Vec<OnceCell<Value>>,
    ) -> Result<bool, DbError> {
        let Some((program, selector)) = &self.filter else {
            return Ok(true);
        };
        if let Some(passes) = self
            .predicate
            .as_ref()
            .and_then(|predicate| test_object(stored, selector, predicate))
        {
            return Ok(passes);
        }
        cells.resize(selector.len(), OnceCell::new());
        cells.iter_mut().for_each(|cell| drop(cell.take()));
        let bindings = LazyFields::new(stored, selector, cells)?;
        let matched = program.matches(&bindings);
        if let Some(error) = bindings.into_error() {
            return Err(error);
        }
        matched.map_err(|error| DbError::Eval { id, error })
    }
}

/// `field = literal` terms that must all hold (the conjuncts of `and` / `&&`).
fn equalities(expr: &Expr) -> Vec<(&str, &Value)> {
    let mut found = Vec::new();
    let mut pending = vec![expr];
    while let Some(node) = pending.pop() {
        if let ExprKind::Binary(op, left, right) = &node.kind {
            match (op, &left.kind, &right.kind) {
                (BinOp::And | BinOp::LogAnd, _, _) => {
                    pending.push(left);
                    pending.push(right);
                }
                (BinOp::Eq, ExprKind::Var(field), ExprKind::Literal(value))
                | (BinOp::Eq, ExprKind::Literal(value), ExprKind::Var(field)) => {
                    found.push((field.as_str(), value));
                }
                _ => {}
            }
        }
    }
    found
}

/// Stop, pause and progress of one running scan, shared with whoever controls it.
#[derive(Default)]
pub(crate) struct Control {
    stopped: AtomicBool,
    paused: Mutex<bool>,
    resumed: Condvar,
    pub(crate) scanned: AtomicU64,
    pub(crate) matched: AtomicU64,
}

impl Control {
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.set_paused(false);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        *self
            .paused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = paused;
        self.resumed.notify_all();
    }

    pub(crate) fn is_paused(&self) -> bool {
        *self
            .paused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Blocks while paused (and not stopped).
    fn wait_while_paused(&self) {
        let mut paused = self
            .paused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while *paused && !self.is_stopped() {
            paused = self
                .resumed
                .wait(paused)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Every record was seen, or the consumer had enough.
    Complete,
    /// Stopped from outside.
    Stopped,
    /// The time budget ran out.
    OutOfTime,
}

/// A record the scan found: as stored (for whoever forwards it as it is), or decoded (in
/// the scan's parallel chunks, for whoever wants records).
pub(crate) struct Found {
    pub(crate) id: u64,
    form: Form,
}

enum Form {
    Stored(Vec<u8>),
    Decoded(Record),
}

impl Found {
    /// Keeps a copy of a record the scan borrowed: a query's fold when its results are
    /// forwarded in their stored form.
    pub(crate) fn keep(found: &mut Vec<Found>, id: u64, stored: &[u8]) -> Result<(), DbError> {
        found.push(Found {
            id,
            form: Form::Stored(stored.to_vec()),
        });
        Ok(())
    }

    /// Decodes a record the scan borrowed: a query's fold when its results are records.
    pub(crate) fn decode(found: &mut Vec<Found>, id: u64, stored: &[u8]) -> Result<(), DbError> {
        found.push(Found {
            id,
            form: Form::Decoded(Record::decode(stored)?),
        });
        Ok(())
    }

    /// The record, decoded.
    pub(crate) fn into_record(self) -> Result<(u64, Record), DbError> {
        Ok(match self.form {
            Form::Stored(stored) => (self.id, Record::decode(&stored)?),
            Form::Decoded(record) => (self.id, record),
        })
    }

    /// The record in its stored form.
    pub(crate) fn into_stored(self) -> Result<(u64, Vec<u8>), DbError> {
        Ok(match self.form {
            Form::Stored(stored) => (self.id, stored),
            Form::Decoded(record) => (self.id, record.encode()?),
        })
    }
}

/// Scans `database` in id order (or reverse), filtering with `plan`. Each chunk, in
/// parallel, folds its matches — borrowed from the store, in scan order — into a value that
/// `start` makes; `per_window` gets a window's values in order and may end the scan.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<A: Send>(
    database: &Database,
    plan: &Plan,
    reverse: bool,
    deadline: Option<Instant>,
    control: &Control,
    start: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, u64, &[u8]) -> Result<(), DbError> + Sync,
    mut per_window: impl FnMut(Vec<A>) -> ControlFlow<()>,
) -> Result<Ended, DbError> {
    let txn = database.db.begin_read()?;
    let table = txn.open_table(RECORDS)?;
    let chunks: Vec<Chunk> = match &plan.candidates {
        Some(ids) => {
            let mut ids = ids.clone();
            if reverse {
                ids.reverse();
            }
            ids.chunks(CHUNK as usize)
                .map(|ids| Chunk::Ids(ids.to_vec()))
                .collect()
        }
        None => {
            let (Some(first), Some(last)) = (table.first()?, table.last()?) else {
                return Ok(Ended::Complete);
            };
            let (first, last) = (first.0.value(), last.0.value());
            let mut chunks: Vec<Chunk> = (first / CHUNK..=last / CHUNK)
                .map(|n| Chunk::Range(n * CHUNK, n * CHUNK + CHUNK))
                .collect();
            if reverse {
                chunks.reverse();
            }
            chunks
        }
    };
    let window = rayon::current_num_threads().max(1) * 2;
    for group in chunks.chunks(window) {
        control.wait_while_paused();
        if control.is_stopped() {
            return Ok(Ended::Stopped);
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(Ended::OutOfTime);
        }
        let results: Vec<Result<A, DbError>> = group
            .par_iter()
            .map(|chunk| {
                let mut folded = start();
                scan_chunk(&table, chunk, reverse, plan, control, |id, stored| {
                    add(&mut folded, id, stored)
                })?;
                Ok(folded)
            })
            .collect();
        let results = results.into_iter().collect::<Result<Vec<A>, DbError>>()?;
        if per_window(results).is_break() {
            return Ok(Ended::Complete);
        }
    }
    Ok(Ended::Complete)
}

enum Chunk {
    /// Ids `start..end`.
    Range(u64, u64),
    /// These ids (from an index), in scan order.
    Ids(Vec<u64>),
}

fn scan_chunk(
    table: &redb::ReadOnlyTable<u64, &[u8]>,
    chunk: &Chunk,
    reverse: bool,
    plan: &Plan,
    control: &Control,
    mut add: impl FnMut(u64, &[u8]) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let (mut scanned, mut matched) = (0, 0);
    let mut bindings = Vec::new();
    // Records are not decoded here: the filter reads only the fields it names, and the
    // consumer reads what it needs (or, over the network, sends the stored form as it is).
    let mut visit = |id: u64, stored: &[u8]| -> Result<(), DbError> {
        scanned += 1;
        if !plan.matches(id, stored, &mut bindings)? {
            return Ok(());
        }
        matched += 1;
        add(id, stored)
    };
    match chunk {
        Chunk::Range(start, end) => {
            let range = table.range(*start..*end)?;
            if reverse {
                for entry in range.rev() {
                    let (id, stored) = entry?;
                    visit(id.value(), stored.value())?;
                }
            } else {
                for entry in range {
                    let (id, stored) = entry?;
                    visit(id.value(), stored.value())?;
                }
            }
        }
        Chunk::Ids(ids) => {
            for &id in ids {
                if let Some(stored) = table.get(id)? {
                    visit(id, stored.value())?;
                }
            }
        }
    }
    control.scanned.fetch_add(scanned, Ordering::Relaxed);
    control.matched.fetch_add(matched, Ordering::Relaxed);
    Ok(())
}
