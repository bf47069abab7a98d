//! A misbehaving peer costs at most its own connection: each kind of bad input gets a clear,
//! named error (sent to the peer in a close frame when the channel is still trustworthy) while
//! other connections keep working. Garbage inside the encrypted channel is sent through a
//! hand-driven client that completes the real handshake ([`common::RawClient`]).

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::{RawClient, preamble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zs::{Client, DataFrame, Server, ServerHandle};
use zs_wire::frame::{self, CloseCode, Frame, Payload, RequestId, StatusCode};

async fn server() -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_stream("add", |_ctx, frame: DataFrame| async move {
            let mut reader = frame.reader();
            let sum = reader.read_i64()? + reader.read_i64()?;
            Ok(DataFrame::new().with(sum))
        });
    server.config_mut().max_frame_size(64 * 1024);
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
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

/// Sends raw bytes on a fresh TCP connection and waits for the server to hang up.
async fn raw_tcp_until_hangup(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "server did not close the connection");
    received
}

#[tokio::test]
async fn random_bytes_instead_of_a_handshake_close_only_that_connection() {
    let (server, addr) = server().await;
    let bystander = Client::connect(addr).await.unwrap();
    let answer = raw_tcp_until_hangup(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        answer.is_empty(),
        "nothing is said to a peer that never authenticated"
    );
    let answer = raw_tcp_until_hangup(addr, &[0xff; 4096]).await;
    assert!(answer.is_empty());
    assert_others_unaffected(&bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_session_preamble_inside_the_channel_is_named() {
    let (server, addr) = server().await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(b"GET / HTTP/1.1\r\n\r\n").await;
    let (code, reason) = close_reason(&raw.frames_until_close().await);
    assert_eq!(code, CloseCode::ProtocolError);
    assert!(reason.contains("bad preamble"), "{reason}");
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_length_is_refused_before_buffering() {
    let (server, addr) = server().await;
    let bystander = Client::connect(addr).await.unwrap();
    let mut raw = RawClient::connect(addr).await;
    let mut bytes = preamble();
    bytes.push(0x05); // reply
    bytes.push(0);
    bytes.extend_from_slice(&(1u32 << 30).to_le_bytes()); // 1 GiB announced
    bytes.extend_from_slice(&1u64.to_le_bytes());
    raw.send(&bytes).await;
    let (code, reason) = close_reason(&raw.frames_until_close().await);
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
    let mut raw = RawClient::connect(addr).await;
    let mut bytes = preamble();
    bytes.extend_from_slice(&[0xEE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    raw.send(&bytes).await;
    let (code, reason) = close_reason(&raw.frames_until_close().await);
    assert_eq!(code, CloseCode::ProtocolError);
    assert_eq!(reason, "unknown frame kind 0xee");
    server.shutdown().await;
}

#[tokio::test]
async fn reply_to_an_unknown_request_id_is_a_protocol_error() {
    let (server, addr) = server().await;
    let mut raw = RawClient::connect(addr).await;
    let mut bytes = BytesMut::from(&preamble()[..]);
    frame::encode_reply(&mut bytes, RequestId(99), b"who asked?", 1024).unwrap();
    raw.send(&bytes).await;
    let (code, reason) = close_reason(&raw.frames_until_close().await);
    assert_eq!(code, CloseCode::ProtocolError);
    assert_eq!(reason, "reply to request #99 which was never sent");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn truncated_frame_then_hangup_costs_only_that_connection() {
    let (server, addr) = server().await;
    let bystander = Client::connect(addr).await.unwrap();
    let mut raw = RawClient::connect(addr).await;
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
    raw.send(&bytes[..cut]).await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_others_unaffected(&bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_dataframe_is_an_error_reply_not_a_disconnect() {
    let (server, addr) = server().await;
    let mut raw = RawClient::connect(addr).await;
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
    raw.send(&bytes).await;
    let mut replies = raw.frames(2).await;
    replies.sort_by_key(|frame| match frame {
        Frame::Reply { id, .. } | Frame::ErrorReply { id, .. } => id.0,
        _ => u64::MAX,
    });
    assert!(
        matches!(&replies[0], Frame::ErrorReply { id: RequestId(1), code: StatusCode::INVALID_ARGUMENT, message, .. } if message.starts_with("invalid DataFrame")),
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
    let mut raw = RawClient::connect(addr).await;
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
    raw.send(&bytes).await;
    let first = raw.frames(1).await;
    assert_eq!(
        first,
        vec![Frame::Reply {
            id: RequestId(1),
            body: bytes::Bytes::from_static(b"ok")
        }]
    );

    let mut garbage = BytesMut::new();
    garbage.put_slice(&[0x01, 0xff, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0]);
    raw.send(&garbage).await;
    let rest = raw.frames_until_close().await;
    assert_eq!(
        rest.last(),
        Some(&Frame::Close {
            code: CloseCode::ProtocolError,
            reason: "unknown frame flags 0xff on kind 0x01".into()
        })
    );
    assert_others_unaffected(&bystander).await;
    server.shutdown().await;
}
