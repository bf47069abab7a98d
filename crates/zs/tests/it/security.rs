//! Security over real sockets: every connection is encrypted with a fresh key, suites
//! interoperate, fingerprints pin, tokens authenticate, and an attacker in the middle who
//! alters, replays, reorders or downgrades gets the connection closed with a clear error.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::proxy::{self, Direction, Unit};
use zs::{Client, ConnectError, DisconnectReason, Fingerprint, Server, ServerHandle, Suite};
use zs_wire::crypto::record::RecordError;

async fn server(configure: impl FnOnce(&mut Server)) -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    configure(&mut server);
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

fn client_with(configure: impl FnOnce(&mut zs::Security)) -> zs::ClientBuilder {
    let mut builder = Client::builder();
    configure(builder.config_mut().security());
    builder
}

#[tokio::test]
async fn every_connection_is_encrypted_by_default_with_a_fresh_key() {
    let (server, addr) = server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    assert_eq!(client.peer().suite(), Suite::Aes128Gcm);
    assert_eq!(client.peer().peer_fingerprint(), server.fingerprint());
    assert_eq!(client.call_console("echo", "x").await.unwrap(), "x");
    server.shutdown().await;
}

#[tokio::test]
async fn every_suite_interoperates() {
    let (server, addr) = server(|server| {
        server
            .config_mut()
            .security()
            .suites(Suite::ALL.to_vec())
            .allow_plain(true);
    })
    .await;
    for suite in Suite::ALL {
        let client = client_with(|security| {
            security
                .suites(vec![suite])
                .allow_plain(suite == Suite::Plain);
        })
        .connect(addr)
        .await
        .unwrap_or_else(|error| panic!("{suite}: {error}"));
        assert_eq!(client.peer().suite(), suite);
        let text = format!("through {suite}");
        assert_eq!(client.call_console("echo", &text).await.unwrap(), text);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn plain_needs_both_sides_to_allow_it() {
    let (server, addr) = server(|server| {
        server
            .config_mut()
            .security()
            .suites(vec![Suite::Plain, Suite::Aes256Gcm]);
    })
    .await;
    // The server lists plain but does not allow it: the next common suite is used.
    let client = client_with(|security| {
        security
            .suites(vec![Suite::Plain, Suite::Aes256Gcm])
            .allow_plain(true);
    })
    .connect(addr)
    .await
    .unwrap();
    assert_eq!(client.peer().suite(), Suite::Aes256Gcm);
    server.shutdown().await;
}

#[tokio::test]
async fn no_common_suite_fails_clearly() {
    let (server, addr) = server(|server| {
        server
            .config_mut()
            .security()
            .suites(vec![Suite::SerpentGcm]);
    })
    .await;
    let error = client_with(|security| {
        security.suites(vec![Suite::MarsGcm]);
    })
    .connect(addr)
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConnectError::Security(_)), "{error:?}");
    assert!(
        message.contains("no common cipher suite") && message.contains("serpent-gcm"),
        "{message}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn random_suite_varies_among_allowed_ones() {
    let allowed = vec![Suite::Aes128Gcm, Suite::TwofishGcm, Suite::Rc6Gcm];
    let (server, addr) = server(|server| {
        server
            .config_mut()
            .security()
            .suites(allowed.clone())
            .random_suite(true);
    })
    .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..24 {
        let client = Client::connect(addr).await.unwrap();
        assert!(allowed.contains(&client.peer().suite()));
        seen.insert(client.peer().suite());
    }
    assert!(seen.len() > 1, "24 connections all got {seen:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn pinned_fingerprint_is_enforced() {
    let (server, addr) = server(|_| {}).await;
    let right = server.fingerprint();
    let client = client_with(|security| {
        security.pin(right);
    })
    .connect(addr)
    .await
    .unwrap();
    assert_eq!(
        client.call_console("echo", "pinned").await.unwrap(),
        "pinned"
    );

    let wrong: Fingerprint = zs::StaticKeypair::generate().unwrap().fingerprint();
    let error = client_with(|security| {
        security.pin(wrong);
    })
    .connect(addr)
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&wrong.to_string()) && message.contains(&right.to_string()),
        "{message}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_token_is_required_when_configured() {
    let (server, addr) = server(|server| {
        server
            .config_mut()
            .security()
            .token(b"open sesame".to_vec());
    })
    .await;
    let error = Client::connect(addr).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ConnectError::Refused(DisconnectReason::Peer {
                code: zs::CloseCode::Unauthorized,
                ..
            })
        ),
        "{error:?}"
    );
    let error = client_with(|security| {
        security.token(b"wrong".to_vec());
    })
    .connect(addr)
    .await
    .unwrap_err();
    assert!(matches!(
        &error,
        ConnectError::Refused(DisconnectReason::Peer {
            code: zs::CloseCode::Unauthorized,
            ..
        })
    ));
    let client = client_with(|security| {
        security.token(b"open sesame".to_vec());
    })
    .connect(addr)
    .await
    .unwrap();
    assert_eq!(client.call_console("echo", "in").await.unwrap(), "in");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn marker_sent_through_a_call_never_appears_on_the_wire() {
    let (server, addr) = server(|_| {}).await;
    let proxy = proxy::start(addr, proxy::pass_through()).await;
    let marker = "MARKER-7d1f0c2e-zserver-plaintext";
    let client = Client::connect(proxy.addr).await.unwrap();
    assert_eq!(client.call_console("echo", marker).await.unwrap(), marker);
    drop(client);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let wire = proxy.wire.lock().unwrap().clone();
    let contains = |haystack: &[u8]| {
        haystack
            .windows(marker.len())
            .any(|window| window == marker.as_bytes())
    };
    assert!(!wire.0.is_empty() && !wire.1.is_empty());
    assert!(
        !contains(&wire.0) && !contains(&wire.1),
        "marker visible on the wire"
    );
    server.shutdown().await;
}

/// Connects through a proxy with `hook` and reports how the client's connection ended
/// after a call.
async fn attacked(hook: proxy::Hook) -> DisconnectReason {
    let (server, addr) = server(|_| {}).await;
    let proxy = proxy::start(addr, hook).await;
    let reason = match Client::connect(proxy.addr).await {
        // An attack on the first records shows while connecting.
        Err(ConnectError::Refused(reason)) => reason,
        Err(other) => panic!("unexpected connect error {other:?}"),
        Ok(client) => {
            let _ = client
                .call_console("echo", "hello")
                .timeout(Duration::from_secs(2))
                .await;
            tokio::time::timeout(Duration::from_secs(5), client.peer().closed())
                .await
                .unwrap()
        }
    };
    server.shutdown().await;
    reason
}

#[tokio::test]
async fn altered_record_closes_the_connection() {
    let reason = attacked(Arc::new(Mutex::new(|unit: &Unit| {
        let mut bytes = unit.bytes.clone();
        // The server's second record (after its session preamble): flip one ciphertext bit.
        if unit.direction == Direction::ToClient && !unit.handshake && unit.index == 2 {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
        }
        vec![bytes]
    })))
    .await;
    assert!(
        matches!(
            &reason,
            DisconnectReason::Security(RecordError::Decrypt { .. })
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn replayed_record_closes_the_connection() {
    let reason = attacked(Arc::new(Mutex::new(|unit: &Unit| {
        if unit.direction == Direction::ToClient && !unit.handshake && unit.index == 1 {
            vec![unit.bytes.clone(), unit.bytes.clone()]
        } else {
            vec![unit.bytes.clone()]
        }
    })))
    .await;
    assert!(
        matches!(reason, DisconnectReason::Security(_)),
        "{reason:?}"
    );
}

#[tokio::test]
async fn reordered_records_close_the_connection() {
    // Hold the client's first record back and send it after the second.
    let held: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let reason = attacked(Arc::new(Mutex::new(move |unit: &Unit| {
        if unit.direction != Direction::ToServer || unit.handshake {
            return vec![unit.bytes.clone()];
        }
        let mut held = held.lock().unwrap();
        match unit.index {
            3 => {
                *held = Some(unit.bytes.clone());
                vec![]
            }
            4 => vec![unit.bytes.clone(), held.take().unwrap_or_default()],
            _ => vec![unit.bytes.clone()],
        }
    })))
    .await;
    // The server drops the connection; the client sees it end.
    assert!(
        !matches!(reason, DisconnectReason::Local { .. }),
        "{reason:?}"
    );
}

#[tokio::test]
async fn downgraded_offer_fails_the_handshake() {
    let (server, addr) = server(|server| {
        server
            .config_mut()
            .security()
            .suites(Suite::DEFAULT_SUITES.to_vec());
    })
    .await;
    // An attacker rewrites the client's offer (msg1 payload, in clear) to MARS only.
    let hook: proxy::Hook = Arc::new(Mutex::new(|unit: &Unit| {
        let mut bytes = unit.bytes.clone();
        if unit.direction == Direction::ToServer && unit.index == 1 {
            // u16 len | e (32) | count | ids... | flags
            let count = bytes[2 + 32] as usize;
            for id in &mut bytes[2 + 33..2 + 33 + count] {
                *id = Suite::MarsGcm.id();
            }
        }
        vec![bytes]
    }));
    let proxy = proxy::start(addr, hook).await;
    let error = Client::connect(proxy.addr).await.unwrap_err();
    assert!(matches!(error, ConnectError::Security(_)), "{error:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn keys_rotate_every_few_kilobytes_under_load_without_loss() {
    let (server, addr) = server(|server| {
        server.config_mut().security().rekey_after_bytes(4096);
    })
    .await;
    let key_updates = Arc::new(Mutex::new([0usize; 2]));
    let counter = key_updates.clone();
    let proxy = proxy::start(
        addr,
        Arc::new(Mutex::new(move |unit: &Unit| {
            if !unit.handshake && unit.bytes[0] == 2 {
                counter.lock().unwrap()[usize::from(unit.direction == Direction::ToClient)] += 1;
            }
            vec![unit.bytes.clone()]
        })),
    )
    .await;
    let client = Arc::new(
        client_with(|security| {
            security.rekey_after_bytes(4096);
        })
        .connect(proxy.addr)
        .await
        .unwrap(),
    );
    let mut calls = tokio::task::JoinSet::new();
    for task in 0..16 {
        let client = client.clone();
        calls.spawn(async move {
            for index in 0..100 {
                let text = format!("{task}:{index}:{}", "x".repeat(index * 7));
                assert_eq!(client.call_console("echo", &text).await.unwrap(), text);
            }
        });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap();
    }
    let [to_server, to_client] = *key_updates.lock().unwrap();
    assert!(
        to_server >= 50 && to_client >= 50,
        "key updates seen: {to_server} / {to_client}"
    );
    server.shutdown().await;
}
