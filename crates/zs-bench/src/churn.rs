//! `zs-bench churn`: a server's memory after rounds of connection churn. A child `zs serve`
//! (or, with `--nat`, a `zs nat server` + `zs nat agent` pair) serves R rounds of: N
//! connections opened from this process, one `echo` each, a few seconds of `echo` calls on
//! randomly picked connections, all closed; the server's VmRSS is read with the connections
//! open and after they are closed. Memory that grows round after round with nothing open is
//! what this looks for.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::fleet::{self, Kind};
use crate::process::{find_zs, raise_fd_limit};
use crate::serve_child::ServeChild;

/// Arguments of `zs-bench churn`.
#[derive(Debug, Args)]
pub struct ChurnArgs {
    /// The `zs` binary to measure (default: the one next to this executable, else on PATH).
    #[arg(long)]
    pub zs: Option<PathBuf>,
    /// Rounds of open, call, close.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Connections opened per round.
    #[arg(long, default_value_t = 3000)]
    pub connections: usize,
    /// Seconds of `echo` calls per round (after a 1 s warm-up), all connections open.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Calls in flight at once during those seconds (one per worker).
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Connect with StableIO (`Client::builder().connect_stable`).
    #[arg(long, conflicts_with = "nat")]
    pub stable: bool,
    /// Churn forwarded TCP connections through XNat instead, to an echo service in this
    /// process; the nat server's and the agent's memory are measured.
    #[arg(long)]
    pub nat: bool,
    /// Stop (with an error) after this many seconds whatever happens.
    #[arg(long, default_value_t = 900)]
    pub time_limit: u64,
}

impl ChurnArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.rounds > 0, "--rounds must be at least 1");
        anyhow::ensure!(self.connections > 0, "--connections must be at least 1");
        anyhow::ensure!(self.workers > 0, "--workers must be at least 1");
        anyhow::ensure!(
            self.seconds > 0.0 && self.seconds.is_finite(),
            "--seconds must be positive"
        );
        Ok(())
    }
}

/// One round's figures.
pub struct Round {
    /// Seconds to open every connection.
    pub open_seconds: f64,
    /// `echo` calls per second during the call phase.
    pub calls_per_second: f64,
    /// Their p99 latency, microseconds.
    pub p99_us: u64,
    /// Connections the server still held after closing (plain and StableIO only).
    pub left_open: Option<u64>,
    /// VmRSS (KiB) of each measured process with the connections open.
    pub rss_open: Vec<u64>,
    /// VmRSS (KiB) of each measured process after closing them.
    pub rss_closed: Vec<u64>,
}

/// Runs `zs-bench churn`.
pub async fn run(args: ChurnArgs) -> anyhow::Result<()> {
    args.validate()?;
    let zs = find_zs(args.zs.as_ref())?;
    // This process holds every client end (and, with --nat, every echo service end); the
    // server child inherits the raised soft limit (and `zs serve` raises its own to `max_connections`).
    let per_connection = if args.nat { 2 } else { 1 };
    let connections = raise_fd_limit(args.connections, per_connection)?;
    let limit = Duration::from_secs(args.time_limit);
    if args.nat {
        return crate::process::bounded("churn", limit, |work| {
            crate::churn_nat::run(zs, work, args, connections)
        })
        .await;
    }
    crate::process::bounded("churn", limit, |work| churn_zs(zs, work, args, connections)).await
}

async fn churn_zs(
    zs: PathBuf,
    work: PathBuf,
    args: ChurnArgs,
    connections: usize,
) -> anyhow::Result<()> {
    let kind = if args.stable {
        Kind::Stable
    } else {
        Kind::Plain
    };
    let mut server = ServeChild::start(&zs, &work, connections + 64).await?;
    println!(
        "zs-bench churn: {} round(s) of {connections} {} connections to `zs serve` ({}, pid {}), \
         one echo each, {} s of echo calls on random connections ({} at once), all closed; \
         server VmRSS",
        args.rounds,
        if args.stable { "StableIO" } else { "zserver" },
        zs.display(),
        server.pid(),
        args.seconds,
        args.workers,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kib()?;
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let started = Instant::now();
        let clients = fleet::open(&server.addr, connections, kind, true).await?;
        let open_seconds = started.elapsed().as_secs_f64();
        let calls = fleet::random_calls(&clients, args.workers, args.seconds).await?;
        let rss_open = server.rss_kib()?;
        let late = fleet::close(clients).await;
        let left_open = server.wait_drained(Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_closed = server.rss_kib()?;
        let result = Round {
            open_seconds,
            calls_per_second: calls.rate(),
            p99_us: calls.latency.value_at_quantile(0.99),
            left_open: Some(left_open),
            rss_open: vec![rss_open],
            rss_closed: vec![rss_closed],
        };
        print_round(round, &result, &["server"]);
        if late > 0 {
            println!("  note: {late} connection(s) did not close within 10 s");
        }
        rounds.push(result);
    }
    server.stop().await;
    print_table(&["server"], &[before], &rounds);
    Ok(())
}

/// A progress line for one round.
pub fn print_round(round: usize, result: &Round, names: &[&str]) {
    let rss: Vec<String> = names
        .iter()
        .zip(result.rss_open.iter().zip(&result.rss_closed))
        .map(|(name, (open, closed))| format!("{name} {open} -> {closed} KiB"))
        .collect();
    let left = result.left_open.map_or_else(String::new, |left| {
        format!(", {left} left open on the server")
    });
    println!(
        "round {round}: opened in {:.1} s, {:.0} calls/s (p99 {} us){left}; RSS open -> closed: {}",
        result.open_seconds,
        result.calls_per_second,
        result.p99_us,
        rss.join(", "),
    );
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The RSS-per-round table (MiB) for the processes `names`, and each one's growth.
pub fn print_table(names: &[&str], before: &[u64], rounds: &[Round]) {
    println!();
    let mut header = vec!["round".to_owned()];
    for name in names {
        header.push(format!("{name} RSS open, MiB"));
        header.push(format!("{name} RSS closed, MiB"));
    }
    header.extend([
        "open, s".to_owned(),
        "echo calls/s".to_owned(),
        "p99, ms".to_owned(),
    ]);
    if rounds.iter().any(|round| round.left_open.is_some()) {
        header.push("left open".to_owned());
    }
    println!("| {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len() - 1));
    let mut start = vec!["before".to_owned()];
    for kib in before {
        start.extend(["–".to_owned(), mib(*kib)]);
    }
    start.extend(std::iter::repeat_n("–".to_owned(), 3));
    if rounds.iter().any(|round| round.left_open.is_some()) {
        start.push("–".to_owned());
    }
    println!("| {} |", start.join(" | "));
    for (index, round) in rounds.iter().enumerate() {
        let mut row = vec![(index + 1).to_string()];
        for (open, closed) in round.rss_open.iter().zip(&round.rss_closed) {
            row.extend([mib(*open), mib(*closed)]);
        }
        row.extend([
            format!("{:.1}", round.open_seconds),
            format!("{:.0}", round.calls_per_second),
            format!("{:.2}", round.p99_us as f64 / 1000.0),
        ]);
        if let Some(left) = round.left_open {
            row.push(left.to_string());
        }
        println!("| {} |", row.join(" | "));
    }
    println!();
    for (index, name) in names.iter().enumerate() {
        let closed: Vec<u64> = rounds.iter().map(|round| round.rss_closed[index]).collect();
        let (first, last) = (closed[0], closed[closed.len() - 1]);
        let per_round = if closed.len() > 1 {
            (last as f64 - first as f64) / (closed.len() - 1) as f64 / 1024.0
        } else {
            0.0
        };
        println!(
            "{name}: RSS before {} MiB, after round 1 {} MiB, after round {} {} MiB: {:+.1} MiB per \
             round after the first",
            mib(before[index]),
            mib(first),
            closed.len(),
            mib(last),
            per_round,
        );
    }
}
