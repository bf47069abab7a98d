//! StableIO over real loopback sockets: a proxy cuts the connection at random points (inside
//! records and frames) while calls and a BigStream run; every call is answered exactly once
//! and the stream arrives intact. Also: expiry with a clear error, refusals, and plain and
//! StableIO clients on one port.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zs::{Client, Config, EncryptedStream, Security, Server, StableConfig};
use zs_wire::stable::{Frame, RefuseReason, SessionId};

use crate::common;
use common::cutter;
use common::pattern::{hashing_handler, pattern, sha3_of_pattern};

/// Reconnect at once: the tests cut often.
fn fast_stable() -> StableConfig {
    StableConfig::default()
        .with_reconnect_initial(Duration::from_millis(5))
        .with_reconnect_max(Duration::from_millis(100))
}

async fn server(configure: impl FnOnce(&mut Config)) -> (zs::ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    configure(server.config_mut());
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_big_stream("store", |_ctx, stream| hashing_handler(stream));
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

async fn stable_client(addr: SocketAddr, configure: impl FnOnce(&mut Config)) -> Client {
    let mut builder = Client::builder();
    builder.config_mut().stable_config(fast_stable());
    configure(builder.config_mut());
    builder.connect_stable(addr).await.unwrap()
}

/// The chaos test: 100,000 calls (64 in flight) and a 64 MiB BigStream while a proxy cuts
/// the link every 64 KiB..1 MiB. Each call's payload carries its index; every reply must
/// match its call, none may be missing or repeated, and the stream's hash must match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_a_big_stream_survive_random_cuts() {
    const CALLS: usize = 100_000;
    const IN_FLIGHT: usize = 64;
    const STREAM: u64 = 64 * 1024 * 1024;
    let (server, addr) = server(|config| {
        config.stable_config(fast_stable());
    })
    .await;
    let proxy = cutter::start(addr, 64 * 1024, 1024 * 1024).await;
    let client = stable_client(proxy.addr, |_| {}).await;

    let test = async {
        let uploader = client.peer().clone();
        let upload = tokio::spawn(async move {
            uploader
                .send_big_stream("store", pattern(STREAM), Some(STREAM))
                .await
        });
        let mut answered = HashSet::with_capacity(CALLS);
        let mut wrong = 0usize;
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0usize;
        while next < CALLS || !in_flight.is_empty() {
            while next < CALLS && in_flight.len() < IN_FLIGHT {
                let index = next;
                let call = client.call_console("echo", &format!("call {index}"));
                in_flight.push(async move { (index, call.await) });
                next += 1;
            }
            let (index, reply) = in_flight.next().await.unwrap();
            let reply = reply.unwrap_or_else(|error| panic!("call {index} failed: {error}"));
            if reply != format!("call {index}") {
                wrong += 1;
            }
            assert!(answered.insert(index), "call {index} answered twice");
        }
        assert_eq!(wrong, 0, "replies that do not match their call");
        assert_eq!(answered.len(), CALLS);
        let reply = upload.await.unwrap().unwrap();
        let mut reader = reply.reader();
        assert_eq!(reader.read_bytes().unwrap(), sha3_of_pattern(STREAM).await);
        assert_eq!(reader.read_u64().unwrap(), STREAM);
    };
    tokio::time::timeout(Duration::from_secs(240), test)
        .await
        .expect("chaos test took too long");
    let cuts = proxy.cuts.load(Ordering::SeqCst);
    println!(
        "{cuts} cuts over {} connections",
        proxy.connections.load(Ordering::SeqCst)
    );
    assert!(cuts >= 20, "the proxy cut only {cuts} times");
    assert!(!client.peer().is_closed());
    server.shutdown().await;
}

/// The server pushes to a StableIO client across a cut, too.
#[tokio::test]
async fn server_calls_reach_the_client_across_cuts() {
    let (server, addr) = server(|config| {
        config.stable_config(fast_stable());
    })
    .await;
    let proxy = cutter::start(addr, 1 << 40, 1 << 41).await;
    let mut builder = Client::builder();
    builder.register_console("whoami", |_ctx, text: String| async move {
        Ok(format!("client got {text}"))
    });
    builder.config_mut().stable_config(fast_stable());
    let client = builder.connect_stable(proxy.addr).await.unwrap();
    assert_eq!(client.call_console("echo", "hi").await.unwrap(), "hi");
    for round in 0..5 {
        proxy.cut_all();
        let peer = server.peers().pop().unwrap();
        let answer = peer
            .call_console("whoami", &format!("{round}"))
            .await
            .unwrap();
        assert_eq!(answer, format!("client got {round}"));
    }
    assert!(proxy.cuts.load(Ordering::SeqCst) >= 5);
    assert_eq!(
        server.connection_count(),
        1,
        "resumes must not add connections"
    );
    drop(client);
    server.shutdown().await;
}

/// A client that cannot reach the server within the give-up time ends with a clear error,
/// and the server forgets the session.
#[tokio::test(start_paused = true)]
async fn an_expired_session_ends_with_a_clear_error() {
    let short = fast_stable().with_give_up_after(Duration::from_millis(600));
    let server_config = short.clone();
    let (server, addr) = server(move |config| {
        config.stable_config(server_config);
    })
    .await;
    let proxy = cutter::start(addr, 1 << 40, 1 << 41).await;
    let client = stable_client(proxy.addr, |config| {
        config.stable_config(short);
    })
    .await;
    assert_eq!(
        client.call_console("echo", "before").await.unwrap(),
        "before"
    );
    proxy.set_outage(true);
    proxy.cut_all();
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .call_console("echo", "after")
            .timeout(Duration::from_secs(8)),
    )
    .await
    .unwrap()
    .unwrap_err();
    let reason = client.peer().closed().await.to_string();
    assert!(
        reason.contains("expired"),
        "reason should name the expiry: {reason} (call error: {error})"
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.connection_count() > 0 || server.stable_session_count() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server should forget the expired session and drop its connection");
    server.shutdown().await;
}

/// Plain and StableIO clients share the server's port.
#[tokio::test]
async fn plain_and_stable_clients_share_a_port() {
    let (server, addr) = server(|_| {}).await;
    let plain = Client::connect(addr).await.unwrap();
    let stable = stable_client(addr, |_| {}).await;
    assert_eq!(plain.call_console("echo", "plain").await.unwrap(), "plain");
    assert_eq!(
        stable.call_console("echo", "stable").await.unwrap(),
        "stable"
    );
    assert_eq!(server.connection_count(), 2);
    server.shutdown().await;
}

/// A server that does not accept StableIO treats the magic as a broken preamble.
#[tokio::test]
async fn a_server_without_stable_refuses_stable_clients() {
    let (server, addr) = server(|config| {
        config.accept_stable(false);
    })
    .await;
    let mut builder = Client::builder();
    builder.config_mut().connect_timeout(Duration::from_secs(2));
    assert!(builder.connect_stable(addr).await.is_err());
    assert!(Client::connect(addr).await.is_ok());
    server.shutdown().await;
}

/// A StableIO client without the server's token is refused with the reason.
#[tokio::test]
async fn a_stable_client_without_the_token_is_refused() {
    let (server, addr) = server(|config| {
        config.security().token(b"right".to_vec());
    })
    .await;
    let mut builder = Client::builder();
    builder.config_mut().security().token(b"wrong".to_vec());
    let error = builder.connect_stable(addr).await.unwrap_err().to_string();
    assert!(error.contains("unauthorized"), "{error}");
    server.shutdown().await;
}

/// Hand-driven links: a resume for a session that does not exist, and garbage instead of
/// `Open`/`Resume`, are refused; the server keeps serving.
#[tokio::test]
async fn bogus_resumes_are_refused_and_garbage_drops_only_its_link() {
    let (server, addr) = server(|_| {}).await;
    let stable = stable_client(addr, |_| {}).await;

    let link = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut link = EncryptedStream::connect_stable_link(tcp, &Security::default())
            .await
            .unwrap();
        let mut input = BytesMut::new();
        while Frame::decode(&mut input.clone()).unwrap().is_none() {
            link.read_buf(&mut input).await.unwrap();
        }
        let challenge = Frame::decode(&mut input).unwrap().unwrap();
        assert!(matches!(challenge, Frame::Challenge { .. }));
        (link, input)
    };

    // Resume of an unknown session.
    let (mut link, mut input) = link.await;
    let mut resume = BytesMut::new();
    Frame::Resume {
        session_id: SessionId([7; 16]),
        proof: [9; 32],
        next_expected: 0,
    }
    .encode(&mut resume);
    link.write_all(&resume).await.unwrap();
    link.flush().await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(frame) = Frame::decode(&mut input).unwrap() {
                return frame;
            }
            assert_ne!(link.read_buf(&mut input).await.unwrap(), 0);
        }
    })
    .await
    .unwrap();
    assert_eq!(
        refused,
        Frame::Refused {
            reason: RefuseReason::UnknownSession
        }
    );

    // Garbage as the first frame: the link is dropped.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut link = EncryptedStream::connect_stable_link(tcp, &Security::default())
        .await
        .unwrap();
    link.write_all(b"\xff\xff\xff\xff\xff").await.unwrap();
    link.flush().await.unwrap();
    let mut sink = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), link.read_to_end(&mut sink)).await;
    assert!(ended.is_ok(), "the server should drop a garbage link");

    assert_eq!(stable.call_console("echo", "fine").await.unwrap(), "fine");
    server.shutdown().await;
}

/// The blocking client rides StableIO too: a cut between two calls goes unnoticed.
#[test]
fn a_blocking_stable_client_survives_a_cut() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, proxy) = runtime.block_on(async {
        let (server, addr) = server(|config| {
            config.stable_config(fast_stable());
        })
        .await;
        (server, cutter::start(addr, 1 << 40, 1 << 41).await)
    });
    let mut builder = Client::builder();
    builder.config_mut().stable_config(fast_stable());
    let client = zs::BlockingClient::connect_stable_with(builder, proxy.addr).unwrap();
    assert_eq!(client.call_console("echo", "one").unwrap(), "one");
    proxy.cut_all();
    assert_eq!(client.call_console("echo", "two").unwrap(), "two");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    assert_eq!(proxy.connections.load(Ordering::SeqCst), 2);
    drop(client);
    runtime.block_on(server.shutdown());
}

/// Closing a StableIO client ends its session on both sides: no session is left waiting.
#[tokio::test]
async fn a_closed_client_leaves_no_session_behind() {
    let (server, addr) = server(|_| {}).await;
    let client = stable_client(addr, |_| {}).await;
    assert_eq!(client.call_console("echo", "x").await.unwrap(), "x");
    assert_eq!(server.stable_session_count(), 1);
    let reason = client.close().await;
    assert!(
        matches!(reason, zs::DisconnectReason::Local { .. }),
        "{reason:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.stable_session_count() > 0 || server.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the session should end with its client");
    server.shutdown().await;
}

/// A full server gives the slot of the StableIO session that has waited longest for its
/// client to a client that is here now (issue 12: dead clients must not hold connection
/// slots for the whole give-up time), while a session with a link is never taken.
#[tokio::test(start_paused = true)]
async fn a_full_server_ends_the_longest_detached_session_for_a_new_client() {
    let (server, addr) = server(|config| {
        config.max_connections(2).stable_config(fast_stable());
    })
    .await;
    // One StableIO client whose network goes away, one that stays connected.
    let proxy = cutter::start(addr, u64::MAX / 2, u64::MAX / 2).await;
    let vanished = stable_client(proxy.addr, |_| {}).await;
    let present = stable_client(addr, |_| {}).await;
    assert_eq!(vanished.call_console("echo", "a").await.unwrap(), "a");
    assert_eq!(server.stable_session_count(), 2);
    proxy.set_outage(true);
    proxy.cut_all();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still held: its client may come back within the give-up time.
    assert_eq!(server.stable_session_count(), 2);

    // The server is full; the newcomer gets the detached session's slot.
    let newcomer = Client::connect(addr).await.unwrap();
    assert_eq!(newcomer.call_console("echo", "b").await.unwrap(), "b");
    assert_eq!(server.stable_session_count(), 1);
    assert_eq!(present.call_console("echo", "c").await.unwrap(), "c");

    // Full again, and no session is waiting for its client: a new client is refused.
    let refused = Client::connect(addr).await;
    assert!(
        matches!(refused, Err(zs::ConnectError::Refused(_))),
        "{refused:?}"
    );
    drop(vanished);
}

/// The server-wide StableIO memory budget: data queued for a client that went away fills
/// its session's resend buffer only up to the budget (not its 4 MiB window), and when a
/// connected client's session needs room, the detached session is ended to free it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_caps_detached_sessions_and_frees_them_for_present_clients() {
    const BUDGET: usize = 1024 * 1024;
    let (server, addr) = server(|config| {
        config.stable_config(fast_stable()).stable_memory(BUDGET);
    })
    .await;
    let proxy = cutter::start(addr, u64::MAX / 2, u64::MAX / 2).await;
    let vanished = stable_client(proxy.addr, |_| {}).await;
    assert_eq!(vanished.call_console("echo", "a").await.unwrap(), "a");
    proxy.set_outage(true);
    proxy.cut_all();
    // 3 MiB of pushes for the client that is gone: held for a resume, up to the budget.
    let chunk = "x".repeat(64 * 1024);
    for _ in 0..48 {
        assert_eq!(
            server
                .broadcast_direct_console("news", &chunk)
                .await
                .unwrap(),
            1
        );
    }
    let mut used = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        used = server.stable_memory_used();
        if used >= BUDGET - 64 * 1024 {
            break;
        }
    }
    assert!(
        (BUDGET - 64 * 1024..=BUDGET).contains(&used),
        "the detached session holds {used} bytes of a {BUDGET}-byte budget"
    );
    assert_eq!(server.stable_session_count(), 1);

    // A client that is here needs room for its replies: the detached session gives way.
    let present = stable_client(addr, |_| {}).await;
    let big = "y".repeat(256 * 1024);
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        present.call_console("echo", big.as_str()),
    )
    .await
    .expect("the call waits for the budget only until the detached session is ended")
    .unwrap();
    assert_eq!(reply.len(), big.len());
    assert_eq!(server.stable_session_count(), 1);
    assert!(server.stable_memory_used() <= BUDGET);
    drop(vanished);
}
