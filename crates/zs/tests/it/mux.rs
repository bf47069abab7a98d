//! p2pVM over real loopback: virtual streams on one TCP connection, a whole zs Server on a
//! virtual listener with clients on virtual streams, reverse direction, and per-stream flow
//! control.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zs::mux::{MuxConfig, MuxLink, Role};
use zs::{Client, Server};

/// One loopback TCP connection: (connected, accepted). Small frames do not wait for Nagle's
/// algorithm, as on every real mux link: a segment held back until a delayed ACK is a stall
/// of the kernel's, which the paused test clock cannot see and would jump over.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (connected, accepted) = (connected.unwrap(), accepted.unwrap().0);
    connected.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    (connected, accepted)
}

/// Two mux links joined by one real TCP connection: (initiator, acceptor).
async fn linked_pair() -> (MuxLink, MuxLink) {
    let (connected, accepted) = tcp_pair().await;
    let initiator = MuxLink::new(connected, Role::Initiator, MuxConfig::default());
    let acceptor = MuxLink::new(accepted, Role::Acceptor, MuxConfig::default());
    (initiator, acceptor)
}

fn echo_service(link: &MuxLink, service: &str) {
    let mut listener = link.listen(service).unwrap();
    tokio::spawn(async move {
        while let Some(mut stream) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            if stream.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
}

async fn wait_listening() {
    // Listen announcements travel to the peer; give them a moment.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn hundreds_of_virtual_streams_echo_over_one_connection() {
    let (client_link, server_link) = linked_pair().await;
    echo_service(&server_link, "echo");
    wait_listening().await;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..300u32 {
        let link = client_link.clone();
        tasks.spawn(async move {
            let mut stream = link.connect("echo").await.unwrap();
            let message: Vec<u8> = (0..(1000 + index * 37))
                .map(|byte| (byte ^ index) as u8)
                .collect();
            stream.write_all(&message).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, message);
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    assert!(client_link.ended().is_none());
}

#[tokio::test]
async fn unknown_service_is_refused() {
    let (client_link, _server_link) = linked_pair().await;
    let error = client_link.connect("nobody-here").await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn slow_reader_stalls_only_its_own_stream() {
    let (client_link, server_link) = linked_pair().await;
    let mut sink = server_link.listen("sink").unwrap();
    echo_service(&server_link, "echo");
    wait_listening().await;
    // A stream whose receiver never reads: its writer fills the window and blocks.
    let mut stuck = client_link.connect("sink").await.unwrap();
    let _never_read = sink.accept().await.unwrap();
    let blocked = tokio::time::timeout(
        Duration::from_millis(300),
        stuck.write_all(&vec![1u8; 8 * 1024 * 1024]),
    )
    .await;
    assert!(blocked.is_err(), "the window must stop the writer");
    // Meanwhile another stream moves 4 MiB both ways.
    let echo = client_link.connect("echo").await.unwrap();
    let payload = vec![7u8; 4 * 1024 * 1024];
    let writer_payload = payload.clone();
    let (mut read_half, mut write_half) = tokio::io::split(echo);
    let writer = tokio::spawn(async move {
        write_half.write_all(&writer_payload).await.unwrap();
        write_half.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    read_half.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    assert_eq!(back, payload);
    // The stuck stream is still stuck, and still open.
    assert!(client_link.ended().is_none());
}

#[tokio::test(start_paused = true)]
async fn zs_server_on_a_virtual_listener_serves_clients_on_virtual_streams() {
    let (client_link, server_link) = linked_pair().await;
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    let handle = std::sync::Arc::new(server.spawn());
    let virtual_addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let mut listener = server_link.listen("10.0.0.1:80").unwrap();
    let serving = handle.clone();
    tokio::spawn(async move {
        while let Some(stream) = listener.accept().await {
            serving.serve_stream(stream, virtual_addr, virtual_addr);
        }
    });
    wait_listening().await;
    let mut clients = Vec::new();
    for index in 0..20 {
        let stream = client_link.connect("10.0.0.1:80").await.unwrap();
        let client = Client::builder()
            .connect_stream(stream, virtual_addr, virtual_addr)
            .await
            .unwrap();
        assert_eq!(
            client
                .call_console("echo", &format!("virtual {index}"))
                .await
                .unwrap(),
            format!("virtual {index}")
        );
        clients.push(client);
    }
    assert_eq!(handle.connection_count(), 20);
    // Each virtual connection ran its own handshake: its own keys, same server identity.
    assert!(
        clients
            .iter()
            .all(|client| client.peer().peer_fingerprint() == handle.fingerprint())
    );
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reverse_direction_the_accepting_side_connects() {
    let (client_link, server_link) = linked_pair().await;
    // The side that *connected* over TCP listens; the side that accepted opens streams.
    echo_service(&client_link, "reverse");
    wait_listening().await;
    let mut stream = server_link.connect("reverse").await.unwrap();
    stream.write_all(b"other way round").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"other way round");
}

#[tokio::test(start_paused = true)]
async fn dropped_transport_ends_every_stream_with_an_error() {
    // client link <-TCP-> forwarder <-pipe-> server link; killing the forwarder drops the
    // physical connection under both links.
    let (connected, mut tcp) = tcp_pair().await;
    let client_link = MuxLink::new(connected, Role::Initiator, MuxConfig::default());
    let (mut near, far) = tokio::io::duplex(1 << 20);
    let server_link = MuxLink::new(far, Role::Acceptor, MuxConfig::default());
    let forwarder = tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut near).await;
    });
    echo_service(&server_link, "echo");
    wait_listening().await;
    let mut stream = client_link.connect("echo").await.unwrap();
    stream.write_all(b"before").await.unwrap();
    let mut buffer = [0u8; 6];
    stream.read_exact(&mut buffer).await.unwrap();
    forwarder.abort();
    let outcome = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .unwrap();
    let error = outcome.unwrap_err();
    assert_eq!(
        error.kind(),
        std::io::ErrorKind::ConnectionAborted,
        "{error}"
    );
    assert!(client_link.ended().is_some());
    assert!(client_link.connect("echo").await.is_err());
}

#[tokio::test]
async fn a_receive_budget_refuses_streams_past_it_and_the_admitted_ones_still_move() {
    let (connected, accepted) = tcp_pair().await;
    let client_link = MuxLink::new(connected, Role::Initiator, MuxConfig::default());
    // Room for two streams' initial windows (256 KiB each) on the accepting side.
    let budget = MuxConfig::default().with_max_buffered(Some(2 * 256 * 1024));
    let server_link = MuxLink::new(accepted, Role::Acceptor, budget);
    echo_service(&server_link, "echo");
    wait_listening().await;
    let first = client_link.connect("echo").await.unwrap();
    let second = client_link.connect("echo").await.unwrap();
    let refused = client_link.connect("echo").await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let mut tasks = tokio::task::JoinSet::new();
    for stream in [first, second] {
        tasks.spawn(async move {
            let payload = vec![stream.id().0 as u8; 3 * 1024 * 1024];
            let (mut read_half, mut write_half) = tokio::io::split(stream);
            let expected = payload.clone();
            let writer = tokio::spawn(async move {
                write_half.write_all(&payload).await.unwrap();
                write_half.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            read_half.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            assert!(back == expected);
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    // Both streams are over: their share of the budget is free again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client_link.connect("echo").await.is_ok());
}
