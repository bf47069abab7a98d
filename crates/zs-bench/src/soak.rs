//! `zs-bench soak`: a long run against a child `zs serve` — calls on random connections among
//! many held open, while other connections open, call and close all the time — sampling the
//! server's VmRSS. The question it answers: does memory stay flat over an hour of ordinary
//! traffic and churn (issue 12)? Reported: every sample, and the largest distance of a
//! later sample from the first one taken after the warm-up, in percent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::fleet::{self, Kind};
use crate::process::{find_zs, raise_fd_limit};
use crate::serve_child::ServeChild;

/// Arguments of `zs-bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The `zs` binary to measure (default: the one next to this executable, else on PATH).
    #[arg(long)]
    pub zs: Option<PathBuf>,
    /// Connections held open for the whole run (calls go to random ones).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connections opened, called once and closed per churn step (steps run back to back).
    #[arg(long, default_value_t = 200)]
    pub churn: usize,
    /// Calls in flight at once on the held connections.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Length of the run after the warm-up, seconds (default one hour).
    #[arg(long, default_value_t = 3600.0)]
    pub seconds: f64,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 60.0)]
    pub sample_seconds: f64,
    /// Stop (with an error) after this many seconds whatever happens.
    #[arg(long, default_value_t = 4000)]
    pub time_limit: u64,
}

/// Runs `zs-bench soak`.
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.churn > 0, "--churn must be at least 1");
    anyhow::ensure!(args.workers > 0, "--workers must be at least 1");
    for (name, value) in [
        ("--seconds", args.seconds),
        ("--sample-seconds", args.sample_seconds),
    ] {
        anyhow::ensure!(value > 0.0 && value.is_finite(), "{name} must be positive");
    }
    let zs = find_zs(args.zs.as_ref())?;
    let connections = raise_fd_limit(args.connections + args.churn, 1)?;
    anyhow::ensure!(
        connections == args.connections + args.churn,
        "the open-file limit allows only {connections} connections"
    );
    let limit = Duration::from_secs(args.time_limit);
    crate::process::bounded("soak", limit, |work| soak(zs, work, args)).await
}

/// One RSS sample and what happened since the previous one.
struct Sample {
    at: Duration,
    rss_kib: u64,
    calls_per_second: f64,
    churned: usize,
}

async fn soak(zs: PathBuf, work: PathBuf, args: SoakArgs) -> anyhow::Result<()> {
    let mut server = ServeChild::start(&zs, &work, args.connections + args.churn + 64).await?;
    println!(
        "zs-bench soak: `zs serve` ({}, pid {}); {} connections held, calls on random ones ({} \
         at once), churn of {} connections at a time; {} s, a sample every {} s",
        zs.display(),
        server.pid(),
        args.connections,
        args.workers,
        args.churn,
        args.seconds,
        args.sample_seconds,
    );
    let before = server.rss_kib()?;
    let held = fleet::open(&server.addr, args.connections, Kind::Plain, true).await?;
    // Warm-up: one interval of the same traffic, so allocator arenas and worker threads
    // are in their working shape before the first sample that counts.
    // Intervals, not a deadline: each call window starts with its own 1 s warm-up, so an
    // interval lasts `sample_seconds` + 1 s.
    let intervals = (args.seconds / args.sample_seconds).ceil().max(1.0) as usize;
    let mut samples = Vec::new();
    let started = Instant::now();
    for _ in 0..=intervals {
        let (calls, churned) = tokio::join!(
            fleet::random_calls(&held, args.workers, args.sample_seconds),
            churn_for(&server.addr, args.churn, args.sample_seconds),
        );
        let sample = Sample {
            at: started.elapsed(),
            rss_kib: server.rss_kib()?,
            calls_per_second: calls?.rate(),
            churned: churned?,
        };
        println!(
            "{:>7.0} s: RSS {:.1} MiB, {:.0} calls/s, {} connections churned",
            sample.at.as_secs_f64(),
            sample.rss_kib as f64 / 1024.0,
            sample.calls_per_second,
            sample.churned
        );
        samples.push(sample);
    }
    let late = fleet::close(held).await;
    let left_open = server.wait_drained(Duration::from_secs(30)).await?;
    let closed = server.rss_kib()?;
    server.stop().await;
    let not_closed = usize::try_from(left_open)
        .unwrap_or(usize::MAX)
        .saturating_add(late);
    report(
        before,
        closed,
        samples.get(1..).unwrap_or_default(),
        not_closed,
    );
    Ok(())
}

/// Opens, calls and closes `count` connections at a time for `seconds`; returns how many.
async fn churn_for(addr: &str, count: usize, seconds: f64) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut churned = 0;
    while started.elapsed().as_secs_f64() < seconds {
        let clients = fleet::open(addr, count, Kind::Plain, true).await?;
        churned += clients.len();
        fleet::close(clients).await;
    }
    Ok(churned)
}

fn report(before: u64, closed: u64, samples: &[Sample], not_closed: usize) {
    let Some(first) = samples.first() else {
        println!("soak: no sample after the warm-up (make --seconds longer than --sample-seconds)");
        return;
    };
    let base = first.rss_kib as f64;
    let drift = samples
        .iter()
        .map(|sample| (sample.rss_kib as f64 - base) / base * 100.0)
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(0.0);
    let last = samples
        .last()
        .map_or(first.rss_kib, |sample| sample.rss_kib);
    let churned: usize = samples.iter().map(|sample| sample.churned).sum();
    let calls = samples.iter().map(|s| s.calls_per_second).sum::<f64>() / samples.len() as f64;
    println!(
        "soak: RSS before {:.1} MiB, first sample after warm-up {:.1} MiB, last {:.1} MiB, \
         largest drift {drift:+.1} % over {} samples; {churned} connections churned, {calls:.0} \
         calls/s on average; after closing all {:.1} MiB, {not_closed} not closed",
        before as f64 / 1024.0,
        base / 1024.0,
        last as f64 / 1024.0,
        samples.len(),
        closed as f64 / 1024.0,
    );
}
