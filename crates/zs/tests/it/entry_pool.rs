//! Entry pools over real loopback sockets: two relays reach one server; the relay carrying
//! the StableIO session goes silent (a cut cable: no reset reaches either side) while calls
//! are in flight, and the client resumes through the other one with every call answered
//! exactly once.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zs::{Client, Server, StableConfig};

use crate::common::cutter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_client_moves_to_a_live_entry_when_its_entry_goes_silent() {
    let answered = Arc::new(AtomicU64::new(0));
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    let counter = answered.clone();
    server.register_console("echo", move |_ctx, text: String| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok(text) }
    });
    let addr = server.local_addr().unwrap();
    let _server = server.spawn();
    let first = cutter::start(addr, 1 << 40, 1 << 41).await;
    let second = cutter::start(addr, 1 << 40, 1 << 41).await;

    let mut builder = Client::builder();
    builder
        .config_mut()
        .keepalive_interval(Some(Duration::from_millis(100)))
        .stable_link_timeout(Duration::from_millis(400))
        .stable_config(StableConfig::default().with_reconnect_initial(Duration::from_millis(20)));
    let client = Arc::new(
        builder
            .connect_pool(vec![first.addr, second.addr])
            .await
            .unwrap(),
    );
    assert_eq!(first.connections.load(Ordering::SeqCst), 1);
    assert_eq!(second.connections.load(Ordering::SeqCst), 0);

    // Eight callers, each with its own numbered calls, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let last_answer = Arc::new(std::sync::Mutex::new(Instant::now()));
    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let (client, stop, last_answer) = (client.clone(), stop.clone(), last_answer.clone());
            tokio::spawn(async move {
                let mut sent = HashSet::new();
                let mut number = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let text = format!("{caller}-{number}");
                    let answer = client.call_console("echo", &text).await.unwrap();
                    assert_eq!(answer, text);
                    assert!(sent.insert(text));
                    *last_answer.lock().unwrap() = Instant::now();
                    number += 1;
                }
                number
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.freeze();
    let cut = Instant::now();
    let after_cut = client.call_console("echo", "after the cut").await.unwrap();
    let switched = cut.elapsed();
    assert_eq!(after_cut, "after the cut");
    assert_eq!(
        second.connections.load(Ordering::SeqCst),
        1,
        "resumed on the other entry"
    );
    println!("switched entries {switched:?} after the cut (link timeout 400 ms)");
    assert!(
        switched < Duration::from_secs(5),
        "the switch waited for something other than the link timeout: {switched:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 1; // "after the cut"
    for caller in callers {
        total += caller.await.unwrap();
    }
    assert!(total > 16, "calls ran before and after the cut: {total}");
    assert_eq!(
        answered.load(Ordering::SeqCst),
        total,
        "every call ran exactly once on the server"
    );
}
