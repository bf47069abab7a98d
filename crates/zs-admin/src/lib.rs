//! zserver's admin listener: Prometheus metrics, a JSON API with the operator's actions, and
//! a live dashboard, over HTTP (axum on hyper) on an address of its own.
//!
//! ZServer4D offers per-command counters and logs; this is what a monitoring stack and a
//! browser read instead:
//!
//! | Path | What |
//! |---|---|
//! | `GET /` | the dashboard (one embedded page; no internet needed) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /api/state` | everything the dashboard shows, as JSON |
//! | `GET /api/history` | the last ten minutes of totals, one sample a second |
//! | `POST /api/peers/{id}/close` | close a zs connection |
//! | `POST /api/nat/mappings/{name}/disable`, `/enable` | switch an XNat mapping |
//! | `POST /api/nat/agents/{id}/kick` | close an XNat agent link |
//!
//! Everything but the page needs `Authorization: Bearer <token>` when a token is set; a
//! listener off loopback refuses to start without one. The page itself holds no data; it
//! reads the token from its URL fragment (`/#token=...`, never sent to the server).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = zs::Server::bind("127.0.0.1:4920").await?.spawn();
//! let admin = zs_admin::Admin::new(zs_admin::AdminConfig::on("127.0.0.1:9920"))
//!     .describe("zs", server.local_addr().to_string())
//!     .part(zs_admin::ServerPart::new(server.server_ref()))
//!     .start()
//!     .await?;
//! println!("dashboard: http://{}/", admin.local_addr());
//! # Ok(()) }
//! ```

mod http;
mod nat;
mod part;
mod server;
mod services;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use nat::{NatAgentPart, NatServerPart};
pub use part::{
    Action, ActionError, CommandRow, Labels, MetricsOut, Overview, Part, PeerRow, ServerInfo, State,
};
pub use server::ServerPart;
pub use services::{AccountsPart, ClusterPart, DbPart};

/// The `[admin]` table of a configuration file. Every field is optional; with none the
/// listener is off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin listener listens (e.g. `127.0.0.1:9920`); off when unset.
    pub listen: Option<String>,
    /// The bearer token every request but the dashboard page must carry. Required when
    /// `listen` is not a loopback address; optional (and then unchecked) on loopback.
    pub token: Option<String>,
}

impl AdminConfig {
    /// A listener on `listen`, without a token (loopback only).
    pub fn on(listen: impl Into<String>) -> Self {
        Self {
            listen: Some(listen.into()),
            token: None,
        }
    }
}

/// The admin listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No `listen` address is configured.
    #[error("the admin listener has no address")]
    NoAddress,
    /// A listener off loopback needs a token.
    #[error("the admin listener on {0} is not on loopback: set a token (`[admin] token`)")]
    TokenRequired(SocketAddr),
    /// The token is empty.
    #[error("the admin token is empty")]
    EmptyToken,
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds an admin listener: what it reports on, then [`start`](Self::start).
pub struct Admin {
    config: AdminConfig,
    kind: String,
    address: String,
    parts: Vec<Arc<dyn Part>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("listen", &self.config.listen)
            .field("kind", &self.kind)
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// An admin listener with `config`.
    pub fn new(config: AdminConfig) -> Self {
        Self {
            config,
            kind: "zs".to_owned(),
            address: String::new(),
            parts: vec![Arc::new(server::ProcessPart)],
        }
    }

    /// Names what is administered on the dashboard: its kind (`zs`, `nat-server`,
    /// `nat-agent`) and main address.
    pub fn describe(mut self, kind: impl Into<String>, address: impl Into<String>) -> Self {
        self.kind = kind.into();
        self.address = address.into();
        self
    }

    /// Adds a part to report on. Each metric name may come from one part only: add one
    /// [`ServerPart`] per listener.
    pub fn part(mut self, part: impl Part) -> Self {
        self.parts.push(Arc::new(part));
        self
    }

    /// Binds and serves; the listener runs until [`AdminHandle::shutdown`] or drop.
    pub async fn start(self) -> Result<AdminHandle, AdminError> {
        let address = self.config.listen.clone().ok_or(AdminError::NoAddress)?;
        if self.config.token.as_deref() == Some("") {
            return Err(AdminError::EmptyToken);
        }
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|source| AdminError::Bind {
                address: address.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| AdminError::Bind {
            address: address.clone(),
            source,
        })?;
        if !local_addr.ip().is_loopback() && self.config.token.is_none() {
            return Err(AdminError::TokenRequired(local_addr));
        }
        let stop = CancellationToken::new();
        let app = http::App::new(
            self.parts,
            self.config.token,
            ServerInfo {
                kind: self.kind,
                address: self.address,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime_seconds: 0,
            },
        );
        let task = tokio::spawn(http::serve(listener, app, stop.clone()));
        tracing::info!(address = %local_addr, "admin listener: dashboard, /metrics, /api");
        Ok(AdminHandle {
            local_addr,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }
}

/// A running admin listener. Dropping it stops the listener.
#[derive(Debug)]
pub struct AdminHandle {
    local_addr: SocketAddr,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl AdminHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening and waits for requests in progress.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
