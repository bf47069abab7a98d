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

// ------------------------------------------------------------------ opening and echo

#[test]
fn open_accept_and_echo_in_both_directions() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    pair.client.listen("push").unwrap();
    pair.drive();
    assert_eq!(
        events(&mut pair.client),
        vec![MuxEvent::ListenerAnnounced {
            service: "echo".into()
        }]
    );
    assert_eq!(
        events(&mut pair.server),
        vec![MuxEvent::ListenerAnnounced {
            service: "push".into()
        }]
    );

    // Either side opens to the other's service; ids have the side's parity.
    let up = pair.client.open_stream("echo").unwrap();
    let down = pair.server.open_stream("push").unwrap();
    assert_eq!((up, down), (StreamId(1), StreamId(2)));
    assert_eq!(pair.client.write(up, b"hello").unwrap(), 5);
    assert_eq!(pair.server.write(down, b"world").unwrap(), 5);
    pair.drive();

    let server_events = events(&mut pair.server);
    assert!(server_events.contains(&MuxEvent::IncomingStream {
        id: up,
        service: "echo".into()
    }));
    assert!(server_events.contains(&MuxEvent::Readable { id: up }));
    assert!(server_events.contains(&MuxEvent::Accepted { id: down }));
    let client_events = events(&mut pair.client);
    assert!(client_events.contains(&MuxEvent::IncomingStream {
        id: down,
        service: "push".into()
    }));
    assert!(client_events.contains(&MuxEvent::Accepted { id: up }));

    let got = read_all(&mut pair.server, up);
    assert_eq!(got, b"hello");
    pair.server.write(up, &got).unwrap();
    let got = read_all(&mut pair.client, down);
    assert_eq!(got, b"world");
    pair.client.write(down, &got).unwrap();
    pair.drive();
    assert_eq!(read_all(&mut pair.client, up), b"hello");
    assert_eq!(read_all(&mut pair.server, down), b"world");
}

#[test]
fn stream_struct_is_small() {
    let stream = std::mem::size_of::<Stream>();
    // Two BytesMut (32 bytes each, no allocation while empty), three u32 windows, flags.
    eprintln!("size_of::<Stream>() = {stream} bytes");
    assert!(stream <= 80, "Stream grew to {stream} bytes");
}

#[test]
fn ten_thousand_streams_at_once_each_echo_a_little() {
    const STREAMS: usize = 10_000;
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let ids: Vec<StreamId> = (0..STREAMS)
        .map(|_| pair.client.open_stream("echo").unwrap())
        .collect();
    pair.drive();
    assert_eq!(pair.server.stream_count(), STREAMS);

    // Idle memory: every stream exists on both sides, no buffer is allocated.
    let entry = std::mem::size_of::<(u32, Stream)>() + 1; // + hashbrown's control byte
    let table = pair.server.streams.capacity() * entry;
    let per_stream = table / STREAMS;
    eprintln!(
        "10,000 idle streams: Stream {} B, map entry {entry} B, table {table} B \
         => {per_stream} B per idle stream (map capacity {})",
        std::mem::size_of::<Stream>(),
        pair.server.streams.capacity()
    );
    assert!(per_stream <= 256, "{per_stream} bytes per idle stream");
    let stats = pair.server.stats();
    assert_eq!((stats.buffered_receive, stats.buffered_send), (0, 0));
    assert!(
        pair.server
            .streams
            .values()
            .all(|s| s.recv.capacity() == 0 && s.send.is_empty())
    );

    for (n, &id) in ids.iter().enumerate() {
        let message = format!("message {n}");
        assert_eq!(
            pair.client.write(id, message.as_bytes()).unwrap(),
            message.len()
        );
        pair.client.close(id).unwrap();
    }
    pair.drive();
    let mut incoming = 0;
    for event in events(&mut pair.server) {
        match event {
            MuxEvent::IncomingStream { .. } => incoming += 1,
            MuxEvent::PeerFinished { id } => {
                let body = read_all(&mut pair.server, id);
                pair.server.write(id, &body).unwrap();
                pair.server.close(id).unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(incoming, STREAMS);
    pair.drive();
    assert_eq!(pair.server.stream_count(), 0, "server streams all over");
    let mut closed = 0;
    for event in events(&mut pair.client) {
        match event {
            MuxEvent::Readable { id } => {
                let body = read_all(&mut pair.client, id);
                let n = ids.iter().position(|&x| x == id).unwrap();
                assert_eq!(body, format!("message {n}").as_bytes());
            }
            MuxEvent::StreamClosed { reset, .. } => {
                assert!(!reset);
                closed += 1;
            }
            _ => {}
        }
    }
    // Reading the last bytes ends each stream (its StreamClosed came from `read`).
    closed += events(&mut pair.client)
        .iter()
        .filter(|e| matches!(e, MuxEvent::StreamClosed { reset: false, .. }))
        .count();
    assert_eq!(closed, STREAMS);
    assert_eq!(pair.client.stream_count(), 0);
}

// ------------------------------------------------------------------ flow control and fairness

#[test]
fn a_slow_reader_stalls_only_its_own_stream() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let slow = pair.client.open_stream("echo").unwrap();
    let fast = pair.client.open_stream("echo").unwrap();
    pair.drive();
    events(&mut pair.server);

    // The slow stream's reader never reads: its sender stops at the window.
    let big = vec![7u8; 1024 * 1024];
    assert_eq!(
        pair.client.write(slow, &big).unwrap(),
        INITIAL_WINDOW as usize
    );
    assert_eq!(pair.client.write(slow, &big).unwrap(), 0);
    pair.drive();
    assert_eq!(
        pair.server.readable_len(slow),
        Some(INITIAL_WINDOW as usize)
    );

    // The other stream moves 4 MiB meanwhile.
    let mut sent = 0;
    let mut received = 0;
    let total = 4 * 1024 * 1024;
    while received < total {
        if sent < total {
            sent += pair
                .client
                .write(fast, &big[..(total - sent).min(big.len())])
                .unwrap();
        }
        pair.drive();
        received += read_all(&mut pair.server, fast).len();
        pair.drive();
    }
    assert_eq!(received, total);
    // The slow one is still stalled, still bounded by its window.
    assert_eq!(pair.client.write(slow, &big).unwrap(), 0);
    assert_eq!(
        pair.server.readable_len(slow),
        Some(INITIAL_WINDOW as usize)
    );
    // Once it reads, its window reopens and the writer hears about it.
    events(&mut pair.client);
    assert_eq!(
        read_all(&mut pair.server, slow).len(),
        INITIAL_WINDOW as usize
    );
    pair.drive();
    assert!(events(&mut pair.client).contains(&MuxEvent::Writable { id: slow }));
    assert_eq!(
        pair.client.write(slow, &big).unwrap(),
        INITIAL_WINDOW as usize
    );
}

#[test]
fn busy_streams_share_the_output_fairly() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let a = pair.client.open_stream("echo").unwrap();
    let b = pair.client.open_stream("echo").unwrap();
    pair.drive();
    let big = vec![1u8; INITIAL_WINDOW as usize];
    // a is queued first and fully, b after it.
    pair.client.write(a, &big).unwrap();
    pair.client.write(b, &big).unwrap();

    let mut out = BytesMut::new();
    pair.client.poll_transmit(&mut out, 100 * 1024);
    let mut per_stream: HashMap<u32, usize> = HashMap::new();
    for (header, body) in parse_frames(&out) {
        assert!(body.len() <= 16 * 1024, "one chunk per turn");
        *per_stream.entry(header.stream_id).or_default() += body.len();
    }
    let (sa, sb) = (per_stream[&a.0], per_stream[&b.0]);
    eprintln!("100 KiB of output: stream a {sa} B, stream b {sb} B");
    assert!(sa.abs_diff(sb) <= 16 * 1024, "a {sa} vs b {sb}");

    // A third stream with a little data is served in the next round, not after the
    // others' 400 KiB.
    let c = pair.client.open_stream("echo").unwrap();
    pair.client.write(c, b"small").unwrap();
    let mut totals: HashMap<u32, usize> = HashMap::new();
    let mut out = BytesMut::new();
    pair.client
        .poll_transmit(&mut out, 3 * (HEADER_LEN + 16 * 1024) + 200);
    let frames = parse_frames(&out);
    for (header, body) in &frames {
        if header.frame_type == FrameType::Data && header.flags == Flags::NONE {
            *totals.entry(header.stream_id).or_default() += body.len();
        }
    }
    assert!(
        frames
            .iter()
            .any(|(h, body)| h.stream_id == c.0 && body == b"small"),
        "{:?}",
        frames
            .iter()
            .map(|(h, b)| (h.stream_id, b.len()))
            .collect::<Vec<_>>()
    );

    // Over the whole transfer the rotation carries across calls: every byte goes out.
    loop {
        let mut out = BytesMut::new();
        if pair.client.poll_transmit(&mut out, 20_000) == 0 {
            break;
        }
        for (header, body) in parse_frames(&out) {
            *totals.entry(header.stream_id).or_default() += body.len();
        }
    }
    assert_eq!(sa + totals[&a.0], INITIAL_WINDOW as usize);
    assert_eq!(sb + totals[&b.0], INITIAL_WINDOW as usize);
}

#[test]
fn a_larger_configured_window_is_granted_when_the_stream_opens() {
    let config = MuxConfig {
        stream_window: 1024 * 1024,
        ..MuxConfig::default()
    };
    let mut pair = Pair::with_config(config);
    pair.server.listen("echo").unwrap();
    pair.client.listen("back").unwrap();
    let up = pair.client.open_stream("echo").unwrap();
    let down = pair.server.open_stream("back").unwrap();
    let big = vec![3u8; 2 * 1024 * 1024];
    // Before the grant arrives, only the protocol's initial window.
    assert_eq!(
        pair.client.write(up, &big).unwrap(),
        INITIAL_WINDOW as usize
    );
    pair.drive();
    assert_eq!(
        pair.client.write(up, &big).unwrap(),
        (1024 * 1024 - INITIAL_WINDOW) as usize
    );
    assert_eq!(pair.server.write(down, &big).unwrap(), 1024 * 1024);
    pair.drive();
    assert_eq!(pair.server.readable_len(up), Some(1024 * 1024));
    assert_eq!(pair.client.readable_len(down), Some(1024 * 1024));
}

// ------------------------------------------------------------------ close and reset

#[test]
fn half_close_keeps_the_other_direction_open() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let id = pair.client.open_stream("echo").unwrap();
    pair.client.write(id, b"request").unwrap();
    pair.client.close(id).unwrap();
    assert_eq!(
        pair.client.write(id, b"more"),
        Err(MuxError::WriteClosed { id })
    );
    pair.drive();
    let server_events = events(&mut pair.server);
    assert!(server_events.contains(&MuxEvent::PeerFinished { id }));
    assert_eq!(read_all(&mut pair.server, id), b"request");
    // The server still answers on the same stream, in several writes.
    pair.server.write(id, b"resp").unwrap();
    pair.drive();
    pair.server.write(id, b"onse").unwrap();
    pair.server.close(id).unwrap();
    pair.drive();
    // The server is done (both FINs, everything read).
    assert!(events(&mut pair.server).contains(&MuxEvent::StreamClosed { id, reset: false }));
    assert!(!pair.server.contains_stream(id));
    // The client keeps the stream until it reads the rest.
    let client_events = events(&mut pair.client);
    assert!(client_events.contains(&MuxEvent::PeerFinished { id }));
    assert!(pair.client.contains_stream(id));
    assert_eq!(read_all(&mut pair.client, id), b"response");
    assert_eq!(
        events(&mut pair.client),
        vec![MuxEvent::StreamClosed { id, reset: false }]
    );
    assert_eq!(pair.client.stream_count(), 0);
}

#[test]
fn reset_drops_the_stream_on_both_sides_and_crossing_data_is_ignored() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let id = pair.client.open_stream("echo").unwrap();
    pair.client.write(id, b"doomed").unwrap();
    pair.drive();
    events(&mut pair.server);
    events(&mut pair.client);
    // The server writes while the client resets: the two cross on the wire.
    pair.server.write(id, b"late reply").unwrap();
    pair.client.reset(id).unwrap();
    assert!(!pair.client.contains_stream(id));
    assert_eq!(pair.client.reset(id), Err(MuxError::UnknownStream { id }));
    pair.drive(); // would panic on an error: the late data is dropped quietly
    assert_eq!(
        events(&mut pair.server),
        vec![MuxEvent::StreamClosed { id, reset: true }]
    );
    assert_eq!(
        pair.server.write(id, b"x"),
        Err(MuxError::UnknownStream { id })
    );
    assert!(events(&mut pair.client).is_empty());
    assert_eq!(
        (pair.client.stream_count(), pair.server.stream_count()),
        (0, 0)
    );
}

// ------------------------------------------------------------------ listeners

#[test]
fn listeners_are_announced_and_removed() {
    let mut pair = Pair::new();
    pair.server.listen("10.0.0.1:80").unwrap();
    pair.server.listen("10.0.0.1:80").unwrap(); // no second announcement
    pair.server.listen("[fd00::1]:443").unwrap();
    pair.drive();
    assert_eq!(
        events(&mut pair.client),
        vec![
            MuxEvent::ListenerAnnounced {
                service: "10.0.0.1:80".into()
            },
            MuxEvent::ListenerAnnounced {
                service: "[fd00::1]:443".into()
            },
        ]
    );
    assert!(pair.client.peer_listens("10.0.0.1:80"));
    assert_eq!(pair.client.peer_services().count(), 2);

    assert!(pair.server.unlisten("10.0.0.1:80"));
    assert!(!pair.server.unlisten("10.0.0.1:80"));
    pair.drive();
    assert_eq!(
        events(&mut pair.client),
        vec![MuxEvent::ListenerRemoved {
            service: "10.0.0.1:80".into()
        }]
    );
    assert!(!pair.client.peer_listens("10.0.0.1:80"));

    // Opening to the withdrawn service is allowed locally and refused by the peer.
    let id = pair.client.open_stream("10.0.0.1:80").unwrap();
    pair.drive();
    assert_eq!(
        events(&mut pair.client),
        vec![MuxEvent::StreamClosed { id, reset: true }]
    );
    assert_eq!(pair.server.stats().refused_streams, 1);
    assert!(events(&mut pair.server).is_empty());

    assert_eq!(
        pair.server.listen(""),
        Err(MuxError::InvalidServiceName { len: 0 })
    );
    assert_eq!(
        pair.client.open_stream(&"x".repeat(256)),
        Err(MuxError::InvalidServiceName { len: 256 })
    );
}

#[test]
fn a_stream_to_an_unknown_service_is_reset_and_data_sent_before_is_dropped() {
    let mut pair = Pair::new();
    let id = pair.client.open_stream("nobody").unwrap();
    pair.client.write(id, b"early data").unwrap();
    pair.client.close(id).unwrap();
    pair.drive();
    assert_eq!(
        events(&mut pair.client),
        vec![MuxEvent::StreamClosed { id, reset: true }]
    );
    assert!(events(&mut pair.server).is_empty());
    assert_eq!(
        (pair.client.stream_count(), pair.server.stream_count()),
        (0, 0)
    );
}

#[test]
fn the_stream_limit_refuses_local_opens_and_resets_the_peers() {
    let config = MuxConfig {
        max_streams: 2,
        ..MuxConfig::default()
    };
    let mut pair = Pair::with_config(config);
    pair.server = Mux::new(MuxConfig::default(), Role::Acceptor, pair.now);
    pair.server.listen("echo").unwrap();
    pair.client.listen("echo").unwrap();
    pair.client.open_stream("echo").unwrap();
    pair.client.open_stream("echo").unwrap();
    assert_eq!(
        pair.client.open_stream("echo"),
        Err(MuxError::TooManyStreams { max: 2 })
    );
    pair.drive();
    // The server (no such limit) opens a third stream to the client: refused with RST.
    let id = pair.server.open_stream("echo").unwrap();
    pair.drive();
    assert!(events(&mut pair.server).contains(&MuxEvent::StreamClosed { id, reset: true }));
    assert_eq!(pair.client.stats().refused_streams, 1);
    assert_eq!(pair.client.stream_count(), 2);
}

// ------------------------------------------------------------------ keep-alive and go-away

#[test]
fn keepalive_pings_are_answered_and_silence_closes() {
    let config = MuxConfig {
        keepalive_interval: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(30)),
        ..MuxConfig::default()
    };
    let mut pair = Pair::with_config(config.clone());
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now + Duration::from_secs(10))
    );
    pair.advance(Duration::from_secs(10));
    // Both sent a ping; each answers the other's, so neither goes idle.
    let mut out = BytesMut::new();
    pair.client.poll_transmit(&mut out, usize::MAX);
    let frames = parse_frames(&out);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.frame_type, FrameType::Ping);
    assert_eq!(frames[0].0.flags, Flags::SYN);
    pair.server_in.extend_from_slice(&out);
    pair.now += Duration::from_millis(40);
    pair.drive();
    assert_eq!(pair.client.rtt(), Some(Duration::from_millis(40)));
    for _ in 0..10 {
        pair.advance(Duration::from_secs(10));
        pair.drive();
    }
    assert!(!pair.client.is_closed() && !pair.server.is_closed());

    // A peer that never answers: the ping goes out, then the idle timeout closes.
    let mut lonely = Mux::new(config, Role::Initiator, pair.now);
    lonely.handle_timeout(pair.now + Duration::from_secs(10));
    assert_eq!(transmitted(&mut lonely)[0].0.frame_type, FrameType::Ping);
    assert_eq!(
        lonely.poll_timeout(),
        Some(pair.now + Duration::from_secs(30))
    );
    lonely.handle_timeout(pair.now + Duration::from_secs(30));
    assert_eq!(
        events(&mut lonely),
        vec![MuxEvent::Closed {
            reason: CloseReason::IdleTimeout(Duration::from_secs(30))
        }]
    );
    let frames = transmitted(&mut lonely);
    assert_eq!(
        (frames[0].0.frame_type, frames[0].0.length),
        (FrameType::GoAway, GoAwayCode::IdleTimeout.to_u32())
    );
    assert_eq!(lonely.poll_timeout(), None);
}

#[test]
fn go_away_refuses_new_streams_and_lets_existing_ones_finish() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    pair.client.listen("echo").unwrap();
    let id = pair.client.open_stream("echo").unwrap();
    pair.drive();
    events(&mut pair.server);

    pair.server.go_away();
    assert_eq!(pair.server.open_stream("echo"), Err(MuxError::GoingAway));
    pair.drive();
    assert_eq!(
        events(&mut pair.client)[1..],
        [
            MuxEvent::Accepted { id },
            MuxEvent::GoAway {
                code: GoAwayCode::Normal
            }
        ]
    );
    assert_eq!(pair.client.open_stream("echo"), Err(MuxError::GoingAway));
    // The existing stream still works.
    pair.client.write(id, b"still here").unwrap();
    pair.drive();
    assert_eq!(read_all(&mut pair.server, id), b"still here");

    pair.client.go_away();
    pair.client.close(id).unwrap();
    pair.server.close(id).unwrap();
    assert!(!pair.server.is_finished());
    pair.drive();
    assert!(pair.client.is_finished() && pair.server.is_finished());
    assert!(!pair.client.is_closed());
}

#[test]
fn a_fatal_go_away_from_the_peer_closes_the_mux() {
    let (mut mux, now) = hostile_target();
    feed(&mut mux, &syn(1, "echo"), now).unwrap();
    let go_away = Header::session(FrameType::GoAway, Flags::NONE, 2).to_bytes();
    // Whatever follows the GoAway is discarded.
    let mut bytes = go_away.to_vec();
    bytes.extend_from_slice(&[0xFF; 40]);
    feed(&mut mux, &bytes, now).unwrap();
    let got = events(&mut mux);
    assert_eq!(
        got[1..],
        [
            MuxEvent::GoAway {
                code: GoAwayCode::InternalError
            },
            MuxEvent::Closed {
                reason: CloseReason::Peer(GoAwayCode::InternalError)
            }
        ]
    );
    assert!(mux.is_closed() && mux.stream_count() == 0);
    assert_eq!(mux.open_stream("x"), Err(MuxError::Closed));
    assert_eq!(mux.write(StreamId(1), b"x"), Err(MuxError::Closed));
}

// ------------------------------------------------------------------ hostile input

#[test]
fn overrunning_a_window_closes_the_mux() {
    let (mut mux, now) = hostile_target();
    let full = vec![0u8; INITIAL_WINDOW as usize];
    let mut bytes = syn(1, "echo");
    bytes.extend(data(1, Flags::NONE, &full));
    feed(&mut mux, &bytes, now).unwrap();
    assert_eq!(mux.readable_len(StreamId(1)), Some(INITIAL_WINDOW as usize));
    events(&mut mux);
    transmitted(&mut mux);
    let error = feed(&mut mux, &data(1, Flags::NONE, b"xyz"), now).unwrap_err();
    assert_eq!(
        error,
        MuxError::WindowExceeded {
            id: StreamId(1),
            by: 3
        }
    );
    assert_closed_with(&mut mux, &error);
    // Later input is discarded without growing anything.
    let mut more = BytesMut::from(&data(1, Flags::NONE, b"more")[..]);
    assert_eq!(mux.handle_received(&mut more, now), Ok(()));
    assert!(more.is_empty());
}

#[test]
fn data_for_a_stream_never_opened_is_an_error() {
    let (mut mux, now) = hostile_target();
    let error = feed(&mut mux, &data(7, Flags::NONE, b"hi"), now).unwrap_err();
    assert_eq!(error, MuxError::UnknownStream { id: StreamId(7) });
    assert_closed_with(&mut mux, &error);

    // Our own parity, never opened by us, too.
    let (mut mux, now) = hostile_target();
    let update = Header::window_update(StreamId(4), Flags::NONE, 5).to_bytes();
    assert_eq!(
        feed(&mut mux, &update, now),
        Err(MuxError::UnknownStream { id: StreamId(4) })
    );
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    let (mut mux, now) = hostile_target();
    feed(&mut mux, &syn(1, "echo"), now).unwrap();
    let header = Header::data(StreamId(1), Flags::NONE, MAX_FRAME_BODY + 1).to_bytes();
    let error = feed(&mut mux, &header, now).unwrap_err();
    assert_eq!(
        error,
        MuxError::FrameTooLarge {
            len: MAX_FRAME_BODY + 1,
            max: MAX_FRAME_BODY
        }
    );
    let (mut mux, now) = hostile_target();
    let mut header = Header::session(FrameType::Listen, Flags::NONE, 0).to_bytes();
    header[8..12].copy_from_slice(&10_000_000u32.to_le_bytes());
    assert_eq!(
        feed(&mut mux, &header, now),
        Err(MuxError::FrameTooLarge {
            len: 10_000_000,
            max: 255
        })
    );
}

#[test]
fn malformed_headers_get_named_errors() {
    let base = Header::data(StreamId(1), Flags::NONE, 0).to_bytes();
    let with = |at: usize, bytes: &[u8]| {
        let mut header = base;
        header[at..at + bytes.len()].copy_from_slice(bytes);
        header
    };
    let cases: Vec<([u8; HEADER_LEN], MuxError)> = vec![
        (with(0, &[2]), MuxError::BadVersion { version: 2 }),
        (with(1, &[9]), MuxError::UnknownType { frame_type: 9 }),
        (
            with(2, &0x0010u16.to_le_bytes()),
            MuxError::BadFlags {
                frame_type: FrameType::Data,
                flags: 0x10,
            },
        ),
        (
            with(2, &(Flags::SYN.bits() | Flags::FIN.bits()).to_le_bytes()),
            MuxError::BadFlags {
                frame_type: FrameType::Data,
                flags: 0x5,
            },
        ),
        (
            with(4, &0u32.to_le_bytes()),
            MuxError::BadStreamId { id: StreamId(0) },
        ),
        (
            Header::session(FrameType::Ping, Flags::NONE, 1).to_bytes(),
            MuxError::BadFlags {
                frame_type: FrameType::Ping,
                flags: 0,
            },
        ),
        (
            Header {
                stream_id: 3,
                ..Header::session(FrameType::GoAway, Flags::NONE, 0)
            }
            .to_bytes(),
            MuxError::BadStreamId { id: StreamId(3) },
        ),
        (
            Header::data(StreamId(1), Flags::RST, 4).to_bytes(),
            MuxError::UnexpectedBody {
                frame_type: FrameType::Data,
                len: 4,
            },
        ),
        (
            Header::data(StreamId(1), Flags::SYN, 0).to_bytes(),
            MuxError::InvalidServiceName { len: 0 },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(Header::decode(&bytes), Err(expected.clone()));
        let (mut mux, now) = hostile_target();
        assert_eq!(feed(&mut mux, &bytes, now), Err(expected.clone()));
        assert_closed_with(&mut mux, &expected);
        // The message names the numbers.
        assert!(!expected.to_string().is_empty());
    }
}

#[test]
fn stream_ids_must_have_the_openers_parity_and_grow() {
    let (mut mux, now) = hostile_target();
    // The acceptor's peer opens odd ids; an even one is forged.
    assert_eq!(
        feed(&mut mux, &syn(2, "echo"), now),
        Err(MuxError::BadStreamId { id: StreamId(2) })
    );
    let (mut mux, now) = hostile_target();
    feed(&mut mux, &syn(5, "echo"), now).unwrap();
    assert_eq!(
        feed(&mut mux, &syn(3, "echo"), now),
        Err(MuxError::BadStreamId { id: StreamId(3) })
    );
    let (mut mux, now) = hostile_target();
    feed(&mut mux, &syn(5, "echo"), now).unwrap();
    assert_eq!(
        feed(&mut mux, &syn(5, "echo"), now),
        Err(MuxError::BadStreamId { id: StreamId(5) })
    );
    // Not UTF-8.
    let (mut mux, now) = hostile_target();
    let bad = frame(Header::data(StreamId(1), Flags::SYN, 2), &[0xC3, 0x28]);
    assert_eq!(feed(&mut mux, &bad, now), Err(MuxError::ServiceNameNotUtf8));
}

#[test]
fn data_after_fin_and_window_overflow_are_errors() {
    let (mut mux, now) = hostile_target();
    let mut bytes = syn(1, "echo");
    bytes.extend(data(1, Flags::FIN, b"bye"));
    feed(&mut mux, &bytes, now).unwrap();
    assert_eq!(
        feed(&mut mux, &data(1, Flags::NONE, b"more"), now),
        Err(MuxError::DataAfterFin { id: StreamId(1) })
    );

    let (mut mux, now) = hostile_target();
    feed(&mut mux, &syn(1, "echo"), now).unwrap();
    let update = Header::window_update(StreamId(1), Flags::NONE, u32::MAX).to_bytes();
    assert_eq!(
        feed(&mut mux, &update, now),
        Err(MuxError::WindowOverflow {
            id: StreamId(1),
            delta: u32::MAX
        })
    );

    // ACK on a stream the peer itself opened is nonsense.
    let (mut mux, now) = hostile_target();
    feed(&mut mux, &syn(1, "echo"), now).unwrap();
    let ack = Header::window_update(StreamId(1), Flags::ACK, 0).to_bytes();
    assert!(matches!(
        feed(&mut mux, &ack, now),
        Err(MuxError::BadFlags { .. })
    ));
}

#[test]
fn too_many_announced_services_is_an_error() {
    let now = Instant::now();
    let config = MuxConfig {
        max_peer_services: 3,
        ..MuxConfig::default()
    };
    let mut mux = Mux::new(config, Role::Initiator, now);
    let mut bytes = Vec::new();
    for n in 0..4 {
        let name = format!("svc{n}");
        bytes.extend(frame(
            Header::session(FrameType::Listen, Flags::NONE, name.len() as u32),
            name.as_bytes(),
        ));
    }
    assert_eq!(
        feed(&mut mux, &bytes, now),
        Err(MuxError::TooManyServices { max: 3 })
    );
}

#[test]
fn a_frame_split_at_every_byte_is_processed_once_complete() {
    let (mut mux, now) = hostile_target();
    let mut bytes = syn(1, "echo");
    bytes.extend(data(1, Flags::FIN, b"split me"));
    let mut received = BytesMut::new();
    for &byte in &bytes {
        received.extend_from_slice(&[byte]);
        mux.handle_received(&mut received, now).unwrap();
    }
    assert!(received.is_empty());
    assert_eq!(read_all(&mut mux, StreamId(1)), b"split me");
}

#[test]
fn a_tiny_transmit_budget_still_makes_progress() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let id = pair.client.open_stream("echo").unwrap();
    pair.client.write(id, &[5u8; 1000]).unwrap();
    pair.client.close(id).unwrap();
    // 13 bytes: header plus one data byte per call (control frames split).
    while pair.step(13) > 0 {}
    assert_eq!(read_all(&mut pair.server, id), vec![5u8; 1000]);
    assert!(events(&mut pair.server).contains(&MuxEvent::PeerFinished { id }));
}

#[test]
fn chunked_transmit_sends_the_same_bytes_as_flat_transmit() {
    // Two identical senders, one drained with poll_transmit, one with
    // poll_transmit_chunks, under the same budgets: byte-for-byte the same output.
    let now = Instant::now();
    let mut flat = Mux::new(MuxConfig::default(), Role::Initiator, now);
    let mut chunked = Mux::new(MuxConfig::default(), Role::Initiator, now);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    for mux in [&mut flat, &mut chunked] {
        mux.listen("x").unwrap();
        for n in 0..5usize {
            let id = mux.open_stream("echo").unwrap();
            mux.write(id, &data[..40_000 * (n + 1)]).unwrap();
            if n % 2 == 0 {
                mux.close(id).unwrap();
            }
        }
        mux.go_away();
    }
    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
    for budget in [5, 13, 100, 16 * 1024 + 12, 70_000, usize::MAX]
        .into_iter()
        .cycle()
    {
        let sent_flat = flat.poll_transmit(&mut a, budget);
        let mut chunks = VecDeque::new();
        let sent_chunked = chunked.poll_transmit_chunks(&mut chunks, budget);
        assert_eq!(sent_flat, sent_chunked, "budget {budget}");
        for chunk in chunks {
            b.extend_from_slice(&chunk);
        }
        if sent_flat == 0 && !flat.wants_transmit() {
            break;
        }
    }
    assert!(!chunked.wants_transmit());
    assert_eq!(a.len(), b.len());
    assert!(a == b, "outputs differ");
}

#[test]
fn a_drained_receive_buffer_is_reused_without_copying() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let id = pair.client.open_stream("echo").unwrap();
    pair.drive();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let spare = out.as_ptr();
    pair.client.write(id, &[1u8; 1000]).unwrap();
    pair.drive();
    assert_eq!(pair.server.read(id, &mut out), 1000);
    // The reader's empty buffer went to the stream, and the next data lands in it.
    out.clear();
    pair.client.write(id, &[2u8; 1000]).unwrap();
    pair.drive();
    let mut next = BytesMut::new();
    assert_eq!(pair.server.read(id, &mut next), 1000);
    assert_eq!(next.as_ptr(), spare);
    assert_eq!(&next[..], &[2u8; 1000][..]);
}

// ------------------------------------------------------------------ receive budget

fn budget_pair(budget: usize, stream_window: u32) -> Pair {
    let config = MuxConfig {
        max_buffered: Some(budget),
        stream_window,
        ..MuxConfig::default()
    };
    let mut pair = Pair::with_config(config);
    pair.server.listen("echo").unwrap();
    pair.client.listen("back").unwrap();
    pair
}

#[test]
fn the_receive_budget_admits_streams_by_their_initial_window() {
    let window = INITIAL_WINDOW as usize;
    let mut pair = budget_pair(3 * window + 1000, INITIAL_WINDOW);
    let opened: Vec<StreamId> = (0..3)
        .map(|_| pair.client.open_stream("echo").unwrap())
        .collect();
    // This side has committed three initial windows: a fourth local open is refused.
    assert_eq!(
        pair.client.open_stream("echo"),
        Err(MuxError::BudgetExhausted {
            max: 3 * window + 1000
        })
    );
    pair.drive();
    assert_eq!(pair.server.stream_count(), 3);
    assert_eq!(pair.server.stats().committed_receive, 3 * window);
    // The server's budget is full too: the client's fourth stream (opened by a client
    // with room) would be refused with RST, not a protocol error.
    let mut roomy = Mux::new(MuxConfig::default(), Role::Initiator, pair.now);
    for _ in 0..3 {
        roomy.open_stream("echo").unwrap();
    }
    let fourth = roomy.open_stream("echo").unwrap();
    let mut wire = BytesMut::new();
    roomy.poll_transmit(&mut wire, usize::MAX);
    let mut target = Mux::new(
        MuxConfig {
            max_buffered: Some(3 * window + 1000),
            ..MuxConfig::default()
        },
        Role::Acceptor,
        pair.now,
    );
    target.listen("echo").unwrap();
    target.handle_received(&mut wire, pair.now).unwrap();
    assert_eq!(target.stream_count(), 3);
    assert_eq!(target.stats().refused_streams, 1);
    let answers = transmitted(&mut target);
    assert!(
        answers
            .iter()
            .any(|(h, _)| h.stream_id == fourth.0 && h.flags == Flags::RST)
    );
    // Closing a stream frees its share: the next open fits again.
    pair.client.reset(opened[0]).unwrap();
    assert!(pair.client.open_stream("echo").is_ok());
}

#[test]
fn the_receive_budget_bounds_what_slow_readers_hold_and_withholds_extra_window() {
    // Windows of 1 MiB, a budget of 2.5 MiB: two streams get their full windows, the
    // third only what is left; nothing the peer can send exceeds the budget.
    let window = 1024 * 1024;
    let budget = 5 * window as usize / 2;
    let mut pair = budget_pair(budget, window);
    let ids: Vec<StreamId> = (0..3)
        .map(|_| pair.client.open_stream("echo").unwrap())
        .collect();
    pair.drive();
    let big = vec![9u8; 4 * window as usize];
    let mut accepted = Vec::new();
    for &id in &ids {
        accepted.push(pair.client.write(id, &big).unwrap());
    }
    pair.drive();
    for &id in &ids {
        accepted.push(pair.client.write(id, &big).unwrap());
    }
    pair.drive();
    let held: usize = ids
        .iter()
        .map(|&id| pair.server.readable_len(id).unwrap())
        .sum();
    eprintln!("accepted {accepted:?}, server holds {held} bytes of a {budget} budget");
    assert!(held <= budget, "{held} > {budget}");
    assert!(pair.server.stats().committed_receive <= budget);
    // The first two got 1 MiB windows, the third the rest of the budget.
    assert_eq!(pair.server.readable_len(ids[0]), Some(window as usize));
    assert_eq!(pair.server.readable_len(ids[1]), Some(window as usize));
    assert_eq!(
        pair.server.readable_len(ids[2]),
        Some(budget - 2 * window as usize)
    );

    // The third stream's reader keeps reading while the others hold their data: it always
    // gets back at least its initial window, so it keeps moving.
    let mut moved = 0;
    for _ in 0..20 {
        moved += read_all(&mut pair.server, ids[2]).len();
        pair.client.write(ids[2], &big).unwrap();
        pair.drive();
        let held: usize = ids
            .iter()
            .map(|&id| pair.server.readable_len(id).unwrap())
            .sum();
        assert!(held <= budget, "{held} > {budget}");
        assert!(pair.server.stats().committed_receive <= budget);
    }
    assert!(moved >= 20 * INITIAL_WINDOW as usize, "moved {moved}");

    // Once a slow reader reads, its share returns to the pool and the third stream's owed
    // window is granted as it reads on.
    read_all(&mut pair.server, ids[0]);
    pair.client.write(ids[0], &big).unwrap();
    read_all(&mut pair.server, ids[2]);
    pair.client.write(ids[2], &big).unwrap();
    pair.drive();
    read_all(&mut pair.server, ids[2]);
    pair.drive();
    pair.client.write(ids[2], &big).unwrap();
    pair.drive();
    assert!(pair.server.stats().committed_receive <= budget);
    let total: usize = ids
        .iter()
        .map(|&id| pair.server.readable_len(id).unwrap())
        .sum();
    assert!(total <= budget);
}

#[test]
fn without_a_budget_the_commitment_is_still_counted() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let a = pair.client.open_stream("echo").unwrap();
    let _b = pair.client.open_stream("echo").unwrap();
    pair.drive();
    assert_eq!(
        pair.server.stats().committed_receive,
        2 * INITIAL_WINDOW as usize
    );
    pair.client.write(a, &[1u8; 1000]).unwrap();
    pair.client.close(a).unwrap();
    pair.server.close(a).unwrap();
    pair.drive();
    read_all(&mut pair.server, a);
    pair.drive();
    assert_eq!(pair.server.stream_count(), 1);
    assert_eq!(
        pair.server.stats().committed_receive,
        INITIAL_WINDOW as usize
    );
}

// ------------------------------------------------------------------ property tests

fn valid_header() -> impl Strategy<Value = Header> {
    let stream_id = 1..=u32::MAX;
    let data_len = 0..=MAX_FRAME_BODY;
    let name_len = 1..=MAX_SERVICE_NAME as u32;
    prop_oneof![
        (
            stream_id.clone(),
            prop_oneof![Just(Flags::NONE), Just(Flags::FIN)],
            data_len
        )
            .prop_map(|(id, flags, len)| Header::data(StreamId(id), flags, len)),
        (stream_id.clone(), name_len.clone()).prop_map(|(id, len)| Header::data(
            StreamId(id),
            Flags::SYN,
            len
        )),
        stream_id
            .clone()
            .prop_map(|id| Header::data(StreamId(id), Flags::RST, 0)),
        (
            stream_id,
            prop_oneof![Just(Flags::NONE), Just(Flags::ACK)],
            any::<u32>()
        )
            .prop_map(|(id, flags, delta)| Header::window_update(
                StreamId(id),
                flags,
                delta
            )),
        (
            prop_oneof![Just(Flags::SYN), Just(Flags::ACK)],
            any::<u32>()
        )
            .prop_map(|(flags, nonce)| Header::session(FrameType::Ping, flags, nonce)),
        any::<u32>().prop_map(|code| Header::session(FrameType::GoAway, Flags::NONE, code)),
        (
            prop_oneof![Just(FrameType::Listen), Just(FrameType::Unlisten)],
            name_len
        )
            .prop_map(|(t, len)| Header::session(t, Flags::NONE, len)),
    ]
}

/// One piece of a hostile peer's input.
#[derive(Debug, Clone)]
enum Part {
    /// SYN with the next odd id, to a service we listen on or not.
    Open {
        known: bool,
    },
    /// Data on one of the streams opened so far (`stream` picks which); with `stray`, on an
    /// id that may never have been opened.
    Data {
        stray: bool,
        stream: u32,
        len: usize,
        fin: bool,
    },
    /// Window update on one of the peer's streams, or on ours (id 2).
    Update {
        stream: u32,
        delta: u32,
        ours: bool,
    },
    Rst {
        stream: u32,
    },
    Ping {
        ack: bool,
        nonce: u32,
    },
    Listen {
        name: u8,
        remove: bool,
    },
    /// A header with arbitrary fields (valid version), honest or lying length.
    Plausible(Vec<u8>),
    Noise(Vec<u8>),
}

fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    let flags = prop_oneof![Just(0u16), Just(1), Just(2), Just(4), Just(8), any::<u16>()];
    let length = prop_oneof![0u32..64, Just(INITIAL_WINDOW), any::<u32>()];
    let body = prop::collection::vec(any::<u8>(), 0..96);
    (0u8..7, flags, 0u32..8, length, body, any::<bool>()).prop_map(
        |(kind, flags, id, length, body, honest)| {
            let length = if honest { body.len() as u32 } else { length };
            let mut bytes = vec![VERSION, kind];
            bytes.extend_from_slice(&flags.to_le_bytes());
            bytes.extend_from_slice(&id.to_le_bytes());
            bytes.extend_from_slice(&length.to_le_bytes());
            bytes.extend_from_slice(&body);
            bytes
        },
    )
}

fn part() -> impl Strategy<Value = Part> {
    // Some full-size frames, so windows are overrun (or exactly filled).
    let data_len = prop_oneof![
        4 => 0usize..100,
        4 => 0usize..70_000,
        1 => Just(MAX_FRAME_BODY as usize),
    ];
    let data = (
        prop::bool::weighted(0.05),
        0u32..5,
        data_len,
        prop::bool::weighted(0.05),
    )
        .prop_map(|(stray, stream, len, fin)| Part::Data {
            stray,
            stream,
            len,
            fin,
        });
    let delta = prop_oneof![9 => 0u32..100_000, 1 => any::<u32>()];
    let update = (0u32..5, delta, any::<bool>()).prop_map(|(stream, delta, ours)| Part::Update {
        stream,
        delta,
        ours,
    });
    prop_oneof![
        4 => any::<bool>().prop_map(|known| Part::Open { known }),
        8 => data,
        2 => update,
        1 => (0u32..5).prop_map(|stream| Part::Rst { stream }),
        2 => (any::<bool>(), any::<u32>()).prop_map(|(ack, nonce)| Part::Ping { ack, nonce }),
        1 => (0u8..12, any::<bool>()).prop_map(|(name, remove)| Part::Listen { name, remove }),
        // Rare: one bad byte usually ends the mux.
        1 => plausible_frame().prop_map(Part::Plausible),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Part::Noise),
    ]
}

/// A hostile peer's byte stream: mostly well-formed frames (so the stateful checks —
/// windows, ids, FIN, limits — are reached), some malformed ones and noise.
fn hostile_input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(part(), 0..64).prop_map(|parts| {
        let mut bytes = Vec::new();
        let mut next_id = 1;
        for part in parts {
            let opened = (next_id - 1) / 2;
            let pick = |stray: bool, stream: u32| {
                if stray || opened == 0 {
                    2 * stream + 1
                } else {
                    2 * (stream % opened) + 1
                }
            };
            let on_stream = matches!(
                part,
                Part::Data { stray: false, .. }
                    | Part::Update { ours: false, .. }
                    | Part::Rst { .. }
            );
            if on_stream && opened == 0 {
                continue;
            }
            match part {
                Part::Open { known } => {
                    bytes.extend(syn(next_id, if known { "echo" } else { "other" }));
                    next_id += 2;
                }
                Part::Data {
                    stray,
                    stream,
                    len,
                    fin,
                } => {
                    let flags = if fin { Flags::FIN } else { Flags::NONE };
                    bytes.extend(data(pick(stray, stream), flags, &vec![9; len]));
                }
                Part::Update {
                    stream,
                    delta,
                    ours,
                } => {
                    let id = if ours { 2 } else { pick(false, stream) };
                    let header = Header::window_update(StreamId(id), Flags::NONE, delta);
                    bytes.extend(header.to_bytes());
                }
                Part::Rst { stream } => bytes.extend(data(pick(false, stream), Flags::RST, b"")),
                Part::Ping { ack, nonce } => {
                    let flags = if ack { Flags::ACK } else { Flags::SYN };
                    bytes.extend(Header::session(FrameType::Ping, flags, nonce).to_bytes());
                }
                Part::Listen { name, remove } => {
                    let name = format!("svc{name}");
                    let kind = if remove {
                        FrameType::Unlisten
                    } else {
                        FrameType::Listen
                    };
                    let header = Header::session(kind, Flags::NONE, name.len() as u32);
                    bytes.extend(frame(header, name.as_bytes()));
                }
                Part::Plausible(raw) | Part::Noise(raw) => bytes.extend(raw),
            }
        }
        bytes
    })
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        client: bool,
        stream: usize,
        len: usize,
    },
    Read {
        client: bool,
        stream: usize,
    },
    Transmit {
        client: bool,
        max: usize,
    },
    Deliver {
        client: bool,
        max: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 0usize..5, 0usize..70_000)
            .prop_map(|(client, stream, len)| Op::Write { client, stream, len }),
        2 => (any::<bool>(), 0usize..5).prop_map(|(client, stream)| Op::Read { client, stream }),
        2 => (any::<bool>(), 1usize..100_000).prop_map(|(client, max)| Op::Transmit { client, max }),
        2 => (any::<bool>(), 1usize..100_000).prop_map(|(client, max)| Op::Deliver { client, max }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn header_round_trips(header in valid_header()) {
        let bytes = header.to_bytes();
        prop_assert_eq!(Header::decode(&bytes), Ok(header));
    }

    #[test]
    fn any_twelve_bytes_decode_to_an_error_or_re_encode_identically(bytes in any::<[u8; 12]>()) {
        if let Ok(header) = Header::decode(&bytes) {
            prop_assert_eq!(header.to_bytes(), bytes);
            prop_assert!(header.body_len() <= MAX_FRAME_BODY as usize);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_bytes_never_panic_and_memory_stays_bounded(
        input in hostile_input(),
        chunk in 1usize..4096,
        read_some in any::<bool>(),
        budgeted in any::<bool>(),
    ) {
        let now = Instant::now();
        // With a budget, room for three initial windows (ours and two of the peer's).
        let budget = budgeted.then_some(3 * INITIAL_WINDOW as usize);
        let config = MuxConfig {
            max_streams: 4,
            max_peer_services: 8,
            max_buffered: budget,
            ..MuxConfig::default()
        };
        let window = config.stream_window as usize;
        let mut mux = Mux::new(config, Role::Acceptor, now);
        mux.listen("echo").unwrap();
        // One stream of our own (id 2) with data queued, so updates and RSTs can hit it.
        let ours = mux.open_stream("peer-service").unwrap();
        mux.write(ours, &[1; 1000]).unwrap();
        let mut received = BytesMut::new();
        let mut fed = 0usize;
        let mut failed = false;
        for piece in input.chunks(chunk) {
            received.extend_from_slice(piece);
            fed += piece.len();
            let result = mux.handle_received(&mut received, now);
            if result.is_err() {
                failed = true;
                prop_assert!(mux.is_closed());
            }
            // Only one partial frame is left behind, and it is within bounds.
            prop_assert!(received.len() < HEADER_LEN + MAX_FRAME_BODY as usize);
            while let Some(event) = mux.poll_event() {
                if let MuxEvent::Readable { id } = event && read_some {
                    let mut sink = BytesMut::new();
                    mux.read(id, &mut sink);
                }
            }
            let stats = mux.stats();
            prop_assert!(stats.streams <= 4);
            prop_assert!(stats.buffered_receive <= stats.streams * window);
            prop_assert!(mux.streams.values().all(|s| s.recv.len() <= window));
            if let Some(budget) = budget {
                prop_assert!(stats.streams <= 3);
                prop_assert!(stats.committed_receive <= budget);
                prop_assert!(stats.buffered_receive <= budget);
            }
            // Answers never outgrow the input that caused them (+ our Listen and SYN).
            prop_assert!(stats.control_pending <= fed + 64, "{} > {}", stats.control_pending, fed);
        }
        if failed {
            prop_assert_eq!(mux.stream_count(), 0);
        }
        let mut out = BytesMut::new();
        mux.poll_transmit(&mut out, usize::MAX);
        for (header, _) in parse_frames(&out) {
            prop_assert!(header.body_len() <= MAX_FRAME_BODY as usize);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_interleavings_deliver_every_byte_in_order(
        ops in prop::collection::vec(op(), 1..60),
        chunk_size in prop_oneof![Just(16 * 1024u32), 1u32..5000],
    ) {
        let config = MuxConfig { chunk_size, ..MuxConfig::default() };
        let mut pair = Pair::with_config(config);
        pair.client.listen("c").unwrap();
        pair.server.listen("s").unwrap();
        // Three streams opened by the client, two by the server; no drive yet, so data may
        // race the SYN's ACK.
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(pair.client.open_stream("s").unwrap());
        }
        for _ in 0..2 {
            ids.push(pair.server.open_stream("c").unwrap());
        }
        // expected[(stream, written_by_client)] / got[(stream, written_by_client)]
        let mut expected: HashMap<(usize, bool), Vec<u8>> = HashMap::new();
        let mut got: HashMap<(usize, bool), Vec<u8>> = HashMap::new();
        let mut wire_to_server = BytesMut::new();
        let mut wire_to_client = BytesMut::new();
        let mut counter = 0u8;
        let read = |mux: &mut Mux, stream: usize, by_client: bool, got: &mut HashMap<(usize, bool), Vec<u8>>| {
            let mut out = BytesMut::new();
            mux.read(ids[stream], &mut out);
            got.entry((stream, by_client)).or_default().extend_from_slice(&out);
        };
        for op in ops {
            match op {
                Op::Write { client, stream, len } => {
                    let bytes: Vec<u8> = (0..len).map(|_| { counter = counter.wrapping_add(1); counter }).collect();
                    let mux = if client { &mut pair.client } else { &mut pair.server };
                    // The side that did not open the stream knows it once the SYN arrived.
                    if !mux.contains_stream(ids[stream]) {
                        continue;
                    }
                    let taken = mux.write(ids[stream], &bytes).unwrap();
                    expected.entry((stream, client)).or_default().extend_from_slice(&bytes[..taken]);
                }
                Op::Read { client, stream } => {
                    let mux = if client { &mut pair.client } else { &mut pair.server };
                    read(mux, stream, !client, &mut got);
                }
                Op::Transmit { client, max } => {
                    if client {
                        pair.client.poll_transmit(&mut wire_to_server, max);
                    } else {
                        pair.server.poll_transmit(&mut wire_to_client, max);
                    }
                }
                Op::Deliver { client, max } => {
                    // Deliver to `client` (or to the server) part of what is on the wire.
                    let (wire, inbox, mux) = if client {
                        (&mut wire_to_client, &mut pair.client_in, &mut pair.client)
                    } else {
                        (&mut wire_to_server, &mut pair.server_in, &mut pair.server)
                    };
                    let take = wire.len().min(max);
                    inbox.extend_from_slice(&wire.split_to(take));
                    prop_assert_eq!(mux.handle_received(inbox, pair.now), Ok(()));
                }
            }
        }
        // Flush: everything on the wire, then until quiet, reading as we go.
        pair.server_in.extend_from_slice(&wire_to_server);
        pair.client_in.extend_from_slice(&wire_to_client);
        prop_assert_eq!(pair.server.handle_received(&mut pair.server_in, pair.now), Ok(()));
        prop_assert_eq!(pair.client.handle_received(&mut pair.client_in, pair.now), Ok(()));
        loop {
            for stream in 0..ids.len() {
                read(&mut pair.client, stream, false, &mut got);
                read(&mut pair.server, stream, true, &mut got);
            }
            if pair.step(usize::MAX) == 0 {
                break;
            }
        }
        for stream in 0..ids.len() {
            for by_client in [true, false] {
                let want = expected.get(&(stream, by_client)).map_or(&[][..], Vec::as_slice);
                let have = got.get(&(stream, by_client)).map_or(&[][..], Vec::as_slice);
                prop_assert_eq!(want.len(), have.len(), "stream {} by_client {}", stream, by_client);
                prop_assert!(want == have, "stream {} by_client {}: bytes differ", stream, by_client);
            }
        }
        // Close everything from both sides: every stream ends cleanly.
        for &id in &ids {
            pair.client.close(id).unwrap();
            pair.server.close(id).unwrap();
        }
        pair.drive();
        prop_assert_eq!((pair.client.stream_count(), pair.server.stream_count()), (0, 0));
        let resets = events(&mut pair.client)
            .into_iter()
            .chain(events(&mut pair.server))
            .filter(|e| matches!(e, MuxEvent::StreamClosed { reset: true, .. }))
            .count();
        prop_assert_eq!(resets, 0);
    }
}
