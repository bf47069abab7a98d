//! `zs-bench dispatch`: registry lookups per second — `best`, `list` and HostQuery `query`
//! calls on one connection to an embedded dispatcher holding `--servers` registrations of
//! one type —
//! and how long a server that stops sending keep-alives stays listed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use zs::Client;
use zs_cluster::{DispatchClient, DispatchService, Embedded, Registration};

/// Arguments of `zs-bench dispatch`.
#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Registered servers of the type asked for.
    #[arg(long, default_value_t = 100)]
    pub servers: usize,
    /// Calls in flight on the one connection.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Deaths timed (a server registered with a 1 s time to live, then silent).
    #[arg(long, default_value_t = 5)]
    pub deaths: usize,
}

/// Runs `zs-bench dispatch`.
pub async fn run(args: DispatchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.servers > 0 && args.in_flight > 0 && args.seconds > 0.0,
        "counts and seconds must be positive"
    );
    let registry = Embedded::in_memory();
    registry.spawn_reaper(Duration::from_millis(50));
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    server.install(DispatchService::new(registry));
    let dispatcher = server.spawn();
    let client = Arc::new(Client::connect(dispatcher.local_addr()).await?);
    let dispatch = DispatchClient::new(client.peer());
    for i in 0..args.servers {
        let mut registration = Registration::new(
            "logic",
            format!("logic-{i:05}"),
            [format!("10.0.{}.{}:4920", i / 250, i % 250 + 1).parse()?],
            1000,
        );
        registration.load = (i as u64 * 7919) % 1000;
        dispatch
            .register(&registration, Duration::from_secs(600))
            .await?;
    }
    println!(
        "zs-bench dispatch: {} servers of one type, {} calls in flight on one connection, {} s each",
        args.servers, args.in_flight, args.seconds
    );
    let seconds = Duration::from_secs_f64(args.seconds);
    for command in ["best", "list", "query"] {
        let workers = (0..args.in_flight).map(|_| {
            let client = client.clone();
            move || {
                let client = client.clone();
                async move {
                    let dispatch = DispatchClient::new(client.peer());
                    match command {
                        "best" => drop(dispatch.best("logic").await?),
                        "list" => drop(dispatch.list("logic").await?),
                        // HostQuery: about one server in ten matches.
                        _ => drop(dispatch.query_hosts("logic/logic-???1?").await?),
                    }
                    anyhow::Ok(())
                }
            }
        });
        let rate = crate::calls_per_second(seconds, workers).await?;
        println!("{command}: {rate:.0} lookups/s");
    }

    // Death to removal: register with a 1 s time to live, stop, time until unlisted.
    let mut removals = Vec::new();
    for death in 0..args.deaths {
        let id = format!("mortal-{death}");
        let registration = Registration::new("mortal", id.clone(), ["10.9.9.9:1".parse()?], 1);
        dispatch
            .register(&registration, Duration::from_secs(1))
            .await?;
        let silent = Instant::now();
        while !dispatch.list("mortal").await?.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        removals.push(silent.elapsed().as_secs_f64() * 1000.0);
    }
    if !removals.is_empty() {
        let max = removals.iter().copied().fold(0.0, f64::max);
        println!(
            "removal after the last keep-alive (time to live 1000 ms): median {:.0} ms, max {max:.0} ms over {} deaths",
            crate::median(&removals),
            removals.len()
        );
    }
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close().await;
    }
    dispatcher.shutdown().await;
    Ok(())
}
