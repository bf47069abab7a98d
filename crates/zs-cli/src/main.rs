//! `zs`: the zserver command line — serve, call, bench.

// A binary exports nothing; `pub` inside it only marks what other modules use.
#![allow(unreachable_pub)]

mod bench;
mod cmd;
mod config_file;

use clap::{Parser, Subcommand};

/// zserver: command RPC, large data and tunnels over one framed, multiplexed connection.
#[derive(Debug, Parser)]
#[command(name = "zs", version, about)]
struct Cli {
    /// Log filter (also from RUST_LOG), e.g. `info`, `zs=debug`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a server with the built-in commands `echo`, `echo_df`, `time` and `stats`.
    Serve(cmd::serve::ServeArgs),
    /// Call a command on a server and print the reply.
    Call(cmd::call::CallArgs),
    /// Upload a file to a server run with `zs serve --files DIR`.
    Put(cmd::files::PutArgs),
    /// Download a file from a server run with `zs serve --files DIR`.
    Get(cmd::files::GetArgs),
    /// Use the ZDB store of a server run with `zs serve --db DIR`.
    Db(cmd::db::DbArgs),
    /// Add, list, disable and remove the users of `zs serve --accounts DIR`.
    User(cmd::user::UserArgs),
    /// Ask a dispatcher (`zs serve --dispatch DIR`) for the servers of a type.
    Dispatch(cmd::dispatch::DispatchArgs),
    /// Measure a server's call rate and stream throughput (comparisons: `zs-bench`).
    Bench(cmd::bench::BenchArgs),
    /// Encrypt or decrypt one 16-byte block (raw ECB) with a named cipher.
    Cipher(cmd::crypto::CipherArgs),
    /// Print the SHA-3 / SHAKE digest of a file or standard input.
    Hash(cmd::crypto::HashArgs),
    /// Write a new server key pair and print its fingerprint.
    Keygen(cmd::keygen::KeygenArgs),
    /// XNat: expose TCP services behind NAT through a public server.
    Nat(cmd::nat::NatArgs),
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
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Call(args) => cmd::call::run(args).await,
            Command::Put(args) => cmd::files::put(args).await,
            Command::Get(args) => cmd::files::get(args).await,
            Command::Db(args) => cmd::db::run(args).await,
            Command::User(args) => cmd::user::run(args),
            Command::Dispatch(args) => cmd::dispatch::run(args).await,
            Command::Bench(args) => cmd::bench::run(args).await,
            Command::Cipher(args) => cmd::crypto::cipher(args),
            Command::Hash(args) => cmd::crypto::hash(args),
            Command::Keygen(args) => cmd::keygen::run(args),
            Command::Nat(args) => cmd::nat::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
