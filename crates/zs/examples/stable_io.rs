//! StableIO: a client connected with `Client::builder().connect_stable(addr)` keeps calling
//! (32 calls in flight) while a small TCP proxy between it and the server cuts the
//! connection every 200 ms (`--cut-ms N`). The client reconnects and resumes its session
//! each time; at the end every call has been answered exactly once — the client checks its
//! replies, the server counts how often each call ran — and the server saw one connection.
//!
//! ```sh
//! cargo run -p zs --example stable_io
//! cargo run -p zs --example stable_io -- --cut-ms 50
//! ```
//!
//! ZServer4D: `29.StableIO` (and the StableIO parts of `27.DatasetSimulate`, `28.ChatHome`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use zs::{Client, Server, StableConfig, Status};

/// How long the client keeps calling, and how many calls it keeps in flight.
const RUN_FOR: Duration = Duration::from_secs(3);
const IN_FLIGHT: usize = 32;

/// `--cut-ms N`: cut the connection every N ms (default 200).
fn cut_every() -> Result<Duration, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut millis = 200;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cut-ms" => millis = args.next().ok_or("--cut-ms needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?} (try --cut-ms N)").into()),
        }
    }
    Ok(Duration::from_millis(millis))
}

/// A TCP proxy to `upstream` that drops every connection through it each `every`; returns
/// its address and the number of cuts so far.
async fn cutting_proxy(
    upstream: SocketAddr,
    every: Duration,
) -> std::io::Result<(SocketAddr, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cuts = Arc::new(AtomicU64::new(0));
    // A watch, so a connection busy copying still sees a cut it was not waiting for.
    let (cut, cut_watch) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(every);
        timer.tick().await;
        loop {
            timer.tick().await;
            cut.send_modify(|generation| *generation += 1);
        }
    });
    let counted = cuts.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let mut cut_now = cut_watch.clone();
            cut_now.mark_unchanged();
            let cuts = counted.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    // Dropping both sockets here is the cut, wherever the bytes were.
                    _ = cut_now.changed() => {
                        cuts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    Ok((addr, cuts))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let every = cut_every()?;
    // Reconnect at once after a cut (the default backoff suits real networks).
    let stable = StableConfig::default()
        .with_reconnect_initial(Duration::from_millis(5))
        .with_reconnect_max(Duration::from_millis(100));

    // The server needs nothing special: plain and StableIO clients share its port. Its
    // handler counts how often each call ran.
    let runs: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let mut server = Server::bind("127.0.0.1:0").await?;
    server.config_mut().stable_config(stable.clone());
    let counted = runs.clone();
    server.register_console("echo", move |_ctx, text: String| {
        let counted = counted.clone();
        async move {
            let index = text
                .strip_prefix("call ")
                .and_then(|index| index.parse().ok())
                .ok_or_else(|| Status::invalid_argument("expected \"call N\""))?;
            *counted
                .lock()
                .map_err(|_| Status::internal("counter poisoned"))?
                .entry(index)
                .or_default() += 1;
            Ok(text)
        }
    });
    let upstream = server.local_addr()?;
    let server = server.spawn();
    let (proxy, cuts) = cutting_proxy(upstream, every).await?;

    let mut builder = Client::builder();
    builder.config_mut().stable_config(stable);
    let client = builder.connect_stable(proxy).await?;
    println!("StableIO client through a proxy that cuts every {every:?}; calling for {RUN_FOR:?}");

    let started = Instant::now();
    let mut answered: HashMap<u64, u32> = HashMap::new();
    let mut wrong = 0u64;
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0u64;
    loop {
        while started.elapsed() < RUN_FOR && in_flight.len() < IN_FLIGHT {
            let index = next;
            let call = client.call_console("echo", &format!("call {index}"));
            in_flight.push(async move { (index, call.await) });
            next += 1;
        }
        let Some((index, reply)) = in_flight.next().await else {
            break;
        };
        // A cut never reaches the caller: no error to retry.
        if reply? != format!("call {index}") {
            wrong += 1;
        }
        *answered.entry(index).or_default() += 1;
    }
    drop(in_flight);

    let runs = runs.lock().map_err(|_| "counter poisoned")?.clone();
    let lost = (0..next)
        .filter(|index| !answered.contains_key(index))
        .count();
    let twice = answered.values().filter(|&&count| count > 1).count();
    let ran_twice = runs.values().filter(|&&count| count > 1).count();
    let never_ran = (0..next).filter(|index| !runs.contains_key(index)).count();
    println!(
        "{next} calls, {} answered: {lost} lost, {twice} answered twice, {wrong} wrong",
        answered.len()
    );
    println!(
        "server: ran {} calls, {never_ran} never, {ran_twice} twice; {} cuts; {} connection(s) on the server",
        runs.len(),
        cuts.load(Ordering::Relaxed),
        server.connection_count()
    );
    if lost + twice + ran_twice + never_ran > 0 || wrong > 0 {
        return Err("a call was lost, repeated or answered wrongly".into());
    }
    println!("every call answered exactly once");
    client.close().await;
    server.shutdown().await;
    Ok(())
}
