//! Helpers shared by the XNat integration tests: a tiny HTTP server and client, other small
//! local services, and server/agent set-ups on loopback with short timers.

#![allow(dead_code, unreachable_pub)] // Each test file uses a different subset.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use zs_nat::{
    AgentConfig, AgentHandle, AgentMapping, NatAgent, NatServer, NatServerHandle, ServerConfig,
    ServerMapping,
};

/// Runs a test body with a time bound, so a hang fails instead of blocking the suite.
/// Also turns on logs when `RUST_LOG` is set.
pub async fn bounded<T>(body: impl Future<Output = T>) -> T {
    init_logs();
    tokio::time::timeout(Duration::from_secs(20), body)
        .await
        .expect("the test took longer than 20 s")
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Polls `condition` every 10 ms until it holds (the caller's `bounded` limits the wait).
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    while !condition() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Accepts on a fresh loopback port and runs `serve` for every connection.
pub async fn local_service<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    address
}

/// A local service that reads everything until the client's FIN, then answers
/// `got N bytes` and closes: shows that a half-close went through.
pub async fn counting_service() -> SocketAddr {
    local_service(|mut socket| async move {
        let mut received = Vec::new();
        socket.read_to_end(&mut received).await.unwrap();
        let reply = format!("got {} bytes", received.len());
        socket.write_all(reply.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
    })
    .await
}

/// A minimal HTTP/1.1 server: answers `hello from TAG at PATH`, keeps the connection open
/// unless the request says `Connection: close`.
pub async fn http_server(tag: &'static str) -> SocketAddr {
    local_service(move |socket| serve_http(socket, tag)).await
}

async fn serve_http(socket: TcpStream, tag: &'static str) {
    let mut socket = BufReader::new(socket);
    loop {
        let mut request_line = String::new();
        match socket.read_line(&mut request_line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut close = false;
        loop {
            let mut header = String::new();
            if socket.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if header.eq_ignore_ascii_case("connection: close\r\n") {
                close = true;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let body = format!("hello from {tag} at {path}");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        if socket
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
        if close {
            let _ = socket.get_mut().shutdown().await;
            return;
        }
    }
}

/// Sends one GET on `connection` and returns the body.
pub async fn http_get(connection: &mut BufReader<TcpStream>, path: &str, close: bool) -> String {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    connection
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut status = String::new();
    connection.read_line(&mut status).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK\r\n");
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        connection.read_line(&mut header).await.unwrap();
        if header == "\r\n" {
            break;
        }
        if let Some(value) = header.strip_prefix("Content-Length: ") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    connection.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

/// Opens a connection to `address` for [`http_get`].
pub async fn http_connect(address: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(address).await.unwrap())
}

/// A server config on loopback (agents and public ports on free ports), quick to stop.
pub fn server_config(mappings: &[(&str, &str)]) -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        shutdown_grace_secs: 1,
        stats_interval_secs: 0,
        ..ServerConfig::default()
    };
    for (name, token) in mappings {
        config.mappings.insert(
            (*name).to_owned(),
            ServerMapping::new("127.0.0.1:0", *token),
        );
    }
    config
}

/// An agent config dialing `server`, reconnecting fast.
pub fn agent_config(server: SocketAddr, mappings: Vec<(&str, AgentMapping)>) -> AgentConfig {
    let mut config = AgentConfig::new(server.to_string());
    config.reconnect_min_ms = 50;
    config.reconnect_max_ms = 400;
    config.shutdown_grace_secs = 1;
    for (name, mapping) in mappings {
        config.mappings.insert(name.to_owned(), mapping);
    }
    config
}

pub async fn start_server(config: ServerConfig) -> NatServerHandle {
    NatServer::new(config).start().await.unwrap()
}

/// Starts an agent and waits until the server answered every mapping.
pub async fn start_agent(config: AgentConfig) -> AgentHandle {
    let agent = NatAgent::new(config).start().await.unwrap();
    agent.wait_settled().await;
    agent
}

/// The agent port of a running server.
pub fn agent_port(server: &NatServerHandle) -> SocketAddr {
    server.local_addr().unwrap()
}

/// The open public port of `mapping`.
pub fn public(server: &NatServerHandle, mapping: &str) -> SocketAddr {
    server
        .public_addr(mapping)
        .unwrap_or_else(|| panic!("mapping {mapping} has no open public port"))
}

/// An agent running in a runtime of its own, so the test can kill it like a process
/// (every task and socket dropped at once, nothing closed gracefully).
pub struct AgentProcess {
    runtime: Option<tokio::runtime::Runtime>,
}

impl AgentProcess {
    pub async fn start(config: AgentConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (ready, started) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let agent = NatAgent::new(config).start().await.unwrap();
            let status = agent.wait_settled().await;
            let _ = ready.send(status);
            // Holds the agent until the runtime is killed.
            std::future::pending::<()>().await;
            drop(agent);
        });
        let status = started.await.unwrap();
        assert!(status.connected, "{status:?}");
        Self {
            runtime: Some(runtime),
        }
    }

    /// Kills the agent: its runtime stops, dropping every task and socket.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
