//! [`Part`]: one thing the admin listener reports on (a zs server, an XNat server or agent,
//! an application's own), and the pieces a part fills in: metrics, state, actions.

use std::collections::HashMap;
use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;

/// One thing the admin listener reports on. Implemented here for a zs server
/// ([`ServerPart`](crate::ServerPart)), an XNat server and an XNat agent; an application adds
/// its own with [`Admin::part`](crate::Admin::part).
///
/// Every method runs on a scrape or a poll: read counters, never block.
pub trait Part: Send + Sync + 'static {
    /// Writes this part's metrics.
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result;

    /// Fills this part's share of the dashboard's state.
    fn state(&self, state: &mut State);

    /// The totals the charts sample once a second, if this part has any.
    fn overview(&self) -> Option<Overview> {
        None
    }

    /// Carries out `action` if it is this part's: `None` when not, else the outcome.
    fn act(&self, action: &Action) -> Option<Result<(), ActionError>> {
        let _ = action;
        None
    }
}

/// An operator's action, from the JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Close connection `id` of a zs server.
    ClosePeer(u64),
    /// Let mapping `name`'s public connections through (`true`) or turn them away.
    SetMappingEnabled(String, bool),
    /// Close XNat agent link `id`.
    KickAgent(u64),
}

/// Why an action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// What the action names does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
}

/// Labels of one series: `(name, value)` pairs, bounded by design (command names, mapping
/// names, reasons; never a connection).
pub type Labels = Vec<(&'static str, String)>;

/// Writes metrics in the Prometheus text format through `prometheus-client`'s encoder.
pub struct MetricsOut<'a, 'b> {
    encoder: &'a mut DescriptorEncoder<'b>,
}

impl fmt::Debug for MetricsOut<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsOut").finish_non_exhaustive()
    }
}

impl<'a, 'b> MetricsOut<'a, 'b> {
    pub(crate) fn new(encoder: &'a mut DescriptorEncoder<'b>) -> Self {
        Self { encoder }
    }

    /// A counter; `name` without `_total`, which the encoder appends.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let counter = ConstCounter::new(value);
        let metric = self
            .encoder
            .encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(metric)
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: i64) -> fmt::Result {
        let gauge = ConstGauge::new(value);
        let metric = self
            .encoder
            .encode_descriptor(name, help, None, gauge.metric_type())?;
        gauge.encode(metric)
    }

    /// A counter with one series per label set (nothing is written for no series).
    pub fn counters(&mut self, name: &str, help: &str, series: &[(Labels, u64)]) -> fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in series {
            ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// A gauge with one series per label set.
    pub fn gauges(&mut self, name: &str, help: &str, series: &[(Labels, i64)]) -> fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in series {
            ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// A histogram with one series per label set; `name` ends in `_seconds`.
    pub fn histograms(
        &mut self,
        name: &str,
        help: &str,
        series: &[(Labels, &zs::metrics::Histogram)],
    ) -> fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut metric = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, histogram) in series {
            // The encoder adds the counts up itself: it wants each bucket's own.
            let buckets: Vec<(f64, u64)> = histogram.buckets().collect();
            metric.encode_family(labels)?.encode_histogram(
                histogram.sum_seconds,
                histogram.count(),
                &buckets,
                None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
            )?;
        }
        Ok(())
    }
}

/// What the dashboard shows: `GET /api/state`. Each part fills in its own share; absent
/// parts stay `None`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct State {
    /// Milliseconds since the Unix epoch, when the state was read.
    pub time_ms: u64,
    /// What is being administered.
    pub server: Option<ServerInfo>,
    /// Totals of the zs server.
    pub overview: Option<Overview>,
    /// Connected peers of the zs server (the first 500 by id).
    pub peers: Option<Vec<PeerRow>>,
    /// How many peers are connected.
    pub peers_total: Option<usize>,
    /// Per-command statistics of the zs server.
    pub commands: Option<Vec<CommandRow>>,
    /// XNat mappings and agents.
    pub nat: Option<serde_json::Value>,
    /// Cluster members.
    pub cluster: Option<serde_json::Value>,
}

/// What the listener administers.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// `zs`, `nat-server` or `nat-agent`.
    pub kind: String,
    /// Its main address.
    pub address: String,
    /// The zserver version.
    pub version: String,
    /// Seconds since the admin listener started.
    pub uptime_seconds: u64,
}

/// A zs server's totals since start (gauges: `connections_open`, `stable_sessions`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overview {
    /// Connections served now.
    pub connections_open: u64,
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// Connections turned away.
    pub connections_refused: u64,
    /// Calls handled.
    pub calls: u64,
    /// Calls that ended in an error status.
    pub call_errors: u64,
    /// Protocol bytes received.
    pub bytes_in: u64,
    /// Protocol bytes sent.
    pub bytes_out: u64,
    /// Handshakes that failed.
    pub handshake_failures: u64,
    /// StableIO sessions held.
    pub stable_sessions: u64,
}

/// One connected peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRow {
    /// The connection's id (for `POST /api/peers/{id}/close`).
    pub id: u64,
    /// Its remote address.
    pub address: String,
    /// The user it is logged in as.
    pub user: Option<String>,
    /// When it connected, milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Bytes sent to it.
    pub bytes_out: u64,
    /// Calls it made.
    pub calls: u64,
    /// Its cipher suite.
    pub suite: String,
}

/// One command's statistics.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRow {
    /// The command.
    pub name: String,
    /// Handler runs.
    pub calls: u64,
    /// Runs that ended in an error.
    pub errors: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Reply bytes.
    pub bytes_out: u64,
    /// Mean handler time, µs.
    pub mean_micros: u64,
    /// Longest handler time, µs.
    pub max_micros: u64,
}
