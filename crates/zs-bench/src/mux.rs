//! `zs-bench mux`: p2pVM throughput with 1 and with many virtual streams on one link, against
//! raw TCP and the `yamux` crate on the same workload in the same run, and the memory and time
//! it takes to hold many streams open.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use zs::mux::{MuxConfig, MuxLink, Role};

/// Arguments of `zs-bench mux`.
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
    /// Skip the `yamux` crate comparison.
    #[arg(long)]
    pub no_yamux: bool,
    /// Rounds of the throughput measurements, interleaved (each round runs every one once);
    /// the median of each is reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Profiling aid: run only this throughput measurement (`mux1`, `mux`, `yamux1`, `yamux`,
    /// `tcp`) once, and nothing else.
    #[arg(long, hide = true)]
    pub only: Option<String>,
}

/// One loopback TCP connection with Nagle off on both ends: (connected, accepted).
async fn tcp_pair() -> anyhow::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (connected, (accepted, _)) = (connected?, accepted?);
    connected.set_nodelay(true)?;
    accepted.set_nodelay(true)?;
    Ok((connected, accepted))
}

/// Two links joined by one loopback TCP connection, with a discarding `sink` service.
async fn link_pair(config: MuxConfig) -> anyhow::Result<(MuxLink, MuxLink)> {
    let (connected, accepted) = tcp_pair().await?;
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
            let stream = link.connect("sink").await?;
            send_and_wait(stream, per_stream).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok((per_stream * streams as u64) as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// A yamux stream requested from the connection's driver task.
type OpenRequest = oneshot::Sender<yamux::Result<yamux::Stream>>;

/// Runs the client side of a yamux connection: opens outbound streams on request and drives
/// the connection (a yamux `Connection` makes progress only while `poll_next_inbound` is
/// polled) until it ends.
async fn drive_yamux_client(
    mut connection: yamux::Connection<tokio_util::compat::Compat<TcpStream>>,
    mut requests: mpsc::UnboundedReceiver<OpenRequest>,
) {
    let mut waiting: VecDeque<OpenRequest> = VecDeque::new();
    let mut requests_open = true;
    poll_fn(|cx| {
        while requests_open {
            match requests.poll_recv(cx) {
                Poll::Ready(Some(request)) => waiting.push_back(request),
                Poll::Ready(None) => requests_open = false,
                Poll::Pending => break,
            }
        }
        while !waiting.is_empty() {
            match connection.poll_new_outbound(cx) {
                Poll::Ready(result) => {
                    if let Some(request) = waiting.pop_front() {
                        let _ = request.send(result);
                    }
                }
                Poll::Pending => break,
            }
        }
        loop {
            match connection.poll_next_inbound(cx) {
                // The benchmark's server never opens streams; drop any (yamux resets them).
                Poll::Ready(Some(Ok(_inbound))) => {}
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

/// The same workload as [`mux_throughput`] through the `yamux` crate (default
/// configuration, tokio streams through `tokio-util`'s compat layer); returns MB/s.
async fn yamux_throughput(size: u64, streams: usize) -> anyhow::Result<f64> {
    let (connected, accepted) = tcp_pair().await?;
    tokio::spawn(async move {
        let mut connection = yamux::Connection::new(
            accepted.compat(),
            yamux::Config::default(),
            yamux::Mode::Server,
        );
        while let Some(Ok(stream)) = poll_fn(|cx| connection.poll_next_inbound(cx)).await {
            tokio::spawn(async move {
                let mut stream = stream.compat();
                let mut buffer = vec![0u8; 64 * 1024];
                while matches!(stream.read(&mut buffer).await, Ok(read) if read > 0) {}
                let _ = stream.shutdown().await;
            });
        }
    });
    let (open, requests) = mpsc::unbounded_channel();
    let connection = yamux::Connection::new(
        connected.compat(),
        yamux::Config::default(),
        yamux::Mode::Client,
    );
    let driver = tokio::spawn(drive_yamux_client(connection, requests));
    let per_stream = size / streams as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let open = open.clone();
        tasks.spawn(async move {
            let (request, answer) = oneshot::channel();
            open.send(request)
                .map_err(|_| anyhow::anyhow!("yamux driver stopped"))?;
            send_and_wait(answer.await??.compat(), per_stream).await
        });
    }
    let outcome = async {
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        anyhow::Ok(())
    }
    .await;
    let elapsed = started.elapsed();
    // Dropping the client connection closes the TCP link, which ends the server task.
    driver.abort();
    outcome?;
    Ok((per_stream * streams as u64) as f64 / elapsed.as_secs_f64() / 1e6)
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

/// One throughput measurement of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Mux1,
    MuxMany,
    Yamux1,
    YamuxMany,
    Tcp,
}

impl Run {
    fn name(self) -> &'static str {
        match self {
            Run::Mux1 => "mux1",
            Run::MuxMany => "mux",
            Run::Yamux1 => "yamux1",
            Run::YamuxMany => "yamux",
            Run::Tcp => "tcp",
        }
    }

    async fn measure(self, size: u64, streams: usize) -> anyhow::Result<f64> {
        match self {
            Run::Mux1 => mux_throughput(size, 1).await.context("one stream"),
            Run::MuxMany => mux_throughput(size, streams).await.context("many streams"),
            Run::Yamux1 => yamux_throughput(size, 1).await.context("yamux, one stream"),
            Run::YamuxMany => yamux_throughput(size, streams)
                .await
                .context("yamux, many streams"),
            Run::Tcp => tcp_throughput(size).await.context("raw TCP"),
        }
    }
}

/// Runs `zs-bench mux`.
pub async fn run(args: MuxArgs) -> anyhow::Result<()> {
    let size = crate::load::stream::parse_size(&args.size)?;
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let mut runs = vec![Run::Mux1, Run::MuxMany];
    if !args.no_yamux {
        runs.extend([Run::Yamux1, Run::YamuxMany]);
    }
    runs.push(Run::Tcp);
    if let Some(only) = &args.only {
        let run = runs
            .iter()
            .copied()
            .find(|run| run.name() == only)
            .with_context(|| format!("--only {only}: expected mux1, mux, yamux1, yamux or tcp"))?;
        let throughput = run.measure(size, args.streams).await?;
        println!("{only}: {throughput:.0} MB/s");
        return Ok(());
    }
    println!(
        "zs-bench mux: {size} bytes over 1 and over {} virtual streams of one loopback link, against \
         raw TCP{}; {} round(s), medians; then {} streams open at once",
        args.streams,
        if args.no_yamux { "" } else { " and yamux" },
        args.rounds,
        args.open
    );
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    for round in 1..=args.rounds {
        for (run, figures) in runs.iter().zip(figures.iter_mut()) {
            figures.push(run.measure(size, args.streams).await?);
        }
        if args.rounds > 1 {
            let line: Vec<String> = runs
                .iter()
                .zip(&figures)
                .map(|(run, figures)| format!("{} {:.0}", run.name(), figures[round - 1]))
                .collect();
            println!("round {round}: {} MB/s", line.join(", "));
        }
    }
    let mut medians = figures.iter().map(|figures| crate::median(figures));
    let mut next = || medians.next().unwrap_or(0.0);
    let (one, many) = (next(), next());
    let yamux = if args.no_yamux {
        None
    } else {
        Some((next(), next()))
    };
    let tcp = next();
    println!("1 virtual stream: {one:.0} MB/s");
    println!("{} virtual streams: {many:.0} MB/s", args.streams);
    if let Some((yamux_one, yamux_many)) = yamux {
        println!("yamux 1 stream: {yamux_one:.0} MB/s");
        println!("yamux {} streams: {yamux_many:.0} MB/s", args.streams);
    }
    println!("raw TCP: {tcp:.0} MB/s");
    if args.open > 0 {
        let config = MuxConfig::default().with_max_streams(args.open + 16);
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
    if let Some((yamux_one, yamux_many)) = yamux {
        println!(
            "yamux: 1 stream {yamux_one:.0} MB/s, {} streams {yamux_many:.0} MB/s, baseline {tcp:.0} MB/s, ratio {:.2} / {:.2}",
            args.streams,
            yamux_one / tcp,
            yamux_many / tcp
        );
    }
    Ok(())
}

/// Sends `bytes` on one stream, closes its sending side and waits for the receiver's end of
/// stream: then everything has arrived. The same loop for zs mux and yamux streams.
async fn send_and_wait<S>(mut stream: S, bytes: u64) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let buffer = vec![0x5au8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let len = left.min(buffer.len() as u64) as usize;
        stream.write_all(&buffer[..len]).await?;
        left -= len as u64;
    }
    stream.shutdown().await?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    Ok(())
}
