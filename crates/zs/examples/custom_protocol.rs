//! The custom-protocol mode (ZServer4D demo 17.CustomProcotol, `cpCustom`): a line-based
//! chat served by a zserver `Server` — the same port also takes zs clients — so that `nc`,
//! telnet or a C program can talk to it.
//!
//! ```sh
//! cargo run -p zs --example custom_protocol            # serves on 127.0.0.1:4921 until Ctrl-C
//! nc 127.0.0.1 4921                                    # in two terminals: type lines, /who, /quit
//! cargo run -p zs --example custom_protocol -- --demo  # two scripted clients, then exits
//! ```
//!
//! Each line a client sends goes to every other client; `/who` lists who is connected,
//! `/quit` leaves. A line over 1 KiB, or bytes that are not UTF-8, close that client only.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::codec::LinesCodec;
use zs::custom::{CustomPeer, CustomProtocol};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|arg| arg == "--demo");
    let address = if demo {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:4921"
    };
    let mut server = zs::Server::bind(address).await?;
    // zs clients keep working on the same port: `zs call --connect 127.0.0.1:4921 console time`.
    server.register_console("time", |_ctx, _text: String| async move {
        Ok(format!("{:?}", std::time::SystemTime::now()))
    });
    // The handler needs the running server (to reach the other clients); it exists once
    // spawned, so the handler finds it here.
    let room: Arc<OnceLock<zs::ServerRef>> = Arc::default();
    let server_ref = room.clone();
    server.serve_custom(
        CustomProtocol::new(
            || LinesCodec::new_with_max_length(1024),
            move |peer: CustomPeer<String>, line: String| {
                let server_ref = server_ref.clone();
                async move {
                    let Some(server) = server_ref.get() else {
                        return Ok(());
                    };
                    let me = peer.remote_addr();
                    match line.trim() {
                        "/quit" => {
                            peer.send("bye".to_owned()).await?;
                            peer.close();
                        }
                        "/who" => {
                            let who: Vec<String> = server
                                .custom_peers::<String>()
                                .iter()
                                .map(|other| other.remote_addr().to_string())
                                .collect();
                            peer.send(format!("here: {}", who.join(", "))).await?;
                        }
                        text => {
                            for other in server.custom_peers::<String>() {
                                if other.id() != peer.id() {
                                    // A slow reader misses lines rather than slowing the room.
                                    let _ = other.try_send(format!("{me}: {text}"));
                                }
                            }
                        }
                    }
                    Ok(())
                }
            },
        )
        .on_connect(|peer| async move {
            peer.send("welcome; lines go to everyone, /who, /quit".to_owned())
                .await?;
            Ok(())
        }),
    );
    let running = server.spawn();
    let _ = room.set(running.server_ref());
    let addr = running.local_addr();
    println!("custom protocol (lines) and zs on {addr}");

    if demo {
        let mut alice = Client::connect(addr).await?;
        let mut bob = Client::connect(addr).await?;
        println!("alice got: {}", alice.line().await?);
        println!("bob got:   {}", bob.line().await?);
        alice.send("hello, bob").await?;
        println!("bob got:   {}", bob.line().await?);
        bob.send("/who").await?;
        println!("bob got:   {}", bob.line().await?);
        bob.send("/quit").await?;
        println!("bob got:   {}", bob.line().await?);
        // zs clients share the port.
        let zs_client = zs::Client::connect(addr).await?;
        println!("zs time:   {}", zs_client.call_console("time", "").await?);
        running.shutdown().await;
        return Ok(());
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}

/// A line client, as `nc` would be.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let (reader, writer) = TcpStream::connect(addr).await?.into_split();
        Ok(Self {
            reader: BufReader::new(reader),
            writer,
        })
    }

    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes()).await
    }

    async fn line(&mut self) -> Result<String, Box<dyn std::error::Error>> {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line)).await??;
        Ok(line.trim_end().to_owned())
    }
}
