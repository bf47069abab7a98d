//! A hand-driven client for tests that must send what a well-behaved `Client` never would:
//! it runs the real handshake with the sans-IO `zs-wire` pieces, then lets the test seal any
//! bytes it likes into records, or write raw bytes under the record layer.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zs_wire::crypto::record::{Opener, Sealer};
use zs_wire::frame::{Frame, FrameDecoder};
use zs_wire::handshake::{ClientConfig, ClientHandshake};
use zs_wire::session::{PREAMBLE_MAGIC, PREAMBLE_SIZE, PROTOCOL_VERSION};

pub struct RawClient {
    pub stream: TcpStream,
    pub sealer: Sealer,
    opener: Opener,
    ciphertext: BytesMut,
    plaintext: BytesMut,
    preamble_seen: bool,
}

/// A valid session preamble announcing a 1 MiB frame limit.
pub fn preamble() -> Vec<u8> {
    let mut bytes = PREAMBLE_MAGIC.to_vec();
    bytes.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&(1u32 << 20).to_le_bytes());
    bytes
}

impl RawClient {
    /// Connects and completes the secure handshake with the default client configuration.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, ClientConfig::new()).await
    }

    pub async fn connect_with(addr: SocketAddr, config: ClientConfig) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut handshake = ClientHandshake::new(config).unwrap();
        let mut received = BytesMut::new();
        loop {
            let out = handshake.take_transmit();
            stream.write_all(&out).await.unwrap();
            if handshake.is_done() {
                break;
            }
            assert_ne!(
                stream.read_buf(&mut received).await.unwrap(),
                0,
                "server hung up in the handshake"
            );
            handshake.handle_received(&mut received).unwrap();
        }
        let outcome = handshake.outcome().unwrap();
        Self {
            stream,
            sealer: Sealer::new(outcome.suite, outcome.send_secret, u64::MAX).unwrap(),
            opener: Opener::new(outcome.suite, outcome.receive_secret).unwrap(),
            ciphertext: received,
            plaintext: BytesMut::new(),
            preamble_seen: false,
        }
    }

    /// Seals `bytes` into records and sends them.
    pub async fn send(&mut self, bytes: &[u8]) {
        let mut out = BytesMut::new();
        self.sealer.seal(bytes, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// Reads until `count` frames have arrived after the server's preamble (or the server
    /// closes), returning them.
    pub async fn frames(&mut self, count: usize) -> Vec<Frame> {
        let decoder = FrameDecoder::new(u32::MAX);
        let mut frames = Vec::new();
        loop {
            self.opener
                .open(&mut self.ciphertext, &mut self.plaintext)
                .unwrap();
            if !self.preamble_seen && self.plaintext.len() >= PREAMBLE_SIZE {
                assert!(self.plaintext.starts_with(&PREAMBLE_MAGIC));
                let _ = self.plaintext.split_to(PREAMBLE_SIZE);
                self.preamble_seen = true;
            }
            if self.preamble_seen {
                while let Some(frame) = decoder.decode(&mut self.plaintext).unwrap() {
                    frames.push(frame);
                }
            }
            if frames.len() >= count {
                return frames;
            }
            let read = tokio::time::timeout(
                Duration::from_secs(5),
                self.stream.read_buf(&mut self.ciphertext),
            )
            .await
            .expect("server answers within 5 s")
            .unwrap();
            if read == 0 {
                return frames;
            }
        }
    }

    /// Reads every frame until the server closes the connection.
    pub async fn frames_until_close(&mut self) -> Vec<Frame> {
        self.frames(usize::MAX).await
    }
}

pub mod cutter;
pub mod pattern;
pub mod proxy;
