//! The same calls over each cipher suite (`zs::Suite::ALL`): the server allows them all, a
//! client offers one at a time (`Security::suites`). Per suite: the handshake time (median
//! of a few connections), echo calls per second in a short loop, and BigStream throughput.
//! `plain` (no encryption) takes `allow_plain` on both sides.
//!
//! ```sh
//! cargo run -p zs --example suites
//! cargo run --release -p zs --example suites   # figures worth comparing
//! ```
//!
//! ZServer4D: no demo folder of its own — every demo's connection was encrypted with a
//! cipher the server picked at random (here `Security::random_suite`); the nearest is
//! `35.QuantumSecurityDemo` (stream encryption).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zs::{Client, DataFrame, Server, Suite};

const HANDSHAKES: usize = 5;
const CALL_LOOP: Duration = Duration::from_millis(250);
const STREAM_BYTES: usize = 4 * 1024 * 1024;

/// A client that offers only `suite`.
async fn connect(addr: SocketAddr, suite: Suite) -> Result<Client, zs::ConnectError> {
    let mut builder = Client::builder();
    builder
        .config_mut()
        .security()
        .suites(vec![suite])
        .allow_plain(suite == Suite::Plain);
    builder.connect(addr).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = Server::bind("127.0.0.1:0").await?;
    server
        .config_mut()
        .security()
        .suites(Suite::ALL.to_vec())
        .allow_plain(true);
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_big_stream("sink", |_ctx, mut stream| async move {
            while stream.next_chunk().await?.is_some() {}
            Ok(DataFrame::new().with(stream.completed()))
        });
    let addr = server.local_addr()?;
    let server = server.spawn();
    let payload = vec![0x5au8; STREAM_BYTES];

    println!(
        "{:<18} {:>10} {:>10} {:>9}",
        "suite", "handshake", "calls/s", "MB/s"
    );
    for suite in Suite::ALL {
        // Handshake: the whole connect (TCP, Noise XX, preambles), median of a few.
        let mut times = Vec::with_capacity(HANDSHAKES);
        let mut client = None;
        for _ in 0..HANDSHAKES {
            let started = Instant::now();
            let connected = connect(addr, suite).await?;
            times.push(started.elapsed());
            client = Some(connected);
        }
        times.sort();
        let client = client.ok_or("no connection made")?;
        if client.peer().suite() != suite {
            return Err(format!("asked for {suite}, got {}", client.peer().suite()).into());
        }

        // Calls: one after another for a short while.
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < CALL_LOOP {
            client
                .call_console("echo", "how fast is this suite?")
                .await?;
            calls += 1;
        }
        let calls_per_second = calls as f64 / started.elapsed().as_secs_f64();

        // Bulk: a BigStream through the record layer.
        let started = Instant::now();
        let reply = client
            .peer()
            .send_big_stream(
                "sink",
                std::io::Cursor::new(&payload[..]),
                Some(STREAM_BYTES as u64),
            )
            .await?;
        let received = reply.reader().read_u64()?;
        let megabytes_per_second = received as f64 / started.elapsed().as_secs_f64() / 1e6;

        println!(
            "{:<18} {:>10.2?} {:>10.0} {:>9.0}",
            suite.name(),
            times[HANDSHAKES / 2],
            calls_per_second,
            megabytes_per_second
        );
        client.close().await;
    }
    server.shutdown().await;
    Ok(())
}
