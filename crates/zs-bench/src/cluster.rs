//! `zs-bench cluster`: a push to a logged-in user through the decentralized cluster — from
//! the node the user is connected to (same-node) against from another node (cross-node, one
//! more hop over the nodes' link) — in interleaved rounds; latency is until the user's
//! client has answered the push.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use zs::{DataFrame, StaticKeypair};
use zs_accounts::{AccountClient, AccountService, Accounts, AccountsConfig, Delivery};
use zs_cluster::{ClusterNode, Embedded, NodeConfig};

/// Arguments of `zs-bench cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Interleaved rounds (same-node, then cross-node, each round).
    #[arg(long, default_value_t = 9)]
    pub rounds: usize,
    /// Pushes per round and kind.
    #[arg(long, default_value_t = 2000)]
    pub pushes: usize,
}

struct Node {
    _dir: tempfile::TempDir,
    server: zs::ServerHandle,
    node: ClusterNode,
}

async fn node(id: &str, registry: &Embedded) -> anyhow::Result<Node> {
    let dir = tempfile::tempdir()?;
    let accounts = Accounts::open(Arc::new(zs_db::Store::open(dir.path())?))?;
    accounts.add("ann", "a long password", &[])?;
    let service = AccountService::new(accounts, AccountsConfig::default());
    let keypair = StaticKeypair::generate()?;
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    server.config_mut().security().keypair(keypair.clone());
    let config = NodeConfig::new(id, [server.local_addr()?]);
    let node = ClusterNode::new(registry.clone(), service.clone(), keypair, config);
    server.install(service);
    server.install(node.clone());
    let server = server.spawn();
    node.start().await?;
    Ok(Node {
        _dir: dir,
        server,
        node,
    })
}

async fn push_latencies(from: &ClusterNode, pushes: usize) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(pushes);
    let message = DataFrame::new().with("ping");
    for _ in 0..pushes {
        let started = Instant::now();
        let delivery = from
            .send_to_user("bench", "ann", "push", message.clone())
            .await?;
        anyhow::ensure!(
            delivery == Delivery::Delivered(1),
            "not delivered: {delivery:?}"
        );
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(latencies)
}

/// Runs `zs-bench cluster`.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rounds > 0 && args.pushes > 0,
        "counts must be positive"
    );
    let registry = Embedded::in_memory();
    registry.spawn_reaper(Duration::from_millis(100));
    let one = node("one", &registry).await?;
    let two = node("two", &registry).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while one.node.nodes().is_empty() || two.node.nodes().is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the nodes never linked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut builder = zs::Client::builder();
    builder.register_stream("push", |_ctx, _frame: DataFrame| async move {
        Ok(DataFrame::new())
    });
    let ann = builder.connect(two.server.local_addr()).await?;
    AccountClient::new(ann.peer())
        .login("ann", "a long password")
        .await?;
    println!(
        "zs-bench cluster: user on node two; {} pushes per round from node two (same node) and from node one (cross-node), {} interleaved rounds",
        args.pushes, args.rounds
    );
    let (mut same, mut cross, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let here = crate::median(&push_latencies(&two.node, args.pushes).await?);
        let there = crate::median(&push_latencies(&one.node, args.pushes).await?);
        println!("round {round}: same-node {here:.0} µs, cross-node {there:.0} µs (median push)");
        same.push(here);
        cross.push(there);
        ratios.push(there / here);
    }
    println!(
        "push latency, median of rounds: same-node {:.0} µs, cross-node {:.0} µs, cross/same {:.2}",
        crate::median(&same),
        crate::median(&cross),
        crate::median(&ratios)
    );
    ann.close().await;
    Ok(())
}
