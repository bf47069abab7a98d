//! Bad input and faults: wrong token, unknown mapping, garbage and malformed control
//! messages on the agent port, an agent killed mid-transfer, a local service refusing
//! connections. Each fails at the right end, promptly, and the server keeps serving every
//! other mapping.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use crate::common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zs_nat::codec::{self, CONTROL_SERVICE, ControlMessage, RefuseReason};
use zs_nat::{AgentError, AgentMapping, MappingStatus, NatAgent, NatServerHandle, Secret};

/// A server with mappings `good` and `other`, and an agent serving `good`.
async fn serving_good() -> (NatServerHandle, zs_nat::AgentHandle) {
    let local = http_server("good").await;
    let server = start_server(server_config(&[
        ("good", "good-token"),
        ("other", "other-token"),
    ]))
    .await;
    let agent = start_agent(agent_config(
        agent_port(&server),
        vec![("good", AgentMapping::local(local.to_string(), "good-token"))],
    ))
    .await;
    (server, agent)
}

async fn good_still_works(server: &NatServerHandle) {
    let mut connection = http_connect(public(server, "good")).await;
    assert_eq!(
        http_get(&mut connection, "/", false).await,
        "hello from good at /"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_refuses_only_that_mapping() {
    bounded(async {
        let (server, _agent) = serving_good().await;
        let other_local = http_server("other").await;
        // One wrong token, one right: the right one is served.
        let mixed = start_agent(agent_config(
            agent_port(&server),
            vec![
                ("good", AgentMapping::local("127.0.0.1:1", "not-the-token")),
                (
                    "other",
                    AgentMapping::local(other_local.to_string(), "other-token"),
                ),
            ],
        ))
        .await;
        let status = mixed.status();
        assert!(status.connected);
        assert!(matches!(
            &status.mappings["good"],
            MappingStatus::Refused {
                reason: RefuseReason::WrongToken,
                ..
            }
        ));
        let mut connection = http_connect(public(&server, "other")).await;
        assert_eq!(
            http_get(&mut connection, "/", false).await,
            "hello from other at /"
        );
        // The refused agent was not added to "good".
        assert_eq!(server.stats().mapping("good").unwrap().agents, 1);
        good_still_works(&server).await;

        // Only wrong tokens: the agent stops with a clear error.
        let mut wrong = NatAgent::new(agent_config(
            agent_port(&server),
            vec![("good", AgentMapping::local("127.0.0.1:1", "guess"))],
        ))
        .start()
        .await
        .unwrap();
        let error = wrong.finished().await.unwrap_err();
        assert!(matches!(error, AgentError::Refused(_)));
        assert!(error.to_string().contains("wrong token"), "{error}");
        assert!(wrong.status().stopped.is_some());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_unknown_mapping_is_refused_with_its_reason() {
    bounded(async {
        let (server, _agent) = serving_good().await;
        let mut agent = NatAgent::new(agent_config(
            agent_port(&server),
            vec![("nope", AgentMapping::local("127.0.0.1:1", "t"))],
        ))
        .start()
        .await
        .unwrap();
        let status = agent.wait_settled().await;
        assert!(
            matches!(
                &status.mappings["nope"],
                MappingStatus::Refused {
                    reason: RefuseReason::UnknownMapping,
                    ..
                }
            ),
            "{status:?}"
        );
        let error = agent.finished().await.unwrap_err();
        assert!(error.to_string().contains("unknown mapping"), "{error}");
        good_still_works(&server).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn garbage_on_the_agent_port_costs_only_its_own_connection() {
    bounded(async {
        let (server, _agent) = serving_good().await;
        for garbage in [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            vec![0u8; 64 * 1024],
            (0..=255u8).cycle().take(100_000).collect(),
        ] {
            let mut socket = TcpStream::connect(agent_port(&server)).await.unwrap();
            let _ = socket.write_all(&garbage).await;
            // The server closes it (EOF or reset) well before the handshake timeout.
            let started = Instant::now();
            let mut sink = Vec::new();
            let _ = socket.read_to_end(&mut sink).await;
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        good_still_works(&server).await;
        assert_eq!(server.stats().agents.len(), 1);
        server.shutdown().await;
    })
    .await;
}

/// A hand-made agent: handshake and mux done right, then the bytes `make` builds (from the
/// link's channel binding) on the control stream.
async fn send_on_control_stream(
    server: &NatServerHandle,
    make: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> Option<ControlMessage> {
    let socket = TcpStream::connect(agent_port(server)).await.unwrap();
    let encrypted = zs::EncryptedStream::connect(socket, &zs::Security::default())
        .await
        .unwrap();
    let bytes = make(&encrypted.channel_binding());
    let link = zs::mux::MuxLink::new(
        encrypted,
        zs::mux::Role::Initiator,
        zs::mux::MuxConfig::default(),
    );
    let mut control = link.connect(CONTROL_SERVICE).await.unwrap();
    control.write_all(&bytes).await.unwrap();
    // Whatever the server answers before it closes (or, when it only refuses a mapping and
    // keeps the link, until its first answer).
    let mut received = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        match control.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
        }
        let mut so_far = received.clone();
        while let Ok(Some(message)) = codec::decode(&mut so_far) {
            if matches!(message, ControlMessage::Refused { .. }) {
                return Some(message);
            }
        }
    }
    let mut last = None;
    while let Ok(Some(message)) = codec::decode(&mut received) {
        last = Some(message);
    }
    last
}

#[tokio::test]
async fn malformed_control_messages_get_an_error_and_lose_only_their_link() {
    bounded(async {
        let (server, _agent) = serving_good().await;
        // A length far above the limit.
        let answer = send_on_control_stream(&server, |_| vec![0xFF, 0xFF, 1, 2, 3]).await;
        let Some(ControlMessage::Error { message }) = answer else {
            panic!("expected an Error, got {answer:?}");
        };
        assert!(message.contains("exceeds the limit"), "{message}");
        // A well-framed message of an unknown type.
        let answer = send_on_control_stream(&server, |_| vec![1, 0, 99]).await;
        assert!(
            matches!(answer, Some(ControlMessage::Error { .. })),
            "{answer:?}"
        );
        // Register before Hello.
        let register = |binding: &[u8; 32]| {
            ControlMessage::Register {
                mapping: "good".into(),
                proof: Secret::new("good-token").register_proof("good", binding),
                weight: 1,
            }
            .to_bytes()
            .unwrap()
            .to_vec()
        };
        let answer = send_on_control_stream(&server, register).await;
        assert!(
            matches!(answer, Some(ControlMessage::Error { .. })),
            "{answer:?}"
        );
        // Hello, then garbage after a valid registration: refused, mapping released.
        let answer = send_on_control_stream(&server, |binding| {
            let mut bytes = hello().to_vec();
            bytes.extend_from_slice(&register(binding));
            bytes.extend_from_slice(&[0, 0]);
            bytes
        })
        .await;
        assert!(
            matches!(answer, Some(ControlMessage::Error { .. })),
            "{answer:?}"
        );
        eventually(|| server.stats().mapping("good").unwrap().agents == 1).await;
        good_still_works(&server).await;
        server.shutdown().await;
    })
    .await;
}

fn hello() -> BytesMut {
    ControlMessage::Hello {
        version: 1,
        agent: "evil".into(),
    }
    .to_bytes()
    .unwrap()
}

/// A token proof made for another link (captured, or relayed by a man in the middle) is
/// refused as a wrong token: the proof is bound to the link it was made on.
#[tokio::test]
async fn a_token_proof_from_another_link_is_refused() {
    bounded(async {
        let (server, _agent) = serving_good().await;
        let answer = send_on_control_stream(&server, |binding| {
            let mut other_link = *binding;
            other_link[0] ^= 1;
            let mut bytes = hello().to_vec();
            let register = ControlMessage::Register {
                mapping: "good".into(),
                proof: Secret::new("good-token").register_proof("good", &other_link),
                weight: 1,
            };
            bytes.extend_from_slice(&register.to_bytes().unwrap());
            bytes
        })
        .await;
        assert!(
            matches!(
                answer,
                Some(ControlMessage::Refused {
                    reason: RefuseReason::WrongToken,
                    ..
                })
            ),
            "{answer:?}"
        );
        eventually(|| server.stats().mapping("good").unwrap().agents == 1).await;
        good_still_works(&server).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_agent_killed_mid_transfer_closes_the_public_connection() {
    bounded(async {
        // A service that streams without end.
        let local = local_service(|mut socket| async move {
            let chunk = vec![7u8; 64 * 1024];
            while socket.write_all(&chunk).await.is_ok() {}
        })
        .await;
        let server = start_server(server_config(&[("stream", "t"), ("web", "w")])).await;
        let web_local = http_server("web").await;
        let _web_agent = start_agent(agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local(web_local.to_string(), "w"))],
        ))
        .await;
        let mut doomed = AgentProcess::start(agent_config(
            agent_port(&server),
            vec![("stream", AgentMapping::local(local.to_string(), "t"))],
        ))
        .await;
        let mut client = TcpStream::connect(public(&server, "stream")).await.unwrap();
        let mut buffer = vec![0u8; 1024 * 1024];
        client.read_exact(&mut buffer).await.unwrap();
        doomed.kill();
        let killed = Instant::now();
        // Keep reading: the connection must end (EOF or reset), not hang.
        loop {
            match client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "{:?}",
            killed.elapsed()
        );
        eventually(|| server.public_addr("stream").is_none()).await;
        let mut connection = http_connect(public(&server, "web")).await;
        assert_eq!(
            http_get(&mut connection, "/", false).await,
            "hello from web at /"
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_local_service_refusing_closes_the_public_connection_promptly() {
    bounded(async {
        // A port nothing listens on.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let server = start_server(server_config(&[("down", "t")])).await;
        let _agent = start_agent(agent_config(
            agent_port(&server),
            vec![("down", AgentMapping::local(closed.to_string(), "t"))],
        ))
        .await;
        for _ in 0..3 {
            let started = Instant::now();
            let mut client = TcpStream::connect(public(&server, "down")).await.unwrap();
            let _ = client.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
            let mut rest = Vec::new();
            let _ = client.read_to_end(&mut rest).await;
            assert!(rest.is_empty());
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
        }
        // The link itself is fine.
        assert_eq!(server.stats().mapping("down").unwrap().agents, 1);
        server.shutdown().await;
    })
    .await;
}
