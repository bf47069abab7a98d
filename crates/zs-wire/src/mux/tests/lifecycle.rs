//! Close and reset, listeners, keep-alive and go-away.

use super::*;

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
