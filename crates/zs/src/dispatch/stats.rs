//! Per-command statistics, kept with lock-free counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use zs_wire::status::StatusCode;

use crate::metrics::{Histogram, LatencyHistogram};

/// Error slots per command: the table's codes 1..=16 by value, 0 for any other (application
/// codes, codes from a newer peer) — bounded, as metric labels must be.
const ERROR_SLOTS: usize = 17;

/// Counters of one command, updated by every handler run.
#[derive(Debug, Default)]
pub(crate) struct CommandCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
    errors_by_code: [AtomicU64; ERROR_SLOTS],
    latency: LatencyHistogram,
}

impl CommandCounters {
    pub(crate) fn record(
        &self,
        bytes_in: usize,
        bytes_out: usize,
        elapsed: Duration,
        error: Option<StatusCode>,
    ) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Relaxed);
        if let Some(code) = error {
            self.errors.fetch_add(1, Relaxed);
            let slot = usize::from(code.to_u16());
            let slot = if slot < ERROR_SLOTS { slot } else { 0 };
            self.errors_by_code[slot].fetch_add(1, Relaxed);
        }
        self.latency.observe(elapsed);
        self.bytes_in.fetch_add(bytes_in as u64, Relaxed);
        self.bytes_out.fetch_add(bytes_out as u64, Relaxed);
        self.total_nanos.fetch_add(nanos, Relaxed);
        self.max_nanos.fetch_max(nanos, Relaxed);
    }

    pub(crate) fn snapshot(&self, name: &str) -> CommandStats {
        let calls = self.calls.load(Relaxed);
        let total = self.total_nanos.load(Relaxed);
        CommandStats {
            name: name.to_owned(),
            calls,
            errors: self.errors.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            max_handler_time: Duration::from_nanos(self.max_nanos.load(Relaxed)),
            mean_handler_time: Duration::from_nanos(total.checked_div(calls).unwrap_or(0)),
            errors_by_code: self
                .errors_by_code
                .iter()
                .enumerate()
                .filter_map(|(slot, count)| {
                    let count = count.load(Relaxed);
                    let code = (slot != 0).then(|| StatusCode::from_u16(slot as u16));
                    (count > 0).then_some((code, count))
                })
                .collect(),
            latency: self.latency.snapshot(),
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
