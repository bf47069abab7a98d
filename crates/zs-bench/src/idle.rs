//! `zs-bench idle`: a child `zs serve` holding many idle encrypted connections from this
//! process: its VmRSS before, with them open and after closing them, KiB per connection,
//! and the latency of `echo` calls on randomly picked connections while all are open.
//!
//! Open files: this process holds one descriptor per connection and so does the server.
//! This process raises its soft limit to what is asked (up to the hard limit); `zs serve`
//! inherits the raised soft limit as a child (and raises its own to `max_connections`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::fleet::{self, Kind};
use crate::process::{find_zs, raise_fd_limit};
use crate::serve_child::ServeChild;

/// Arguments of `zs-bench idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// The `zs` binary to measure (default: the one next to this executable, else on PATH).
    #[arg(long)]
    pub zs: Option<PathBuf>,
    /// Idle connections to hold (up to the open-file hard limit minus a reserve).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Seconds of `echo` calls on random connections (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Calls in flight at once during those seconds (one per worker).
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Connect with StableIO (`Client::builder().connect_stable`).
    #[arg(long)]
    pub stable: bool,
    /// Stop (with an error) after this many seconds whatever happens.
    #[arg(long, default_value_t = 600)]
    pub time_limit: u64,
}

/// Runs `zs-bench idle`.
pub async fn run(args: IdleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.workers > 0, "--workers must be at least 1");
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds.is_finite(),
        "--seconds must be positive"
    );
    let zs = find_zs(args.zs.as_ref())?;
    let connections = raise_fd_limit(args.connections, 1)?;
    let limit = Duration::from_secs(args.time_limit);
    crate::process::bounded("idle", limit, |work| idle(zs, work, args, connections)).await
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn idle(
    zs: PathBuf,
    work: PathBuf,
    args: IdleArgs,
    connections: usize,
) -> anyhow::Result<()> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    let mut server = ServeChild::start(&zs, &work, connections + 64).await?;
    println!(
        "zs-bench idle: {connections} idle {} connections to `zs serve` ({}, pid {}); open-file \
         limit {soft} (hard {hard}), inherited by the server; then {} s of echo calls on \
         random connections ({} at once)",
        if args.stable { "StableIO" } else { "zserver" },
        zs.display(),
        server.pid(),
        args.seconds,
        args.workers,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kib()?;
    let kind = if args.stable {
        Kind::Stable
    } else {
        Kind::Plain
    };
    let started = Instant::now();
    let clients = fleet::open(&server.addr, connections, kind, false).await?;
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = server.connections().await?.saturating_sub(1);
    let loaded = server.rss_kib()?;
    let per_connection = (loaded as f64 - before as f64) / connections as f64;
    println!(
        "opened {connections} connections in {open_seconds:.1} s ({:.0}/s); the server holds {held}",
        connections as f64 / open_seconds
    );
    let calls = fleet::random_calls(&clients, args.workers, args.seconds).await?;
    let after_calls = server.rss_kib()?;
    let late = fleet::close(clients).await;
    let left_open = server.wait_drained(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let closed = server.rss_kib()?;
    server.stop().await;
    println!();
    println!("| server VmRSS | MiB |");
    println!("|---|---:|");
    println!("| before | {:.1} |", kib_to_mib(before));
    println!(
        "| {connections} idle connections | {:.1} |",
        kib_to_mib(loaded)
    );
    println!("| after the echo calls | {:.1} |", kib_to_mib(after_calls));
    println!("| after closing them | {:.1} |", kib_to_mib(closed));
    println!();
    println!(
        "idle: {per_connection:.2} KiB per idle connection ({connections} connections); echo on \
         random connections: {:.0} calls/s, p50 {} us, p99 {} us, max {} us; {left_open} left \
         open on the server after closing{}",
        calls.rate(),
        calls.latency.value_at_quantile(0.50),
        calls.latency.value_at_quantile(0.99),
        calls.latency.max(),
        if late > 0 {
            format!(", {late} did not close within 10 s")
        } else {
            String::new()
        },
    );
    Ok(())
}
