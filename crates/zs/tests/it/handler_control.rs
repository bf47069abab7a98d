//! Handler control over real sockets: delayed responses answered from elsewhere, event
//! bridges between servers, offloaded CPU work, strict ordering, and clean-up when a peer
//! leaves with work in progress.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use zs::{Client, DataFrame, Responder, Server, ServerHandle};

type Parked = Arc<Mutex<Vec<Responder<String>>>>;

/// A server where `wait` parks its reply and `wake TEXT` answers every parked request.
async fn parking_server() -> (ServerHandle, SocketAddr, Parked, Arc<Mutex<Vec<bool>>>) {
    let parked: Parked = Arc::default();
    let wake_results: Arc<Mutex<Vec<bool>>> = Arc::default();
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    let for_wait = parked.clone();
    let for_wake = parked.clone();
    let results = wake_results.clone();
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_console("wait", move |_ctx, _text: String| {
            let (responder, reply) = zs::deferred();
            for_wait.lock().unwrap().push(responder);
            reply
        })
        .register_console("wake", move |_ctx, text: String| {
            let mut delivered = 0;
            for responder in for_wake.lock().unwrap().drain(..) {
                let ok = responder.send(text.clone()).is_ok();
                results.lock().unwrap().push(ok);
                delivered += usize::from(ok);
            }
            async move { Ok(delivered.to_string()) }
        });
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr, parked, wake_results)
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

#[tokio::test]
async fn delayed_response_is_answered_from_another_connection() {
    let (server, addr, parked, _) = parking_server().await;
    let waiter = Arc::new(Client::connect(addr).await.unwrap());
    let waker = Client::connect(addr).await.unwrap();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.call_console("wait", "").await })
    };
    wait_until(|| parked.lock().unwrap().len() == 1).await;
    // The waiting connection keeps serving other requests meanwhile.
    assert_eq!(
        waiter.call_console("echo", "meanwhile").await.unwrap(),
        "meanwhile"
    );
    assert_eq!(
        waker.call_console("wake", "good morning").await.unwrap(),
        "1"
    );
    assert_eq!(waiting.await.unwrap().unwrap(), "good morning");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn responder_reports_a_peer_that_left_first() {
    let (server, addr, parked, wake_results) = parking_server().await;
    let waiter = Client::connect(addr).await.unwrap();
    let abandoned = tokio::spawn(async move {
        let waiting = waiter
            .call_console("wait", "")
            .timeout(Duration::from_secs(30));
        let _ = tokio::time::timeout(Duration::from_millis(200), waiting.into_future()).await;
        drop(waiter);
    });
    wait_until(|| parked.lock().unwrap().len() == 1).await;
    abandoned.await.unwrap();
    wait_until(|| parked.lock().unwrap().iter().all(Responder::is_gone)).await;
    let waker = Client::connect(addr).await.unwrap();
    assert_eq!(waker.call_console("wake", "too late").await.unwrap(), "0");
    assert_eq!(*wake_results.lock().unwrap(), vec![false]);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bridge_answers_when_the_backend_server_replies() {
    // backend <- bridge <- client: the bridge's handler asks the backend and answers then.
    let mut backend = Server::bind("127.0.0.1:0").await.unwrap();
    backend.register_stream("lookup", |_ctx, frame: DataFrame| async move {
        let key = frame.reader().read_string()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(DataFrame::new().with(format!("value of {key}")))
    });
    let backend_addr = backend.local_addr().unwrap();
    let backend = backend.spawn();
    let upstream = Arc::new(Client::connect(backend_addr).await.unwrap());

    let mut bridge = Server::bind("127.0.0.1:0").await.unwrap();
    bridge.register_console("get", move |_ctx, key: String| {
        let upstream = upstream.clone();
        async move {
            let reply = upstream
                .call_stream("lookup", &DataFrame::new().with(key))
                .await?;
            Ok(reply.reader().read_string()?)
        }
    });
    let bridge_addr = bridge.local_addr().unwrap();
    let bridge = bridge.spawn();
    let client = Client::connect(bridge_addr).await.unwrap();
    let keys: Vec<String> = (0..50).map(|index| format!("k{index}")).collect();
    let replies = join_all(
        keys.iter()
            .map(|key| client.call_console("get", key).into_future()),
    )
    .await;
    for (key, reply) in keys.iter().zip(replies) {
        assert_eq!(reply.unwrap(), format!("value of {key}"));
    }
    bridge.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn offloaded_work_is_bounded_and_the_connection_keeps_serving() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.config_mut().max_offload(2);
    let (running_in, most_in) = (running.clone(), most.clone());
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_console("heavy", move |ctx, text: String| {
            let (running, most) = (running_in.clone(), most_in.clone());
            async move {
                let sum = ctx
                    .offload(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // Blocking CPU work: would stall a runtime worker if run inline.
                        std::thread::sleep(Duration::from_millis(50));
                        let sum: u64 = text.bytes().map(u64::from).sum();
                        running.fetch_sub(1, Ordering::SeqCst);
                        sum
                    })
                    .await?;
                Ok(sum.to_string())
            }
        })
        .register_console("heavy_panic", |ctx, _text: String| async move {
            ctx.offload(|| panic!("bug in heavy work")).await?;
            Ok(String::new())
        });
    let addr = server.local_addr().unwrap();
    let server = server.spawn();
    let client = Arc::new(Client::connect(addr).await.unwrap());
    let heavy_client = client.clone();
    let all_heavy = tokio::spawn(async move {
        join_all((0..8).map(|_| heavy_client.call_console("heavy", "ab").into_future())).await
    });
    // Small calls are answered while the heavy ones run.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = std::time::Instant::now();
    assert_eq!(client.call_console("echo", "quick").await.unwrap(), "quick");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "echo waited {:?}",
        started.elapsed()
    );
    for reply in all_heavy.await.unwrap() {
        assert_eq!(reply.unwrap(), "195");
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "never more than max_offload jobs at once"
    );
    let error = client.call_console("heavy_panic", "").await.unwrap_err();
    assert!(error.to_string().contains("panicked"), "{error}");
    server.shutdown().await;
}

/// Runs 10,000 mixed calls (console, stream, one-way) issued in order, and returns the order
/// in which the server's handlers started.
async fn mixed_calls(ordered: bool) -> Vec<usize> {
    let log: Arc<Mutex<Vec<usize>>> = Arc::default();
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    let (console_log, stream_log, direct_log) = (log.clone(), log.clone(), log.clone());
    server
        .register_console("c", move |_ctx, text: String| {
            let log = console_log.clone();
            async move {
                let index: usize = text.parse()?;
                log.lock().unwrap().push(index);
                // Vary the handler's length so concurrent execution reorders.
                for _ in 0..(index * 7919) % 5 {
                    tokio::task::yield_now().await;
                }
                Ok(text)
            }
        })
        .register_stream("s", move |_ctx, frame: DataFrame| {
            let log = stream_log.clone();
            async move {
                let index = frame.reader().read_u64()? as usize;
                log.lock().unwrap().push(index);
                for _ in 0..(index * 104_729) % 3 {
                    tokio::task::yield_now().await;
                }
                Ok(frame)
            }
        })
        .register_direct_console("d", move |_ctx, text: String| {
            let log = direct_log.clone();
            async move {
                log.lock().unwrap().push(text.parse()?);
                Ok(())
            }
        });
    let addr = server.local_addr().unwrap();
    let server = server.spawn();
    let mut builder = Client::builder();
    builder
        .config_mut()
        .ordered_requests(ordered)
        .max_concurrent_requests(20_000);
    let client = builder.connect(addr).await.unwrap();

    const COUNT: usize = 10_000;
    let calls = (0..COUNT).map(|index| {
        let client = &client;
        async move {
            match index % 3 {
                0 => assert_eq!(
                    client.call_console("c", &index.to_string()).await.unwrap(),
                    index.to_string()
                ),
                1 => {
                    let reply = client
                        .call_stream("s", &DataFrame::new().with(index as u64))
                        .await
                        .unwrap();
                    assert_eq!(reply.reader().read_u64().unwrap(), index as u64);
                }
                _ => client
                    .send_direct_console("d", &index.to_string())
                    .await
                    .unwrap(),
            }
        }
    });
    // join_all polls each call once in order before any other, so they are sent in order.
    join_all(calls).await;
    wait_until(|| log.lock().unwrap().len() == COUNT).await;
    server.shutdown().await;
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn strict_order_runs_ten_thousand_mixed_commands_in_send_order() {
    let order = mixed_calls(true).await;
    let expected: Vec<usize> = (0..10_000).collect();
    let first = order.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        order == expected,
        "first out-of-order position {first:?}: {:?}",
        first.map(|at| &order[at.saturating_sub(3)..(at + 10).min(order.len())])
    );
}

#[tokio::test]
async fn without_strict_order_handlers_interleave() {
    // The control for the test above: the same workload, concurrent, does reorder.
    let order = mixed_calls(false).await;
    assert_eq!(order.len(), 10_000);
    let in_order = order.windows(2).all(|pair| pair[0] < pair[1]);
    let mut sorted = order;
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..10_000).collect::<Vec<_>>(),
        "every call ran exactly once"
    );
    assert!(
        !in_order,
        "concurrent handlers should interleave with this workload"
    );
}

#[tokio::test(start_paused = true)]
async fn peer_leaving_with_work_in_progress_leaves_nothing_behind() {
    let (server, addr, parked, _) = parking_server().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    for _ in 0..20 {
        let client = Client::connect(addr).await.unwrap();
        let pending = client
            .call_console("wait", "")
            .timeout(Duration::from_secs(30))
            .into_future();
        let _ = tokio::time::timeout(Duration::from_millis(20), pending).await;
        drop(client);
    }
    wait_until(|| server.connection_count() == 0).await;
    wait_until(|| parked.lock().unwrap().iter().all(Responder::is_gone)).await;
    parked.lock().unwrap().clear();
    wait_until(|| {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            <= tasks_before
    })
    .await;
    server.shutdown().await;
}

/// A caller that times out cancels its request: the server drops the running handler at its
/// next await instead of finishing work nobody waits for, and keeps serving.
#[tokio::test(start_paused = true)]
async fn a_timed_out_call_cancels_its_handler() {
    struct DropFlag(Arc<AtomicUsize>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    let (on_drop, on_finish) = (dropped.clone(), finished.clone());
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_console("slow", move |_ctx, _text: String| {
            let guard = DropFlag(on_drop.clone());
            let finished = on_finish.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                drop(guard);
                Ok("done".to_owned())
            }
        });
    let addr = server.local_addr().unwrap();
    let server = server.spawn();
    let client = Client::connect(addr).await.unwrap();
    let result = client
        .call_console("slow", "")
        .timeout(Duration::from_millis(50))
        .await;
    assert!(
        matches!(result, Err(zs::CallError::Timeout(_))),
        "{result:?}"
    );
    wait_until(|| dropped.load(Ordering::SeqCst) == 1).await;
    assert_eq!(finished.load(Ordering::SeqCst), 0, "the handler ran on");
    assert_eq!(client.call_console("echo", "still").await.unwrap(), "still");
    server.shutdown().await;
}
