//! XNat in one process: a public `NatServer` and a `NatAgent` "behind NAT" that keeps one
//! encrypted, multiplexed link to it. The agent serves two mappings:
//!
//! - `web`: a local HTTP server (a few lines on a tokio `TcpListener`), fetched with an
//!   HTTP GET through the mapping's public port;
//! - `rpc`: a virtual server — a whole zs Server that the agent serves on the link's virtual
//!   streams, with no local port forwarded to — called by a zs client through the public port.
//!
//! ```sh
//! cargo run -p zs-nat --example xnat
//! ```
//!
//! ZServer4D: `24.XNat` (public side, LAN side) and `30.XNAT virtual server`
//! (`XNATMappingOnVirutalService`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zs_nat::{AgentConfig, AgentMapping, NatAgent, NatServer, ServerConfig, ServerMapping};

/// A tiny HTTP/1.1 responder on a fresh loopback port: one response per connection.
async fn local_http_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, from)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request head (small requests only: this is a demo).
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let body = format!(
                    "hello from behind the NAT: you asked for {path} (relayed by {from})\n"
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// A plain HTTP GET; returns the status line and the body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let mut socket = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.trim_end().to_owned()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The public side: agents on one port, each mapping's public port opened once an
    // agent serves it (port 0: any free port).
    let mut server_config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        stats_interval_secs: 0,
        shutdown_grace_secs: 1,
        ..ServerConfig::default()
    };
    for name in ["web", "rpc"] {
        server_config
            .mappings
            .insert(name.into(), ServerMapping::new("127.0.0.1:0", "demo-token"));
    }
    let nat_server = NatServer::new(server_config).start().await?;
    let agent_port = nat_server
        .local_addr()
        .ok_or("the NAT server has no agent port")?;
    println!(
        "NAT server: agents connect to {agent_port}, key {}",
        nat_server.fingerprint()
    );

    // Behind the NAT: a local web server, and a zs server for the virtual mapping. The zs
    // server is bound to a port only because `Server` needs one; the agent never uses it.
    let web = local_http_server().await?;
    let mut zs_server = zs::Server::bind("127.0.0.1:0").await?;
    zs_server.register_console("echo", |ctx, text: String| async move {
        Ok(format!(
            "{text} (served virtually, caller {})",
            ctx.peer().remote_addr()
        ))
    });
    let zs_server = Arc::new(zs_server.spawn());

    // The agent dials the server, pins its key, and registers both mappings.
    let mut agent_config = AgentConfig::new(agent_port.to_string());
    agent_config.pin = Some(nat_server.fingerprint().to_string());
    agent_config.shutdown_grace_secs = 1;
    agent_config.mappings.insert(
        "web".into(),
        AgentMapping::local(web.to_string(), "demo-token"),
    );
    agent_config
        .mappings
        .insert("rpc".into(), AgentMapping::virtual_server("demo-token"));
    let mut agent = NatAgent::new(agent_config);
    agent.serve_virtual("rpc", zs_server.clone());
    let agent = agent.start().await?;
    let status = agent.wait_settled().await;
    println!("agent connected: {}", status.connected);
    for (name, mapping) in &status.mappings {
        println!("  {name}: {mapping:?}");
    }

    // A user on the internet: HTTP through the public port of `web`.
    let public_web = nat_server
        .public_addr("web")
        .ok_or("`web` has no public port")?;
    let (status_line, body) = http_get(public_web, "/index.html").await?;
    println!("GET http://{public_web}/index.html -> {status_line}: {body}");

    // And a zs client through the public port of `rpc`: its handshake and calls travel on a
    // virtual stream of the agent's link to the zs server.
    let public_rpc = nat_server
        .public_addr("rpc")
        .ok_or("`rpc` has no public port")?;
    let client = zs::Client::connect(public_rpc).await?;
    println!(
        "zs call via {public_rpc} -> {:?}",
        client.call_console("echo", "hello").await?
    );
    println!(
        "  the zs server has {} connection(s), none of them on its own port",
        zs_server.connection_count()
    );
    client.close().await;

    for mapping in nat_server.stats().mappings {
        println!(
            "mapping {}: {} connection(s), {} bytes in, {} bytes out",
            mapping.name, mapping.connections_total, mapping.bytes_in, mapping.bytes_out
        );
    }
    agent.shutdown().await?;
    nat_server.shutdown().await;
    zs_server.shutdown().await;
    Ok(())
}
