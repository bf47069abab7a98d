//! Many zserver connections from this process: opened in batches (each checked with an
//! `echo`, or not), `echo` calls on randomly picked ones, closed together. Shared by
//! `zs-bench churn` and `zs-bench idle`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use zs::Client;

use crate::load::{Measurement, micros, new_histogram, run_window};

/// Connections set up at once while opening.
const OPEN_BATCH: usize = 64;
/// Payload of every `echo` call.
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// How the connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Client::builder().connect`.
    Plain,
    /// `Client::builder().connect_stable` (StableIO).
    Stable,
}

/// Opens `count` connections to `addr`, `OPEN_BATCH` at a time; with `echo`, each makes one
/// `echo` call before it counts as open.
pub async fn open(
    addr: &str,
    count: usize,
    kind: Kind,
    echo: bool,
) -> anyhow::Result<Vec<Arc<Client>>> {
    let mut clients = Vec::with_capacity(count);
    while clients.len() < count {
        let batch = OPEN_BATCH.min(count - clients.len());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let addr = addr.to_owned();
            tasks.spawn(async move {
                let builder = Client::builder();
                let client = match kind {
                    Kind::Plain => builder.connect(&addr).await,
                    Kind::Stable => builder.connect_stable(&addr).await,
                }
                .with_context(|| format!("cannot connect to {addr}"))?;
                if echo {
                    call(&client).await?;
                }
                anyhow::Ok(client)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let client = joined?
                .with_context(|| format!("connection {} of {count} failed", clients.len() + 1))?;
            clients.push(Arc::new(client));
        }
    }
    Ok(clients)
}

/// One `echo` call, checked, bounded in time.
async fn call(client: &Client) -> anyhow::Result<()> {
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client.call_console("echo", PAYLOAD),
    )
    .await
    .context("echo timed out")??;
    anyhow::ensure!(reply == PAYLOAD, "echo returned {} bytes", reply.len());
    Ok(())
}

/// `workers` loops of one `echo` call at a time, each on a connection picked at random, for
/// `seconds` after a 1 s warm-up.
pub async fn random_calls(
    clients: &[Arc<Client>],
    workers: usize,
    seconds: f64,
) -> anyhow::Result<Measurement> {
    let clients: Arc<[Arc<Client>]> = Arc::from(clients);
    anyhow::ensure!(!clients.is_empty(), "no connections to call on");
    run_window(seconds, workers, |index, window| {
        let clients = clients.clone();
        async move {
            let mut random = XorShift::new(index as u64 + 1);
            let mut latency = new_histogram()?;
            let mut calls = 0;
            while !window.stopping() {
                let client = &clients[random.below(clients.len())];
                let started = Instant::now();
                call(client).await?;
                if window.counts() {
                    calls += 1;
                    latency.saturating_record(micros(started.elapsed()));
                }
            }
            Ok((calls, latency))
        }
    })
    .await
}

/// Closes every connection (each after its requests in flight are answered), all at once,
/// each bounded to 10 s; returns how many did not close in time.
pub async fn close(clients: Vec<Arc<Client>>) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        tasks.spawn(async move {
            match Arc::try_unwrap(client) {
                Ok(client) => tokio::time::timeout(Duration::from_secs(10), client.close())
                    .await
                    .is_ok(),
                // Still shared: dropping the last handle closes it.
                Err(_) => true,
            }
        });
    }
    let mut late = 0;
    while let Some(joined) = tasks.join_next().await {
        if !matches!(joined, Ok(true)) {
            late += 1;
        }
    }
    late
}

/// A small pseudo-random generator (xorshift64): picks connections, needs no crate.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed (zero is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).max(1))
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}
