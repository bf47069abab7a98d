//! Counters of the server: per mapping and per agent link.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters of one mapping (updated without locks).
#[derive(Debug, Default)]
pub(crate) struct MappingCounters {
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_active: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) refused: AtomicU64,
}

impl MappingCounters {
    pub(crate) fn load(&self) -> [u64; 5] {
        [
            self.connections_total.load(Ordering::Relaxed),
            self.connections_active.load(Ordering::Relaxed),
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        ]
    }
}

/// One mapping's statistics (also the JSON of `nat.stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingStats {
    /// The mapping's name.
    pub name: String,
    /// The configured public address.
    pub public: String,
    /// The address the public port is bound to while open (an agent is registered).
    pub bound: Option<String>,
    /// Agents serving the mapping now.
    pub agents: usize,
    /// Public connections forwarded since start.
    pub connections_total: u64,
    /// Public connections being forwarded now.
    pub connections_active: u64,
    /// Bytes from users to the service.
    pub bytes_in: u64,
    /// Bytes from the service to users.
    pub bytes_out: u64,
    /// Public connections closed without forwarding (no agent, limit reached, disabled).
    pub refused: u64,
    /// Whether public connections are forwarded (an operator can switch a mapping off).
    pub enabled: bool,
}

/// One agent link's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStats {
    /// The server's id for the link.
    pub id: u64,
    /// The name the agent gave (may be empty).
    pub name: String,
    /// The agent's address.
    pub address: String,
    /// The mappings it serves.
    pub mappings: Vec<String>,
}

/// A snapshot of the whole server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStats {
    /// Agent links with a completed `Hello`.
    pub agents: Vec<AgentStats>,
    /// Every configured mapping, by name.
    pub mappings: Vec<MappingStats>,
}

impl ServerStats {
    /// The statistics of mapping `name`.
    pub fn mapping(&self, name: &str) -> Option<&MappingStats> {
        self.mappings.iter().find(|mapping| mapping.name == name)
    }
}
