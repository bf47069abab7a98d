//! `zs-bench rpc`: request rate and latency of `echo` calls on a server embedded in this
//! process, against a raw TCP echo baseline and tarpc (`rpc_tarpc.rs`) with the same
//! connections, requests in flight and payload, in interleaved rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{ArgAction, Args};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zs::Server;

use crate::load::rpc::RpcLoad;
use crate::load::{Measurement, Window, apply_suite, micros, new_histogram, run_window};

/// Arguments of `zs-bench rpc`.
#[derive(Debug, Args)]
pub struct RpcArgs {
    #[command(flatten)]
    pub load: RpcLoad,
    /// Also run the raw TCP echo baseline (same connections, in-flight and payload) and
    /// print the ratio.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub baseline: bool,
    /// Also run tarpc (bincode over TCP, unencrypted) with the same load and print
    /// zserver/tarpc.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub tarpc: bool,
    /// Rounds, each zserver then the baseline; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
}

/// Runs `zs-bench rpc`.
pub async fn run(args: RpcArgs) -> anyhow::Result<()> {
    let suite = args.load.validate()?;
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let mut server = Server::bind("127.0.0.1:0").await?;
    server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    server
        .config_mut()
        .max_connections(args.load.connections + 16);
    apply_suite(server.config_mut().security(), suite);
    let addr = server.local_addr()?.to_string();
    let server = server.spawn();
    println!(
        "zs-bench rpc: {}, embedded server {addr}, {} round(s)",
        args.load.describe(),
        args.rounds
    );
    let mut rpc_rates = Vec::new();
    let mut baseline_rates = Vec::new();
    let mut tarpc_rates = Vec::new();
    let mut last = None;
    for round in 1..=args.rounds {
        let label = |what: &str| {
            if args.rounds > 1 {
                format!("round {round}: {what}")
            } else {
                what.to_owned()
            }
        };
        let rpc = crate::load::rpc::measure(&addr, &args.load).await?;
        rpc.print(&label("rpc"));
        rpc_rates.push(rpc.rate());
        if args.baseline {
            let baseline = raw_echo(&args.load).await?;
            baseline.print(&label("baseline (raw TCP echo)"));
            baseline_rates.push(baseline.rate());
        }
        if args.tarpc {
            let tarpc = crate::rpc_tarpc::measure(&args.load).await?;
            tarpc.print(&label("tarpc"));
            tarpc_rates.push(tarpc.rate());
        }
        last = Some(rpc);
    }
    server.shutdown().await;
    let rpc_rate = crate::median(&rpc_rates);
    let (baseline_rate, ratio) = if baseline_rates.is_empty() {
        ("n/a".to_owned(), "n/a".to_owned())
    } else {
        let baseline = crate::median(&baseline_rates);
        (
            format!("{baseline:.0}"),
            format!("{:.2}", rpc_rate / baseline),
        )
    };
    let latency = last.context("no round ran")?.latency;
    println!(
        "rpc: {rpc_rate:.0} req/s, p50 {} us, p99 {} us (last round), baseline {baseline_rate} \
         req/s, ratio {ratio}{}",
        latency.value_at_quantile(0.50),
        latency.value_at_quantile(0.99),
        if args.rounds > 1 { " (medians)" } else { "" },
    );
    if !tarpc_rates.is_empty() {
        let tarpc = crate::median(&tarpc_rates);
        println!(
            "tarpc: {tarpc:.0} req/s; zserver/tarpc {:.2}, tarpc/raw {}",
            rpc_rate / tarpc,
            if baseline_rates.is_empty() {
                "n/a".to_owned()
            } else {
                format!("{:.2}", tarpc / crate::median(&baseline_rates))
            }
        );
    }
    Ok(())
}

/// The baseline: a plain TCP echo server in this process, and per connection `in_flight`
/// requests of `payload` bytes kept outstanding, completed in order as their bytes return.
async fn raw_echo(load: &RpcLoad) -> anyhow::Result<Measurement> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                break;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            if stream.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    let payload = load.payload.max(1);
    let in_flight = load.in_flight;
    let mut streams = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        streams.push(std::sync::Mutex::new(Some(stream)));
    }
    let streams = Arc::new(streams);
    let measurement = run_window(load.seconds, load.connections, |index, window| {
        let streams = streams.clone();
        async move {
            let stream = streams[index]
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .take()
                .context("stream taken twice")?;
            raw_connection(stream, payload, in_flight, window).await
        }
    })
    .await?;
    server.abort();
    Ok(measurement)
}

/// One baseline connection: a writer keeps `in_flight` requests outstanding; the reader
/// completes the oldest each time `payload` bytes have come back.
async fn raw_connection(
    stream: TcpStream,
    payload: usize,
    in_flight: usize,
    window: Arc<Window>,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let (mut reader, mut writer) = stream.into_split();
    let (sent_sender, mut sent) = tokio::sync::mpsc::channel::<Instant>(in_flight);
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let writer_permits = permits.clone();
    let writer_window = window.clone();
    let writer_task = tokio::spawn(async move {
        let request = vec![b'x'; payload];
        while !writer_window.stopping() {
            let Ok(permit) = writer_permits.acquire().await else {
                break;
            };
            permit.forget();
            if sent_sender.send(Instant::now()).await.is_err()
                || writer.write_all(&request).await.is_err()
            {
                break;
            }
        }
    });
    let mut latency = new_histogram()?;
    let mut requests = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut partial = 0usize;
    while !window.stopping() {
        let read = tokio::time::timeout(Duration::from_millis(200), reader.read(&mut buffer)).await;
        let read = match read {
            Ok(Ok(0)) => break,
            Ok(Ok(read)) => read,
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => continue,
        };
        partial += read;
        while partial >= payload {
            partial -= payload;
            let Some(started) = sent.recv().await else {
                break;
            };
            if window.counts() {
                requests += 1;
                latency.saturating_record(micros(started.elapsed()));
            }
            permits.add_permits(1);
        }
    }
    writer_task.abort();
    Ok((requests, latency))
}
