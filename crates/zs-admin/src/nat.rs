//! XNat's parts: the server (mappings, agents; disable/enable a mapping, kick an agent) and
//! the agent (its link and each mapping's registration).

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;
use zs_nat::{AgentStatus, MappingStatus, NatServerHandle};

use crate::part::{Action, ActionError, Labels, MetricsOut, Overview, Part, State};

/// An XNat server as the admin listener sees it.
#[derive(Debug)]
pub struct NatServerPart {
    server: Arc<NatServerHandle>,
}

impl NatServerPart {
    /// Reports on `server`.
    pub fn new(server: Arc<NatServerHandle>) -> Self {
        Self { server }
    }
}

impl Part for NatServerPart {
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result {
        let stats = self.server.stats();
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        out.gauge(
            "zs_nat_agents",
            "Agent links connected.",
            gauge(stats.agents.len() as u64),
        )?;
        let per = |value: &dyn Fn(&zs_nat::MappingStats) -> u64| -> Vec<(Labels, u64)> {
            stats
                .mappings
                .iter()
                .map(|mapping| (vec![("mapping", mapping.name.clone())], value(mapping)))
                .collect()
        };
        let as_gauges = |series: Vec<(Labels, u64)>| -> Vec<(Labels, i64)> {
            series
                .into_iter()
                .map(|(labels, value)| (labels, gauge(value)))
                .collect()
        };
        out.gauges(
            "zs_nat_mapping_agents",
            "Agents serving each mapping.",
            &as_gauges(per(&|m| m.agents as u64)),
        )?;
        out.gauges(
            "zs_nat_mapping_enabled",
            "1 while a mapping forwards public connections, 0 when an operator disabled it.",
            &as_gauges(per(&|m| u64::from(m.enabled))),
        )?;
        out.gauges(
            "zs_nat_connections_active",
            "Public connections being forwarded, per mapping.",
            &as_gauges(per(&|m| m.connections_active)),
        )?;
        out.counters(
            "zs_nat_connections",
            "Public connections forwarded, per mapping.",
            &per(&|m| m.connections_total),
        )?;
        out.counters(
            "zs_nat_refused",
            "Public connections closed without forwarding, per mapping.",
            &per(&|m| m.refused),
        )?;
        let bytes: Vec<(Labels, u64)> = stats
            .mappings
            .iter()
            .flat_map(|mapping| {
                [("in", mapping.bytes_in), ("out", mapping.bytes_out)].map(|(direction, value)| {
                    (
                        vec![
                            ("mapping", mapping.name.clone()),
                            ("direction", direction.to_owned()),
                        ],
                        value,
                    )
                })
            })
            .collect();
        out.counters(
            "zs_nat_bytes",
            "Bytes forwarded per mapping: in = from users to the service.",
            &bytes,
        )
    }

    fn state(&self, state: &mut State) {
        state.overview = self.overview();
        state.nat = serde_json::to_value(self.server.stats()).ok();
    }

    /// The forwarded connections, summed over the mappings (no calls: XNat forwards bytes).
    fn overview(&self) -> Option<Overview> {
        let stats = self.server.stats();
        let mut overview = Overview::default();
        for mapping in &stats.mappings {
            overview.connections_open += mapping.connections_active;
            overview.connections_accepted += mapping.connections_total;
            overview.connections_refused += mapping.refused;
            overview.bytes_in += mapping.bytes_in;
            overview.bytes_out += mapping.bytes_out;
        }
        Some(overview)
    }

    fn act(&self, action: &Action) -> Option<Result<(), ActionError>> {
        match action {
            Action::SetMappingEnabled(name, enabled) => {
                Some(if self.server.set_mapping_enabled(name, *enabled) {
                    Ok(())
                } else {
                    Err(ActionError::NotFound(format!("no mapping {name:?}")))
                })
            }
            Action::KickAgent(id) => Some(if self.server.kick_agent(*id) {
                Ok(())
            } else {
                Err(ActionError::NotFound(format!("no agent {id}")))
            }),
            _ => None,
        }
    }
}

/// An XNat agent as the admin listener sees it.
#[derive(Debug)]
pub struct NatAgentPart {
    status: watch::Receiver<AgentStatus>,
}

impl NatAgentPart {
    /// Reports the status `AgentHandle::subscribe` publishes.
    pub fn new(status: watch::Receiver<AgentStatus>) -> Self {
        Self { status }
    }
}

impl Part for NatAgentPart {
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result {
        let status = self.status.borrow().clone();
        out.gauge(
            "zs_nat_agent_connected",
            "1 while the agent's link to its server is up and registered.",
            i64::from(status.connected),
        )?;
        let registered: Vec<(Labels, i64)> = status
            .mappings
            .iter()
            .map(|(name, mapping)| {
                let up = matches!(mapping, MappingStatus::Registered { .. });
                (vec![("mapping", name.clone())], i64::from(up))
            })
            .collect();
        out.gauges(
            "zs_nat_agent_mapping_registered",
            "1 while the server serves a mapping for this agent.",
            &registered,
        )
    }

    fn state(&self, state: &mut State) {
        let status = self.status.borrow().clone();
        // The dashboard's mapping table, from the agent's side.
        let mappings: Vec<serde_json::Value> = status
            .mappings
            .iter()
            .map(|(name, mapping)| {
                let (public, bound) = match mapping {
                    MappingStatus::Registered { public } => (public.clone(), Some(public.clone())),
                    MappingStatus::Pending => ("pending".to_owned(), None),
                    MappingStatus::Refused { message, .. } => (format!("refused: {message}"), None),
                };
                serde_json::json!({
                    "name": name, "public": public, "bound": bound,
                    "agents": u8::from(bound.is_some()), "connections_total": 0,
                    "connections_active": 0, "bytes_in": 0, "bytes_out": 0, "refused": 0,
                    "enabled": bound.is_some(),
                })
            })
            .collect();
        state.nat = Some(serde_json::json!({
            "connected": status.connected,
            "stopped": status.stopped,
            "mappings": mappings,
            "agents": [],
        }));
    }
}
