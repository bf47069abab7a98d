//! `--admin ADDR`: the admin HTTP listener (dashboard, `/metrics`, JSON API) beside `zs
//! serve`, `zs nat server` and `zs nat agent`; the library is `zs-admin`.

use std::path::Path;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use zs_admin::{Admin, AdminConfig, AdminHandle};

/// The admin listener's flags, shared by the serving commands.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Serve the dashboard, `/metrics` and the JSON API on this address (default
    /// `[admin] listen`; off when neither is set).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// The bearer token of the admin listener (default `[admin] token`); required off
    /// loopback.
    #[arg(
        long,
        env = "ZS_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

/// The `[admin]` table alone, from a file that may hold others (`[nat]`, `[server]`).
#[derive(Debug, Default, Deserialize)]
struct AdminOnly {
    #[serde(default)]
    admin: AdminConfig,
}

/// Reads the `[admin]` table of `path`.
pub fn section(path: &Path) -> anyhow::Result<AdminConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: AdminOnly =
        toml::from_str(&text).with_context(|| format!("[admin] in {}", path.display()))?;
    Ok(file.admin)
}

impl AdminArgs {
    /// The flags over the file's `[admin]` table.
    pub fn merge(&self, file: AdminConfig) -> AdminConfig {
        AdminConfig {
            listen: self.admin.clone().or(file.listen),
            token: self.admin_token.clone().or(file.token),
        }
    }
}

/// Starts the listener if an address is configured, with `admin`'s parts; says where.
pub async fn start(config: AdminConfig, admin: Admin) -> anyhow::Result<Option<AdminHandle>> {
    if config.listen.is_none() {
        return Ok(None);
    }
    let has_token = config.token.is_some();
    let handle = admin
        .start()
        .await
        .context("cannot start the admin listener")?;
    let hint = if has_token {
        " (open it with #token=<the admin token> after the slash)"
    } else {
        ""
    };
    super::serve::say(&format!(
        "zs: dashboard http://{}/{hint}, metrics http://{}/metrics",
        handle.local_addr(),
        handle.local_addr()
    ));
    Ok(Some(handle))
}
