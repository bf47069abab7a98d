//! The admin endpoint (a zs server answering [`STATS_COMMAND`]) and the periodic
//! statistics log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::{STATS_COMMAND, ServerError, Shared};
use crate::Secret;
use crate::stats::MappingStats;

/// Logs each mapping's counters every `interval` when they changed.
pub(super) async fn log_stats(shared: Arc<Shared>, interval: Duration) {
    let mut last: HashMap<String, MappingStats> = HashMap::new();
    loop {
        tokio::select! {
            () = shared.accepting.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        for mapping in shared.mappings.values() {
            let stats = mapping.stats();
            if last.get(&stats.name) == Some(&stats) {
                continue;
            }
            info!(
                mapping = %stats.name,
                agents = stats.agents,
                active = stats.connections_active,
                total = stats.connections_total,
                bytes_in = stats.bytes_in,
                bytes_out = stats.bytes_out,
                refused = stats.refused,
                "mapping statistics"
            );
            last.insert(stats.name.clone(), stats);
        }
    }
}

/// The admin endpoint: a zs server answering [`STATS_COMMAND`].
pub(super) async fn start_admin(
    address: &str,
    shared: &Arc<Shared>,
    token: Option<&Secret>,
) -> Result<zs::ServerHandle, ServerError> {
    let mut server = zs::Server::bind(address)
        .await
        .map_err(|source| ServerError::Bind {
            address: address.to_owned(),
            source,
        })?;
    let security = server.config_mut().security();
    *security = shared.link.security.clone();
    security.keypair(shared.keypair.clone());
    if let Some(token) = token {
        security.token(token.expose().as_bytes().to_vec());
    }
    let weak = Arc::downgrade(shared);
    server.register_console(STATS_COMMAND, move |_ctx, _text: String| {
        let weak = weak.clone();
        async move {
            let shared = weak
                .upgrade()
                .ok_or_else(|| zs::Status::unavailable("the server has stopped"))?;
            Ok(serde_json::to_string(&shared.stats())?)
        }
    });
    let handle = server.spawn();
    info!(address = %handle.local_addr(), "admin endpoint: {STATS_COMMAND}");
    Ok(handle)
}
