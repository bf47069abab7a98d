//! `zs-bench`: zserver measured against baselines and peers on loopback, each run bounded in
//! time, the peer measured in the same run: raw TCP (`rpc`, `stream`, `mux`), yamux (`mux`),
//! rathole (`nat`), rustls (`handshake`), SQLite and raw redb (`db`, the ZDB store), and a
//! server's memory after connection churn and with many idle connections (`churn`, `idle`).
//! The production `zs` binary keeps only the load against a user's own server
//! (`zs bench rpc|stream --connect`), whose code this binary shares.

// A binary exports nothing; `pub` inside it only marks what other modules use.
#![allow(unreachable_pub)]

// The load generators of `zs bench`, compiled into this binary too (one copy of the code).
#[path = "../../zs-cli/src/bench/mod.rs"]
mod load;

mod accounts;
mod churn;
mod churn_nat;
mod cluster;
mod crypto;
mod db;
mod db_net;
mod dispatch;
mod entry_pool;
mod fleet;
mod handshake;
mod idle;
mod metrics_cost;
mod mux;
mod nat;
mod process;
mod rpc;
mod rpc_tarpc;
mod serve_child;
mod soak;
mod stream;
mod tls;

use clap::{Parser, Subcommand};

/// zserver against baselines and peers, on loopback.
#[derive(Debug, Parser)]
#[command(name = "zs-bench", version, about)]
struct Cli {
    /// Log filter (also from RUST_LOG), e.g. `warn`, `zs=debug`.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Console `echo` calls on an embedded server: requests/s and latency, with a raw TCP
    /// echo baseline.
    Rpc(rpc::RpcArgs),
    /// Record-layer throughput of every cipher suite on one core.
    Crypto(crypto::CryptoArgs),
    /// BigStream throughput and echo latency during it, with a raw TCP transfer baseline.
    Stream(stream::StreamArgs),
    /// p2pVM throughput with 1 and many virtual streams against raw TCP and yamux, and the
    /// cost of many open streams.
    Mux(mux::MuxArgs),
    /// XNat against a direct connection and rathole: throughput, HTTP requests/s, memory.
    Nat(nat::NatBenchArgs),
    /// Connections set up per second: zserver (Noise XX) against rustls (TLS 1.3).
    Handshake(handshake::HandshakeArgs),
    /// A server's memory after rounds of connection churn (`zs serve`, StableIO or XNat).
    Churn(churn::ChurnArgs),
    /// A server's memory with many idle connections, and call latency among them.
    Idle(idle::IdleArgs),
    /// A long run: calls among many held connections while others churn; RSS sampled.
    Soak(soak::SoakArgs),
    /// ZDB over the network: fast batch post and query results from a second process.
    DbNet(db_net::DbNetArgs),
    /// Accounts: logins per second (Argon2id) and the cost of a login-gated command.
    Accounts(accounts::AccountsArgs),
    /// What counting calls for `/metrics` costs: `zs bench rpc` against a server with
    /// metrics on (and scraped) and one with them off, interleaved.
    Metrics(metrics_cost::MetricsArgs),
    /// The dispatch registry: lookups per second and removal of a silent server.
    Dispatch(dispatch::DispatchArgs),
    /// StableIO switch-over between entries of a pool when one is cut (network namespaces;
    /// needs root).
    EntryPool(entry_pool::EntryPoolArgs),
    /// The decentralized cluster: push latency to a user on the same node and across nodes.
    Cluster(cluster::ClusterArgs),
    /// The ZDB store against SQLite and raw redb: batch insert, gets, indexed lookup,
    /// filtered scan and group-by aggregation.
    Db(db::DbArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Rpc(args) => rpc::run(args).await,
            Command::Crypto(args) => crypto::run(&args),
            Command::Stream(args) => stream::run(args).await,
            Command::Mux(args) => mux::run(args).await,
            Command::Nat(args) => nat::run(args).await,
            Command::Handshake(args) => handshake::run(args).await,
            Command::Churn(args) => churn::run(args).await,
            Command::Idle(args) => idle::run(args).await,
            Command::Soak(args) => soak::run(args).await,
            Command::DbNet(args) => db_net::run(args).await,
            Command::Accounts(args) => accounts::run(args).await,
            Command::Metrics(args) => metrics_cost::run(args).await,
            Command::Dispatch(args) => dispatch::run(args).await,
            Command::EntryPool(args) => entry_pool::run(args).await,
            Command::Cluster(args) => cluster::run(args).await,
            Command::Db(args) => db::run(&args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs every worker at once, each calling its closure again and again until `seconds` have
/// passed; the completed calls per second over all workers. The first error ends the run.
pub async fn calls_per_second<F, Fut>(
    seconds: std::time::Duration,
    workers: impl IntoIterator<Item = F>,
) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    use std::sync::atomic::{AtomicU64, Ordering};
    let done = std::sync::Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut call in workers {
        let done = done.clone();
        tasks.spawn(async move {
            while started.elapsed() < seconds {
                call().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}
