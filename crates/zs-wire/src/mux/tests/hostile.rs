//! Hostile input, and framing and transmit edge cases.

use super::*;

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
