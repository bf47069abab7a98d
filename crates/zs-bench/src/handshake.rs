//! `zs-bench handshake`: connections set up per second, client and server in this process on
//! loopback, zserver against tokio-rustls in interleaved rounds.
//!
//! - zserver: `zs::Client::connect` to a `zs::Server` (TCP, the Noise XX handshake with the
//!   default suite, then the server's preamble), then the client is dropped.
//! - rustls: TCP, a TLS 1.3 handshake (X25519, AES-128-GCM, a self-signed ECDSA P-256
//!   certificate made at start with rcgen, the client verifying it), then one byte from the
//!   server that the client reads (what zserver's preamble is: the connection works both
//!   ways), then the client drops the stream. Resumption is off on both ends: every
//!   connection is a full handshake, as every zserver one is.
//!
//! `--concurrency` workers each set up and drop connections in a loop; the count in the
//! measured window (after a 1 s warm-up) gives the rate, and each set-up's time the latency.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use crate::load::{Measurement, micros, new_histogram, run_window};

/// Arguments of `zs-bench handshake`.
#[derive(Debug, Args)]
pub struct HandshakeArgs {
    /// Connections being set up at once (workers), the same for both.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measured seconds per run (after a 1 s warm-up).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Rounds, each zserver then rustls; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Runs `zs-bench handshake`.
pub async fn run(args: HandshakeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds.is_finite(),
        "--seconds must be positive"
    );
    let zs_server = zs_server().await?;
    let zs_addr = zs_server.local_addr().to_string();
    let (tls_addr, connector, tls_server) = tls_server().await?;
    println!(
        "zs-bench handshake: {} at once, {} s per run, {} round(s); zserver {} (Noise XX, {}) \
         + preamble vs rustls 0.23 (TLS 1.3, X25519, AES-128-GCM, ECDSA P-256, ring) + 1 byte; \
         full handshakes, client and server in this process",
        args.concurrency,
        args.seconds,
        args.rounds,
        env!("CARGO_PKG_VERSION"),
        zs::Suite::DEFAULT_SUITES[0].name(),
    );
    let mut zs_rates = Vec::new();
    let mut tls_rates = Vec::new();
    for round in 1..=args.rounds {
        let zs = measure_zs(&zs_addr, &args).await?;
        print_run(&format!("round {round}: zserver"), &zs);
        zs_rates.push(zs.rate());
        let tls = measure_tls(tls_addr, &connector, &args).await?;
        print_run(&format!("round {round}: rustls"), &tls);
        tls_rates.push(tls.rate());
    }
    zs_server.shutdown().await;
    tls_server.abort();
    let (zs, tls) = (crate::median(&zs_rates), crate::median(&tls_rates));
    println!(
        "handshake: zserver {zs:.0} conn/s, rustls {tls:.0} conn/s, ratio zs/rustls {:.2} \
         (medians of {} rounds)",
        zs / tls,
        args.rounds
    );
    Ok(())
}

/// One run's line: connections set up, the rate, and the set-up time percentiles.
fn print_run(label: &str, run: &Measurement) {
    println!(
        "{label}: {} connections in {:.2} s = {:.0} conn/s; set-up time p50 {} us, p99 {} us, \
         max {} us",
        run.requests,
        run.elapsed.as_secs_f64(),
        run.rate(),
        run.latency.value_at_quantile(0.50),
        run.latency.value_at_quantile(0.99),
        run.latency.max(),
    );
}

async fn zs_server() -> anyhow::Result<zs::ServerHandle> {
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    // Dropped clients close asynchronously; room for the ones still closing.
    server.config_mut().max_connections(1 << 20);
    Ok(server.spawn())
}

async fn measure_zs(addr: &str, args: &HandshakeArgs) -> anyhow::Result<Measurement> {
    let addr: Arc<str> = Arc::from(addr);
    run_window(args.seconds, args.concurrency, |_, window| {
        let addr = addr.clone();
        async move {
            let mut latency = new_histogram()?;
            let mut count = 0;
            while !window.stopping() {
                let started = Instant::now();
                let client = zs::Client::connect(&*addr)
                    .await
                    .with_context(|| format!("cannot connect to {addr}"))?;
                drop(client);
                if window.counts() {
                    count += 1;
                    latency.saturating_record(micros(started.elapsed()));
                }
            }
            Ok((count, latency))
        }
    })
    .await
}

/// The TLS server: on every accepted connection, the handshake then one byte, then it reads
/// until the client goes away.
async fn tls_server() -> anyhow::Result<(
    std::net::SocketAddr,
    TlsConnector,
    tokio::task::JoinHandle<()>,
)> {
    let (acceptor, connector) = crate::tls::configs(crate::tls::Provider::Ring)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if tls.write_all(b"z").await.is_err() || tls.flush().await.is_err() {
                    return;
                }
                let mut buffer = [0u8; 64];
                while matches!(tls.read(&mut buffer).await, Ok(read) if read > 0) {}
            });
        }
    });
    Ok((addr, connector, task))
}

async fn measure_tls(
    addr: std::net::SocketAddr,
    connector: &TlsConnector,
    args: &HandshakeArgs,
) -> anyhow::Result<Measurement> {
    let name = ServerName::try_from("localhost")?;
    run_window(args.seconds, args.concurrency, |_, window| {
        let connector = connector.clone();
        let name = name.clone();
        async move {
            let mut latency = new_histogram()?;
            let mut count = 0;
            while !window.stopping() {
                let started = Instant::now();
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut tls = connector
                    .connect(name.clone(), stream)
                    .await
                    .context("TLS handshake failed")?;
                let mut byte = [0u8; 1];
                tls.read_exact(&mut byte).await?;
                drop(tls);
                if window.counts() {
                    count += 1;
                    latency.saturating_record(micros(started.elapsed()));
                }
            }
            Ok((count, latency))
        }
    })
    .await
}
