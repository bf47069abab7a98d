//! `zs bench`: load against a user's own server — `echo` call rate and latency (`rpc`) and
//! BigStream throughput with call latency alongside (`stream`). The comparisons with
//! baselines and other libraries live in the separate `zs-bench` binary.

use clap::{Args, Subcommand};

use crate::bench::rpc::RpcLoad;
use crate::bench::stream::{StreamLoad, make_pattern, parse_size};

/// Arguments of `zs bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Console `echo` calls: requests/s and latency.
    Rpc(RpcArgs),
    /// BigStream throughput to `bench.sink` and echo latency during it.
    Stream(StreamArgs),
}

/// Arguments of `zs bench rpc`.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// Server to call (it needs a console `echo`, as `zs serve` has).
    #[arg(long)]
    pub connect: String,
    #[command(flatten)]
    pub load: RpcLoad,
}

/// Arguments of `zs bench stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Server to send to (it needs a BigStream handler `bench.sink` and a console `echo`,
    /// as `zs serve` has).
    #[arg(long)]
    pub connect: String,
    #[command(flatten)]
    pub load: StreamLoad,
}

/// Runs the chosen benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.kind {
        BenchKind::Rpc(args) => {
            println!(
                "zs bench rpc: {}, server {}",
                args.load.describe(),
                args.connect
            );
            let rpc = crate::bench::rpc::measure(&args.connect, &args.load).await?;
            rpc.print("rpc");
            Ok(())
        }
        BenchKind::Stream(args) => {
            let size = parse_size(&args.load.size)?;
            let suite = crate::bench::parse_suite(args.load.suite.as_deref())?;
            println!(
                "zs bench stream: {}",
                crate::bench::stream::describe(size, &args.connect)
            );
            let stream =
                crate::bench::stream::measure(&args.connect, size, suite, &make_pattern()).await?;
            println!("suite {}", stream.suite);
            stream.print_transfer();
            stream.print_echo();
            Ok(())
        }
    }
}
