//! `zs bench mux`: p2pVM throughput with 1 and with many virtual streams on one link, against
//! raw TCP in the same run, and the memory and time it takes to hold many streams open.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zs::mux::{MuxConfig, MuxLink, Role};

/// Arguments of `zs bench mux`.
#[derive(Debug, Args)]
pub struct MuxArgs {
    /// Bytes to move in each throughput run, e.g. `1GiB`.
    #[arg(long, default_value = "1GiB")]
    pub size: String,
    /// Virtual streams sharing the transfer in the many-streams run.
    #[arg(long, default_value_t = 64)]
    pub streams: usize,
    /// Virtual streams to open at once for the scale measurement (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub open: usize,
}

/// Two links joined by one loopback TCP connection, with a discarding `sink` service.
async fn link_pair(config: MuxConfig) -> anyhow::Result<(MuxLink, MuxLink)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (connected, (accepted, _)) = (connected?, accepted?);
    connected.set_nodelay(true)?;
    accepted.set_nodelay(true)?;
    let sender = MuxLink::new(connected, Role::Initiator, config.clone());
    let receiver = MuxLink::new(accepted, Role::Acceptor, config);
    let mut sink = receiver.listen("sink")?;
    tokio::spawn(async move {
        while let Some(mut stream) = sink.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                while matches!(stream.read(&mut buffer).await, Ok(read) if read > 0) {}
                let _ = stream.shutdown().await;
            });
        }
    });
    // `hold` keeps accepted streams open without a task or buffer each, so the scale figure
    // measures the mux, not a per-stream reader.
    let mut hold = receiver.listen("hold")?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(stream) = hold.accept().await {
            held.push(stream);
        }
    });
    // Let the listen announcements reach the sender.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok((sender, receiver))
}

/// Sends `size` bytes split over `streams` virtual streams; returns MB/s.
async fn mux_throughput(size: u64, streams: usize) -> anyhow::Result<f64> {
    let (sender, _receiver) = link_pair(MuxConfig::default()).await?;
    let per_stream = size / streams as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let link = sender.clone();
        tasks.spawn(async move {
            let mut stream = link.connect("sink").await?;
            let buffer = vec![0x5au8; 64 * 1024];
            let mut left = per_stream;
            while left > 0 {
                let len = left.min(buffer.len() as u64) as usize;
                stream.write_all(&buffer[..len]).await?;
                left -= len as u64;
            }
            stream.shutdown().await?;
            // Wait for the receiver's end of stream: everything has arrived.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await?;
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok((per_stream * streams as u64) as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// Plain TCP loopback: `size` bytes in 64 KiB writes to a discarding reader; returns MB/s.
async fn tcp_throughput(size: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buffer = vec![0u8; 64 * 1024];
        while stream.read(&mut buffer).await? > 0 {}
        anyhow::Ok(())
    });
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await?;
    let buffer = vec![0x5au8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let len = left.min(buffer.len() as u64) as usize;
        stream.write_all(&buffer[..len]).await?;
        left -= len as u64;
    }
    stream.shutdown().await?;
    reader.await??;
    Ok(size as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// Resident set size of this process in bytes (Linux `/proc/self/status`).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `zs bench mux`.
pub async fn run(args: MuxArgs) -> anyhow::Result<()> {
    let size = super::bench_stream::parse_size(&args.size)?;
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    println!(
        "zs bench mux: {size} bytes over 1 and over {} virtual streams of one loopback link, against \
         raw TCP; then {} streams open at once",
        args.streams, args.open
    );
    let one = mux_throughput(size, 1).await.context("one stream")?;
    let many = mux_throughput(size, args.streams)
        .await
        .context("many streams")?;
    let tcp = tcp_throughput(size).await.context("raw TCP")?;
    println!("1 virtual stream: {one:.0} MB/s");
    println!("{} virtual streams: {many:.0} MB/s", args.streams);
    println!("raw TCP: {tcp:.0} MB/s");
    if args.open > 0 {
        let config = MuxConfig {
            max_streams: args.open + 16,
            ..MuxConfig::default()
        };
        let (sender, receiver) = link_pair(config).await?;
        let before = rss_bytes();
        let started = Instant::now();
        let mut streams = Vec::with_capacity(args.open);
        for _ in 0..args.open {
            streams.push(sender.connect("hold").await?);
        }
        let opened = started.elapsed();
        let after = rss_bytes();
        let per_stream = match (before, after) {
            (Some(before), Some(after)) => {
                format!("{} bytes", after.saturating_sub(before) / args.open as u64)
            }
            _ => "n/a".to_owned(),
        };
        println!(
            "open: {} streams in {:.2} s ({:.0}/s), {} open on each side, RSS per stream (both ends, handles included) {per_stream}",
            args.open,
            opened.as_secs_f64(),
            args.open as f64 / opened.as_secs_f64(),
            sender.stream_count(),
        );
        drop(streams);
        drop(receiver);
    }
    println!(
        "mux: 1 stream {one:.0} MB/s, {} streams {many:.0} MB/s, baseline {tcp:.0} MB/s, ratio {:.2} / {:.2}",
        args.streams,
        one / tcp,
        many / tcp
    );
    Ok(())
}
