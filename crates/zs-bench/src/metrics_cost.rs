//! `zs-bench metrics`: what the metrics cost. Two `zs serve` children on loopback, one with
//! `metrics = true` and its admin listener scraped once a second (as Prometheus would), one
//! with `metrics = false`; `zs bench rpc` against each, medians of the rounds reported. The
//! goal (issue 16): on ≥ 0.97 of off.
//!
//! By default (`--together`) both loads run at the same time, each `zs bench rpc` against
//! its server: the two pairs share the cores, so a server that spends more CPU per call
//! answers fewer, and whatever else the machine does hits both alike. Measured one after the
//! other (`--together false`, order alternating), rounds on these shared machines swing by
//! ±20 %, more than the effect.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{find_zs, free_port, loopback, quoted, run_tool};
use crate::serve_child::ServeChild;

/// Arguments of `zs-bench metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Rounds (each server measured once per round); medians are reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Measured seconds of each `zs bench rpc` run.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Run both loads at once (see the module documentation); false: one after the other.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub together: bool,
    /// The `zs` binary (default: next to this one, else on the PATH).
    #[arg(long)]
    pub zs: Option<PathBuf>,
}

/// Runs `zs-bench metrics`.
pub async fn run(args: MetricsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rounds > 0 && args.seconds > 0.0,
        "rounds and seconds must be positive"
    );
    let zs = find_zs(args.zs.as_ref())?;
    let work = tempfile::tempdir().context("cannot make a temporary directory")?;
    let (on_dir, off_dir) = (work.path().join("on"), work.path().join("off"));
    std::fs::create_dir_all(&on_dir)?;
    std::fs::create_dir_all(&off_dir)?;
    let admin = loopback(free_port()?).to_string();
    let on_extra = format!("metrics = true\n[admin]\nlisten = {}", quoted(&admin));
    let on = ServeChild::start_with(&zs, &on_dir, 1024, &on_extra).await?;
    let off = ServeChild::start_with(&zs, &off_dir, 1024, "metrics = false").await?;
    println!(
        "zs-bench metrics: `zs bench rpc` (64 connections x 16 in flight, 64 B) for {} s, {} rounds, {}; metrics on (scraped every 1 s) vs off",
        args.seconds,
        args.rounds,
        if args.together {
            "both loads at once"
        } else {
            "one after the other"
        }
    );
    let scraper = tokio::spawn(scrape_forever(admin.clone()));

    let mut on_rates = Vec::new();
    let mut off_rates = Vec::new();
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        let (on_rate, off_rate) = if args.together {
            let (on_rate, off_rate) = tokio::join!(
                rpc_rate(&zs, &on.addr, args.seconds),
                rpc_rate(&zs, &off.addr, args.seconds)
            );
            (on_rate?, off_rate?)
        } else if round % 2 == 1 {
            let on_rate = rpc_rate(&zs, &on.addr, args.seconds).await?;
            (on_rate, rpc_rate(&zs, &off.addr, args.seconds).await?)
        } else {
            let off_rate = rpc_rate(&zs, &off.addr, args.seconds).await?;
            (rpc_rate(&zs, &on.addr, args.seconds).await?, off_rate)
        };
        println!(
            "round {round}: on {on_rate:.0} req/s, off {off_rate:.0} req/s, on/off {:.3}",
            on_rate / off_rate
        );
        on_rates.push(on_rate);
        off_rates.push(off_rate);
        ratios.push(on_rate / off_rate);
    }
    let scrapes = scraper.is_finished();
    scraper.abort();
    anyhow::ensure!(!scrapes, "the scraper stopped: the admin listener failed");
    let last = scrape(&admin).await?;
    let calls = last
        .lines()
        .find(|line| line.starts_with("zs_command_calls_total{command=\"echo\"}"))
        .context("the scrape has no echo counter")?;
    println!("last scrape: {calls}");
    println!(
        "metrics: on/off {:.3} (median of {} rounds: on {:.0}, off {:.0} req/s)",
        crate::median(&ratios),
        args.rounds,
        crate::median(&on_rates),
        crate::median(&off_rates)
    );
    on.stop().await;
    off.stop().await;
    Ok(())
}

/// One `zs bench rpc` run against `addr`: its requests per second.
async fn rpc_rate(zs: &std::path::Path, addr: &str, seconds: f64) -> anyhow::Result<f64> {
    let args: Vec<String> = [
        "--log",
        "warn",
        "bench",
        "rpc",
        "--connect",
        addr,
        "--seconds",
        &seconds.to_string(),
    ]
    .map(str::to_owned)
    .into();
    let output = run_tool(zs, &args, Duration::from_secs_f64(seconds + 60.0)).await?;
    // "rpc: N requests in S s = R req/s; latency ..."
    output
        .lines()
        .find_map(|line| {
            let rate = line.strip_prefix("rpc: ")?.split(" = ").nth(1)?;
            rate.split(' ').next()?.parse().ok()
        })
        .with_context(|| format!("no rate in the output of zs bench rpc: {output}"))
}

/// Scrapes `/metrics` once a second until aborted; returns if a scrape fails.
async fn scrape_forever(admin: String) {
    loop {
        if let Err(error) = scrape(&admin).await {
            eprintln!("scrape failed: {error:#}");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One `GET /metrics` (HTTP/1.1, connection closed after): the body.
async fn scrape(admin: &str) -> anyhow::Result<String> {
    let mut socket = tokio::net::TcpStream::connect(admin).await?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    anyhow::ensure!(
        response.starts_with("HTTP/1.1 200"),
        "scrape answered {:?}",
        response.lines().next()
    );
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}
