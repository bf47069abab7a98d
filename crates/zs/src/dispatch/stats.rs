//! Per-command statistics, kept with lock-free counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use zs_wire::status::StatusCode;

use crate::metrics::{Histogram, LatencyHistogram};

/// Error slots per command: the table's codes 1..=16 by value, 0 for any other (application
/// codes, codes from a newer peer) — bounded, as metric labels must be.
const ERROR_SLOTS: usize = 17;

/// Most shards per command. Every worker thread bumps a command's counters on every call; in
/// one place they would bounce a cache line between cores on each, so each thread counts in
/// a shard of its own (as far as there are shards) and a snapshot adds them up. One per core,
/// up to this many: a shard is a few hundred bytes.
const MAX_SHARDS: usize = 8;

fn shard_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(2, usize::from)
            .clamp(1, MAX_SHARDS)
    })
}

/// The shard this thread counts in: threads take them in turn.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % shard_count();
    }
    INDEX.with(|index| *index)
}

/// One thread's share of a command's counters, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    max_nanos: AtomicU64,
    latency: LatencyHistogram,
    errors_by_code: [AtomicU64; ERROR_SLOTS],
}

/// Counters of one command, updated by every handler run.
#[derive(Debug)]
pub(crate) struct CommandCounters {
    shards: Box<[Shard]>,
}

impl Default for CommandCounters {
    fn default() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
        }
    }
}

impl CommandCounters {
    pub(crate) fn record(
        &self,
        bytes_in: usize,
        bytes_out: usize,
        elapsed: Duration,
        error: Option<StatusCode>,
    ) {
        // Every command has `shard_count()` shards; `get` only to stay panic-free.
        let Some(shard) = self.shards.get(shard_index()) else {
            return;
        };
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if let Some(code) = error {
            let slot = usize::from(code.to_u16());
            let slot = if slot < ERROR_SLOTS { slot } else { 0 };
            shard.errors_by_code[slot].fetch_add(1, Relaxed);
        }
        // The histogram's count is the call count, its sum the total time.
        shard.latency.observe(elapsed);
        shard.bytes_in.fetch_add(bytes_in as u64, Relaxed);
        shard.bytes_out.fetch_add(bytes_out as u64, Relaxed);
        // Read first: a new maximum is rare, and a plain load leaves the line shared.
        if nanos > shard.max_nanos.load(Relaxed) {
            shard.max_nanos.fetch_max(nanos, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, name: &str) -> CommandStats {
        let mut latency = Histogram::default();
        let mut errors_by_code = [0u64; ERROR_SLOTS];
        let (mut bytes_in, mut bytes_out, mut max_nanos) = (0, 0, 0);
        for shard in self.shards.iter() {
            latency.add(&shard.latency.snapshot());
            for (total, count) in errors_by_code.iter_mut().zip(&shard.errors_by_code) {
                *total += count.load(Relaxed);
            }
            bytes_in += shard.bytes_in.load(Relaxed);
            bytes_out += shard.bytes_out.load(Relaxed);
            max_nanos = max_nanos.max(shard.max_nanos.load(Relaxed));
        }
        let calls = latency.count();
        let mean = Duration::from_secs_f64(latency.sum_seconds / calls.max(1) as f64);
        CommandStats {
            name: name.to_owned(),
            calls,
            errors: errors_by_code.iter().sum(),
            bytes_in,
            bytes_out,
            max_handler_time: Duration::from_nanos(max_nanos),
            mean_handler_time: if calls == 0 { Duration::ZERO } else { mean },
            errors_by_code: errors_by_code
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(slot, count)| {
                    let code = (slot != 0).then(|| StatusCode::from_u16(slot as u16));
                    (code, *count)
                })
                .collect(),
            latency,
        }
    }
}

/// A snapshot of one command's statistics (ZServer4D's per-command counters and
/// execution-time maxima).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CommandStats {
    /// Command name.
    pub name: String,
    /// Handler runs.
    pub calls: u64,
    /// Runs that ended in an error reply (error or panic).
    pub errors: u64,
    /// Request payload bytes received.
    pub bytes_in: u64,
    /// Reply payload bytes sent.
    pub bytes_out: u64,
    /// Longest handler run.
    #[serde(serialize_with = "micros")]
    pub max_handler_time: Duration,
    /// Mean handler run.
    #[serde(serialize_with = "micros")]
    pub mean_handler_time: Duration,
    /// Errors per status code (only codes seen); `None` stands for any code outside the
    /// table (application codes).
    #[serde(skip)]
    pub errors_by_code: Vec<(Option<StatusCode>, u64)>,
    /// Handler run times.
    #[serde(skip)]
    pub latency: Histogram,
}

fn micros<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}
