//! End-to-end behaviour of servers and clients over real loopback sockets.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use zs::{
    CallError, Client, ConnectError, DataFrame, DisconnectReason, Server, ServerHandle, Status,
    StatusCode,
};

/// A server with the commands most tests use.
async fn echo_server(configure: impl FnOnce(&mut Server)) -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_stream("echo_df", |_ctx, frame: DataFrame| async move { Ok(frame) })
        .register_stream("add", |_ctx, frame: DataFrame| async move {
            let mut reader = frame.reader();
            let sum = reader.read_i64()? + reader.read_i64()?;
            Ok(DataFrame::new().with(sum))
        })
        .register_console("fail", |_ctx, text: String| async move {
            Err(Status::unknown(format!("refused: {text}")))
        })
        .register_console("panic", |_ctx, _text: String| async move {
            if true {
                panic!("handler bug");
            }
            Ok(String::new())
        })
        .register_console("sleep_ms", |_ctx, text: String| async move {
            let millis: u64 = text.parse()?;
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok(text)
        });
    configure(&mut server);
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

#[tokio::test]
async fn console_and_stream_commands_round_trip() {
    let (server, addr) = echo_server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    assert_eq!(client.call_console("echo", "héllo").await.unwrap(), "héllo");
    let frame = DataFrame::new()
        .with("name")
        .with(7u8)
        .with(vec![1.5f64, -2.0])
        .with(DataFrame::new().with(true));
    assert_eq!(client.call_stream("echo_df", &frame).await.unwrap(), frame);
    let sum = client
        .call_stream("add", &DataFrame::new().with(40i64).with(2i64))
        .await
        .unwrap();
    assert_eq!(sum.reader().read_i64().unwrap(), 42);
    server.shutdown().await;
}

#[tokio::test]
async fn works_over_ipv6_loopback() {
    let Ok(mut server) = Server::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    };
    server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    let addr = server.local_addr().unwrap();
    let server = server.spawn();
    let client = Client::connect(addr).await.unwrap();
    assert!(client.peer().remote_addr().is_ipv6());
    assert_eq!(client.call_console("echo", "v6").await.unwrap(), "v6");
    server.shutdown().await;
}

#[tokio::test]
async fn handler_errors_and_panics_cost_only_their_request() {
    let (server, addr) = echo_server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    let error = client.call_console("fail", "x").await.unwrap_err();
    assert_eq!(error, CallError::Remote(Status::unknown("refused: x")));
    let error = client.call_console("panic", "").await.unwrap_err();
    assert!(
        matches!(&error, CallError::Remote(status) if status.code() == StatusCode::INTERNAL && status.message().contains("handler bug")),
        "{error:?}"
    );
    // Same connection still serves.
    assert_eq!(client.call_console("echo", "alive").await.unwrap(), "alive");
    assert!(
        client
            .call_console("missing", "")
            .await
            .unwrap_err()
            .is_unknown_command()
    );
    // A console call to a stream command is refused by kind (UNIMPLEMENTED: no console
    // command of that name).
    let error = client.call_console("echo_df", "").await.unwrap_err();
    assert!(
        matches!(&error, CallError::Remote(status) if status.code() == StatusCode::UNIMPLEMENTED),
        "{error:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_dataframe_type_in_a_handler_is_an_error_reply() {
    let (server, addr) = echo_server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    let error = client
        .call_stream("add", &DataFrame::new().with("two").with(2i64))
        .await
        .unwrap_err();
    let CallError::Remote(status) = error else {
        panic!("expected a remote error")
    };
    // A DataFrame read error in a handler is the caller's bad argument.
    assert_eq!(status.code(), StatusCode::INVALID_ARGUMENT);
    assert_eq!(status.message(), "value 0 is string, not i64");
    server.shutdown().await;
}

#[tokio::test]
async fn thousand_concurrent_calls_from_hundred_clients_get_their_own_replies() {
    let (server, addr) = echo_server(|_| {}).await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(Arc::new(Client::connect(addr).await.unwrap()));
    }
    let mut calls = tokio::task::JoinSet::new();
    for index in 0..1000usize {
        let client = clients[index % 100].clone();
        calls.spawn(async move {
            let text = format!("call-{index}");
            // Mix kinds and a little delay so replies come back out of order.
            let delayed = client.call_console("sleep_ms", &(index % 7).to_string());
            let echoed = client.call_console("echo", &text);
            let (delayed, echoed) = tokio::join!(delayed.into_future(), echoed.into_future());
            assert_eq!(delayed.unwrap(), (index % 7).to_string());
            assert_eq!(echoed.unwrap(), text);
            let frame = DataFrame::new().with(index as u64);
            let reply = client.call_stream("echo_df", &frame).await.unwrap();
            assert_eq!(reply.reader().read_u64().unwrap(), index as u64);
        });
    }
    let mut done = 0;
    while let Some(result) = calls.join_next().await {
        result.unwrap();
        done += 1;
    }
    assert_eq!(done, 1000);
    assert_eq!(server.connection_count(), 100);
    let echo = server
        .stats()
        .into_iter()
        .find(|stats| stats.name == "echo")
        .unwrap();
    assert_eq!(echo.calls, 1000);
    server.shutdown().await;
}

use std::future::IntoFuture;

#[tokio::test]
async fn server_calls_its_clients_and_broadcasts() {
    let (server, addr) = echo_server(|_| {}).await;
    let received = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for index in 0..3u32 {
        let received = received.clone();
        let mut builder = Client::builder();
        builder
            .register_stream("whoami", move |_ctx, _frame: DataFrame| async move {
                Ok(DataFrame::new().with(index))
            })
            .register_direct_console("news", move |_ctx, text: String| {
                let received = received.clone();
                async move {
                    received.lock().await.push((index, text));
                    Ok(())
                }
            });
        let client = builder.connect(addr).await.unwrap();
        clients.push(client);
    }
    // Wait until the server has registered all three.
    for _ in 0..100 {
        if server.connection_count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut answers = Vec::new();
    for peer in server.peers() {
        let reply = peer.call_stream("whoami", &DataFrame::new()).await.unwrap();
        answers.push(reply.reader().read_u32().unwrap());
    }
    answers.sort_unstable();
    assert_eq!(answers, vec![0, 1, 2]);

    assert_eq!(
        server
            .broadcast_direct_console("news", "hello all")
            .await
            .unwrap(),
        3
    );
    for _ in 0..100 {
        if received.lock().await.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut got = received.lock().await.clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            (0, "hello all".into()),
            (1, "hello all".into()),
            (2, "hello all".into())
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn handler_calls_back_the_calling_client_before_replying() {
    let (server, addr) = echo_server(|server| {
        server.register_console("ask_back", |ctx, text: String| async move {
            let answer = ctx.peer().call_console("upper", &text).await?;
            Ok(format!("client said {answer}"))
        });
    })
    .await;
    let mut builder = Client::builder();
    builder.register_console("upper", |_ctx, text: String| async move {
        Ok(text.to_uppercase())
    });
    let client = builder.connect(addr).await.unwrap();
    assert_eq!(
        client.call_console("ask_back", "hi").await.unwrap(),
        "client said HI"
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn call_timeout_is_reported_and_the_connection_survives() {
    let (server, addr) = echo_server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    let error = client
        .call_console("sleep_ms", "500")
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(error, CallError::Timeout(Duration::from_millis(50)));
    assert_eq!(
        client.call_console("echo", "still here").await.unwrap(),
        "still here"
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pending_call_fails_clearly_when_the_connection_dies() {
    let (server, addr) = echo_server(|server| {
        server.register_console("die", |ctx, _text: String| async move {
            ctx.peer().close("dying on purpose").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(String::new())
        });
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    let error = client.call_console("die", "").await.unwrap_err();
    assert!(
        matches!(&error, CallError::ConnectionClosed(DisconnectReason::Peer { reason, .. }) if reason == "dying on purpose"),
        "{error:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn per_connection_state_is_typed_and_separate() {
    let mut server = Server::bind_with_state("127.0.0.1:0", |_addr| AtomicUsize::new(0))
        .await
        .unwrap();
    server.register_console("count", |ctx, _text: String| async move {
        let count = ctx.state().fetch_add(1, Ordering::SeqCst) + 1;
        Ok(count.to_string())
    });
    let addr = server.local_addr().unwrap();
    let server = server.spawn();
    let first = Client::connect(addr).await.unwrap();
    let second = Client::connect(addr).await.unwrap();
    assert_eq!(first.call_console("count", "").await.unwrap(), "1");
    assert_eq!(first.call_console("count", "").await.unwrap(), "2");
    assert_eq!(second.call_console("count", "").await.unwrap(), "1");
    server.shutdown().await;
}

#[tokio::test]
async fn connection_hooks_fire_with_reasons() {
    let connected = Arc::new(AtomicUsize::new(0));
    let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (connected_hook, reasons_hook) = (connected.clone(), reasons.clone());
    let (server, addr) = echo_server(move |server| {
        server.on_connected(move |_peer| {
            connected_hook.fetch_add(1, Ordering::SeqCst);
        });
        server.on_disconnected(move |_peer, reason| {
            reasons_hook.lock().unwrap().push(reason.clone());
        });
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    client.call_console("echo", "x").await.unwrap();
    let reason = client.close().await;
    assert!(
        matches!(reason, DisconnectReason::Local { .. }),
        "{reason:?}"
    );
    for _ in 0..100 {
        if !reasons.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(connected.load(Ordering::SeqCst), 1);
    let reasons = reasons.lock().unwrap().clone();
    assert!(
        matches!(reasons.as_slice(), [DisconnectReason::Peer { reason, .. }] if reason == "client closed"),
        "{reasons:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn max_connections_refuses_with_a_reason() {
    let (server, addr) = echo_server(|server| {
        server.config_mut().max_connections(2);
    })
    .await;
    let _first = Client::connect(addr).await.unwrap();
    let _second = Client::connect(addr).await.unwrap();
    let error = Client::connect(addr).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ConnectError::Refused(DisconnectReason::Peer {
                code: zs::CloseCode::ServerFull,
                ..
            })
        ),
        "{error:?}"
    );
    drop(_first);
    // The slot frees once the server sees the close.
    let mut connected = false;
    for _ in 0..100 {
        if Client::connect(addr).await.is_ok() {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(connected);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_finishes_calls_in_flight() {
    let (server, addr) = echo_server(|_| {}).await;
    let client = Arc::new(Client::connect(addr).await.unwrap());
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.call_console("sleep_ms", "300").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = tokio::time::Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "shutdown waited for the handler"
    );
    assert_eq!(slow.await.unwrap().unwrap(), "300");
    // After shutdown the connection is closed with the server's reason.
    let reason = client.peer().closed().await;
    assert!(
        matches!(
            &reason,
            DisconnectReason::Peer {
                code: zs::CloseCode::ShuttingDown,
                ..
            }
        ),
        "{reason:?}"
    );
    assert!(Client::connect(addr).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn close_after_flush_delivers_pending_replies_first() {
    let (server, addr) = echo_server(|server| {
        server.register_console("slow_then_close", |ctx, _text: String| async move {
            let peer = ctx.peer().clone();
            // Ask for a delayed close while our own reply is still pending.
            peer.close_after_flush("done").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok("last words".to_string())
        });
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    assert_eq!(
        client.call_console("slow_then_close", "").await.unwrap(),
        "last words"
    );
    let reason = client.peer().closed().await;
    assert!(
        matches!(&reason, DisconnectReason::Peer { reason, .. } if reason == "done"),
        "{reason:?}"
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_peer_is_disconnected() {
    let (server, addr) = echo_server(|server| {
        server
            .config_mut()
            .keepalive_interval(None)
            .idle_timeout(Some(Duration::from_millis(200)));
    })
    .await;
    // The client sends nothing: no keep-alive.
    let mut builder = Client::builder();
    builder
        .config_mut()
        .keepalive_interval(None)
        .idle_timeout(None);
    let client = builder.connect(addr).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), client.peer().closed())
        .await
        .unwrap();
    assert!(
        matches!(
            &reason,
            DisconnectReason::Peer {
                code: zs::CloseCode::IdleTimeout,
                ..
            }
        ),
        "{reason:?}"
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn keepalive_keeps_a_quiet_connection_open() {
    let (server, addr) = echo_server(|server| {
        server
            .config_mut()
            .keepalive_interval(Some(Duration::from_millis(50)))
            .idle_timeout(Some(Duration::from_millis(200)));
    })
    .await;
    let mut builder = Client::builder();
    builder
        .config_mut()
        .keepalive_interval(Some(Duration::from_millis(50)));
    let client = builder.connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(client.call_console("echo", "awake").await.unwrap(), "awake");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn statistics_count_calls_errors_bytes_and_time() {
    let (server, addr) = echo_server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    for _ in 0..3 {
        client.call_console("echo", "12345").await.unwrap();
    }
    let _ = client.call_console("fail", "").await;
    client.call_console("sleep_ms", "20").await.unwrap();
    let stats = server.stats();
    let get = |name: &str| {
        stats
            .iter()
            .find(|stats| stats.name == name)
            .unwrap()
            .clone()
    };
    let echo = get("echo");
    assert_eq!(
        (echo.calls, echo.errors, echo.bytes_in, echo.bytes_out),
        (3, 0, 15, 15)
    );
    assert_eq!((get("fail").calls, get("fail").errors), (1, 1));
    assert!(get("sleep_ms").max_handler_time >= Duration::from_millis(20));
    server.shutdown().await;
}

#[tokio::test]
async fn request_over_the_servers_announced_limit_fails_locally() {
    let (server, addr) = echo_server(|server| {
        server.config_mut().max_frame_size(1024);
    })
    .await;
    // The client's own limit is the 16 MiB default; it learns the server's from its preamble.
    let client = Client::connect(addr).await.unwrap();
    let error = client
        .call_console("echo", &"x".repeat(2000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Encode(zs_wire::frame::EncodeError::FrameTooLarge { max: 1024, .. })
        ),
        "{error:?}"
    );
    assert_eq!(client.call_console("echo", "small").await.unwrap(), "small");
    server.shutdown().await;
}

#[test]
fn blocking_client_works_without_an_async_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, addr) = runtime.block_on(echo_server(|_| {}));
    let client = zs::BlockingClient::connect(addr).unwrap();
    assert_eq!(client.call_console("echo", "sync").unwrap(), "sync");
    let reply = client
        .call_stream("add", &DataFrame::new().with(1i64).with(2i64))
        .unwrap();
    assert_eq!(reply.reader().read_i64().unwrap(), 3);
    assert_eq!(
        client.call_console_timeout("sleep_ms", "300", Duration::from_millis(30)),
        Err(CallError::Timeout(Duration::from_millis(30)))
    );
    drop(client);
    runtime.block_on(server.shutdown());
}

#[tokio::test]
async fn server_and_client_run_over_any_byte_stream() {
    // The same Server and Client over in-memory pipes instead of TCP: handshake, encryption,
    // calls both ways and transfers all work, which is what virtual streams will rely on.
    let (server, _addr) = echo_server(|server| {
        server.register_console("who", |ctx, _text: String| async move {
            Ok(ctx.peer().remote_addr().to_string())
        });
    })
    .await;
    let virtual_addr: SocketAddr = "10.99.0.7:4920".parse().unwrap();
    let local: SocketAddr = "10.99.0.1:1".parse().unwrap();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (client_side, server_side) = tokio::io::duplex(256 * 1024);
        server.serve_stream(server_side, local, virtual_addr);
        let mut builder = Client::builder();
        builder.register_console("upper", |_ctx, text: String| async move {
            Ok(text.to_uppercase())
        });
        let client = builder
            .connect_stream(client_side, virtual_addr, local)
            .await
            .unwrap();
        clients.push(client);
    }
    for client in &clients {
        assert_eq!(client.peer().suite(), zs::Suite::Aes128Gcm);
        assert_eq!(
            client.call_console("echo", "over a pipe").await.unwrap(),
            "over a pipe"
        );
        assert_eq!(
            client.call_console("who", "").await.unwrap(),
            local.to_string()
        );
        let frame = DataFrame::new().with(7i64).with(8i64);
        assert_eq!(
            client
                .call_stream("add", &frame)
                .await
                .unwrap()
                .reader()
                .read_i64()
                .unwrap(),
            15
        );
    }
    assert_eq!(server.connection_count(), 3);
    for peer in server.peers() {
        assert_eq!(
            peer.call_console("upper", "pushed").await.unwrap(),
            "PUSHED"
        );
    }
    server.shutdown().await;
}
