//! The dispatcher over real loopback connections: servers register and keep alive, clients
//! are sent to the least-loaded one, a server that dies vanishes after its time to live.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use zs::{Client, StatusCode};
use zs_cluster::{DispatchClient, DispatchService, Embedded, Registrar, Registration, ServerState};

async fn dispatcher() -> zs::ServerHandle {
    let registry = Embedded::in_memory();
    registry.spawn_reaper(Duration::from_millis(50));
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server.install(DispatchService::new(registry));
    server.spawn()
}

fn logic(id: &str, port: u16) -> Registration {
    Registration::new(
        "logic",
        id,
        [
            format!("127.0.0.1:{port}").parse().unwrap(),
            format!("[::1]:{port}").parse().unwrap(),
        ],
        100,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_go_to_the_least_loaded_and_a_dead_server_vanishes() {
    let dispatcher = dispatcher().await;
    let ttl = Duration::from_millis(600);
    let one = Arc::new(Client::connect(dispatcher.local_addr()).await.unwrap());
    let two = Arc::new(Client::connect(dispatcher.local_addr()).await.unwrap());
    let first = Registrar::start(one.clone(), logic("logic-1", 7001), ttl)
        .await
        .unwrap();
    let second = Registrar::start(two.clone(), logic("logic-2", 7002), ttl)
        .await
        .unwrap();
    first.set_load(80);
    second.set_load(20);
    let client = Client::connect(dispatcher.local_addr()).await.unwrap();
    let dispatch = DispatchClient::new(client.peer());
    // The loads arrive with the next keep-alive (a third of the time to live).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = dispatch.list("logic").await.unwrap();
        if listed.iter().any(|server| server.load == 80) && listed.iter().any(|s| s.load == 20) {
            break;
        }
        assert!(Instant::now() < deadline, "loads never arrived: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let best = dispatch.best("logic").await.unwrap();
    assert_eq!(best.id, "logic-2");
    assert_eq!(best.addresses.len(), 2, "IPv4 and IPv6");

    // Draining: no new clients.
    second.set_state(ServerState::Draining);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dispatch.best("logic").await.unwrap().id != "logic-1" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.set_state(ServerState::Online);

    // logic-2 dies (no goodbye): it is gone within its time to live (plus the reaper's
    // period and one keep-alive interval), and clients go to logic-1.
    drop(second);
    drop(two);
    let died = Instant::now();
    loop {
        let listed = dispatch.list("logic").await.unwrap();
        if listed.len() == 1 {
            assert_eq!(listed[0].id, "logic-1");
            break;
        }
        assert!(died.elapsed() < Duration::from_secs(5), "never removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        died.elapsed() <= ttl + Duration::from_millis(400),
        "{:?}",
        died.elapsed()
    );
    assert_eq!(dispatch.best("logic").await.unwrap().id, "logic-1");

    // A server that stops unregisters at once.
    first.stop().await.unwrap();
    let none = dispatch.best("logic").await.unwrap_err();
    assert_eq!(none.code(), Some(StatusCode::NOT_FOUND));
    dispatcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_typed_errors() {
    let dispatcher = dispatcher().await;
    let client = Client::connect(dispatcher.local_addr()).await.unwrap();
    let dispatch = DispatchClient::new(client.peer());
    let mut bad = logic("x", 1);
    bad.capacity = 0;
    let error = dispatch
        .register(&bad, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(StatusCode::INVALID_ARGUMENT));
    let error = dispatch
        .register(&logic("x", 1), Duration::from_secs(7200))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(StatusCode::INVALID_ARGUMENT),
        "ttl bound"
    );
    let raw = client
        .call_stream(
            "__zs.dispatch.register",
            &zs::DataFrame::new().with("{not json").with(1000u64),
        )
        .await
        .unwrap_err();
    assert_eq!(raw.status().unwrap().code(), StatusCode::INVALID_ARGUMENT);
    // The dispatcher still serves.
    dispatch
        .register(&logic("x", 1), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(dispatch.list("logic").await.unwrap().len(), 1);
    dispatcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_servers_come_and_go() {
    use zs_cluster::{Change, DispatchWatcher};

    let dispatcher = dispatcher().await;
    let (watcher, mut changes) = DispatchWatcher::new();
    let mut builder = Client::builder();
    builder.install(watcher);
    let watching = builder.connect(dispatcher.local_addr()).await.unwrap();
    DispatchClient::new(watching.peer())
        .watch("logic")
        .await
        .unwrap();

    let link = Arc::new(Client::connect(dispatcher.local_addr()).await.unwrap());
    let dispatch = DispatchClient::new(link.peer());
    dispatch
        .register(&logic("logic-1", 7001), Duration::from_millis(300))
        .await
        .unwrap();
    // Another type is not seen.
    let mut other = logic("db-1", 7002);
    other.service_type = "db".into();
    dispatch
        .register(&other, Duration::from_secs(10))
        .await
        .unwrap();
    match next(&mut changes).await {
        Change::Up(registration) => assert_eq!(registration.id, "logic-1"),
        other => panic!("{other:?}"),
    }
    // No keep-alive: it expires, and the watcher is told.
    match next(&mut changes).await {
        Change::Down { service_type, id } => {
            assert_eq!((service_type.as_str(), id.as_str()), ("logic", "logic-1"));
        }
        other => panic!("{other:?}"),
    }
    // A bounded number of watches per connection.
    for i in 0..zs_cluster::MAX_WATCHES_PER_CONNECTION {
        let _ = DispatchClient::new(watching.peer())
            .watch(&format!("t{i}"))
            .await;
    }
    let refused = DispatchClient::new(watching.peer())
        .watch("one-too-many")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(StatusCode::RESOURCE_EXHAUSTED));
    dispatcher.shutdown().await;
}

async fn next(changes: &mut tokio::sync::mpsc::Receiver<zs_cluster::Change>) -> zs_cluster::Change {
    tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a change within 5 s")
        .unwrap()
}
