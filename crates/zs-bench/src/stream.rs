//! `zs-bench stream`: BigStream throughput over one connection to a server embedded in this
//! process, small-call latency on that same connection while the transfer runs, a raw TCP
//! loopback transfer of the same size as the baseline and, as the peer, the same bytes over
//! tokio-rustls (TLS 1.3, AES-128-GCM, aws-lc-rs: rustls's default provider), in interleaved
//! rounds.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zs::Server;

use crate::load::apply_suite;
use crate::load::stream::{SINK, StreamLoad, make_pattern, parse_size, rate, sink};

/// Write size of the raw TCP baseline sender (and read size of its receiver).
const RAW_BUFFER: usize = 64 * 1024;

/// Arguments of `zs-bench stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub load: StreamLoad,
    /// Rounds, each the BigStream, the baseline, then rustls; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Also move the same bytes over tokio-rustls (TLS 1.3, AES-128-GCM, aws-lc-rs) and print
    /// zserver/rustls.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub rustls: bool,
}

/// Runs `zs-bench stream`.
pub async fn run(args: StreamArgs) -> anyhow::Result<()> {
    let size = parse_size(&args.load.size)?;
    let suite = crate::load::parse_suite(args.load.suite.as_deref())?;
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let mut server = Server::bind("127.0.0.1:0").await?;
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_big_stream(SINK, |_ctx, stream| sink(stream));
    apply_suite(server.config_mut().security(), suite);
    let addr = server.local_addr()?.to_string();
    let server = server.spawn();
    println!(
        "zs-bench stream: {} (embedded), then a raw TCP loopback baseline ({} KiB writes); \
         {} round(s)",
        crate::load::stream::describe(size, &addr),
        RAW_BUFFER / 1024,
        args.rounds,
    );
    let pattern = make_pattern();
    let tls = if args.rustls {
        Some(crate::tls::configs(crate::tls::Provider::AwsLc)?)
    } else {
        None
    };
    let mut stream_rates = Vec::new();
    let mut baseline_rates = Vec::new();
    let mut rustls_rates = Vec::new();
    for round in 1..=args.rounds {
        if args.rounds > 1 {
            println!("round {round}:");
        }
        let stream = crate::load::stream::measure(&addr, size, suite, &pattern).await?;
        if round == 1 {
            println!("suite {}", stream.suite);
        }
        stream.print_transfer();
        stream_rates.push(stream.rate());
        let baseline_elapsed = raw_transfer(size, &pattern).await?;
        let baseline_rate = rate(size, baseline_elapsed);
        println!(
            "baseline (raw TCP loopback): {size} bytes in {:.2} s = {baseline_rate:.0} MB/s",
            baseline_elapsed.as_secs_f64(),
        );
        baseline_rates.push(baseline_rate);
        if let Some((acceptor, connector)) = &tls {
            let elapsed = rustls_transfer(size, &pattern, acceptor, connector).await?;
            let rustls_rate = rate(size, elapsed);
            println!(
                "rustls (TLS 1.3, AES-128-GCM, {}): {size} bytes in {:.2} s = {rustls_rate:.0} MB/s",
                crate::tls::Provider::AwsLc.name(),
                elapsed.as_secs_f64(),
            );
            rustls_rates.push(rustls_rate);
        }
        stream.print_echo();
    }
    server.shutdown().await;
    let (stream_rate, baseline_rate) =
        (crate::median(&stream_rates), crate::median(&baseline_rates));
    println!(
        "stream: {stream_rate:.0} MB/s, baseline {baseline_rate:.0} MB/s, ratio {:.2}{}",
        stream_rate / baseline_rate,
        if args.rounds > 1 { " (medians)" } else { "" },
    );
    if !rustls_rates.is_empty() {
        let rustls_rate = crate::median(&rustls_rates);
        println!(
            "rustls: {rustls_rate:.0} MB/s, stream/rustls {:.2}, rustls/baseline {:.2}",
            stream_rate / rustls_rate,
            rustls_rate / baseline_rate,
        );
    }
    Ok(())
}

/// Sends `size` bytes of the pattern over one TLS connection in `RAW_BUFFER` writes (rustls
/// cuts them into 16 KiB records) to a receiver that reads and discards; as
/// [`raw_transfer`], the time runs from the first write (after the handshake) until the
/// receiver has read the last byte.
async fn rustls_transfer(
    size: u64,
    pattern: &Bytes,
    acceptor: &tokio_rustls::TlsAcceptor,
    connector: &tokio_rustls::TlsConnector,
) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = acceptor.clone();
    let receiver = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        read_to_end(acceptor.accept(stream).await?).await
    });
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let stream = connector
        .connect(name, stream)
        .await
        .context("TLS handshake failed")?;
    timed_send("rustls", stream, size, pattern, receiver).await
}

/// Reads `stream` to its end, discarding; returns the byte count and when the last arrived.
async fn read_to_end<R: AsyncRead + Unpin>(mut stream: R) -> std::io::Result<(u64, Instant)> {
    let mut buffer = vec![0u8; RAW_BUFFER];
    let mut received = 0u64;
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok((received, Instant::now()));
        }
        received += read as u64;
    }
}

/// Sends `size` bytes of the pattern over `stream`, closes it and waits for `receiver`
/// ([`read_to_end`] at the other end); the time from the first write to the last byte read.
async fn timed_send<W: AsyncWrite + Unpin>(
    label: &str,
    mut stream: W,
    size: u64,
    pattern: &Bytes,
    receiver: tokio::task::JoinHandle<std::io::Result<(u64, Instant)>>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    send_pattern(&mut stream, size, pattern).await?;
    stream.shutdown().await?;
    let (received, finished) = receiver
        .await
        .with_context(|| format!("{label} receiver failed"))?
        .with_context(|| format!("{label} receiver"))?;
    anyhow::ensure!(
        received == size,
        "{label} receiver got {received} of {size} bytes"
    );
    Ok(finished.duration_since(started))
}

/// Writes `size` bytes of the repeating pattern in `RAW_BUFFER` writes.
async fn send_pattern<W: AsyncWrite + Unpin>(
    stream: &mut W,
    size: u64,
    pattern: &Bytes,
) -> std::io::Result<()> {
    let mut sent = 0u64;
    let mut position = 0usize;
    while sent < size {
        let len = usize::try_from(size - sent)
            .unwrap_or(usize::MAX)
            .min(RAW_BUFFER)
            .min(pattern.len() - position);
        stream.write_all(&pattern[position..position + len]).await?;
        position = (position + len) % pattern.len();
        sent += len as u64;
    }
    Ok(())
}

/// Sends `size` bytes of the pattern over a loopback TCP connection in `RAW_BUFFER` writes
/// to a receiver that reads and discards; the time runs from the first write until the
/// receiver has read the last byte.
async fn raw_transfer(size: u64, pattern: &Bytes) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(async move { read_to_end(listener.accept().await?.0).await });
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    timed_send("baseline", stream, size, pattern, receiver).await
}
