//! Acks, windows, expiry, limits, close and misplaced frames.

use super::*;

#[test]
fn an_ack_for_data_never_sent_is_an_error_that_ends_only_the_link() {
    let mut net = Network::new(StableConfig::default(), 8);
    let id = open(&mut net);
    net.client.write(b"abc");
    net.settle();
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    Frame::Ack { next_expected: 10 }.encode(&mut input);
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::AckBeyondSent { ack: 10, sent: 0 })
    );
    assert!(!server.is_linked());
    assert!(!server.is_expired());
    // The client's ack beyond what the server sent, the other way round.
    let mut input = BytesMut::new();
    Frame::Ack { next_expected: 4 }.encode(&mut input);
    assert_eq!(
        net.client.handle_link_bytes(&mut input, net.now),
        Err(StableError::AckBeyondSent { ack: 4, sent: 3 })
    );
    net.cut();
    net.connect();
    net.settle();
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    assert_eq!(&out[..], b"abc");
}

#[test]
fn data_with_a_gap_or_beyond_the_window_is_an_error() {
    let mut net = Network::new(StableConfig::default(), 9);
    let id = open(&mut net);
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    Frame::Data {
        offset: 5,
        bytes: bytes::Bytes::from_static(b"x"),
    }
    .encode(&mut input);
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::DataGap {
            offset: 5,
            expected: 0
        })
    );
    net.cut();
    net.connect();
    net.settle();
    let window = StableConfig::default().window as u64;
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    Frame::Data {
        offset: 0,
        bytes: bytes::Bytes::from(vec![0; MAX_SEGMENT]),
    }
    .encode(&mut input);
    for i in 1..(window as usize / MAX_SEGMENT) + 1 {
        Frame::Data {
            offset: (i * MAX_SEGMENT) as u64,
            bytes: bytes::Bytes::from(vec![0; MAX_SEGMENT]),
        }
        .encode(&mut input);
    }
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::DataBeyondWindow {
            end: window + MAX_SEGMENT as u64,
            limit: window
        })
    );
    assert!(server.buffered_bytes() <= 2 * StableConfig::default().window);
}

#[test]
fn duplicate_and_overlapping_data_is_delivered_once() {
    let mut net = Network::new(StableConfig::default(), 10);
    let id = open(&mut net);
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    for (offset, bytes) in [(0, &b"abc"[..]), (0, b"abc"), (1, b"bcde"), (5, b"f")] {
        Frame::Data {
            offset,
            bytes: bytes::Bytes::copy_from_slice(bytes),
        }
        .encode(&mut input);
    }
    server.handle_link_bytes(&mut input, net.now).unwrap();
    let mut out = BytesMut::new();
    server.read(&mut out);
    assert_eq!(&out[..], b"abcdef");
}

#[test]
fn the_client_gives_up_after_the_configured_time_and_the_server_forgets() {
    let config = StableConfig {
        give_up_after: Duration::from_secs(30),
        ..StableConfig::default()
    };
    let mut net = Network::new(config, 11);
    let id = open(&mut net);
    net.client.write(b"pending");
    net.cut();
    net.advance(Duration::from_secs(29));
    assert!(!net.client.is_expired());
    assert_eq!(net.registry.len(), 1);
    // A link that never gets through the resume does not reset the clock.
    net.connect();
    net.advance(Duration::from_secs(1));
    assert!(net.client.is_expired());
    assert!(events(&mut net.client).contains(&StableEvent::Expired));
    assert_eq!(net.client.poll_timeout(), None);
    assert_eq!(net.registry.len(), 0);
    assert!(net.registry.get_mut(id).is_none());
    assert_eq!(net.client.write(b"x"), 0);
    assert_eq!(net.client.buffered_bytes(), 0);
}

#[test]
fn a_resume_after_the_server_expired_the_session_is_refused_as_expired() {
    let config = StableConfig {
        give_up_after: Duration::from_secs(10),
        ..StableConfig::default()
    };
    let mut net = Network::new(config, 12);
    let id = open(&mut net);
    let secret = *net.client.secret.as_ref().unwrap().clone();
    net.cut();
    // No registry timer ran yet, but the time has passed.
    let later = net.now + Duration::from_secs(11);
    let mut link = net.registry.new_link(b"k").unwrap();
    let mut sent = BytesMut::new();
    link.poll_transmit(&mut sent, usize::MAX);
    let Some(Frame::Challenge { nonce }) = Frame::decode(&mut sent).unwrap() else {
        panic!();
    };
    let mut input = BytesMut::new();
    Frame::Resume {
        session_id: id,
        proof: resume_proof(&secret, id, &nonce, 0, &link_key(b"k")),
        next_expected: 0,
    }
    .encode(&mut input);
    assert_eq!(
        net.registry
            .handle_pending_link(&mut link, &mut input, later),
        Err(StableError::Expired)
    );
    assert_eq!(net.registry.len(), 0);
}

#[test]
fn the_window_cap_blocks_writes_until_acks_arrive() {
    let config = StableConfig {
        window: MIN_WINDOW,
        ..StableConfig::default()
    };
    let mut net = Network::new(config, 13);
    let id = open(&mut net);
    let big = vec![7u8; 3 * MIN_WINDOW];
    assert_eq!(net.client.write(&big), MIN_WINDOW);
    assert_eq!(net.client.write(&big), 0);
    net.settle();
    // Delivered but unread: still unacknowledged, still blocked.
    assert_eq!(net.client.unacked_len(), MIN_WINDOW);
    assert_eq!(net.client.write(&big), 0);
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    assert_eq!(out.len(), MIN_WINDOW);
    net.settle();
    assert_eq!(net.client.unacked_len(), 0);
    assert!(events(&mut net.client).contains(&StableEvent::Writable));
    assert_eq!(net.client.write(&big), MIN_WINDOW);
}

#[test]
fn a_small_read_is_acked_after_the_ack_delay() {
    let mut net = Network::new(StableConfig::default(), 14);
    let id = open(&mut net);
    net.client.write(b"tiny");
    net.settle();
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    net.settle();
    assert_eq!(net.client.unacked_len(), 4);
    let deadline = net.registry.poll_timeout().unwrap();
    net.advance(deadline - net.now);
    net.settle();
    assert_eq!(net.client.unacked_len(), 0);
}

#[test]
fn max_sessions_refuses_new_sessions() {
    let config = StableConfig {
        max_sessions: 3,
        ..StableConfig::default()
    };
    let mut registry = StableRegistry::new(config);
    for _ in 0..3 {
        let (result, _) = resume_with(&mut registry, |_| Frame::Open, b"");
        assert!(matches!(result, Ok(Some(_))));
    }
    let (result, frames) = resume_with(&mut registry, |_| Frame::Open, b"");
    assert_eq!(result, Err(StableError::TooManySessions { max: 3 }));
    assert_eq!(
        frames,
        vec![Frame::Refused {
            reason: RefuseReason::TooManySessions
        }]
    );
    assert_eq!(registry.len(), 3);
}

/// A full server gives the place of a session whose client is gone to a new client; that
/// client, coming back, is refused and its session expires with a clear error.
#[test]
fn a_full_registry_gives_a_detached_session_up_for_a_new_one() {
    let config = StableConfig {
        max_sessions: 2,
        ..StableConfig::default()
    };
    let mut net = Network::new(config, 17);
    let gone = open(&mut net);
    let (attached, _) = resume_with(&mut net.registry, |_| Frame::Open, b"");
    let Ok(Some(attached)) = attached else {
        panic!("second session not opened: {attached:?}");
    };
    net.cut();
    let (newcomer, frames) = resume_with(&mut net.registry, |_| Frame::Open, b"");
    let Ok(Some(newcomer)) = newcomer else {
        panic!("full registry refused a new session though one was detached: {frames:?}");
    };
    assert!(
        net.registry.get_mut(gone).is_none(),
        "detached session kept"
    );
    assert!(net.registry.get_mut(attached).is_some());
    assert!(net.registry.get_mut(newcomer).is_some());
    let (refused, _) = resume_with(&mut net.registry, |_| Frame::Open, b"");
    assert_eq!(refused, Err(StableError::TooManySessions { max: 2 }));
    net.connect();
    net.settle();
    assert_eq!(
        net.client_errors,
        vec![StableError::Refused {
            reason: RefuseReason::UnknownSession
        }]
    );
    assert!(net.client.is_expired());
}

#[test]
fn orderly_close_ends_the_session_on_both_sides() {
    let mut net = Network::new(StableConfig::default(), 15);
    let id = open(&mut net);
    net.client.write(b"bye");
    net.client.close();
    assert_eq!(net.client.write(b"late"), 0);
    net.settle();
    let server = net.registry.get_mut(id).unwrap();
    let mut out = BytesMut::new();
    server.read(&mut out);
    assert_eq!(&out[..], b"bye");
    assert!(events(server).contains(&StableEvent::PeerClosed));
    server.write(b"ok");
    server.close();
    net.settle();
    let mut out = BytesMut::new();
    net.client.read(&mut out);
    assert_eq!(&out[..], b"ok");
    let client_events = events(&mut net.client);
    assert!(client_events.contains(&StableEvent::PeerClosed));
    assert!(
        client_events.contains(&StableEvent::Closed),
        "{client_events:?}"
    );
    net.settle();
    assert!(net.registry.get_mut(id).unwrap().is_closed());
    net.advance(Duration::from_millis(1));
    assert_eq!(net.registry.len(), 0);
}

#[test]
fn frames_out_of_place_and_bad_headers_are_errors() {
    let mut net = Network::new(StableConfig::default(), 16);
    let id = open(&mut net);
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::from(&[7u8, 0xff, 0xff, 0xff, 0xff][..]);
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::FrameTooLarge {
            len: u32::MAX,
            max: MAX_BODY
        })
    );
    assert!(input.is_empty());
    let mut registry = StableRegistry::new(StableConfig::default());
    let (result, _) = resume_with(&mut registry, |_| Frame::Ack { next_expected: 0 }, b"");
    assert!(matches!(result, Err(StableError::Malformed { .. })));
    let mut link = registry.new_link(b"").unwrap();
    let mut input = BytesMut::from(&[0x42u8, 0, 0, 0, 0][..]);
    assert_eq!(
        registry.handle_pending_link(&mut link, &mut input, net.now),
        Err(StableError::UnknownFrameType { frame_type: 0x42 })
    );
    let mut input = BytesMut::from(&[1u8, 1, 0, 0, 0, 0][..]);
    assert!(matches!(
        Frame::decode(&mut input),
        Err(StableError::Malformed { .. })
    ));
}
