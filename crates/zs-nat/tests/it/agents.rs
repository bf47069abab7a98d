//! Several agents on one mapping: least-active balancing, an agent leaving without breaking
//! the others' connections, and the public port's life (open with the first agent, closed
//! after the last).

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use crate::common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zs_nat::AgentMapping;

/// A service that says which agent's side it is on, then echoes.
async fn tagged_echo(tag: u8) -> std::net::SocketAddr {
    local_service(move |socket| async move {
        let (mut reader, mut writer) = socket.into_split();
        if writer.write_all(&[tag]).await.is_ok() {
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
        }
    })
    .await
}

async fn open_tagged(public: std::net::SocketAddr) -> (u8, TcpStream) {
    let mut client = TcpStream::connect(public).await.unwrap();
    let mut tag = [0u8; 1];
    client.read_exact(&mut tag).await.unwrap();
    (tag[0], client)
}

async fn echo_once(client: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    client.write_all(message).await?;
    let mut back = vec![0u8; message.len()];
    client.read_exact(&mut back).await?;
    assert_eq!(back, message);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn least_active_balancing_and_an_agent_leaving() {
    bounded(async {
        let server = start_server(server_config(&[("echo", "t")])).await;
        let a = start_agent(agent_config(
            agent_port(&server),
            vec![(
                "echo",
                AgentMapping::local(tagged_echo(b'A').await.to_string(), "t"),
            )],
        ))
        .await;
        let _b = start_agent(agent_config(
            agent_port(&server),
            vec![(
                "echo",
                AgentMapping::local(tagged_echo(b'B').await.to_string(), "t"),
            )],
        ))
        .await;
        assert_eq!(server.stats().mapping("echo").unwrap().agents, 2);
        let public = public(&server, "echo");

        // Long-lived connections: each new one goes to the agent with fewer.
        let mut connections = Vec::new();
        for _ in 0..6 {
            connections.push(open_tagged(public).await);
        }
        let on_a = connections.iter().filter(|(tag, _)| *tag == b'A').count();
        assert_eq!(
            on_a,
            3,
            "tags: {:?}",
            connections.iter().map(|c| c.0 as char).collect::<String>()
        );
        // Two of A's connections end: the next two go to A again.
        let mut closed = 0;
        connections.retain(|(tag, _)| {
            let keep = !(*tag == b'A' && closed < 2);
            if !keep {
                closed += 1;
            }
            keep
        });
        eventually(|| server.stats().mapping("echo").unwrap().connections_active == 4).await;
        for _ in 0..2 {
            let (tag, client) = open_tagged(public).await;
            assert_eq!(tag, b'A');
            connections.push((tag, client));
        }

        // Agent A goes away (cut, no grace): its connections close, B's keep working.
        drop(a);
        eventually(|| server.stats().mapping("echo").unwrap().agents == 1).await;
        for (tag, client) in &mut connections {
            if *tag == b'B' {
                echo_once(client, b"still here").await.unwrap();
            } else {
                let mut rest = Vec::new();
                // Closed (EOF or reset), not hung.
                let _ = client.read_to_end(&mut rest).await;
            }
        }
        // New connections all go to B.
        for _ in 0..3 {
            let (tag, mut client) = open_tagged(public).await;
            assert_eq!(tag, b'B');
            echo_once(&mut client, b"new").await.unwrap();
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_public_port_opens_with_the_first_agent_and_closes_after_the_last() {
    bounded(async {
        let local = http_server("web").await;
        let server = start_server(server_config(&[("web", "t")])).await;
        assert!(server.public_addr("web").is_none());
        assert_eq!(server.stats().mapping("web").unwrap().bound, None);

        let config = agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local(local.to_string(), "t"))],
        );
        let first = start_agent(config.clone()).await;
        let public = public(&server, "web");
        let second = start_agent(config).await;
        assert_eq!(server.public_addr("web"), Some(public));
        assert_eq!(server.stats().mapping("web").unwrap().agents, 2);

        first.shutdown().await.unwrap();
        eventually(|| server.stats().mapping("web").unwrap().agents == 1).await;
        let mut connection = http_connect(public).await;
        assert_eq!(
            http_get(&mut connection, "/", false).await,
            "hello from web at /"
        );
        drop(connection);

        second.shutdown().await.unwrap();
        eventually(|| server.public_addr("web").is_none()).await;
        // The port is closed: connecting is refused.
        loop {
            match TcpStream::connect(public).await {
                Err(error) => {
                    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
                    break;
                }
                // The accept loop may take a moment to drop the listener.
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn weights_share_new_connections() {
    bounded(async {
        let server = start_server(server_config(&[("echo", "t")])).await;
        let _heavy = start_agent(agent_config(
            agent_port(&server),
            vec![(
                "echo",
                AgentMapping::local(tagged_echo(b'H').await.to_string(), "t").with_weight(3),
            )],
        ))
        .await;
        let _light = start_agent(agent_config(
            agent_port(&server),
            vec![(
                "echo",
                AgentMapping::local(tagged_echo(b'L').await.to_string(), "t"),
            )],
        ))
        .await;
        let public = public(&server, "echo");
        let mut connections = Vec::new();
        for _ in 0..8 {
            connections.push(open_tagged(public).await);
        }
        let heavy = connections.iter().filter(|(tag, _)| *tag == b'H').count();
        assert_eq!(heavy, 6);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_agent_shutting_down_lets_its_connections_finish() {
    bounded(async {
        let local = counting_service().await;
        let server = start_server(server_config(&[("count", "t")])).await;
        let mut config = agent_config(
            agent_port(&server),
            vec![("count", AgentMapping::local(local.to_string(), "t"))],
        );
        config.shutdown_grace_secs = 5;
        let agent = start_agent(config).await;
        let mut client = TcpStream::connect(public(&server, "count")).await.unwrap();
        client.write_all(b"abc").await.unwrap();
        eventually(|| server.stats().mapping("count").unwrap().connections_active == 1).await;

        let started = std::time::Instant::now();
        let shutdown = tokio::spawn(agent.shutdown());
        // Unregistered at once: the public port closes, the connection in flight goes on.
        eventually(|| server.public_addr("count").is_none()).await;
        client.write_all(b"def").await.unwrap();
        client.shutdown().await.unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, "got 6 bytes");
        shutdown.await.unwrap().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        server.shutdown().await;
    })
    .await;
}
