//! A decentralized cluster over real loopback connections: two nodes share a registry, link
//! to each other with pinned keys, and a message to a user or a room reaches the node where
//! the user or member is connected. Outsiders cannot use the node-to-node commands, and a
//! node that stops is dropped when its registration expires.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use zs::{Client, DataFrame, StaticKeypair, StatusCode};
use zs_accounts::{AccountClient, AccountService, Accounts, AccountsConfig, Delivery};
use zs_cluster::{CLUSTER_NAMESPACE, ClusterNode, Embedded, NodeConfig};

struct Node {
    _dir: tempfile::TempDir,
    server: zs::ServerHandle,
    node: ClusterNode,
}

/// A node with accounts `ann`, `bob` and `cat` (every node knows every account), and an
/// `app.join` command that puts the caller in a room.
async fn node(id: &str, registry: &Embedded) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(zs_db::Store::open(dir.path()).unwrap());
    let accounts = Accounts::open(store).unwrap();
    for name in ["ann", "bob", "cat"] {
        accounts.add(name, "a long password", &[]).unwrap();
    }
    let service = AccountService::new(accounts, AccountsConfig::default());
    let keypair = StaticKeypair::generate().unwrap();
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server.config_mut().security().keypair(keypair.clone());
    let mut config = NodeConfig::new(id, [server.local_addr().unwrap()]);
    config.ttl = Duration::from_millis(900);
    let node = ClusterNode::new(registry.clone(), service.clone(), keypair, config);
    server.install(service);
    server.install(node.clone());
    let joiner = node.clone();
    server.register_console("app.join", move |ctx, room: String| {
        let node = joiner.clone();
        async move {
            node.join(&room, ctx.peer())?;
            Ok(room)
        }
    });
    let server = server.spawn();
    node.start().await.unwrap();
    Node {
        _dir: dir,
        server,
        node,
    }
}

/// A user's client: logged in, passing what arrives (`chat.msg` calls and `room.msg`
/// one-way messages) to the returned channel.
async fn user(node: &Node, name: &str) -> (Client, mpsc::UnboundedReceiver<String>) {
    let (sender, received) = mpsc::unbounded_channel();
    let mut builder = Client::builder();
    let to_test = sender.clone();
    builder.register_stream("chat.msg", move |_ctx, frame: DataFrame| {
        let to_test = to_test.clone();
        async move {
            let mut reader = frame.reader();
            let from = reader.read_string().unwrap();
            let text = reader.read_frame().unwrap().reader().read_string().unwrap();
            to_test.send(format!("{from}: {text}")).unwrap();
            Ok(DataFrame::new())
        }
    });
    builder.register_direct_stream("room.msg", move |_ctx, frame: DataFrame| {
        let sender = sender.clone();
        async move {
            sender.send(frame.reader().read_string().unwrap()).unwrap();
            Ok(())
        }
    });
    let client = builder.connect(node.server.local_addr()).await.unwrap();
    AccountClient::new(client.peer())
        .login(name, "a long password")
        .await
        .unwrap();
    (client, received)
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_rooms_are_reached_on_whichever_node_they_are() {
    let registry = Embedded::in_memory();
    registry.spawn_reaper(Duration::from_millis(50));
    let one = node("one", &registry).await;
    let two = node("two", &registry).await;
    until("the nodes link", || {
        one.node.nodes() == ["two"] && two.node.nodes() == ["one"]
    })
    .await;

    // ann is on node two; bob, on node one, writes to her through his node.
    let (_ann, mut to_ann) = user(&two, "ann").await;
    let delivered = one
        .node
        .send_to_user(
            "bob",
            "ann",
            "chat.msg",
            DataFrame::new().with("hello from one"),
        )
        .await
        .unwrap();
    assert_eq!(delivered, Delivery::Delivered(1));
    assert_eq!(to_ann.recv().await.unwrap(), "bob: hello from one");
    // cat is nowhere: the message waits in the sending node's offline queue.
    let queued = one
        .node
        .send_to_user("bob", "cat", "chat.msg", DataFrame::new().with("later"))
        .await
        .unwrap();
    assert_eq!(queued, Delivery::Queued);

    // A room with a member on each node: one broadcast reaches both.
    let (bob, mut to_bob) = user(&one, "bob").await;
    let (ann_in_room, mut to_ann_in_room) = user(&two, "ann").await;
    bob.call_console("app.join", "lobby").await.unwrap();
    ann_in_room.call_console("app.join", "lobby").await.unwrap();
    let here = one
        .node
        .broadcast("lobby", "room.msg", &DataFrame::new().with("everyone"))
        .await;
    assert_eq!(here, 1, "bob on this node");
    assert_eq!(to_bob.recv().await.unwrap(), "everyone");
    assert_eq!(to_ann_in_room.recv().await.unwrap(), "everyone");
    drop(to_ann);

    // An outsider (a key no node registered) cannot use the node-to-node commands.
    let outsider = Client::connect(one.server.local_addr()).await.unwrap();
    let frame = DataFrame::new()
        .with("ann")
        .with("mallory")
        .with("chat.msg")
        .with(DataFrame::new().with("spoofed"));
    let refused = outsider
        .call_stream(&format!("{CLUSTER_NAMESPACE}.user"), &frame)
        .await
        .unwrap_err();
    assert_eq!(
        refused.status().unwrap().code(),
        StatusCode::PERMISSION_DENIED
    );

    // Node two stops: node one drops it once its registration expires.
    let Node {
        server, node: gone, ..
    } = two;
    server.shutdown().await;
    drop(server);
    drop(gone);
    let stopped = Instant::now();
    until("node one notices node two gone", || {
        one.node.nodes().is_empty()
    })
    .await;
    println!(
        "node two dropped {:?} after it stopped (ttl 900 ms)",
        stopped.elapsed()
    );
}
