//! `zs bench`: the dispatcher, and `zs bench rpc` (request rate and latency of `echo` calls,
//! against a raw TCP echo baseline measured in the same run with the same connections,
//! requests in flight and payload) and `zs bench crypto`. `zs bench stream` lives in
//! [`super::bench_stream`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{ArgAction, Args, Subcommand};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zs::{Client, Server};

/// Arguments of `zs bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Console `echo` calls: requests/s and latency, with a raw TCP echo baseline.
    Rpc(RpcArgs),
    /// Record-layer throughput of every cipher suite on one core.
    Crypto(CryptoArgs),
    /// BigStream throughput and echo latency during it, with a raw TCP transfer baseline.
    Stream(super::bench_stream::StreamArgs),
    /// p2pVM throughput with 1 and many virtual streams, and the cost of many open streams.
    Mux(super::bench_mux::MuxArgs),
    /// XNat against a direct connection and rathole: throughput, HTTP requests/s, memory.
    Nat(super::bench_nat::NatBenchArgs),
}

/// Arguments of `zs bench crypto`.
#[derive(Debug, Args)]
pub struct CryptoArgs {
    /// Plaintext bytes per record.
    #[arg(long, default_value_t = 16 * 1024)]
    pub record: usize,
    /// Seconds per suite and direction.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Only these suites (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub suite: Vec<String>,
}

/// Arguments of `zs bench rpc`.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// Server to call; without it an embedded server runs in this process.
    #[arg(long)]
    pub connect: Option<String>,
    /// Connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Payload bytes per request (and reply).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Measured seconds per run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Also run the raw TCP echo baseline (same connections, in-flight and payload) and
    /// print the ratio.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub baseline: bool,
    /// Cipher suite for the zserver connections (`plain` allowed here); default: the
    /// normal negotiation (aes-128-gcm).
    #[arg(long)]
    pub suite: Option<String>,
    /// Connect the zserver clients with StableIO (sequence numbers, acks and a resend
    /// buffer under the session) to measure its cost.
    #[arg(long)]
    pub stable: bool,
}

/// Runs the chosen benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.kind {
        BenchKind::Rpc(args) => rpc(args).await,
        BenchKind::Crypto(args) => crypto(&args),
        BenchKind::Stream(args) => super::bench_stream::run(args).await,
        BenchKind::Mux(args) => super::bench_mux::run(args).await,
        BenchKind::Nat(args) => super::bench_nat::run(args).await,
    }
}

/// The `--suite` of a benchmark: `None` for the normal negotiation.
pub(super) fn parse_bench_suite(name: Option<&str>) -> anyhow::Result<Option<zs::Suite>> {
    name.map(|name| crate::config_file::parse_suites(&[name.to_owned()]).map(|suites| suites[0]))
        .transpose()
}

/// Offers only `suite` (allowing it even when it is `plain`); `None` leaves the defaults.
pub(super) fn apply_suite(security: &mut zs::Security, suite: Option<zs::Suite>) {
    if let Some(suite) = suite {
        security.suites(vec![suite]).allow_plain(suite.is_plain());
    }
}

/// What one run measured.
struct Measurement {
    requests: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Measurement {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, label: &str) {
        println!(
            "{label}: {} requests in {:.2} s = {:.0} req/s; latency p50 {} us, p99 {} us, max {} us",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.latency.value_at_quantile(0.50),
            self.latency.value_at_quantile(0.99),
            self.latency.max(),
        );
    }
}

pub(super) fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

/// Shared clock of one run: requests that complete during the warm-up are not counted.
struct Window {
    measuring: AtomicBool,
    stopping: AtomicBool,
}

async fn run_window<F, Fut>(seconds: f64, workers: usize, worker: F) -> anyhow::Result<Measurement>
where
    F: Fn(usize, Arc<Window>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u64, Histogram<u64>)>> + Send + 'static,
{
    let window = Arc::new(Window {
        measuring: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..workers {
        tasks.spawn(worker(index, window.clone()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    window.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    window.stopping.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut measurement = Measurement {
        requests: 0,
        elapsed,
        latency: new_histogram()?,
    };
    while let Some(result) = tasks.join_next().await {
        let (requests, latency) = result??;
        measurement.requests += requests;
        measurement.latency.add(latency)?;
    }
    Ok(measurement)
}

async fn rpc(args: RpcArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.connections > 0 && args.in_flight > 0,
        "connections and in-flight must be at least 1"
    );
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds.is_finite(),
        "--seconds must be positive"
    );
    let suite = parse_bench_suite(args.suite.as_deref())?;
    let (addr, embedded) = match &args.connect {
        Some(addr) => (addr.clone(), None),
        None => {
            let mut server = Server::bind("127.0.0.1:0").await?;
            server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
            server.config_mut().max_connections(args.connections + 16);
            apply_suite(server.config_mut().security(), suite);
            let addr = server.local_addr()?.to_string();
            (addr, Some(server.spawn()))
        }
    };
    println!(
        "zs bench rpc: {}{} connections x {} in flight, {} byte payload, {} s per run, server {}{}",
        if args.stable { "StableIO, " } else { "" },
        args.connections,
        args.in_flight,
        args.payload,
        args.seconds,
        addr,
        if embedded.is_some() {
            " (embedded)"
        } else {
            ""
        }
    );

    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut builder = Client::builder();
        apply_suite(builder.config_mut().security(), suite);
        let client = if args.stable {
            builder.connect_stable(&addr).await
        } else {
            builder.connect(&addr).await
        };
        clients.push(Arc::new(
            client.with_context(|| format!("cannot connect to {addr}"))?,
        ));
    }
    let payload: Arc<str> = Arc::from("x".repeat(args.payload));
    let in_flight = args.in_flight;
    let rpc = run_window(
        args.seconds,
        args.connections * in_flight,
        |index, window| {
            let client = clients[index % clients.len()].clone();
            let payload = payload.clone();
            async move {
                let mut latency = new_histogram()?;
                let mut requests = 0;
                while !window.stopping.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let reply = client.call_console("echo", &payload).await?;
                    anyhow::ensure!(
                        reply.len() == payload.len(),
                        "echo returned {} bytes",
                        reply.len()
                    );
                    if window.measuring.load(Ordering::Relaxed)
                        && !window.stopping.load(Ordering::Relaxed)
                    {
                        requests += 1;
                        latency.saturating_record(micros(started.elapsed()));
                    }
                }
                Ok((requests, latency))
            }
        },
    )
    .await?;
    drop(clients);
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    rpc.print("rpc");

    let baseline = if args.baseline {
        let baseline = raw_echo(&args).await?;
        baseline.print("baseline (raw TCP echo)");
        Some(baseline)
    } else {
        None
    };
    let (baseline_rate, ratio) = match &baseline {
        Some(baseline) => (
            format!("{:.0}", baseline.rate()),
            format!("{:.2}", rpc.rate() / baseline.rate()),
        ),
        None => ("n/a".into(), "n/a".into()),
    };
    println!(
        "rpc: {:.0} req/s, p50 {} us, p99 {} us, baseline {} req/s, ratio {}",
        rpc.rate(),
        rpc.latency.value_at_quantile(0.50),
        rpc.latency.value_at_quantile(0.99),
        baseline_rate,
        ratio
    );
    Ok(())
}

pub(super) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The baseline: a plain TCP echo server in this process, and per connection `in_flight`
/// requests of `payload` bytes kept outstanding, completed in order as their bytes return.
async fn raw_echo(args: &RpcArgs) -> anyhow::Result<Measurement> {
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
    let payload = args.payload.max(1);
    let in_flight = args.in_flight;
    let mut streams = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        streams.push(std::sync::Mutex::new(Some(stream)));
    }
    let streams = Arc::new(streams);
    let measurement = run_window(args.seconds, args.connections, |index, window| {
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
        while !writer_window.stopping.load(Ordering::Relaxed) {
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
    while !window.stopping.load(Ordering::Relaxed) {
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
            if window.measuring.load(Ordering::Relaxed) && !window.stopping.load(Ordering::Relaxed)
            {
                requests += 1;
                latency.saturating_record(micros(started.elapsed()));
            }
            permits.add_permits(1);
        }
    }
    writer_task.abort();
    Ok((requests, latency))
}

/// Seals and opens records of every suite for a fixed time on this thread; prints MB/s.
fn crypto(args: &CryptoArgs) -> anyhow::Result<()> {
    use zs_wire::crypto::record::{Opener, Sealer, Suite};
    anyhow::ensure!(args.record > 0, "--record must be at least 1");
    let suites = if args.suite.is_empty() {
        Suite::ALL.to_vec()
    } else {
        crate::config_file::parse_suites(&args.suite)?
    };
    let duration = Duration::from_secs_f64(args.seconds.max(0.05));
    println!(
        "zs bench crypto: {} byte records, {:.1} s per suite and direction, one thread",
        args.record,
        duration.as_secs_f64()
    );
    let plaintext = vec![0x5au8; args.record];
    let secret = [7u8; 32];
    for suite in suites {
        // Seal for the measured time, keeping one batch of records to open afterwards.
        let mut sealer = Sealer::new(suite, secret, u64::MAX)?;
        let mut records = bytes::BytesMut::new();
        let mut sealed = 0u64;
        let started = Instant::now();
        while started.elapsed() < duration {
            records.clear();
            for _ in 0..16 {
                sealer.seal(&plaintext, &mut records)?;
            }
            sealed += 16 * plaintext.len() as u64;
        }
        let seal_rate = sealed as f64 / started.elapsed().as_secs_f64() / 1e6;
        // Open: a fresh opener per batch, fed the first batch sealed under the same secret.
        let mut batch_sealer = Sealer::new(suite, secret, u64::MAX)?;
        let mut batch = bytes::BytesMut::new();
        for _ in 0..16 {
            batch_sealer.seal(&plaintext, &mut batch)?;
        }
        let mut opened = 0u64;
        let mut output = bytes::BytesMut::with_capacity(17 * plaintext.len());
        let started = Instant::now();
        while started.elapsed() < duration {
            let mut opener = Opener::new(suite, secret)?;
            let mut input = batch.clone();
            output.clear();
            opener.open(&mut input, &mut output)?;
            anyhow::ensure!(
                output.len() == 16 * plaintext.len(),
                "{suite}: opened {} bytes",
                output.len()
            );
            opened += output.len() as u64;
        }
        let open_rate = opened as f64 / started.elapsed().as_secs_f64() / 1e6;
        println!(
            "crypto: {:<18} seal {:>8.0} MB/s, open {:>8.0} MB/s",
            suite.name(),
            seal_rate,
            open_rate
        );
    }
    Ok(())
}
