//! `zs-bench dispatch`: registry lookups per second — `best`, `list` and HostQuery `query`
//! calls on one connection to a dispatcher holding `--servers` registrations of one type
//! (embedded, or on a 3-member etcd cluster with `--backend etcd`), how soon a change made
//! through one dispatcher is answered by another, and how long a server that stops sending keep-alives stays listed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use zs::Client;
use zs_cluster::{DispatchClient, DispatchService, Embedded, Registration};

/// Where the benchmarked registry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// One dispatcher, registry in memory (and its store).
    Embedded,
    /// A 3-member etcd cluster on loopback started by the benchmark (Debian's
    /// `etcd-server`), two dispatchers on it: servers register through one, lookups go to
    /// the other.
    #[cfg(feature = "etcd")]
    Etcd,
}

/// Arguments of `zs-bench dispatch`.
#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// The registry's backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Embedded)]
    pub backend: BackendKind,
    /// Registered servers of the type asked for.
    #[arg(long, default_value_t = 100)]
    pub servers: usize,
    /// Calls in flight on the one connection.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Deaths timed (a server registered with the shortest time to live, then silent:
    /// 1 s embedded, 2 s on etcd, whose leases last whole seconds and at least about 2 s).
    #[arg(long, default_value_t = 5)]
    pub deaths: usize,
}

/// The dispatchers under test: registrations go to the first, lookups to the second (the
/// same one with the embedded backend).
struct Dispatchers {
    write: zs::ServerHandle,
    read: Option<zs::ServerHandle>,
    death_ttl: Duration,
    #[cfg(feature = "etcd")]
    _etcd: Option<zs_cluster::local_etcd::LocalEtcd>,
}

async fn serve(registry: impl zs_cluster::Backend) -> anyhow::Result<zs::ServerHandle> {
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    server.install(DispatchService::new(registry));
    Ok(server.spawn())
}

async fn dispatchers(kind: BackendKind) -> anyhow::Result<Dispatchers> {
    match kind {
        BackendKind::Embedded => {
            let registry = Embedded::in_memory();
            registry.spawn_reaper(Duration::from_millis(50));
            Ok(Dispatchers {
                write: serve(registry).await?,
                read: None,
                death_ttl: Duration::from_secs(1),
                #[cfg(feature = "etcd")]
                _etcd: None,
            })
        }
        #[cfg(feature = "etcd")]
        BackendKind::Etcd => {
            use zs_cluster::Etcd;
            let etcd = zs_cluster::local_etcd::LocalEtcd::start(3).await?;
            let endpoints = etcd.endpoints();
            Ok(Dispatchers {
                write: serve(Etcd::connect(&endpoints).await?).await?,
                read: Some(serve(Etcd::connect(&endpoints).await?).await?),
                death_ttl: Duration::from_secs(2),
                _etcd: Some(etcd),
            })
        }
    }
}

/// Runs `zs-bench dispatch`.
pub async fn run(args: DispatchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.servers > 0 && args.in_flight > 0 && args.seconds > 0.0,
        "counts and seconds must be positive"
    );
    let dispatchers = dispatchers(args.backend).await?;
    let read_handle = dispatchers.read.as_ref().unwrap_or(&dispatchers.write);
    let writer = Client::connect(dispatchers.write.local_addr()).await?;
    let register = DispatchClient::new(writer.peer());
    let client = Arc::new(Client::connect(read_handle.local_addr()).await?);
    let dispatch = DispatchClient::new(client.peer());
    for i in 0..args.servers {
        let mut registration = Registration::new(
            "logic",
            format!("logic-{i:05}"),
            [format!("10.0.{}.{}:4920", i / 250, i % 250 + 1).parse()?],
            1000,
        );
        registration.load = (i as u64 * 7919) % 1000;
        register
            .register(&registration, Duration::from_secs(600))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while dispatch.list("logic").await?.len() < args.servers {
        anyhow::ensure!(Instant::now() < deadline, "registrations never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "zs-bench dispatch ({:?}): {} servers of one type, {} calls in flight on one connection, {} s each",
        args.backend, args.servers, args.in_flight, args.seconds
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

    // A change through one dispatcher until the other answers with it.
    if dispatchers.read.is_some() {
        let mut delays = Vec::new();
        for round in 0..20u64 {
            let mut registration =
                Registration::new("moving", "moving-1", ["10.9.9.8:1".parse()?], 1000);
            registration.load = round;
            let sent = Instant::now();
            register
                .register(&registration, Duration::from_secs(600))
                .await?;
            while dispatch.best("moving").await.map(|best| best.load).ok() != Some(round) {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            delays.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        let max = delays.iter().copied().fold(0.0, f64::max);
        println!(
            "a load change through one dispatcher answered by the other after: median {:.2} ms, max {max:.2} ms over {} changes",
            crate::median(&delays),
            delays.len()
        );
    }

    // Death to removal: register with the shortest time to live, stop, time until unlisted.
    let mut removals = Vec::new();
    for death in 0..args.deaths {
        let id = format!("mortal-{death}");
        let registration = Registration::new("mortal", id.clone(), ["10.9.9.9:1".parse()?], 1);
        register
            .register(&registration, dispatchers.death_ttl)
            .await?;
        let silent = Instant::now();
        while dispatch.list("mortal").await?.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        while !dispatch.list("mortal").await?.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        removals.push(silent.elapsed().as_secs_f64() * 1000.0);
    }
    if !removals.is_empty() {
        let max = removals.iter().copied().fold(0.0, f64::max);
        println!(
            "removal after the last keep-alive (time to live {} ms): median {:.0} ms, max {max:.0} ms over {} deaths",
            dispatchers.death_ttl.as_millis(),
            crate::median(&removals),
            removals.len()
        );
    }
    writer.close().await;
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close().await;
    }
    dispatchers.write.shutdown().await;
    if let Some(read) = &dispatchers.read {
        read.shutdown().await;
    }
    Ok(())
}
