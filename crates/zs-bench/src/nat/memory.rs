//! Memory of the forwarders holding many idle forwarded connections.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::IdleResult;
use super::services::echo_round_trip;
use super::setup::Forwarder;

/// Idle connections opened at once while filling up the idle-connection measurement.
const IDLE_BATCH: usize = 256;

/// Opens `count` forwarded connections, each checked with an echoed byte, samples the
/// forwarders' memory, closes them.
pub async fn idle(forwarder: &mut Forwarder, count: usize) -> anyhow::Result<IdleResult> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = forwarder.rss()?;
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        for process in &mut forwarder.processes {
            process.check_alive()?;
        }
        let batch = IDLE_BATCH.min(count - streams.len());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            tasks.spawn(echo_round_trip(
                forwarder.public.echo,
                Duration::from_secs(20),
            ));
        }
        while let Some(joined) = tasks.join_next().await {
            let stream = joined?.with_context(|| {
                format!("idle connection {} of {count} failed", streams.len() + 1)
            })?;
            streams.push(stream);
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = forwarder.rss()?;
    // Still all open and forwarded: one more byte on a sample of them.
    for stream in streams.iter_mut().step_by((count / 16).max(1)) {
        tokio::time::timeout(Duration::from_secs(10), async {
            stream.write_all(b"y").await?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            anyhow::Ok(())
        })
        .await
        .context("an idle connection stopped forwarding")??;
    }
    drop(streams);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_close = forwarder.rss()?;
    Ok(IdleResult {
        connections: count,
        open_seconds,
        baseline,
        loaded,
        after_close,
    })
}
