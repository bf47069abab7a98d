//! The registry on a real 3-member etcd cluster on loopback (Debian's `etcd-server`): two
//! dispatchers share it, a server registered through one is found through the other, a dead
//! server vanishes when its lease expires, and the registry keeps working when a member is
//! killed. Skips with a message where no `etcd` is installed, unless `ZS_REQUIRE_ETCD` is
//! set (as in CI), where it fails instead.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use zs::Client;
use zs_cluster::local_etcd::{LocalEtcd, etcd_available};
use zs_cluster::{Backend, Change, DispatchClient, DispatchService, Etcd, Registrar, Registration};

fn etcd_or_skip() -> bool {
    if etcd_available() {
        return true;
    }
    assert!(
        std::env::var_os("ZS_REQUIRE_ETCD").is_none(),
        "ZS_REQUIRE_ETCD is set but no etcd program runs (apt-get install etcd-server)"
    );
    eprintln!("SKIPPED: no etcd here (apt-get install etcd-server, or set ZS_ETCD)");
    false
}

fn server(id: &str, port: u16, load: u64) -> Registration {
    let mut server = Registration::new(
        "logic",
        id,
        [format!("127.0.0.1:{port}").parse().unwrap()],
        100,
    );
    server.load = load;
    server
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn dispatcher(registry: Etcd) -> zs::ServerHandle {
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server.install(DispatchService::new(registry));
    server.spawn()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_share_a_registry_that_survives_a_member_kill() {
    if !etcd_or_skip() {
        return;
    }
    let mut etcd = LocalEtcd::start(3).await.unwrap();
    let endpoints = etcd.endpoints();
    let a = Etcd::connect(&endpoints).await.unwrap();
    let b = Etcd::connect(&endpoints).await.unwrap();
    let mut seen_by_b = b.watch();
    let ttl = Duration::from_secs(2);

    // Put through a, seen by b's watch and lookups.
    a.put(server("one", 7001, 70), ttl).await.unwrap();
    a.put(server("two", 7002, 20), ttl).await.unwrap();
    for id in ["one", "two"] {
        let change = tokio::time::timeout(Duration::from_secs(5), seen_by_b.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(change, Change::Up(r) if r.id == id));
    }
    assert_eq!(b.list("logic").await.unwrap().len(), 2);
    assert_eq!(b.best("logic").await.unwrap().unwrap().id, "two");
    assert_eq!(
        b.hosts("logic/t*").await.unwrap(),
        ["127.0.0.1:7002".to_owned()]
    );

    // A load change is a put under the same lease.
    a.put(server("two", 7002, 95), ttl).await.unwrap();
    until("b sees the new load", || async {
        b.best("logic").await.unwrap().unwrap().id == "one"
    })
    .await;

    // Kill the leader: keep-alives, new registrations and the watch go on through the
    // others once they elected a new one.
    let leader = etcd.leader().await.unwrap();
    etcd.kill(leader).unwrap();
    let killed = Instant::now();
    a.put(server("three", 7003, 10), ttl).await.unwrap();
    until("b sees a registration made after the kill", || async {
        b.list("logic").await.unwrap().len() == 3
    })
    .await;
    eprintln!(
        "registered and seen on the other dispatcher {:?} after killing the leader",
        killed.elapsed()
    );

    // "one" keeps alive, "two" and "three" stop: they vanish when their leases expire.
    let keep = {
        let a = a.clone();
        tokio::spawn(async move {
            loop {
                a.put(server("one", 7001, 70), ttl).await.unwrap();
                tokio::time::sleep(ttl / 3).await;
            }
        })
    };
    let stopped = Instant::now();
    until("the silent servers' leases expire", || async {
        b.list("logic").await.unwrap().len() == 1
    })
    .await;
    let gone_after = stopped.elapsed();
    keep.abort();
    assert_eq!(b.list("logic").await.unwrap()[0].id, "one");
    assert!(
        gone_after >= ttl - Duration::from_millis(700),
        "expired early: {gone_after:?}"
    );
    eprintln!("silent servers removed {gone_after:?} after their last keep-alive (ttl {ttl:?})");

    // Remove is seen at once by both.
    assert!(b.remove("logic", "one").await.unwrap());
    until("a sees the removal", || async {
        a.list("logic").await.unwrap().is_empty()
    })
    .await;
    assert!(!a.remove("logic", "one").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_register_through_one_dispatcher_and_clients_ask_another() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = LocalEtcd::start(3).await.unwrap();
    let endpoints = etcd.endpoints();
    let first = dispatcher(Etcd::connect(&endpoints).await.unwrap()).await;
    let second = dispatcher(Etcd::connect(&endpoints).await.unwrap()).await;
    // A fresh dispatcher reads what is already registered.
    let link = Arc::new(Client::connect(first.local_addr()).await.unwrap());
    let registrar = Registrar::start(link, server("db-1", 7101, 0), Duration::from_secs(2))
        .await
        .unwrap();
    let third = dispatcher(Etcd::connect(&endpoints).await.unwrap()).await;
    for dispatcher in [&second, &third] {
        let client = Client::connect(dispatcher.local_addr()).await.unwrap();
        let dispatch = DispatchClient::new(client.peer());
        until("the other dispatcher knows db-1", || async {
            dispatch
                .best("logic")
                .await
                .is_ok_and(|best| best.id == "db-1")
        })
        .await;
    }
    registrar.stop().await.unwrap();
    let client = Client::connect(third.local_addr()).await.unwrap();
    let dispatch = DispatchClient::new(client.peer());
    until(
        "the unregistration reaches the third dispatcher",
        || async { dispatch.list("logic").await.unwrap().is_empty() },
    )
    .await;
}
