//! Property tests: headers, hostile byte streams, random interleavings.

use super::*;

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
