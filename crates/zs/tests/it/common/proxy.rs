//! A loopback proxy between a client and a server that understands the layering well enough
//! to hand each handshake message and each record to a test hook, which may alter, drop,
//! duplicate or reorder them. It also keeps every byte it forwarded, for inspection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which way a unit travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

/// One unit on the wire: a handshake message (with its length prefix; the client's hello is
/// its own unit) or a record (with its 5-byte header).
#[derive(Debug, Clone)]
pub struct Unit {
    pub direction: Direction,
    /// Handshake units come first: index 0.. per direction.
    pub handshake: bool,
    /// Position among the units of its direction.
    pub index: usize,
    pub bytes: Vec<u8>,
}

pub type Hook = Arc<Mutex<dyn FnMut(&Unit) -> Vec<Vec<u8>> + Send>>;

pub struct Proxy {
    pub addr: SocketAddr,
    /// Every byte forwarded, per direction, after the hook.
    pub wire: Arc<Mutex<(Vec<u8>, Vec<u8>)>>,
}

/// Starts a proxy to `upstream`; the hook sees every unit and returns what to forward.
pub async fn start(upstream: SocketAddr, hook: Hook) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let wire = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let wire_for_task = wire.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            // Forward at once, like the endpoints' own sockets: a segment that Nagle's
            // algorithm holds back until a delayed ACK is a stall the paused clock of a
            // test cannot see (it would jump to the next timer).
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(
                client_read,
                server_write,
                Direction::ToServer,
                hook.clone(),
                wire_for_task.clone(),
            ));
            tokio::spawn(pump(
                server_read,
                client_write,
                Direction::ToClient,
                hook.clone(),
                wire_for_task.clone(),
            ));
        }
    });
    Proxy { addr, wire }
}

/// Handshake units per direction: the client sends hello, msg1, msg3; the server msg2.
fn handshake_units(direction: Direction) -> usize {
    match direction {
        Direction::ToServer => 3,
        Direction::ToClient => 1,
    }
}

fn next_unit(buffer: &mut BytesMut, direction: Direction, index: usize) -> Option<Vec<u8>> {
    let handshake = index < handshake_units(direction);
    let len = if handshake && direction == Direction::ToServer && index == 0 {
        6 // hello
    } else if handshake {
        if buffer.len() < 2 {
            return None;
        }
        2 + u16::from_le_bytes([buffer[0], buffer[1]]) as usize
    } else {
        if buffer.len() < 5 {
            return None;
        }
        5 + u32::from_le_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize
    };
    if buffer.len() < len {
        return None;
    }
    let unit = buffer[..len].to_vec();
    buffer.advance(len);
    Some(unit)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    direction: Direction,
    hook: Hook,
    wire: Arc<Mutex<(Vec<u8>, Vec<u8>)>>,
) {
    let mut buffer = BytesMut::new();
    let mut index = 0;
    loop {
        match from.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut out = Vec::new();
        while let Some(bytes) = next_unit(&mut buffer, direction, index) {
            let unit = Unit {
                direction,
                handshake: index < handshake_units(direction),
                index,
                bytes,
            };
            index += 1;
            let forwarded = (hook.lock().unwrap())(&unit);
            for bytes in forwarded {
                out.extend_from_slice(&bytes);
            }
        }
        {
            let mut wire = wire.lock().unwrap();
            match direction {
                Direction::ToServer => wire.0.extend_from_slice(&out),
                Direction::ToClient => wire.1.extend_from_slice(&out),
            }
        }
        if to.write_all(&out).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A hook that forwards everything unchanged.
pub fn pass_through() -> Hook {
    Arc::new(Mutex::new(|unit: &Unit| vec![unit.bytes.clone()]))
}
