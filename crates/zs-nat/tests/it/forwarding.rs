//! Forwarding through XNat over real loopback sockets: HTTP with and without keep-alive,
//! half-close, a service that speaks first, idle connections, many connections at once, a
//! virtual-server mapping, statistics and the admin endpoint, pinning, reconnecting.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zs_nat::{AgentMapping, MappingStatus, NatAgent};

#[tokio::test]
async fn http_get_with_and_without_keep_alive() {
    bounded(async {
        let local = http_server("web").await;
        let server = start_server(server_config(&[("web", "change-me")])).await;
        let agent = start_agent(agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local(local.to_string(), "change-me"))],
        ))
        .await;
        let status = agent.status();
        assert!(status.connected);
        let public = public(&server, "web");
        assert_eq!(
            status.mappings["web"],
            MappingStatus::Registered {
                public: public.to_string()
            }
        );

        // Keep-alive: many requests on one connection.
        let mut connection = http_connect(public).await;
        for index in 0..20 {
            let body = http_get(&mut connection, &format!("/page/{index}"), false).await;
            assert_eq!(body, format!("hello from web at /page/{index}"));
        }
        // Without keep-alive: the service closes after the reply, and so does the public side.
        for index in 0..5 {
            let mut connection = http_connect(public).await;
            let body = http_get(&mut connection, &format!("/once/{index}"), true).await;
            assert_eq!(body, format!("hello from web at /once/{index}"));
            let mut rest = Vec::new();
            connection.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        }
        drop(connection);
        let stats = server.stats();
        let web = stats.mapping("web").unwrap();
        assert_eq!(web.connections_total, 6);
        assert!(web.bytes_in > 0 && web.bytes_out > 0, "{web:?}");
        assert_eq!(web.agents, 1);
        agent.shutdown().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn half_close_is_forwarded_both_ways() {
    bounded(async {
        let local = counting_service().await;
        let server = start_server(server_config(&[("count", "t")])).await;
        let _agent = start_agent(agent_config(
            agent_port(&server),
            vec![("count", AgentMapping::local(local.to_string(), "t"))],
        ))
        .await;
        let mut client = TcpStream::connect(public(&server, "count")).await.unwrap();
        let payload = vec![42u8; 3 * 1024 * 1024 + 17];
        client.write_all(&payload).await.unwrap();
        client.shutdown().await.unwrap(); // half-close: we still read
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, format!("got {} bytes", payload.len()));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_service_that_speaks_first_and_many_connections_at_once() {
    bounded(async {
        // Like SSH: the service sends a banner before the client says anything, then echoes.
        let local = local_service(|socket| async move {
            let (mut reader, mut writer) = socket.into_split();
            writer.write_all(b"SSH-2.0-test\r\n").await.unwrap();
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
        })
        .await;
        let server = start_server(server_config(&[("ssh", "t")])).await;
        let _agent = start_agent(agent_config(
            agent_port(&server),
            vec![("ssh", AgentMapping::local(local.to_string(), "t"))],
        ))
        .await;
        let public = public(&server, "ssh");
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..64u32 {
            tasks.spawn(async move {
                let mut client = TcpStream::connect(public).await.unwrap();
                let mut banner = [0u8; 14];
                client.read_exact(&mut banner).await.unwrap();
                assert_eq!(&banner, b"SSH-2.0-test\r\n");
                let message: Vec<u8> = (0..1000 + index).map(|byte| byte as u8).collect();
                client.write_all(&message).await.unwrap();
                let mut back = vec![0u8; message.len()];
                client.read_exact(&mut back).await.unwrap();
                assert_eq!(back, message);
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_survives_link_idle_timeouts() {
    bounded(async {
        let local = http_server("idle").await;
        let mut server_config = server_config(&[("web", "t")]);
        server_config.keepalive_secs = 1;
        server_config.idle_timeout_secs = 2;
        let server = start_server(server_config).await;
        let mut agent_config = agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local(local.to_string(), "t"))],
        );
        agent_config.keepalive_secs = 1;
        agent_config.idle_timeout_secs = 2;
        let agent = start_agent(agent_config).await;
        let mut connection = http_connect(public(&server, "web")).await;
        assert_eq!(
            http_get(&mut connection, "/a", false).await,
            "hello from idle at /a"
        );
        // Idle for longer than both idle timeouts: keep-alive pings hold the link up.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(
            http_get(&mut connection, "/b", false).await,
            "hello from idle at /b"
        );
        assert!(agent.status().connected);
        assert_eq!(server.stats().mapping("web").unwrap().connections_total, 1);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_virtual_server_mapping_serves_zs_clients_without_a_local_socket() {
    bounded(async {
        let mut zs_server = zs::Server::bind("127.0.0.1:0").await.unwrap();
        zs_server.register_console("echo", |ctx, text: String| async move {
            Ok(format!("{text} (from {})", ctx.peer().remote_addr().ip()))
        });
        let zs_handle = Arc::new(zs_server.spawn());
        let server = start_server(server_config(&[("rpc", "t")])).await;
        let mut agent = NatAgent::new(agent_config(
            agent_port(&server),
            vec![("rpc", AgentMapping::virtual_server("t"))],
        ));
        agent.serve_virtual("rpc", zs_handle.clone());
        let agent = agent.start().await.unwrap();
        assert!(agent.wait_settled().await.connected);
        let client = zs::Client::connect(public(&server, "rpc")).await.unwrap();
        let reply = client.call_console("echo", "hi").await.unwrap();
        // The zs server sees the public client's address.
        assert_eq!(reply, "hi (from 127.0.0.1)");
        assert_eq!(zs_handle.connection_count(), 1);
        client.close().await;
        agent.shutdown().await.unwrap();
        server.shutdown().await;
        zs_handle.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_admin_endpoint_reports_counters_to_a_pinned_client() {
    bounded(async {
        let local = http_server("web").await;
        let mut config = server_config(&[("web", "t")]);
        config.admin = Some("127.0.0.1:0".into());
        config.admin_token = Some("admin-secret".into());
        let server = start_server(config).await;
        let mut agent_config = agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local(local.to_string(), "t"))],
        );
        agent_config.name = "lab".into();
        agent_config.pin = Some(server.fingerprint().to_string());
        let _agent = start_agent(agent_config).await;
        let mut connection = http_connect(public(&server, "web")).await;
        http_get(&mut connection, "/", false).await;

        let mut builder = zs::Client::builder();
        builder
            .config_mut()
            .security()
            .pin(server.fingerprint())
            .token(b"admin-secret".to_vec());
        let admin = builder.connect(server.admin_addr().unwrap()).await.unwrap();
        let text = admin.call_console(zs_nat::STATS_COMMAND, "").await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["agents"][0]["name"], "lab");
        assert_eq!(json["mappings"][0]["name"], "web");
        assert_eq!(json["mappings"][0]["connections_active"], 1);
        assert!(json["mappings"][0]["bytes_out"].as_u64().unwrap() > 0);
        admin.close().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_agent_pinning_another_key_never_registers() {
    bounded(async {
        let server = start_server(server_config(&[("web", "t")])).await;
        let mut config = agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local("127.0.0.1:1", "t"))],
        );
        config.pin = Some(
            zs::StaticKeypair::generate()
                .unwrap()
                .fingerprint()
                .to_string(),
        );
        let agent = NatAgent::new(config).start().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!agent.status().connected);
        assert!(server.public_addr("web").is_none());
        assert!(server.stats().agents.is_empty());
        agent.shutdown().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_agent_reconnects_and_re_registers_after_the_server_restarts() {
    bounded(async {
        let local = http_server("web").await;
        let keypair = zs::StaticKeypair::generate().unwrap();
        let first = zs_nat::NatServer::new(server_config(&[("web", "t")]))
            .with_keypair(keypair.clone())
            .start()
            .await
            .unwrap();
        let address = agent_port(&first);
        let mut config = agent_config(
            address,
            vec![("web", AgentMapping::local(local.to_string(), "t"))],
        );
        config.pin = Some(first.fingerprint().to_string());
        let agent = start_agent(config).await;
        first.shutdown().await;
        drop(first);
        let mut status = agent.subscribe();
        status.wait_for(|status| !status.connected).await.unwrap();

        let mut config = server_config(&[("web", "t")]);
        config.listen = address.to_string();
        let second = zs_nat::NatServer::new(config)
            .with_keypair(keypair)
            .start()
            .await
            .unwrap();
        status.wait_for(|status| status.connected).await.unwrap();
        let mut connection = http_connect(public(&second, "web")).await;
        assert_eq!(
            http_get(&mut connection, "/", false).await,
            "hello from web at /"
        );
        agent.shutdown().await.unwrap();
        second.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn reverse_mode_the_server_dials_a_listening_agent() {
    bounded(async {
        let local = http_server("reverse").await;
        let keypair = zs::StaticKeypair::generate().unwrap();
        let mut config = agent_config(
            "127.0.0.1:1".parse().unwrap(),
            vec![("web", AgentMapping::local(local.to_string(), "t"))],
        );
        config.server = None;
        config.listen = Some("127.0.0.1:0".into());
        config.pin = Some(keypair.fingerprint().to_string());
        let agent = NatAgent::new(config).start().await.unwrap();
        let agent_address = agent.local_addr().unwrap();

        let mut config = server_config(&[("web", "t")]);
        config.listen = String::new();
        config.dial = vec![agent_address.to_string()];
        config.reconnect_min_ms = 50;
        let server = zs_nat::NatServer::new(config)
            .with_keypair(keypair)
            .start()
            .await
            .unwrap();
        assert!(server.local_addr().is_none());
        assert!(agent.wait_settled().await.connected);
        let mut connection = http_connect(public(&server, "web")).await;
        assert_eq!(
            http_get(&mut connection, "/", false).await,
            "hello from reverse at /"
        );
        drop(connection);
        server.shutdown().await;
        agent.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_unencrypted_link_only_when_both_sides_allow_it() {
    bounded(async {
        let local = http_server("plain").await;
        let mut config = server_config(&[("web", "t")]);
        config.allow_plain = true;
        config.suites = vec!["plain".into(), "aes-128-gcm".into()];
        let server = start_server(config).await;
        // The agent allows plain too: the link runs without encryption.
        let mut plain = agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local(local.to_string(), "t"))],
        );
        plain.allow_plain = true;
        plain.suites = vec!["plain".into()];
        let agent = start_agent(plain).await;
        let mut connection = http_connect(public(&server, "web")).await;
        assert_eq!(
            http_get(&mut connection, "/", false).await,
            "hello from plain at /"
        );
        drop(connection);
        agent.shutdown().await.unwrap();
        // An agent with the defaults still gets an encrypted link from the same server.
        let encrypted = start_agent(agent_config(
            agent_port(&server),
            vec![("web", AgentMapping::local(local.to_string(), "t"))],
        ))
        .await;
        assert!(encrypted.status().connected);
        server.shutdown().await;
    })
    .await;
}

/// `link_buffer_mib` bounds what one agent link holds: each forwarded connection reserves a
/// 256 KiB window of it, as does the link's control stream, so a 1 MiB link carries 3 at
/// once; the 4th is closed at once, and a slot frees when a connection ends.
#[tokio::test]
async fn the_link_buffer_budget_caps_a_links_connections() {
    bounded(async {
        let local = local_service(|socket| async move {
            let (mut reader, mut writer) = socket.into_split();
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
        })
        .await;
        let mut config = server_config(&[("echo", "t")]);
        config.link_buffer_mib = 1;
        config.stream_window = 256 * 1024;
        let server = start_server(config).await;
        let mut agent = agent_config(
            agent_port(&server),
            vec![("echo", AgentMapping::local(local.to_string(), "t"))],
        );
        agent.link_buffer_mib = 1;
        agent.stream_window = 256 * 1024;
        let _agent = start_agent(agent).await;
        let public = public(&server, "echo");

        async fn echo(client: &mut TcpStream) -> std::io::Result<()> {
            client.write_all(b"ping").await?;
            let mut back = [0u8; 4];
            client.read_exact(&mut back).await?;
            assert_eq!(&back, b"ping");
            Ok(())
        }
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut client = TcpStream::connect(public).await.unwrap();
            echo(&mut client).await.unwrap();
            held.push(client);
        }
        let mut fourth = TcpStream::connect(public).await.unwrap();
        assert!(
            echo(&mut fourth).await.is_err(),
            "a fourth connection fits no 1 MiB link budget"
        );
        for client in &mut held {
            echo(client).await.unwrap();
        }
        drop(held.pop());
        // The ended connection's stream closes on both ends, then its reservation is free.
        let mut accepted = false;
        for _ in 0..50 {
            let mut client = TcpStream::connect(public).await.unwrap();
            if echo(&mut client).await.is_ok() {
                accepted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(accepted, "a freed reservation admits a new connection");
        server.shutdown().await;
    })
    .await;
}
