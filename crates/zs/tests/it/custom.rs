//! The custom-protocol mode (`cpCustom`) over real loopback sockets: a line protocol alone
//! and beside the zs protocol on one port, greeting, broadcast, bad input, the connection
//! limit, idle timeout and graceful shutdown.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::codec::LinesCodec;
use zs::custom::CustomProtocol;

/// A line echo: `PING x` → `PONG x`; anything else → `ERR`.
fn line_echo() -> CustomProtocol<LinesCodec, String> {
    CustomProtocol::new(
        || LinesCodec::new_with_max_length(64),
        |peer, line: String| async move {
            let reply = match line.strip_prefix("PING ") {
                Some(rest) => format!("PONG {rest}"),
                None => "ERR".to_owned(),
            };
            peer.send(reply).await?;
            Ok(())
        },
    )
}

struct Line {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    local: std::net::SocketAddr,
}

impl Line {
    async fn connect(address: std::net::SocketAddr) -> Self {
        let stream = TcpStream::connect(address).await.unwrap();
        let local = stream.local_addr().unwrap();
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
            local,
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line, or `None` at the end of the connection.
    async fn receive(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("a line or the end in time")
            .unwrap_or(0);
        (read > 0).then(|| line.trim_end().to_owned())
    }
}

async fn serve(configure: impl FnOnce(&mut zs::Server)) -> zs::ServerHandle {
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    configure(&mut server);
    server.spawn()
}

#[tokio::test]
async fn a_line_protocol_alone_with_a_greeting() {
    let server = serve(|server| {
        server.serve_custom(line_echo().exclusive().on_connect(|peer| async move {
            peer.send("HELLO".to_owned()).await?;
            Ok(())
        }));
    })
    .await;
    let mut client = Line::connect(server.local_addr()).await;
    assert_eq!(client.receive().await.as_deref(), Some("HELLO"));
    client.send("PING 1").await;
    client.send("what").await;
    client.send("PING 2").await;
    assert_eq!(client.receive().await.as_deref(), Some("PONG 1"));
    assert_eq!(client.receive().await.as_deref(), Some("ERR"));
    assert_eq!(client.receive().await.as_deref(), Some("PONG 2"));
    let metrics = server.metrics();
    assert_eq!(metrics.custom_connections, 1);
    assert_eq!(metrics.custom_messages_in, 3);
    assert_eq!(metrics.custom_messages_out, 4);
    // Exclusive: a zs client gets nowhere.
    let refused = tokio::time::timeout(
        Duration::from_secs(1),
        zs::Client::connect(server.local_addr()),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a zs client on an exclusive custom port"
    );
}

#[tokio::test]
async fn zs_and_a_line_protocol_share_a_port() {
    let server = serve(|server| {
        server.serve_custom(line_echo());
    })
    .await;
    let zs_client = zs::Client::connect(server.local_addr()).await.unwrap();
    let mut line = Line::connect(server.local_addr()).await;
    line.send("PING shared").await;
    assert_eq!(line.receive().await.as_deref(), Some("PONG shared"));
    let reply = zs_client.call_console("echo", "zs too").await.unwrap();
    assert_eq!(reply, "zs too");
    assert_eq!(server.connection_count(), 1, "the zs connection");
    assert_eq!(server.custom_peers::<String>().len(), 1);
}

#[tokio::test]
async fn a_silent_client_is_taken_for_the_custom_protocol() {
    let server = serve(|server| {
        server.serve_custom(
            line_echo()
                .detect_timeout(Duration::from_millis(50))
                .on_connect(|peer| async move {
                    peer.send("220 ready".to_owned()).await?;
                    Ok(())
                }),
        );
    })
    .await;
    // A server-speaks-first protocol: the client waits for the banner.
    let mut client = Line::connect(server.local_addr()).await;
    assert_eq!(client.receive().await.as_deref(), Some("220 ready"));
}

#[tokio::test]
async fn bad_input_closes_only_its_own_connection() {
    let server = serve(|server| {
        server.serve_custom(line_echo());
    })
    .await;
    let zs_client = zs::Client::connect(server.local_addr()).await.unwrap();
    let mut good = Line::connect(server.local_addr()).await;
    let mut bad = Line::connect(server.local_addr()).await;
    // Over the codec's 64-byte limit: the codec's error ends that connection.
    bad.send(&"x".repeat(1000)).await;
    assert_eq!(bad.receive().await, None);
    // Invalid UTF-8 too.
    let mut binary = TcpStream::connect(server.local_addr()).await.unwrap();
    binary.write_all(b"\xff\xfe\xfd\n").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), binary.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");

    good.send("PING still").await;
    assert_eq!(good.receive().await.as_deref(), Some("PONG still"));
    assert_eq!(
        zs_client.call_console("echo", "fine").await.unwrap(),
        "fine"
    );
}

#[tokio::test]
async fn broadcast_reaches_every_custom_connection() {
    let server = serve(|server| {
        server.serve_custom(line_echo());
    })
    .await;
    let mut first = Line::connect(server.local_addr()).await;
    let mut second = Line::connect(server.local_addr()).await;
    // Both are in the table once each has been told apart and served.
    first.send("PING a").await;
    second.send("PING b").await;
    assert_eq!(first.receive().await.as_deref(), Some("PONG a"));
    assert_eq!(second.receive().await.as_deref(), Some("PONG b"));
    assert_eq!(server.broadcast_custom(&"NEWS".to_owned()), 2);
    assert_eq!(first.receive().await.as_deref(), Some("NEWS"));
    assert_eq!(second.receive().await.as_deref(), Some("NEWS"));
    // A peer closed from the server's side; the other stays.
    let peers = server.custom_peers::<String>();
    let peer = peers
        .iter()
        .find(|peer| peer.remote_addr() == first.local)
        .unwrap();
    peer.close();
    assert_eq!(first.receive().await, None);
    second.send("PING c").await;
    assert_eq!(second.receive().await.as_deref(), Some("PONG c"));
}

#[tokio::test]
async fn the_connection_limit_counts_custom_connections() {
    let server = serve(|server| {
        server.config_mut().max_connections(1);
        server.serve_custom(line_echo().exclusive());
    })
    .await;
    let mut first = Line::connect(server.local_addr()).await;
    first.send("PING 1").await;
    assert_eq!(first.receive().await.as_deref(), Some("PONG 1"));
    let mut second = Line::connect(server.local_addr()).await;
    second.send("PING 2").await;
    assert_eq!(second.receive().await, None, "over the limit: closed");
    assert_eq!(
        server.metrics().refused[0],
        (zs::metrics::RefuseReason::Full, 1)
    );
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = serve(|server| {
        server
            .config_mut()
            .idle_timeout(Some(Duration::from_millis(300)));
        server.serve_custom(line_echo().exclusive());
    })
    .await;
    let mut client = Line::connect(server.local_addr()).await;
    client.send("PING 1").await;
    assert_eq!(client.receive().await.as_deref(), Some("PONG 1"));
    let started = std::time::Instant::now();
    assert_eq!(client.receive().await, None);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn shutdown_writes_what_is_queued_then_closes() {
    let server = serve(|server| {
        server.serve_custom(line_echo().exclusive());
    })
    .await;
    let mut client = Line::connect(server.local_addr()).await;
    client.send("PING 1").await;
    assert_eq!(client.receive().await.as_deref(), Some("PONG 1"));
    let peer = server.custom_peers::<String>().pop().unwrap();
    peer.send("BYE".to_owned()).await.unwrap();
    server.shutdown().await;
    assert_eq!(client.receive().await.as_deref(), Some("BYE"));
    assert_eq!(client.receive().await, None);
    assert!(peer.is_closed());
}

#[tokio::test]
async fn a_custom_protocol_over_stable_io_survives_cuts() {
    let server = serve(|server| {
        server.serve_custom(line_echo());
    })
    .await;
    let cutter = super::common::cutter::start(server.local_addr(), 1 << 40, 1 << 41).await;
    let stream = zs::Client::builder()
        .connect_stable_stream(cutter.addr)
        .await
        .unwrap();
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let mut next = 0;
    for round in 0..4 {
        // Lines in flight both ways when the link is cut.
        for i in next..next + 50 {
            writer
                .write_all(format!("PING {i}\n").as_bytes())
                .await
                .unwrap();
        }
        if round > 0 {
            cutter.cut_all();
        }
        for i in next..next + 50 {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(20), reader.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap();
            assert_eq!(
                line.trim_end(),
                format!("PONG {i}"),
                "every reply once, in order"
            );
        }
        next += 50;
    }
    assert!(
        cutter.cuts.load(std::sync::atomic::Ordering::Relaxed) >= 3,
        "the proxy cut the links"
    );
    assert_eq!(
        server.custom_peers::<String>().len(),
        1,
        "one session all along"
    );
    // The same server still serves zs clients over StableIO.
    let zs_client = zs::Client::builder()
        .connect_stable(server.local_addr())
        .await
        .unwrap();
    assert_eq!(zs_client.call_console("echo", "zs").await.unwrap(), "zs");
}
