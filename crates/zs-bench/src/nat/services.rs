//! The local services every route reaches: an HTTP/1.1 server, an echo service and a sink
//! (for the bulk test without iperf3), and the probes that check a route forwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::process::loopback;

/// Body of every HTTP response of the local HTTP server.
pub const HTTP_BODY: &[u8] = b"Hello, world!\n";
/// Longest request head the local HTTP server buffers before it gives up on a connection.
pub const MAX_HTTP_HEAD: usize = 16 * 1024;

/// A listener on a free loopback port with a long accept queue (4,096, the kernel's
/// `somaxconn` here; tokio's `bind` asks for 128, which overflows under 256 connections
/// without keep-alive and turns into 1 s SYN retransmits).
pub fn local_listener() -> anyhow::Result<TcpListener> {
    bind_listener(loopback(0))
}

/// A listener on `address` with an accept queue of 4,096.
pub fn bind_listener(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(address)
        .with_context(|| format!("cannot bind {address}"))?;
    Ok(socket.listen(4096)?)
}

/// Starts the HTTP/1.1 server: `GET` of anything answers a fixed small body; keep-alive
/// unless the request says `Connection: close` (HTTP/1.0: unless it says keep-alive).
pub async fn spawn_http_server() -> anyhow::Result<SocketAddr> {
    let listener = local_listener()?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(serve_http(stream));
        }
    });
    Ok(address)
}

/// Whether a request head (without the blank line) asks to close the connection after the
/// response.
pub fn wants_close(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let http10 = lines
        .next()
        .is_some_and(|line| line.trim_end().ends_with("HTTP/1.0"));
    let connection = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        .map(|(_, value)| value.trim().to_ascii_lowercase());
    match connection.as_deref() {
        Some(value) if value.contains("close") => true,
        Some(value) if value.contains("keep-alive") => false,
        _ => http10,
    }
}

pub fn http_response(close: bool) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        HTTP_BODY.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes();
    response.extend_from_slice(HTTP_BODY);
    response
}

pub async fn serve_http(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let keep_alive = http_response(false);
    let close_response = http_response(true);
    let mut input = Vec::with_capacity(1024);
    let mut output = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    loop {
        // Answer every complete request received (pipelining included).
        let mut close = false;
        while let Some(end) = input.windows(4).position(|window| window == b"\r\n\r\n") {
            close = wants_close(&input[..end]);
            input.drain(..end + 4);
            if close {
                output.extend_from_slice(&close_response);
                break;
            }
            output.extend_from_slice(&keep_alive);
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => input.extend_from_slice(&buffer[..read]),
        }
        if input.len() > MAX_HTTP_HEAD {
            return;
        }
    }
}

/// Starts the echo service in this process (tests); the benchmark runs it as a child.
#[cfg(test)]
pub async fn spawn_echo_server() -> anyhow::Result<SocketAddr> {
    let listener = local_listener()?;
    let address = listener.local_addr()?;
    tokio::spawn(serve_echo(listener));
    Ok(address)
}

/// The echo service: every byte read is written back.
pub async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            // Small: thousands of these sit idle at once.
            let mut buffer = [0u8; 256];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => {
                        if stream.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Bytes a sink connection received and the time from its first byte to the end.
pub type SinkReport = (u64, Duration);

/// Starts the built-in sink for the bulk test without iperf3: each connection is read to
/// the end and reported.
pub async fn spawn_sink() -> anyhow::Result<(SocketAddr, mpsc::UnboundedReceiver<SinkReport>)> {
    let listener = local_listener()?;
    let address = listener.local_addr()?;
    let (reports, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let reports = reports.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 256 * 1024];
                let mut received = 0u64;
                let mut first = None;
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            first.get_or_insert_with(Instant::now);
                            received += read as u64;
                        }
                    }
                }
                if let Some(first) = first {
                    let _ = reports.send((received, first.elapsed()));
                }
            });
        }
    });
    Ok((address, receiver))
}

/// Connects, sends one byte and reads it back; returns the open connection.
pub async fn echo_round_trip(address: SocketAddr, limit: Duration) -> anyhow::Result<TcpStream> {
    tokio::time::timeout(limit, async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        ensure!(&byte == b"x", "the echo returned {byte:?}");
        Ok(stream)
    })
    .await
    .with_context(|| format!("no echo from {address} within {limit:?}"))?
}

/// One `GET /` with `Connection: close`; an error unless the answer is a 200 with the body.
pub async fn http_get(address: SocketAddr) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(2), async {
        let mut stream = TcpStream::connect(address).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        ensure!(
            response.starts_with(b"HTTP/1.1 200") && response.ends_with(HTTP_BODY),
            "unexpected HTTP response from {address}"
        );
        Ok(())
    })
    .await
    .with_context(|| format!("no HTTP response from {address}"))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn connection_close_is_detected() {
        assert!(wants_close(b"GET / HTTP/1.1\r\nConnection: close"));
        assert!(wants_close(b"GET / HTTP/1.1\r\nconnection:Close"));
        assert!(!wants_close(b"GET / HTTP/1.1\r\nHost: x"));
        assert!(wants_close(b"GET / HTTP/1.0\r\nHost: x"));
        assert!(!wants_close(b"GET / HTTP/1.0\r\nConnection: Keep-Alive"));
    }

    #[tokio::test]
    async fn the_http_server_honors_keep_alive_and_close() {
        let address = spawn_http_server().await.unwrap();
        http_get(address).await.unwrap();
        // Two pipelined keep-alive requests, then a close.
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8(response).unwrap();
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3);
        assert_eq!(text.matches("Connection: close").count(), 1);
    }

    #[tokio::test]
    async fn the_echo_server_echoes() {
        let address = spawn_echo_server().await.unwrap();
        let stream = echo_round_trip(address, Duration::from_secs(5))
            .await
            .unwrap();
        drop(stream);
    }
}
