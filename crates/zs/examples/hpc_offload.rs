//! HPC offload: a CPU-heavy handler runs its work on worker threads with
//! [`Context::offload`](zs::Context::offload), so small calls on the same connection stay
//! fast. Heavy and small calls run at the same time, first with the work done inline in
//! the handler (small calls wait behind it), then offloaded; both latencies are printed.
//!
//! ```sh
//! cargo run -p zs --example hpc_offload
//! cargo run -p zs --example hpc_offload -- --rounds 400000   # heavier jobs
//! ```
//!
//! ZServer4D: `21.HPC_ComputeServer` (`RunHPC_Stream`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use zs::{Client, DataFrame, Server};
use zs_wire::crypto::hash::{HashAlgorithm, hex};

/// Heavy calls in flight at once.
const HEAVY_CALLS: usize = 6;

/// The heavy job: a SHA3-256 hash chain, `rounds` long.
fn hash_chain(seed: &str, rounds: u32) -> String {
    let mut digest = HashAlgorithm::Sha3_256.digest(seed.as_bytes());
    for _ in 1..rounds {
        digest = HashAlgorithm::Sha3_256.digest(&digest);
    }
    hex(&digest)
}

/// `--rounds N`: the hash chain's length (default 100,000).
fn rounds() -> Result<u32, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut rounds = 100_000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().ok_or("--rounds needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?} (try --rounds N)").into()),
        }
    }
    Ok(rounds)
}

/// "median M, max X" of some latencies.
fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    match (latencies.get(latencies.len() / 2), latencies.last()) {
        (Some(median), Some(max)) => format!("median {median:>9.1?}, max {max:>9.1?}"),
        _ => "none".to_owned(),
    }
}

/// Runs `HEAVY_CALLS` calls of `command` and, meanwhile, small calls one after another on
/// the same connection; prints both latencies.
async fn measure(
    client: &Client,
    command: &str,
    rounds: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let done = AtomicBool::new(false);
    let heavy = async {
        let results = join_all((0..HEAVY_CALLS).map(|index| async move {
            let started = Instant::now();
            let request = DataFrame::new().with(format!("job {index}")).with(rounds);
            let reply = client
                .call_stream(command, &request)
                .timeout(Duration::from_secs(120))
                .await?;
            let digest = reply.reader().read_string()?;
            Ok::<_, Box<dyn std::error::Error>>((started.elapsed(), digest))
        }))
        .await;
        done.store(true, Ordering::Relaxed);
        results
    };
    // Small calls, 5 ms apart, for as long as the heavy ones run.
    let small = async {
        let mut latencies = Vec::new();
        while !done.load(Ordering::Relaxed) {
            let started = Instant::now();
            let text = format!("ping {}", latencies.len());
            let echoed = client.call_console("echo", &text).await?;
            latencies.push(started.elapsed());
            if echoed != text {
                return Err("echo answered something else".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok::<_, Box<dyn std::error::Error>>(latencies)
    };
    let (heavy, small) = tokio::join!(heavy, small);
    let mut heavy_latencies = Vec::new();
    for result in heavy {
        let (latency, _digest) = result?;
        heavy_latencies.push(latency);
    }
    let small = small?;
    println!(
        "{command:<13} {HEAVY_CALLS} heavy calls: {} | {:>3} small calls: {}",
        summary(heavy_latencies),
        small.len(),
        summary(small)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = rounds()?;
    let mut server = Server::bind("127.0.0.1:0").await?;
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        // Inline: the work runs inside the connection's task and holds it up.
        .register_stream("heavy_inline", |_ctx, input: DataFrame| async move {
            let mut args = input.reader();
            let (seed, rounds) = (args.read_string()?, args.read_u32()?);
            Ok(DataFrame::new().with(hash_chain(&seed, rounds)))
        })
        // Offloaded: the work runs on the blocking pool; the connection keeps serving.
        .register_stream("heavy_offload", |ctx, input: DataFrame| async move {
            let mut args = input.reader();
            let (seed, rounds) = (args.read_string()?, args.read_u32()?);
            let digest = ctx.offload(move || hash_chain(&seed, rounds)).await?;
            Ok(DataFrame::new().with(digest))
        });
    let addr = server.local_addr()?;
    let server = server.spawn();
    let client = Client::connect(addr).await?;

    let started = Instant::now();
    let one = hash_chain("calibration", rounds);
    println!(
        "one heavy job: {rounds} SHA3 rounds, {:.0?} on this machine ({}…)",
        started.elapsed(),
        &one[..16]
    );
    measure(&client, "heavy_inline", rounds).await?;
    measure(&client, "heavy_offload", rounds).await?;

    client.close().await;
    server.shutdown().await;
    Ok(())
}
