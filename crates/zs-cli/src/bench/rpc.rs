//! `echo` call load on zserver connections: many connections, many requests in flight each.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use zs::Client;

use super::{Measurement, apply_suite, micros, new_histogram, run_window};

/// The load of an RPC run (the flags both `zs bench rpc` and `zs-bench rpc` take).
#[derive(Debug, Clone, Args)]
pub struct RpcLoad {
    /// Connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Payload bytes per request (and reply).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Measured seconds per run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Cipher suite for the zserver connections (`plain` allowed here); default: the
    /// normal negotiation (aes-128-gcm).
    #[arg(long)]
    pub suite: Option<String>,
    /// Connect the zserver clients with StableIO (sequence numbers, acks and a resend
    /// buffer under the session) to measure its cost.
    #[arg(long)]
    pub stable: bool,
}

impl RpcLoad {
    /// Checks the numbers and parses the suite.
    pub fn validate(&self) -> anyhow::Result<Option<zs::Suite>> {
        anyhow::ensure!(
            self.connections > 0 && self.in_flight > 0,
            "connections and in-flight must be at least 1"
        );
        anyhow::ensure!(
            self.seconds > 0.0 && self.seconds.is_finite(),
            "--seconds must be positive"
        );
        super::parse_suite(self.suite.as_deref())
    }

    /// The header line's description of the load.
    pub fn describe(&self) -> String {
        format!(
            "{}{} connections x {} in flight, {} byte payload, {} s per run",
            if self.stable { "StableIO, " } else { "" },
            self.connections,
            self.in_flight,
            self.payload,
            self.seconds,
        )
    }
}

/// Connects `load.connections` clients to `addr` and keeps `load.in_flight` `echo` calls
/// outstanding on each for the window; the clients are closed before this returns.
pub async fn measure(addr: &str, load: &RpcLoad) -> anyhow::Result<Measurement> {
    let suite = load.validate()?;
    let mut clients = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let mut builder = Client::builder();
        apply_suite(builder.config_mut().security(), suite);
        let client = if load.stable {
            builder.connect_stable(addr).await
        } else {
            builder.connect(addr).await
        };
        clients.push(Arc::new(
            client.with_context(|| format!("cannot connect to {addr}"))?,
        ));
    }
    let payload: Arc<str> = Arc::from("x".repeat(load.payload));
    run_window(
        load.seconds,
        load.connections * load.in_flight,
        |index, window| {
            let client = clients[index % clients.len()].clone();
            let payload = payload.clone();
            async move {
                let mut latency = new_histogram()?;
                let mut requests = 0;
                while !window.stopping() {
                    let started = Instant::now();
                    let reply = client.call_console("echo", &payload).await?;
                    anyhow::ensure!(
                        reply.len() == payload.len(),
                        "echo returned {} bytes",
                        reply.len()
                    );
                    if window.counts() {
                        requests += 1;
                        latency.saturating_record(micros(started.elapsed()));
                    }
                }
                Ok((requests, latency))
            }
        },
    )
    .await
}
