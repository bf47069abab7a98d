//! `zs-bench churn --nat`: the same rounds through XNat. A `zs nat server` and a `zs nat
//! agent` (children) forward one mapping to an echo service in this process; each round opens
//! N forwarded TCP connections (one echoed byte each), echoes 64 bytes on random ones for a
//! few seconds, closes them all; the server's and the agent's VmRSS are read with the
//! connections open and after they are closed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::churn::{ChurnArgs, Round, print_round, print_table};
use crate::fleet::XorShift;
use crate::load::{micros, new_histogram, run_window};
use crate::nat::services::{bind_listener, echo_round_trip, serve_echo};
use crate::process::{Process, READY_TIMEOUT, free_port, loopback, quoted};

/// Forwarded connections opened at once.
const OPEN_BATCH: usize = 256;
/// Bytes each echo call sends (and reads back).
const PAYLOAD: usize = 64;

/// Runs the XNat rounds.
pub async fn run(
    zs: PathBuf,
    work: PathBuf,
    args: ChurnArgs,
    connections: usize,
) -> anyhow::Result<()> {
    let listener = bind_listener(loopback(0))?;
    let echo = listener.local_addr()?;
    tokio::spawn(serve_echo(listener));
    let (mut processes, public) = start(&zs, &work, echo, connections).await?;
    println!(
        "zs-bench churn --nat: {} round(s) of {connections} TCP connections through `zs nat \
         server` (pid {}) + `zs nat agent` (pid {}) ({}) to an echo service, one echoed byte \
         each, {} s of {PAYLOAD}-byte echoes on random connections ({} at once), all closed; \
         VmRSS of both",
        args.rounds,
        processes[0].pid,
        processes[1].pid,
        zs.display(),
        args.seconds,
        args.workers,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss(&mut processes)?;
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let started = Instant::now();
        let streams = open(public, connections).await?;
        let open_seconds = started.elapsed().as_secs_f64();
        let streams: Arc<[Mutex<TcpStream>]> = streams.into_iter().map(Mutex::new).collect();
        let calls = run_window(args.seconds, args.workers, |index, window| {
            let streams = streams.clone();
            async move {
                let mut random = XorShift::new(index as u64 + 1);
                let mut latency = new_histogram()?;
                let mut calls = 0;
                let request = [b'e'; PAYLOAD];
                let mut reply = [0u8; PAYLOAD];
                while !window.stopping() {
                    let mut stream = streams[random.below(streams.len())].lock().await;
                    let started = Instant::now();
                    tokio::time::timeout(Duration::from_secs(30), async {
                        stream.write_all(&request).await?;
                        stream.read_exact(&mut reply).await
                    })
                    .await
                    .context("a forwarded echo timed out")??;
                    anyhow::ensure!(reply == request, "the echo returned other bytes");
                    if window.counts() {
                        calls += 1;
                        latency.saturating_record(micros(started.elapsed()));
                    }
                }
                Ok((calls, latency))
            }
        })
        .await?;
        let rss_open = rss(&mut processes)?;
        drop(streams);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_closed = rss(&mut processes)?;
        let result = Round {
            open_seconds,
            calls_per_second: calls.rate(),
            p99_us: calls.latency.value_at_quantile(0.99),
            left_open: None,
            rss_open,
            rss_closed,
        };
        print_round(round, &result, &NAMES);
        rounds.push(result);
    }
    for process in &mut processes {
        process.kill().await;
    }
    print_table(&NAMES, &before, &rounds);
    Ok(())
}

/// The measured processes, in the order of `rss`.
const NAMES: [&str; 2] = ["nat server", "agent"];

fn rss(processes: &mut [Process]) -> anyhow::Result<Vec<u64>> {
    processes
        .iter_mut()
        .map(|process| {
            process.check_alive()?;
            process.rss_kib()
        })
        .collect()
}

/// Starts the server and the agent with one mapping `echo` to `echo`, waits until a byte
/// comes back through it; returns them and the public address.
async fn start(
    zs: &Path,
    work: &Path,
    echo: SocketAddr,
    connections: usize,
) -> anyhow::Result<(Vec<Process>, SocketAddr)> {
    let link = loopback(free_port()?);
    let public = loopback(free_port()?);
    let token = quoted("churn-echo-token");
    let server = format!(
        "[nat.server]\nlisten = {}\nkey_file = {}\nstats_interval_secs = 0\n\n\
         [nat.server.mappings.echo]\npublic = {}\ntoken = {token}\nmax_connections = {}\n",
        quoted(&link.to_string()),
        quoted(&work.join("zs-nat-server.key").to_string_lossy()),
        quoted(&public.to_string()),
        connections + 64,
    );
    let agent = format!(
        "[nat.agent]\nserver = {}\n\n[nat.agent.mappings.echo]\nlocal = {}\ntoken = {token}\n",
        quoted(&link.to_string()),
        quoted(&echo.to_string()),
    );
    let mut processes = Vec::new();
    for (role, text) in [("server", server), ("agent", agent)] {
        let config = work.join(format!("zs-nat-{role}.toml"));
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let mut command = Command::new(zs);
        command
            .env_remove("RUST_LOG")
            .args(["--log", "warn", "nat", role, "--config"])
            .arg(&config);
        processes.push(Process::spawn(
            &format!("zs nat {role}"),
            command,
            &work.join(format!("zs-nat-{role}.log")),
        )?);
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        for process in &mut processes {
            process.check_alive()?;
        }
        match echo_round_trip(public, Duration::from_secs(2)).await {
            Ok(_) => break,
            Err(error) if Instant::now() >= deadline => {
                return Err(error.context("XNat did not start forwarding in time"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok((processes, public))
}

/// Opens `count` forwarded connections, `OPEN_BATCH` at a time, each checked with a byte.
async fn open(public: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let batch = OPEN_BATCH.min(count - streams.len());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            tasks.spawn(echo_round_trip(public, Duration::from_secs(20)));
        }
        while let Some(joined) = tasks.join_next().await {
            let stream = joined?.with_context(|| {
                format!(
                    "forwarded connection {} of {count} failed",
                    streams.len() + 1
                )
            })?;
            streams.push(stream);
        }
    }
    Ok(streams)
}
