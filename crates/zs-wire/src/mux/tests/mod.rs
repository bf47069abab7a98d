//! Two muxes wired back to back in memory with a virtual clock (the `Pair` of the session
//! tests), hostile byte sequences, and property tests.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

struct Pair {
    /// The connection's initiator (odd stream ids).
    client: Mux,
    /// The acceptor (even stream ids).
    server: Mux,
    /// Bytes the server has received and not yet processed.
    server_in: BytesMut,
    /// Bytes the client has received and not yet processed.
    client_in: BytesMut,
    now: Instant,
}

impl Pair {
    fn new() -> Self {
        Self::with_config(MuxConfig::default())
    }

    fn with_config(config: MuxConfig) -> Self {
        let now = Instant::now();
        Self {
            client: Mux::new(config.clone(), Role::Initiator, now),
            server: Mux::new(config, Role::Acceptor, now),
            server_in: BytesMut::new(),
            client_in: BytesMut::new(),
            now,
        }
    }

    /// One exchange of up to `max` bytes each way; returns the bytes moved.
    fn step(&mut self, max: usize) -> usize {
        let to_server = self.client.poll_transmit(&mut self.server_in, max);
        let to_client = self.server.poll_transmit(&mut self.client_in, max);
        self.server
            .handle_received(&mut self.server_in, self.now)
            .expect("server input");
        self.client
            .handle_received(&mut self.client_in, self.now)
            .expect("client input");
        to_server + to_client
    }

    /// Moves every pending byte both ways until both sides are quiet.
    fn drive(&mut self) {
        while self.step(usize::MAX) > 0 {}
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }
}

fn events(mux: &mut Mux) -> Vec<MuxEvent> {
    std::iter::from_fn(|| mux.poll_event()).collect()
}

fn read_all(mux: &mut Mux, id: StreamId) -> Vec<u8> {
    let mut out = BytesMut::new();
    mux.read(id, &mut out);
    out.to_vec()
}

fn frame(header: Header, body: &[u8]) -> Vec<u8> {
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn syn(id: u32, service: &str) -> Vec<u8> {
    frame(
        Header::data(StreamId(id), Flags::SYN, service.len() as u32),
        service.as_bytes(),
    )
}

fn data(id: u32, flags: Flags, body: &[u8]) -> Vec<u8> {
    frame(Header::data(StreamId(id), flags, body.len() as u32), body)
}

/// A lone acceptor listening on "echo", fed by a hand-written peer.
fn hostile_target() -> (Mux, Instant) {
    let now = Instant::now();
    let mut mux = Mux::new(MuxConfig::default(), Role::Acceptor, now);
    mux.listen("echo").unwrap();
    (mux, now)
}

fn feed(mux: &mut Mux, bytes: &[u8], now: Instant) -> Result<(), MuxError> {
    let mut received = BytesMut::from(bytes);
    mux.handle_received(&mut received, now)
}

/// Splits transmitted bytes back into frames.
fn parse_frames(mut bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let header = Header::decode(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
        let end = HEADER_LEN + header.body_len();
        frames.push((header, bytes[HEADER_LEN..end].to_vec()));
        bytes = &bytes[end..];
    }
    frames
}

fn transmitted(mux: &mut Mux) -> Vec<(Header, Vec<u8>)> {
    let mut out = BytesMut::new();
    mux.poll_transmit(&mut out, usize::MAX);
    parse_frames(&out)
}

fn assert_closed_with(mux: &mut Mux, error: &MuxError) {
    assert!(mux.is_closed());
    let closed = events(mux).pop();
    assert_eq!(
        closed,
        Some(MuxEvent::Closed {
            reason: CloseReason::Protocol(error.clone())
        })
    );
    // The peer is told: GoAway with the protocol-error code is queued.
    let frames = transmitted(mux);
    let (last, _) = frames.last().expect("a GoAway");
    assert_eq!(last.frame_type, FrameType::GoAway);
    assert_eq!(GoAwayCode::from_u32(last.length), GoAwayCode::ProtocolError);
    assert_eq!(mux.stream_count(), 0);
}

mod budget;
mod hostile;
mod lifecycle;
mod properties;
mod streams;
