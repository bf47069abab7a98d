//! An entry pool: a client reaches one server through two entries (relays in front of it,
//! as a provider's entry networks would be), learns the entries from the dispatcher's
//! HostQuery, and keeps calling while the entry it uses dies; the StableIO session resumes
//! through the other entry with nothing lost. Runs on loopback as it stands:
//!
//! ```sh
//! cargo run -p zs-cluster --example entry_pool
//! ```
//!
//! ZServer4D: "IP pools and entry networks switched in seconds". The session lives in the
//! server process, so any entry that reaches that process can resume it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use zs_cluster::{DispatchClient, DispatchService, Embedded, Registration, RegistryEntries};

/// A relay to `upstream` that can be killed (its listener and every connection through it).
struct Entry {
    addr: SocketAddr,
    kill: watch::Sender<bool>,
}

async fn entry(upstream: SocketAddr) -> std::io::Result<Entry> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (kill, killed) = watch::channel(false);
    tokio::spawn(async move {
        let mut stop = killed.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.changed() => return,
            };
            let Ok((mut client, _)) = accepted else {
                return;
            };
            let mut stop = killed.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = stop.changed() => {}
                }
            });
        }
    });
    Ok(Entry { addr, kill })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The game server, and two entries in front of it.
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    let upstream = server.local_addr()?;
    let _server = server.spawn();
    let (a, b) = (entry(upstream).await?, entry(upstream).await?);

    // The dispatcher knows the entries as one registration's addresses.
    let mut dispatcher = zs::Server::bind("127.0.0.1:0").await?;
    dispatcher.install(DispatchService::new(Embedded::in_memory()));
    let dispatcher = dispatcher.spawn();
    let link = Arc::new(zs::Client::connect(dispatcher.local_addr()).await?);
    let entries = Registration::new("entry", "game-1", [a.addr, b.addr], 1);
    DispatchClient::new(link.peer())
        .register(&entries, Duration::from_secs(600))
        .await?;

    // The client: entries from HostQuery, a lost link noticed after 500 ms of silence.
    let mut builder = zs::Client::builder();
    builder
        .config_mut()
        .keepalive_interval(Some(Duration::from_millis(100)))
        .stable_link_timeout(Duration::from_millis(500));
    let pool = Arc::new(RegistryEntries::new(link.clone(), "entry/game-1"));
    let client = builder.connect_pool(pool).await?;
    println!("connected through the pool {:?}", [a.addr, b.addr]);

    let mut calls = 0;
    let started = Instant::now();
    let mut killed_at = None;
    while started.elapsed() < Duration::from_secs(2) {
        let text = format!("call {calls}");
        let answer = client.call_console("echo", &text).await?;
        assert_eq!(answer, text);
        calls += 1;
        if killed_at.is_none() && started.elapsed() > Duration::from_millis(500) {
            // The entry in use (Happy Eyeballs took the first) dies.
            a.kill.send_replace(true);
            killed_at = Some(Instant::now());
            println!("entry {} is down after {calls} calls", a.addr);
            let answer = client.call_console("echo", "still here?").await?;
            println!(
                "answered {answer:?} {:?} later, through {}",
                killed_at.map(|at| at.elapsed()).unwrap_or_default(),
                b.addr
            );
        }
    }
    println!("{calls} calls, every one answered; the entry died at 0.5 s");
    drop(b);
    client.close().await;
    Ok(())
}
