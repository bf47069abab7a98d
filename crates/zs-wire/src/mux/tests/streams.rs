//! Opening, echo, many streams, flow control and fairness.

use super::*;

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
