//! p2pVM: many virtual connections over one TCP connection ([`zs::mux`]). Opens 10,000
//! virtual streams (`--streams N`, up to 1,000,000) and reports the memory each costs (both
//! ends live in this process; VmRSS from `/proc/self/status`, so Linux only); runs the link
//! the other way round (reverse p2pVM: the side that *accepted* the TCP connection opens the
//! streams); and serves a whole zs Server on a virtual listener, with a zs client calling it
//! over a virtual stream.
//!
//! ```sh
//! cargo run -p zs --example p2pvm
//! cargo run -p zs --example p2pvm -- --streams 100000   # the original's 100k connections
//! ```
//!
//! ZServer4D: `15.100KConnectingOnVM` and `31.reverseP2PVM` (and the dual tunnels on p2pVM,
//! `53–56 DT_P2PVM_*`, for the zs Server over a virtual stream).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zs::mux::{MuxConfig, MuxLink, Role, VirtualStream};
use zs::{Client, Server};

/// Stream opens in flight at once while opening many.
const OPENING_WINDOW: usize = 512;

/// `--streams N`: virtual streams to open at once (default 10,000).
fn streams() -> Result<usize, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut streams = 10_000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--streams" => streams = args.next().ok_or("--streams needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?} (try --streams N)").into()),
        }
    }
    Ok(streams)
}

/// Resident set size of this process in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Two links over one loopback TCP connection: (the side that connected, the side that
/// accepted). Nagle off: mux frames are small and should not wait for a delayed ACK.
async fn linked_pair(config: MuxConfig) -> std::io::Result<(MuxLink, MuxLink)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let (connected, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr()?),
        listener.accept()
    );
    let (connected, (accepted, _)) = (connected?, accepted?);
    connected.set_nodelay(true)?;
    accepted.set_nodelay(true)?;
    Ok((
        MuxLink::new(connected, Role::Initiator, config.clone()),
        MuxLink::new(accepted, Role::Acceptor, config),
    ))
}

/// Echoes every stream opened to `service` on `link`, a task per stream.
fn echo_service(link: &MuxLink, service: &str) -> std::io::Result<()> {
    let mut listener = link.listen(service)?;
    tokio::spawn(async move {
        while let Some(mut stream) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                while let Ok(read @ 1..) = stream.read(&mut buffer).await {
                    if stream.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(())
}

/// Sends `text` on `stream` and reads it back.
async fn ping(stream: &mut VirtualStream, text: &str) -> std::io::Result<bool> {
    stream.write_all(text.as_bytes()).await?;
    let mut back = vec![0u8; text.len()];
    stream.read_exact(&mut back).await?;
    Ok(back == text.as_bytes())
}

/// Opens `count` streams to `service`, `OPENING_WINDOW` at a time.
async fn open_many(
    link: &MuxLink,
    service: &str,
    count: usize,
) -> std::io::Result<Vec<VirtualStream>> {
    let mut streams = Vec::with_capacity(count);
    let mut opening = FuturesUnordered::new();
    let mut next = 0;
    while streams.len() < count {
        while next < count && opening.len() < OPENING_WINDOW {
            opening.push(link.connect(service));
            next += 1;
        }
        if let Some(stream) = opening.next().await {
            streams.push(stream?);
        }
    }
    Ok(streams)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count = streams()?;

    // Many virtual connections over one TCP connection.
    let config = MuxConfig::default().with_max_streams(count + 16);
    let (connected, accepted) = linked_pair(config).await?;
    // "hold" keeps what it accepts, without a task or buffer per stream: the figure below
    // is the mux's own cost per connection.
    let mut hold = accepted.listen("hold")?;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(stream) = hold.accept().await {
            held.push(stream);
        }
    });
    echo_service(&accepted, "echo")?;
    // Listen announcements travel to the peer first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss_kib();
    let started = Instant::now();
    let streams = open_many(&connected, "hold", count).await?;
    let opened = started.elapsed();
    let after = rss_kib();
    println!(
        "{} virtual connections over one TCP connection ({} open at the other end), opened in {:.2?} ({:.0}/s)",
        connected.stream_count(),
        accepted.stream_count(),
        opened,
        count as f64 / opened.as_secs_f64()
    );
    match (before, after) {
        (Some(before), Some(after)) => println!(
            "  memory: VmRSS {before} KiB -> {after} KiB, {:.0} bytes per virtual connection (both ends)",
            after.saturating_sub(before) as f64 * 1024.0 / count as f64
        ),
        _ => println!("  memory: no /proc/self/status here (Linux only)"),
    }
    let mut echo = connected.connect("echo").await?;
    println!(
        "  one more stream beside them echoes: {}",
        ping(&mut echo, "still responsive").await?
    );
    drop(streams);
    drop(echo);

    // Reverse p2pVM: the side that connected listens; the side that accepted opens streams.
    echo_service(&connected, "reverse-echo")?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let mut reverse = open_many(&accepted, "reverse-echo", 1000).await?;
    let mut right = 0;
    for (index, stream) in reverse.iter_mut().enumerate() {
        if ping(stream, &format!("reverse {index}")).await? {
            right += 1;
        }
    }
    println!(
        "reverse p2pVM: the accepting side opened {} streams, {right} echoed right, in {:.2?}",
        reverse.len(),
        started.elapsed()
    );
    drop(reverse);

    // A zs Server on a virtual listener (its own handshake and encryption inside the
    // stream), and a zs client on a virtual stream: no socket of their own.
    let mut server = Server::bind("127.0.0.1:0").await?; // its TCP port stays unused
    server.register_console("echo", |ctx, text: String| async move {
        Ok(format!("{text} (via {})", ctx.peer().local_addr()))
    });
    let server = Arc::new(server.spawn());
    let virtual_addr: SocketAddr = "10.0.0.1:80".parse()?;
    let mut listener = accepted.listen("10.0.0.1:80")?;
    let serving = server.clone();
    tokio::spawn(async move {
        while let Some(stream) = listener.accept().await {
            serving.serve_stream(stream, virtual_addr, virtual_addr);
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stream = connected.connect("10.0.0.1:80").await?;
    let client = Client::builder()
        .connect_stream(stream, virtual_addr, virtual_addr)
        .await?;
    println!(
        "zs over a virtual stream: {:?}, suite {}",
        client.call_console("echo", "hello").await?,
        client.peer().suite()
    );

    client.close().await;
    server.shutdown().await;
    // Ending the link: GoAway to the peer, and the held streams go with the holder.
    connected.close();
    holder.abort();
    Ok(())
}
