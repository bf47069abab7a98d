//! The platform services' parts: accounts (logins, failures, lockouts), ZDB (queries,
//! records scanned) and the dispatch registry (registered servers).

use std::collections::BTreeMap;
use std::fmt;

use crate::part::{Labels, MetricsOut, Part, State};

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The accounts service as the admin listener sees it.
#[derive(Debug)]
pub struct AccountsPart<S = ()> {
    service: zs_accounts::AccountService<S>,
}

impl<S> AccountsPart<S> {
    /// Reports on `service` (a clone of the one installed: clones share everything).
    pub fn new(service: zs_accounts::AccountService<S>) -> Self {
        Self { service }
    }
}

impl<S: Send + Sync + 'static> Part for AccountsPart<S> {
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result {
        let metrics = self.service.metrics();
        out.counter("zs_accounts_logins", "Successful logins.", metrics.logins)?;
        out.counter(
            "zs_accounts_login_failures",
            "Logins refused: wrong name or password, or a disabled account.",
            metrics.login_failures,
        )?;
        out.counter(
            "zs_accounts_lockouts",
            "Logins refused while the name or address was locked out after failures.",
            metrics.lockouts,
        )?;
        out.gauge(
            "zs_accounts_users_online",
            "Users logged in on at least one connection.",
            gauge(metrics.users_online),
        )
    }

    fn state(&self, _state: &mut State) {}
}

/// A ZDB store served over the network, as the admin listener sees it.
#[derive(Debug)]
pub struct DbPart {
    service: zs_db::service::DbService,
}

impl DbPart {
    /// Reports on the store `service` serves.
    pub fn new(service: zs_db::service::DbService) -> Self {
        Self { service }
    }
}

impl Part for DbPart {
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result {
        let metrics = self.service.store().query_metrics();
        out.counter("zs_db_queries", "ZDB queries started.", metrics.started)?;
        out.gauge(
            "zs_db_queries_running",
            "ZDB queries running.",
            gauge(metrics.running),
        )?;
        out.counter(
            "zs_db_records_scanned",
            "Records ZDB queries scanned (rate() gives records scanned per second).",
            metrics.scanned,
        )
    }

    fn state(&self, _state: &mut State) {}
}

/// The dispatch registry as the admin listener sees it.
#[derive(Debug)]
pub struct ClusterPart {
    service: zs_cluster::DispatchService,
}

impl ClusterPart {
    /// Reports on the registry `service` serves.
    pub fn new(service: zs_cluster::DispatchService) -> Self {
        Self { service }
    }
}

impl Part for ClusterPart {
    fn metrics(&self, out: &mut MetricsOut<'_, '_>) -> fmt::Result {
        let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
        for registration in self.service.registrations() {
            *per_type.entry(registration.service_type).or_default() += 1;
        }
        let series: Vec<(Labels, i64)> = per_type
            .into_iter()
            .map(|(service_type, count)| (vec![("type", service_type)], gauge(count)))
            .collect();
        out.gauges(
            "zs_cluster_servers",
            "Servers registered with this dispatcher, per type.",
            &series,
        )
    }

    fn state(&self, state: &mut State) {
        let members: Vec<serde_json::Value> = self
            .service
            .registrations()
            .into_iter()
            .map(|registration| {
                let load = if registration.capacity == 0 {
                    0.0
                } else {
                    registration.load as f64 / registration.capacity as f64
                };
                serde_json::json!({
                    "type": registration.service_type,
                    "id": registration.id,
                    "address": registration
                        .addresses
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    "load": load,
                })
            })
            .collect();
        state.cluster = Some(serde_json::json!({ "members": members }));
    }
}
