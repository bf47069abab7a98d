//! Hello world: a server and a client in one process, with every kind of command once — a
//! console call, a stream (DataFrame) call carrying JSON, a one-way console and a one-way
//! stream message (the server shows it received them), a BigStream upload of a large
//! in-memory buffer with progress, and a compressed CompleteBuffer.
//!
//! ```sh
//! cargo run -p zs --example hello_world                    # a 64 MiB BigStream
//! cargo run -p zs --example hello_world -- --size-mib 512  # a larger one
//! ```
//!
//! ZServer4D: `1.HelloWorld` (console, stream, direct, JSON in TDFE, BigStream, CompleteBuffer).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use zs::{Client, Compression, DataFrame, Server};
use zs_wire::crypto::hash::{HashAlgorithm, Hasher, hex};

/// The BigStream's size in MiB: `--size-mib N`, 64 by default.
fn size_mib() -> Result<usize, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut size = 64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size-mib" => size = args.next().ok_or("--size-mib needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?} (try --size-mib N)").into()),
        }
    }
    Ok(size)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size = size_mib()? * 1024 * 1024;
    // One-way messages have no reply: the server's handlers report them on this channel.
    let (heard, mut hearing) = mpsc::unbounded_channel::<String>();

    let mut server = Server::bind("127.0.0.1:0").await?;
    server
        .register_console("hello", |ctx, name: String| async move {
            Ok(format!(
                "hello {name}, you are {}",
                ctx.peer().remote_addr()
            ))
        })
        .register_stream("greet", |_ctx, input: DataFrame| async move {
            let mut args = input.reader();
            let (name, age) = (args.read_string()?, args.read_i64()?);
            let profile = args.read::<serde_json::Value>()?;
            let city = profile["city"].as_str().unwrap_or("nowhere");
            Ok(DataFrame::new()
                .with(format!("{name} ({age}) from {city}"))
                .with(age + 1)
                .with(serde_json::json!({ "seen": true, "next_age": age + 1 })))
        });
    let sender = heard.clone();
    server.register_direct_console("note", move |_ctx, text: String| {
        let sender = sender.clone();
        async move {
            sender.send(format!("direct console {text:?}"))?;
            Ok(())
        }
    });
    let sender = heard;
    server.register_direct_stream("log", move |_ctx, input: DataFrame| {
        let sender = sender.clone();
        async move {
            let mut reader = input.reader();
            let (level, line) = (reader.read_u8()?, reader.read_string()?);
            sender.send(format!("direct stream level {level}: {line:?}"))?;
            Ok(())
        }
    });
    // BigStream: the handler reads the transfer chunk by chunk (it never holds it whole).
    server.register_big_stream("store", |_ctx, mut stream| async move {
        let mut hasher = Hasher::new(HashAlgorithm::Sha3_256);
        while let Some(chunk) = stream.next_chunk().await? {
            hasher.update(&chunk);
        }
        Ok(DataFrame::new()
            .with(stream.completed())
            .with(hex(&hasher.finalize())))
    });
    // CompleteBuffer: the handler gets the whole buffer, already decompressed.
    server.register_complete_buffer("blob", |_ctx, data: Bytes| async move {
        let lines = data.split(|&byte| byte == b'\n').count();
        Ok(DataFrame::new().with(data.len() as u64).with(lines as u64))
    });
    let addr = server.local_addr()?;
    let server = server.spawn();
    println!("server on {addr}, key {}", server.fingerprint());

    // The client compresses CompleteBuffers it sends when that pays.
    let mut builder = Client::builder();
    builder
        .config_mut()
        .complete_buffer_compression(Compression::Lz4);
    let client = builder.connect(addr).await?;
    println!("connected, suite {}", client.peer().suite());

    // Console: text in, text out.
    println!("console: {}", client.call_console("hello", "world").await?);

    // Stream: a DataFrame of typed values, JSON among them.
    let request = DataFrame::new()
        .with("alice")
        .with(41i64)
        .with(serde_json::json!({ "city": "Oslo", "tags": ["a", "b"] }));
    let reply = client.call_stream("greet", &request).await?;
    let mut reader = reply.reader();
    println!(
        "stream: {:?}, next age {}, json {}",
        reader.read_string()?,
        reader.read_i64()?,
        reader.read::<serde_json::Value>()?
    );

    // One-way messages return once queued; the server's handlers tell us they arrived (they
    // run beside each other, so in either order).
    client
        .send_direct_console("note", "fire and forget")
        .await?;
    client
        .send_direct_stream("log", &DataFrame::new().with(3u8).with("disk almost full"))
        .await?;
    for _ in 0..2 {
        let what = tokio::time::timeout(Duration::from_secs(5), hearing.recv())
            .await?
            .ok_or("the server's handlers are gone")?;
        println!("server received {what}");
    }

    // BigStream: a large in-memory buffer, sent without a copy (it is cut into chunks as
    // it goes; `send_big_stream` takes any `AsyncRead`, such as a file, instead), progress
    // every quarter.
    let data = Bytes::from(
        (0..size)
            .map(|index| (index % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let expected = hex(&HashAlgorithm::Sha3_256.digest(&data));
    let quarter = (size as u64 / 4).max(1);
    let mut next_report = quarter;
    let started = Instant::now();
    let reply = client
        .peer()
        .send_big_stream_chunks(
            "store",
            futures_util::stream::iter([Ok(data)]),
            Some(size as u64),
        )
        .on_progress(move |sent, total| {
            if sent >= next_report {
                println!("  big stream: {sent} of {} bytes sent", total.unwrap_or(0));
                next_report += quarter;
            }
        })
        .await?;
    let elapsed = started.elapsed();
    let mut reader = reply.reader();
    let (received, sha3) = (reader.read_u64()?, reader.read_string()?);
    println!(
        "big stream: server got {received} bytes in {elapsed:.2?} ({:.0} MB/s), SHA3 {}",
        received as f64 / elapsed.as_secs_f64() / 1e6,
        if sha3 == expected {
            "matches"
        } else {
            "DIFFERS"
        }
    );
    if sha3 != expected {
        return Err("the BigStream arrived altered".into());
    }

    // CompleteBuffer: one whole buffer; this one is text, so LZ4 shrinks it on the wire.
    let text: String = (0..20_000)
        .map(|line| format!("line {line}: the quick brown fox\n"))
        .collect();
    let reply = client
        .peer()
        .send_complete_buffer("blob", Bytes::from(text))
        .await?;
    let mut reader = reply.reader();
    println!(
        "complete buffer: server got {} bytes in {} lines",
        reader.read_u64()?,
        reader.read_u64()?
    );

    for stats in server.stats() {
        println!("  {:<6} calls {}", stats.name, stats.calls);
    }
    client.close().await;
    server.shutdown().await;
    Ok(())
}
