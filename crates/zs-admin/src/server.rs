//! [`ServerPart`]: a zs server's metrics, state and the close-a-peer action; and
//! [`ProcessPart`], the process-wide counters every listener reports once.

use std::fmt;
use std::time::UNIX_EPOCH;

use zs::ServerRef;
use zs::metrics::Histogram;

use crate::part::{
    Action, ActionError, CommandRow, Labels, MetricsOut, Overview, Part, PeerRow, State,
};

/// A zs server as the admin listener sees it.
#[derive(Debug)]
pub struct ServerPart<S = ()> {
    server: ServerRef<S>,
}

impl<S> ServerPart<S> {
    /// Reports on `server`.
    pub fn new(server: ServerRef<S>) -> Self {
        Self { server }
    }
}

/// The label of a status code: its table name in snake case, or `application`.
fn code_label(code: Option<zs::StatusCode>) -> String {
    code.and_then(zs::StatusCode::name)
        .map_or_else(|| "application".to_owned(), |name| name.replace(' ', "_"))
}

fn unix_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

impl<S: Send + Sync + 'static> Part for ServerPart<S> {
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result {
        let metrics = self.server.metrics();
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        out.gauge(
            "zs_connections_open",
            "Connections being served.",
            gauge(metrics.connections_open),
        )?;
        out.counter(
            "zs_connections_accepted",
            "TCP connections accepted.",
            metrics.accepted,
        )?;
        let refused: Vec<(Labels, u64)> = metrics
            .refused
            .iter()
            .map(|(reason, count)| (vec![("reason", reason.label().to_owned())], *count))
            .collect();
        out.counters(
            "zs_connections_refused",
            "Connections turned away, by reason.",
            &refused,
        )?;
        out.counter("zs_handshakes", "Handshakes completed.", metrics.handshakes)?;
        out.counter(
            "zs_handshake_failures",
            "Handshakes that failed or timed out.",
            metrics.handshake_failures(),
        )?;
        out.counter(
            "zs_received_bytes",
            "Protocol bytes received (after decryption).",
            metrics.bytes_in,
        )?;
        out.counter(
            "zs_sent_bytes",
            "Protocol bytes sent (before encryption).",
            metrics.bytes_out,
        )?;
        let commands = self.server.stats();
        let calls: Vec<(Labels, u64)> = commands
            .iter()
            .map(|command| (vec![("command", command.name.clone())], command.calls))
            .collect();
        out.counters("zs_command_calls", "Handler runs per command.", &calls)?;
        let errors: Vec<(Labels, u64)> = commands
            .iter()
            .flat_map(|command| {
                command.errors_by_code.iter().map(|(code, count)| {
                    (
                        vec![
                            ("command", command.name.clone()),
                            ("code", code_label(*code)),
                        ],
                        *count,
                    )
                })
            })
            .collect();
        out.counters(
            "zs_command_errors",
            "Handler runs that ended in an error, per command and status code.",
            &errors,
        )?;
        let latency: Vec<(Labels, &Histogram)> = commands
            .iter()
            .map(|command| (vec![("command", command.name.clone())], &command.latency))
            .collect();
        out.histograms(
            "zs_command_duration_seconds",
            "Handler run time per command.",
            &latency,
        )?;
        out.gauge(
            "zs_stable_sessions",
            "StableIO sessions held.",
            gauge(metrics.stable_sessions),
        )?;
        out.counter(
            "zs_stable_resumes",
            "StableIO links that resumed a session.",
            metrics.stable_resumes,
        )?;
        out.histograms(
            "zs_stable_resume_duration_seconds",
            "From a resuming link's accept to its session taking it over.",
            &[(Vec::new(), &metrics.stable_resume_seconds)],
        )?;
        let kind = |kind: zs::metrics::TransferKind| vec![("kind", kind.label().to_owned())];
        let active: Vec<(Labels, i64)> = metrics
            .transfers
            .iter()
            .map(|(k, transfer)| (kind(*k), gauge(transfer.active)))
            .collect();
        out.gauges(
            "zs_transfers_active",
            "Bulk transfers in progress.",
            &active,
        )?;
        let total: Vec<(Labels, u64)> = metrics
            .transfers
            .iter()
            .map(|(k, transfer)| (kind(*k), transfer.total))
            .collect();
        out.counters("zs_transfers", "Bulk transfers started.", &total)?;
        let bytes: Vec<(Labels, u64)> = metrics
            .transfers
            .iter()
            .map(|(k, transfer)| (kind(*k), transfer.bytes))
            .collect();
        out.counters("zs_transfer_bytes", "Bulk transfer payload bytes.", &bytes)?;
        out.gauge(
            "zs_custom_connections",
            "Custom-protocol connections open.",
            gauge(metrics.custom_connections),
        )?;
        out.counters(
            "zs_custom_messages",
            "Custom-protocol messages, in = decoded, out = written.",
            &[
                (
                    vec![("direction", "in".to_owned())],
                    metrics.custom_messages_in,
                ),
                (
                    vec![("direction", "out".to_owned())],
                    metrics.custom_messages_out,
                ),
            ],
        )
    }

    fn overview(&self) -> Option<Overview> {
        Some(overview(&self.server.metrics(), &self.server.stats()))
    }

    fn state(&self, state: &mut State) {
        let commands = self.server.stats();
        state.overview = Some(overview(&self.server.metrics(), &commands));
        let mut peers: Vec<PeerRow> = self
            .server
            .peers()
            .iter()
            .map(|peer| {
                let traffic = peer.traffic();
                PeerRow {
                    id: peer.id(),
                    address: peer.remote_addr().to_string(),
                    user: peer.user().map(|user| user.name().to_owned()),
                    since_unix_ms: unix_ms(traffic.since),
                    bytes_in: traffic.bytes_in,
                    bytes_out: traffic.bytes_out,
                    calls: traffic.calls,
                    suite: peer.suite().to_string(),
                }
            })
            .collect();
        peers.sort_by_key(|peer| peer.id);
        state.peers = Some(peers);
        state.commands = Some(
            commands
                .into_iter()
                .map(|command| CommandRow {
                    calls: command.calls,
                    errors: command.errors,
                    bytes_in: command.bytes_in,
                    bytes_out: command.bytes_out,
                    mean_micros: micros(command.mean_handler_time),
                    max_micros: micros(command.max_handler_time),
                    name: command.name,
                })
                .collect(),
        );
    }

    fn act(&self, action: &Action) -> Option<Result<(), ActionError>> {
        let Action::ClosePeer(id) = action else {
            return None;
        };
        let Some(peer) = self.server.peer(*id) else {
            return Some(Err(ActionError::NotFound(format!("no peer {id}"))));
        };
        tracing::info!(peer = id, address = %peer.remote_addr(), "peer closed by the operator");
        tokio::spawn(async move { peer.close("closed by the server's operator").await });
        Some(Ok(()))
    }
}

/// The dashboard's totals from a server's counters and its commands' statistics.
fn overview(metrics: &zs::metrics::ServerMetrics, commands: &[zs::CommandStats]) -> Overview {
    Overview {
        connections_open: metrics.connections_open,
        connections_accepted: metrics.accepted,
        connections_refused: metrics.refused_total(),
        calls: metrics.calls,
        call_errors: commands.iter().map(|command| command.errors).sum(),
        bytes_in: metrics.bytes_in,
        bytes_out: metrics.bytes_out,
        handshake_failures: metrics.handshake_failures(),
        stable_sessions: metrics.stable_sessions,
    }
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Process-wide counters (key updates, p2pVM), reported once per listener.
#[derive(Debug, Default)]
pub(crate) struct ProcessPart;

impl Part for ProcessPart {
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result {
        let process = zs::metrics::process();
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        out.counter(
            "zs_key_updates",
            "Record-layer key updates, either direction, every connection.",
            process.key_updates,
        )?;
        out.gauge(
            "zs_p2pvm_links",
            "p2pVM links open.",
            gauge(process.mux_links),
        )?;
        out.gauge(
            "zs_p2pvm_streams",
            "p2pVM virtual streams open.",
            gauge(process.mux_streams),
        )
    }

    fn state(&self, _state: &mut State) {}
}
