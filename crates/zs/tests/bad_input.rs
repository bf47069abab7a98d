//! A misbehaving peer costs at most its own connection: each kind of bad input gets a clear,
//! named error (sent to the peer in a close frame) while other connections keep working.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zs::{BoxError, Client, DataFrame, Server, ServerHandle};
use zs_wire::frame::{self, CloseCode, ErrorCode, Frame, FrameDecoder, Payload, RequestId};
use zs_wire::session::{PREAMBLE_MAGIC, PREAMBLE_SIZE, PROTOCOL_VERSION};

async fn server() -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server
        .register_console("echo", |_ctx, text: String| async move {
            Ok::<_, BoxError>(text)
        })
        .register_stream("add", |_ctx, frame: DataFrame| async move {
            let mut reader = frame.reader();
            let sum = reader.read_i64()? + reader.read_i64()?;
            Ok::<_, BoxError>(DataFrame::new().with(sum))
        });
    server.config_mut().max_frame_size(64 * 1024);
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

fn preamble() -> Vec<u8> {
    let mut bytes = PREAMBLE_MAGIC.to_vec();
    bytes.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&(1u32 << 20).to_le_bytes());
    bytes
}

/// Sends `bytes` on a raw connection and returns every frame the server sent until it closed.
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<Frame> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "server did not close the connection");
    assert!(
        received.starts_with(&PREAMBLE_MAGIC),
        "server sends its preamble first"
    );
    let mut buffer = BytesMut::from(&received[PREAMBLE_SIZE..]);
    let decoder = FrameDecoder::new(u32::MAX);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut buffer) {
        frames.push(frame);
    }
    frames
}

fn close_reason(frames: &[Frame]) -> (CloseCode, String) {
    match frames.last() {
        Some(Frame::Close { code, reason }) => (*code, reason.clone()),
        other => panic!("expected a close frame last, got {other:?}"),
    }
}

/// A healthy client connected before the abuse must still work after it.
async fn assert_others_unaffected(client: &Client) {
    assert_eq!(
        client.call_console("echo", "still fine").await.unwrap(),
        "still fine"
    );
}

#[tokio::test]
async fn random_bytes_close_only_that_connection() {
    let (server, addr) = server().await;
    let bystander = Client::connect(addr).await.unwrap();
    let frames = send_raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (code, reason) = close_reason(&frames);
    assert_eq!(code, CloseCode::ProtocolError);
    assert!(reason.contains("bad preamble"), "{reason}");
    assert_others_unaffected(&bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_length_is_refused_before_buffering() {
    let (server, addr) = server().await;
    let bystander = Client::connect(addr).await.unwrap();
    let mut bytes = preamble();
    bytes.push(0x05); // reply
    bytes.push(0);
    bytes.extend_from_slice(&(1u32 << 30).to_le_bytes()); // 1 GiB announced
    bytes.extend_from_slice(&1u64.to_le_bytes());
    let (code, reason) = close_reason(&send_raw(addr, &bytes).await);
    assert_eq!(code, CloseCode::ProtocolError);
    assert_eq!(
        reason,
        "frame of 1073741824 bytes exceeds the limit of 65536 bytes"
    );
    assert_others_unaffected(&bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_frame_kind_is_named() {
    let (server, addr) = server().await;
    let mut bytes = preamble();
    bytes.extend_from_slice(&[0xEE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (code, reason) = close_reason(&send_raw(addr, &bytes).await);
    assert_eq!(code, CloseCode::ProtocolError);
    assert_eq!(reason, "unknown frame kind 0xee");
    server.shutdown().await;
}

#[tokio::test]
async fn reply_to_an_unknown_request_id_is_a_protocol_error() {
    let (server, addr) = server().await;
    let mut bytes = BytesMut::from(&preamble()[..]);
    frame::encode_reply(&mut bytes, RequestId(99), b"who asked?", 1024).unwrap();
    let (code, reason) = close_reason(&send_raw(addr, &bytes).await);
    assert_eq!(code, CloseCode::ProtocolError);
    assert_eq!(reason, "reply to request #99 which was never sent");
    server.shutdown().await;
}

#[tokio::test]
async fn truncated_frame_then_hangup_costs_only_that_connection() {
    let (server, addr) = server().await;
    let bystander = Client::connect(addr).await.unwrap();
    let mut bytes = BytesMut::from(&preamble()[..]);
    frame::encode_command(
        &mut bytes,
        Some(RequestId(1)),
        Payload::Console,
        "echo",
        b"cut here",
        1024,
    )
    .unwrap();
    let cut = bytes.len() - 4;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&bytes[..cut]).await.unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_others_unaffected(&bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_dataframe_is_an_error_reply_not_a_disconnect() {
    let (server, addr) = server().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut bytes = BytesMut::from(&preamble()[..]);
    // Count says 5 values, body holds none.
    frame::encode_command(
        &mut bytes,
        Some(RequestId(1)),
        Payload::Stream,
        "add",
        &[5, 0, 0, 0],
        1024,
    )
    .unwrap();
    frame::encode_command(
        &mut bytes,
        Some(RequestId(2)),
        Payload::Console,
        "echo",
        b"after",
        1024,
    )
    .unwrap();
    stream.write_all(&bytes).await.unwrap();

    let mut buffer = BytesMut::new();
    let decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(read, 0, "server closed the connection");
        buffer.put_slice(&chunk[..read]);
        if frames.is_empty() && buffer.len() >= PREAMBLE_SIZE {
            let _ = buffer.split_to(PREAMBLE_SIZE);
            frames.push(Frame::Ping { nonce: 0 }); // placeholder for the preamble
        }
        while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
            frames.push(frame);
        }
    }
    while frames.len() < 3 {
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        buffer.put_slice(&chunk[..read]);
        while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
            frames.push(frame);
        }
    }
    let mut replies: Vec<_> = frames.into_iter().skip(1).collect();
    replies.sort_by_key(|frame| match frame {
        Frame::Reply { id, .. } | Frame::ErrorReply { id, .. } => id.0,
        _ => u64::MAX,
    });
    assert!(
        matches!(&replies[0], Frame::ErrorReply { id: RequestId(1), code: ErrorCode::BadRequest, message } if message.starts_with("invalid DataFrame")),
        "{replies:?}"
    );
    assert!(
        matches!(&replies[1], Frame::Reply { id: RequestId(2), body } if &body[..] == b"after")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_after_a_valid_exchange_closes_only_that_peer() {
    let (server, addr) = server().await;
    let bystander = Client::connect(addr).await.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut bytes = BytesMut::from(&preamble()[..]);
    frame::encode_command(
        &mut bytes,
        Some(RequestId(1)),
        Payload::Console,
        "echo",
        b"ok",
        1024,
    )
    .unwrap();
    stream.write_all(&bytes).await.unwrap();
    // Preamble + reply header (14) + "ok" (2).
    let mut first = [0u8; PREAMBLE_SIZE + 16];
    stream.read_exact(&mut first).await.unwrap();
    let mut reply = BytesMut::from(&first[PREAMBLE_SIZE..]);
    assert_eq!(
        FrameDecoder::default().decode(&mut reply).unwrap(),
        Some(Frame::Reply {
            id: RequestId(1),
            body: bytes::Bytes::from_static(b"ok")
        })
    );

    stream
        .write_all(&[0x01, 0xff, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let mut rest = BytesMut::from(&rest[..]);
    let closing = FrameDecoder::default().decode(&mut rest).unwrap().unwrap();
    assert_eq!(
        closing,
        Frame::Close {
            code: CloseCode::ProtocolError,
            reason: "unknown frame flags 0xff on kind 0x01".into()
        }
    );
    assert_others_unaffected(&bystander).await;
    server.shutdown().await;
}
