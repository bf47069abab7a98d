//! Per-command statistics, kept with lock-free counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counters of one command, updated by every handler run.
#[derive(Debug, Default)]
pub(crate) struct CommandCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl CommandCounters {
    pub(crate) fn record(
        &self,
        bytes_in: usize,
        bytes_out: usize,
        elapsed: Duration,
        failed: bool,
    ) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Relaxed);
        if failed {
            self.errors.fetch_add(1, Relaxed);
        }
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
        }
    }
}

/// A snapshot of one command's statistics (ZServer4D's per-command counters and
/// execution-time maxima).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
}

fn micros<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}
