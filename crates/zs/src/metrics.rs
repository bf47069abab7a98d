//! Counters for operators: what the admin API and Prometheus read (ZServer4D's per-command
//! statistics and `Statistics[]` array, extended).
//!
//! Everything here is a relaxed atomic bumped on the hot path and read by snapshot, so a
//! scrape never blocks a connection. [`Config::metrics`](crate::Config::metrics) turns the
//! per-call and per-byte counting off for a server that wants none of it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Upper bounds, in seconds, of the latency histograms' buckets (a last bucket, `+Inf`,
/// takes the rest): 50 µs to 10 s, the span from a loopback echo to a slow database call.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// [`LATENCY_BUCKETS`] in nanoseconds, for the hot path's integer compare.
const BUCKET_NANOS: [u64; 17] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency histogram with the fixed [`LATENCY_BUCKETS`]: one atomic add per observation.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    counts: [AtomicU64; BUCKET_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS.partition_point(|&bound| bound < nanos);
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Histogram {
        Histogram {
            counts: self
                .counts
                .iter()
                .map(|count| count.load(Relaxed))
                .collect(),
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Relaxed)).as_secs_f64(),
        }
    }
}

/// A snapshot of a latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Histogram {
    /// Observations per bucket (not cumulative): `counts[i]` fell at or under
    /// `LATENCY_BUCKETS[i]` and over the bound before; the last entry is over 10 s.
    pub counts: Vec<u64>,
    /// The sum of every observation, in seconds.
    pub sum_seconds: f64,
}

impl Histogram {
    /// Adds `other`'s observations to these.
    pub fn add(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (total, count) in self.counts.iter_mut().zip(&other.counts) {
            *total += count;
        }
        self.sum_seconds += other.sum_seconds;
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, observations in that bucket alone)`; the last bound is
    /// `f64::INFINITY`.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().copied())
    }

    /// `(upper bound, observations at or under it)` per bucket, as Prometheus wants them;
    /// the last bound is `f64::INFINITY`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.buckets()
            .map(|(bound, count)| {
                total += count;
                (bound, total)
            })
            .collect()
    }
}

/// Bytes and calls of one connection.
#[derive(Debug)]
pub(crate) struct TrafficCounters {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) calls: AtomicU64,
    pub(crate) since: SystemTime,
}

impl TrafficCounters {
    pub(crate) fn new() -> Self {
        Self {
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            since: SystemTime::now(),
        }
    }

    pub(crate) fn snapshot(&self) -> Traffic {
        Traffic {
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            calls: self.calls.load(Relaxed),
            since: self.since,
        }
    }
}

/// What one connection moved ([`Peer::traffic`](crate::Peer::traffic)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Protocol bytes received (frames, after decryption).
    pub bytes_in: u64,
    /// Protocol bytes sent (frames, before encryption).
    pub bytes_out: u64,
    /// Requests and one-way messages this side handled.
    pub calls: u64,
    /// When the connection was set up.
    pub since: SystemTime,
}

/// The kinds of bulk transfer, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// A BigStream: chunks as they come.
    BigStream,
    /// A CompleteBuffer: one buffer, handed over whole.
    CompleteBuffer,
}

impl TransferKind {
    /// The label value (`bigstream`, `complete_buffer`).
    pub fn label(self) -> &'static str {
        match self {
            Self::BigStream => "bigstream",
            Self::CompleteBuffer => "complete_buffer",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::BigStream => 0,
            Self::CompleteBuffer => 1,
        }
    }
}

/// Transfers of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransferMetrics {
    /// Transfers in progress (either direction).
    pub active: u64,
    /// Transfers started since start.
    pub total: u64,
    /// Payload bytes moved, both directions.
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct TransferCounters {
    started: AtomicU64,
    finished: AtomicU64,
    bytes: AtomicU64,
}

/// Why a connection was turned away, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// `max_connections` reached.
    Full,
    /// The client token was wrong.
    Unauthorized,
    /// The handshake failed or timed out.
    Handshake,
    /// A StableIO link was refused (not served, no room, unknown session, bad request).
    Stable,
}

impl RefuseReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 4] = [
        Self::Full,
        Self::Unauthorized,
        Self::Handshake,
        Self::Stable,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Unauthorized => "unauthorized",
            Self::Handshake => "handshake",
            Self::Stable => "stable",
        }
    }
}

/// A server's own counters; connections fold theirs in when they end.
#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    accepted: AtomicU64,
    refused: [AtomicU64; 4],
    handshakes: AtomicU64,
    stable_resumes: AtomicU64,
    stable_resume: LatencyHistogram,
    transfers: [TransferCounters; 2],
    /// Traffic of connections that ended (live ones are summed at snapshot time).
    closed_bytes_in: AtomicU64,
    closed_bytes_out: AtomicU64,
    closed_calls: AtomicU64,
    /// Custom-protocol connections: open now, messages each way.
    custom_open: AtomicU64,
    custom_in: AtomicU64,
    custom_out: AtomicU64,
}

impl ServerCounters {
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self, reason: RefuseReason) {
        self.refused[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn custom_opened(&self) {
        self.custom_open.fetch_add(1, Relaxed);
    }

    pub(crate) fn custom_closed(&self) {
        self.custom_open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn custom_message_in(&self) {
        self.custom_in.fetch_add(1, Relaxed);
    }

    pub(crate) fn custom_message_out(&self) {
        self.custom_out.fetch_add(1, Relaxed);
    }

    pub(crate) fn handshake_done(&self) {
        self.handshakes.fetch_add(1, Relaxed);
    }

    pub(crate) fn resumed(&self, elapsed: Duration) {
        self.stable_resumes.fetch_add(1, Relaxed);
        self.stable_resume.observe(elapsed);
    }

    /// A transfer started; the guard counts it finished when dropped.
    pub(crate) fn transfer(self: &std::sync::Arc<Self>, kind: TransferKind) -> TransferGuard {
        self.transfers[kind.index()].started.fetch_add(1, Relaxed);
        TransferGuard {
            counters: self.clone(),
            kind,
        }
    }

    pub(crate) fn transfer_bytes(&self, kind: TransferKind, bytes: usize) {
        self.transfers[kind.index()]
            .bytes
            .fetch_add(bytes as u64, Relaxed);
    }

    /// Adds an ended connection's traffic to the server's totals. Called under the peers
    /// lock, which snapshots also hold, so a total never counts a connection twice or
    /// drops it for a moment (a Prometheus counter must not go down).
    pub(crate) fn fold(&self, traffic: &Traffic) {
        self.closed_bytes_in.fetch_add(traffic.bytes_in, Relaxed);
        self.closed_bytes_out.fetch_add(traffic.bytes_out, Relaxed);
        self.closed_calls.fetch_add(traffic.calls, Relaxed);
    }

    /// A snapshot, given the live connections' traffic (read under the peers lock).
    pub(crate) fn snapshot(
        &self,
        live: impl Iterator<Item = Traffic>,
        stable_sessions: usize,
    ) -> ServerMetrics {
        let mut metrics = ServerMetrics {
            connections_open: 0,
            accepted: self.accepted.load(Relaxed),
            refused: RefuseReason::ALL
                .map(|reason| (reason, self.refused[reason as usize].load(Relaxed))),
            handshakes: self.handshakes.load(Relaxed),
            bytes_in: self.closed_bytes_in.load(Relaxed),
            bytes_out: self.closed_bytes_out.load(Relaxed),
            calls: self.closed_calls.load(Relaxed),
            stable_sessions: stable_sessions as u64,
            custom_connections: self.custom_open.load(Relaxed),
            custom_messages_in: self.custom_in.load(Relaxed),
            custom_messages_out: self.custom_out.load(Relaxed),
            stable_resumes: self.stable_resumes.load(Relaxed),
            stable_resume_seconds: self.stable_resume.snapshot(),
            transfers: [TransferKind::BigStream, TransferKind::CompleteBuffer].map(|kind| {
                let counters = &self.transfers[kind.index()];
                let total = counters.started.load(Relaxed);
                (
                    kind,
                    TransferMetrics {
                        active: total.saturating_sub(counters.finished.load(Relaxed)),
                        total,
                        bytes: counters.bytes.load(Relaxed),
                    },
                )
            }),
        };
        for traffic in live {
            metrics.connections_open += 1;
            metrics.bytes_in += traffic.bytes_in;
            metrics.bytes_out += traffic.bytes_out;
            metrics.calls += traffic.calls;
        }
        metrics
    }
}

/// Counts a transfer finished when dropped (whatever way it ended).
#[derive(Debug)]
pub(crate) struct TransferGuard {
    counters: std::sync::Arc<ServerCounters>,
    kind: TransferKind,
}

impl TransferGuard {
    pub(crate) fn bytes(&self, bytes: usize) {
        self.counters.transfer_bytes(self.kind, bytes);
    }
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.counters.transfers[self.kind.index()]
            .finished
            .fetch_add(1, Relaxed);
    }
}

/// A snapshot of a server's counters ([`ServerRef::metrics`](crate::ServerRef::metrics)).
/// Totals count since the server started.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMetrics {
    /// Connections being served now.
    pub connections_open: u64,
    /// TCP connections accepted.
    pub accepted: u64,
    /// Connections turned away, per reason.
    pub refused: [(RefuseReason, u64); 4],
    /// Handshakes completed.
    pub handshakes: u64,
    /// Protocol bytes received, all connections.
    pub bytes_in: u64,
    /// Protocol bytes sent, all connections.
    pub bytes_out: u64,
    /// Requests and one-way messages handled.
    pub calls: u64,
    /// StableIO sessions held now.
    pub stable_sessions: u64,
    /// StableIO links that resumed a session.
    pub stable_resumes: u64,
    /// From a resuming link's TCP accept to its session taking it over.
    pub stable_resume_seconds: Histogram,
    /// Bulk transfers per kind.
    pub transfers: [(TransferKind, TransferMetrics); 2],
    /// Custom-protocol connections open now ([`crate::custom`]).
    pub custom_connections: u64,
    /// Custom-protocol messages decoded.
    pub custom_messages_in: u64,
    /// Custom-protocol messages encoded and written.
    pub custom_messages_out: u64,
}

impl ServerMetrics {
    /// Connections refused for any reason.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().map(|(_, count)| count).sum()
    }

    /// Handshakes that failed (a refusal with reason `handshake`).
    pub fn handshake_failures(&self) -> u64 {
        self.refused[RefuseReason::Handshake as usize].1
    }
}

/// Counters that belong to the process rather than one server.
#[derive(Debug, Default)]
pub(crate) struct ProcessCounters {
    pub(crate) key_updates: AtomicU64,
    pub(crate) mux_links: AtomicU64,
    pub(crate) mux_streams: AtomicU64,
}

pub(crate) static PROCESS: ProcessCounters = ProcessCounters {
    key_updates: AtomicU64::new(0),
    mux_links: AtomicU64::new(0),
    mux_streams: AtomicU64::new(0),
};

/// Process-wide counters ([`process`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessMetrics {
    /// Record-layer key updates (either direction, every connection).
    pub key_updates: u64,
    /// p2pVM links open now.
    pub mux_links: u64,
    /// p2pVM virtual streams open now.
    pub mux_streams: u64,
}

/// The process-wide counters: key updates, p2pVM links and streams.
pub fn process() -> ProcessMetrics {
    ProcessMetrics {
        key_updates: PROCESS.key_updates.load(Relaxed),
        mux_links: PROCESS.mux_links.load(Relaxed),
        mux_streams: PROCESS.mux_streams.load(Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_take_their_bound_and_cumulate() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(50)); // at the first bound: first bucket
        histogram.observe(Duration::from_micros(51)); // just over: second
        histogram.observe(Duration::from_millis(3)); // 2.5 ms < 3 ms <= 5 ms
        histogram.observe(Duration::from_secs(60)); // +Inf
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 4);
        assert_eq!(snapshot.counts[0], 1);
        assert_eq!(snapshot.counts[1], 1);
        assert_eq!(snapshot.counts[6], 1);
        assert_eq!(snapshot.counts[17], 1);
        let cumulative = snapshot.cumulative();
        assert_eq!(cumulative.len(), 18);
        assert_eq!(cumulative[5], (0.0025, 2));
        assert_eq!(cumulative[6], (0.005, 3));
        assert_eq!(cumulative[17].1, 4);
        assert!(cumulative[17].0.is_infinite());
        assert!((snapshot.sum_seconds - 60.003_101).abs() < 1e-9);
    }

    #[test]
    fn bucket_bounds_agree() {
        for (seconds, nanos) in LATENCY_BUCKETS.iter().zip(BUCKET_NANOS) {
            assert_eq!(
                Duration::from_secs_f64(*seconds).as_nanos(),
                u128::from(nanos)
            );
        }
    }

    #[test]
    fn transfer_guard_counts_the_end() {
        let counters = std::sync::Arc::new(ServerCounters::default());
        let guard = counters.transfer(TransferKind::BigStream);
        guard.bytes(100);
        let during = counters.snapshot(std::iter::empty(), 0);
        assert_eq!(during.transfers[0].1.active, 1);
        drop(guard);
        let after = counters.snapshot(std::iter::empty(), 0);
        assert_eq!(
            after.transfers[0].1,
            TransferMetrics {
                active: 0,
                total: 1,
                bytes: 100
            }
        );
    }
}
