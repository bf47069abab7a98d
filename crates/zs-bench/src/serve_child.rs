//! A `zs serve` child process for the memory benchmarks: its configuration written to a work
//! directory, its address, its memory, and its connection count (the built-in `stats`
//! command, asked over a monitor connection that stays open).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::Command;

use crate::process::{Process, free_port, loopback, quoted, wait_for_listener};

/// A running `zs serve` and a connection to it for `stats`.
pub struct ServeChild {
    process: Process,
    /// The address it listens on.
    pub addr: String,
    monitor: zs::Client,
}

impl ServeChild {
    /// Starts `zs --log warn serve --config FILE` with `max_connections`, its key and
    /// configuration in `work`, and waits until it answers `stats`.
    pub async fn start(zs: &Path, work: &Path, max_connections: usize) -> anyhow::Result<Self> {
        Self::start_with(zs, work, max_connections, "").await
    }

    /// [`Self::start`] with `extra` lines (TOML) added to the `[server]` section.
    pub async fn start_with(
        zs: &Path,
        work: &Path,
        max_connections: usize,
        extra: &str,
    ) -> anyhow::Result<Self> {
        let addr = loopback(free_port()?);
        let config = work.join("zs-serve.toml");
        let key = work.join("zs-serve.key");
        let text = format!(
            "[server]\nlisten = {}\nmax_connections = {max_connections}\n{extra}\n[security]\nkey_file = {}\n",
            quoted(&addr.to_string()),
            quoted(&key.to_string_lossy()),
        );
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let mut command = Command::new(zs);
        command
            .env_remove("RUST_LOG")
            .args(["--log", "warn", "serve", "--config"])
            .arg(&config);
        let mut process = Process::spawn("zs serve", command, &work.join("zs-serve.log"))?;
        wait_for_listener(&mut process, addr).await?;
        let addr = addr.to_string();
        let monitor = zs::Client::connect(&addr)
            .await
            .with_context(|| format!("cannot connect to zs serve at {addr}"))?;
        Ok(Self {
            process,
            addr,
            monitor,
        })
    }

    /// The server's VmRSS, KiB.
    pub fn rss_kib(&mut self) -> anyhow::Result<u64> {
        self.process.check_alive()?;
        self.process.rss_kib()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Connections the server holds, the monitor's included.
    pub async fn connections(&self) -> anyhow::Result<u64> {
        let text = tokio::time::timeout(
            Duration::from_secs(10),
            self.monitor.call_console("stats", ""),
        )
        .await
        .context("stats timed out")??;
        let value: serde_json::Value =
            serde_json::from_str(&text).context("stats returned invalid JSON")?;
        value
            .get("connections")
            .and_then(serde_json::Value::as_u64)
            .context("stats has no connection count")
    }

    /// Waits (up to `limit`) until only the monitor connection is left; returns the count
    /// last seen.
    pub async fn wait_drained(&self, limit: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + limit;
        loop {
            let count = self.connections().await?;
            if count <= 1 || Instant::now() >= deadline {
                return Ok(count.saturating_sub(1));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        drop(self.monitor);
        self.process.kill().await;
    }
}
