//! Frame round trips, link secrets, backoff and hostile input.

use super::*;

#[test]
fn every_frame_round_trips() {
    let frames = [
        Frame::Open,
        Frame::Opened {
            session_id: SessionId([1; 16]),
            share: [2; 32],
        },
        Frame::Challenge { nonce: [3; 32] },
        Frame::Resume {
            session_id: SessionId([4; 16]),
            proof: [5; 32],
            next_expected: u64::MAX,
        },
        Frame::Resumed { next_expected: 6 },
        Frame::Refused {
            reason: RefuseReason::Expired,
        },
        Frame::Data {
            offset: 7,
            bytes: bytes::Bytes::from_static(b"data"),
        },
        Frame::Ack { next_expected: 8 },
        Frame::Close { end: 9 },
    ];
    let mut buf = BytesMut::new();
    for frame in &frames {
        frame.encode(&mut buf);
    }
    assert_eq!(
        buf.len(),
        frames.iter().map(Frame::encoded_len).sum::<usize>()
    );
    for frame in &frames {
        assert_eq!(Frame::decode(&mut buf).unwrap().as_ref(), Some(frame));
    }
    assert!(buf.is_empty());
    // The documented layout of one frame.
    let mut buf = BytesMut::new();
    Frame::Ack {
        next_expected: 0x0102,
    }
    .encode(&mut buf);
    assert_eq!(&buf[..], &[8, 8, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn link_secrets_agree_between_roles() {
    let a = [1u8; 32];
    let b = [2u8; 32];
    assert_eq!(
        *link_secret(Role::Client, &a, &b, b"hash"),
        *link_secret(Role::Server, &b, &a, b"hash")
    );
    assert_ne!(
        *link_secret(Role::Client, &a, &b, b"hash"),
        *link_secret(Role::Client, &b, &a, b"hash")
    );
}

#[test]
fn reconnect_delay_backs_off_to_the_cap() {
    let config = StableConfig::default();
    assert_eq!(config.reconnect_delay(0), Duration::from_millis(250));
    assert_eq!(config.reconnect_delay(2), Duration::from_secs(1));
    assert_eq!(config.reconnect_delay(100), Duration::from_secs(5));
}

/// Feeds `input` in chunks to a freshly accepted server link (then, if it binds, to the
/// session): never panics; the registry and sessions stay bounded.
fn server_gets(input: &[u8], chunk: usize, open_first: bool) {
    let config = StableConfig {
        window: MIN_WINDOW,
        max_sessions: 4,
        ..StableConfig::default()
    };
    let window = config.window;
    let mut registry = StableRegistry::new(config);
    let mut now = Instant::now();
    let mut link = registry.new_link(b"fuzz").unwrap();
    let mut buf = BytesMut::new();
    if open_first {
        Frame::Open.encode(&mut buf);
    }
    let mut bound = None;
    let mut sink = BytesMut::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.put_slice(piece);
        if bound.is_none() {
            match registry.handle_pending_link(&mut link, &mut buf, now) {
                Ok(Some(id)) => bound = Some(id),
                Ok(None) => {}
                Err(_) => return,
            }
        }
        if let Some(id) = bound {
            let endpoint = registry.get_mut(id).unwrap();
            if endpoint.handle_link_bytes(&mut buf, now).is_err() {
                return;
            }
            let mut out = BytesMut::new();
            endpoint.read(&mut out);
            endpoint.write(&out);
            endpoint.poll_link_transmit(&mut sink, 1 << 20);
            sink.clear();
            assert!(endpoint.buffered_bytes() <= 2 * window + 1024);
        }
        assert!(buf.len() <= HEADER_LEN + MAX_BODY as usize);
        now += Duration::from_millis(10);
        registry.handle_timeout(now);
        assert!(registry.len() <= 4);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_into_a_server_link_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        chunk in 1usize..512,
        open_first in any::<bool>(),
    ) {
        server_gets(&input, chunk, open_first);
    }

    #[test]
    fn random_frames_into_a_server_link_never_panic(
        frames in proptest::collection::vec((1u8..=9, any::<u64>(), 0usize..64), 0..64),
        chunk in 1usize..512,
    ) {
        let mut input = BytesMut::new();
        for (kind, value, len) in frames {
            let frame = match kind {
                7 => Frame::Data { offset: value % 4096, bytes: bytes::Bytes::from(vec![1; len + 1]) },
                8 => Frame::Ack { next_expected: value % 4096 },
                9 => Frame::Close { end: value % 4096 },
                5 => Frame::Resumed { next_expected: value },
                4 => Frame::Resume { session_id: SessionId([len as u8; 16]), proof: [0; 32], next_expected: value },
                _ => Frame::Open,
            };
            frame.encode(&mut input);
        }
        server_gets(&input, chunk, true);
    }
}
