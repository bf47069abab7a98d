//! Two sessions wired back to back in memory with a virtual clock (quinn-proto's `Pair` idea).

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::frame::{EncodeError, Payload, StatusCode};

fn request<T>(
    session: &mut Session<T>,
    payload: Payload,
    name: &str,
    body: &[u8],
    token: T,
) -> Result<RequestId, SendError<T>> {
    let id = RequestId(session.highest_request_id + 1);
    session.send_request(id, payload, name, body, token)
}

struct Pair {
    client: Session<&'static str>,
    server: Session<&'static str>,
    client_received: BytesMut,
    server_received: BytesMut,
    now: Instant,
}

impl Pair {
    fn new() -> Self {
        Self::with_config(SessionConfig::default())
    }

    fn with_config(config: SessionConfig) -> Self {
        let now = Instant::now();
        Self {
            client: Session::new(config.clone(), now),
            server: Session::new(config, now),
            client_received: BytesMut::new(),
            server_received: BytesMut::new(),
            now,
        }
    }

    /// Moves every pending byte in both directions until both are quiet.
    fn drive(&mut self) {
        loop {
            let to_server = self.client.transmit_buffer().split();
            let to_client = self.server.transmit_buffer().split();
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            self.server_received.extend_from_slice(&to_server);
            self.client_received.extend_from_slice(&to_client);
            let _ = self
                .server
                .handle_received(&mut self.server_received, self.now);
            let _ = self
                .client
                .handle_received(&mut self.client_received, self.now);
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }
}

fn events<T>(session: &mut Session<T>) -> Vec<Event<T>> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

#[test]
fn many_requests_in_flight_in_both_directions_get_their_own_replies() {
    let mut pair = Pair::new();
    let a = request(&mut pair.client, Payload::Console, "echo", b"one", "a").unwrap();
    let b = request(&mut pair.client, Payload::Console, "echo", b"two", "b").unwrap();
    let c = request(&mut pair.server, Payload::Stream, "push", b"three", "c").unwrap();
    pair.drive();

    let mut server_requests = events(&mut pair.server);
    let client_requests = events(&mut pair.client);
    assert_eq!(server_requests.len(), 2);
    assert_eq!(client_requests.len(), 1);
    // Answer out of order: b before a.
    server_requests.reverse();
    for event in server_requests {
        let Event::Request { id, body, .. } = event else {
            panic!("expected a request")
        };
        assert!(pair.server.send_reply(id, &body));
    }
    let Event::Request { id, .. } = &client_requests[0] else {
        panic!("expected a request")
    };
    pair.client
        .send_error(*id, StatusCode::UNKNOWN, "nope", b"");
    pair.drive();

    let replies: Vec<_> = events(&mut pair.client)
        .into_iter()
        .map(|event| match event {
            Event::Reply { id, token, result } => (id, token, result.unwrap()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        replies,
        vec![
            (b, "b", Bytes::from_static(b"two")),
            (a, "a", Bytes::from_static(b"one"))
        ]
    );
    let Some(Event::Reply { id, token, result }) = pair.server.poll_event() else {
        panic!()
    };
    assert_eq!((id, token), (c, "c"));
    assert_eq!(result.unwrap_err().code, StatusCode::UNKNOWN);
}

#[test]
fn reply_to_a_request_never_sent_closes_with_a_named_error() {
    let mut pair = Pair::new();
    pair.drive();
    frame::encode_reply(pair.server.transmit_buffer(), RequestId(77), b"x", 1024).unwrap();
    pair.drive();
    let closed = events(&mut pair.client);
    assert!(matches!(
        closed.as_slice(),
        [Event::Closed(CloseReason::Protocol(
            ProtocolError::UnknownReply { id: RequestId(77) }
        ))]
    ));
    assert!(pair.client.is_finished());
    // The peer was told why.
    let told = events(&mut pair.server);
    assert!(matches!(
        told.as_slice(),
        [Event::Closed(CloseReason::Peer { code: CloseCode::ProtocolError, reason })] if reason.contains("77")
    ));
}

#[test]
fn late_reply_after_cancel_is_ignored() {
    let mut pair = Pair::new();
    let id = request(&mut pair.client, Payload::Console, "slow", b"", "t").unwrap();
    pair.drive();
    let [Event::Request { id: server_id, .. }] = events(&mut pair.server)[..] else {
        panic!()
    };
    assert_eq!(pair.client.cancel_request(id), Some("t"));
    pair.drive();
    assert!(matches!(
        events(&mut pair.server)[..],
        [Event::Cancelled { .. }]
    ));
    pair.server.send_reply(server_id, b"late");
    pair.drive();
    assert!(events(&mut pair.client).is_empty());
    assert_eq!(pair.client.late_reply_count(), 1);
    assert!(!pair.client.is_finished());
}

#[test]
fn bad_preamble_is_refused_from_its_first_byte() {
    let mut session: Session<()> = Session::new(SessionConfig::default(), Instant::now());
    let mut received = BytesMut::from(&b"GET"[..]);
    assert_eq!(
        session.handle_received(&mut received, Instant::now()),
        Err(ProtocolError::BadPreamble { found: *b"GET\0" })
    );
    assert!(session.is_finished());
}

#[test]
fn older_peer_version_is_a_version_mismatch() {
    // Version 1 had another ErrorReply layout: a version-2 side must refuse it.
    let mut session: Session<()> = Session::new(SessionConfig::default(), Instant::now());
    let mut received = BytesMut::from(&b"ZSRV\x01\x00\x00\x00\x00\x00\x01\x00"[..]);
    assert_eq!(
        session.handle_received(&mut received, Instant::now()),
        Err(ProtocolError::VersionMismatch { ours: 2, theirs: 1 })
    );
}

#[test]
fn each_side_sends_within_the_limit_the_other_announced() {
    let mut pair = Pair::new();
    pair.server = Session::new(
        SessionConfig {
            max_frame_size: 2048,
            ..SessionConfig::default()
        },
        pair.now,
    );
    pair.drive();
    assert_eq!(pair.client.peer_max_frame_size(), Some(2048));
    let error = request(
        &mut pair.client,
        Payload::Console,
        "echo",
        &[0; 4096],
        "big",
    )
    .unwrap_err();
    assert!(matches!(
        error,
        SendError::Encode(EncodeError::FrameTooLarge { max: 2048, .. }, "big")
    ));
    assert!(
        !pair.client.is_finished(),
        "refused locally; the connection lives"
    );
}

#[test]
fn peer_announcing_a_tiny_frame_limit_is_refused() {
    let mut session: Session<()> = Session::new(SessionConfig::default(), Instant::now());
    let mut received = BytesMut::from(&b"ZSRV\x02\x00\x00\x00\x10\x00\x00\x00"[..]);
    assert_eq!(
        session.handle_received(&mut received, Instant::now()),
        Err(ProtocolError::FrameLimitTooSmall { max: 16 })
    );
}

#[test]
fn duplicate_open_request_id_is_a_protocol_error() {
    let mut pair = Pair::new();
    pair.drive();
    for _ in 0..2 {
        frame::encode_command(
            pair.client.transmit_buffer(),
            Some(RequestId(5)),
            Payload::Console,
            "x",
            b"",
            1024,
        )
        .unwrap();
    }
    pair.drive();
    let server_events = events(&mut pair.server);
    assert!(matches!(
        server_events.last(),
        Some(Event::Closed(CloseReason::Protocol(
            ProtocolError::DuplicateRequest { .. }
        )))
    ));
}

#[test]
fn keepalive_ping_keeps_an_idle_but_live_connection_open() {
    let config = SessionConfig {
        keepalive_interval: Some(Duration::from_secs(5)),
        idle_timeout: Some(Duration::from_secs(12)),
        ..SessionConfig::default()
    };
    let mut pair = Pair::with_config(config);
    pair.drive();
    for _ in 0..10 {
        pair.advance(Duration::from_secs(5));
        pair.drive();
    }
    assert!(!pair.client.is_finished() && !pair.server.is_finished());
}

#[test]
fn idle_timeout_closes_a_silent_connection() {
    let config = SessionConfig {
        keepalive_interval: None,
        idle_timeout: Some(Duration::from_secs(10)),
        ..SessionConfig::default()
    };
    let mut session: Session<()> = Session::new(config, Instant::now());
    let start = Instant::now();
    assert!(
        session
            .poll_timeout()
            .is_some_and(|due| due <= start + Duration::from_secs(10))
    );
    session.handle_timeout(start + Duration::from_secs(11));
    assert!(session.is_finished());
    assert!(matches!(
        session.poll_event(),
        Some(Event::Closed(CloseReason::IdleTimeout(_)))
    ));
}

#[test]
fn close_after_drain_waits_for_open_requests_and_refuses_new_ones() {
    let mut pair = Pair::new();
    request(&mut pair.client, Payload::Console, "work", b"", "first").unwrap();
    pair.drive();
    let [Event::Request { id, .. }] = events(&mut pair.server)[..] else {
        panic!()
    };
    pair.server
        .close_after_drain(CloseCode::ShuttingDown, "bye");
    assert!(!pair.server.is_finished(), "still owes a reply");

    request(&mut pair.client, Payload::Console, "work", b"", "second").unwrap();
    pair.drive();
    assert!(
        events(&mut pair.server).is_empty(),
        "new request not delivered while draining"
    );

    pair.server.send_reply(id, b"done");
    assert!(pair.server.is_finished());
    pair.drive();
    let client_events = events(&mut pair.client);
    assert!(matches!(
        &client_events[0],
        Event::Reply {
            token: "second",
            result: Err(RemoteError {
                code: StatusCode::UNAVAILABLE,
                ..
            }),
            ..
        }
    ));
    assert!(matches!(
        &client_events[1],
        Event::Reply {
            token: "first",
            result: Ok(_),
            ..
        }
    ));
    assert!(matches!(
        &client_events[2],
        Event::Closed(CloseReason::Peer {
            code: CloseCode::ShuttingDown,
            ..
        })
    ));
}

#[test]
fn concurrency_limit_stops_reading() {
    let config = SessionConfig {
        max_concurrent_requests: 2,
        ..SessionConfig::default()
    };
    let mut pair = Pair::with_config(config);
    for _ in 0..2 {
        request(&mut pair.client, Payload::Console, "x", b"", "t").unwrap();
    }
    pair.drive();
    assert!(!pair.server.wants_read());
    let Some(Event::Request { id, .. }) = pair.server.poll_event() else {
        panic!()
    };
    pair.server.send_reply(id, b"");
    assert!(pair.server.wants_read());
}

/// A chunked transfer of unknown size, uncompressed.
pub(super) fn chunks_info() -> frame::StreamInfo {
    frame::StreamInfo {
        total: None,
        offset: 0,
        mode: frame::StreamMode::Chunks,
        compression: frame::Compression::None,
        original_len: 0,
    }
}

fn open_transfer(pair: &mut Pair) -> (RequestId, RequestId) {
    let info = chunks_info();
    let id = RequestId(pair.client.highest_request_id + 1);
    pair.client
        .send_stream_open(id, "upload", &info, "transfer")
        .unwrap();
    pair.drive();
    let Some(Event::StreamOpen {
        id: server_id,
        name,
        ..
    }) = pair.server.poll_event()
    else {
        panic!("expected a stream open")
    };
    assert_eq!(name, "upload");
    (id, server_id)
}

#[test]
fn transfer_flows_within_its_window_and_credit_extends_it() {
    let mut pair = Pair::new();
    let (id, server_id) = open_transfer(&mut pair);
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0u64;
    while pair.client.stream_credit(id).unwrap() >= chunk.len() as u64 {
        pair.client.send_stream_data(id, &chunk).unwrap();
        sent += chunk.len() as u64;
    }
    assert_eq!(sent, INITIAL_STREAM_WINDOW);
    assert!(matches!(
        pair.client.send_stream_data(id, &chunk),
        Err(StreamSendError::NoCredit { .. })
    ));
    pair.drive();
    let received: u64 = events(&mut pair.server)
        .iter()
        .map(|event| match event {
            Event::StreamData { body, .. } => body.len() as u64,
            other => panic!("unexpected {other:?}"),
        })
        .sum();
    assert_eq!(received, sent);
    pair.server.grant_stream_credit(server_id, 65_536);
    pair.drive();
    assert!(matches!(
        events(&mut pair.client)[..],
        [Event::StreamCredit { credit: 65_536, .. }]
    ));
    pair.client.send_stream_data(id, &chunk).unwrap();
    pair.client.send_stream_end(id).unwrap();
    pair.drive();
    let server_events = events(&mut pair.server);
    assert!(matches!(
        server_events[..],
        [Event::StreamData { .. }, Event::StreamEnd { .. }]
    ));
    pair.server.send_reply(server_id, b"stored");
    pair.drive();
    assert!(matches!(
        &events(&mut pair.client)[..],
        [Event::Reply {
            token: "transfer",
            result: Ok(_),
            ..
        }]
    ));
}

#[test]
fn data_beyond_the_window_is_a_protocol_error() {
    let mut pair = Pair::new();
    let (id, _) = open_transfer(&mut pair);
    // Bypass the sender's own check, as a hostile peer would.
    let too_much = vec![0u8; INITIAL_STREAM_WINDOW as usize + 1];
    frame::encode_stream_data(pair.client.transmit_buffer(), id, &too_much, u32::MAX).unwrap();
    pair.drive();
    assert!(matches!(
        events(&mut pair.server).last(),
        Some(Event::Closed(CloseReason::Protocol(
            ProtocolError::WindowExceeded { excess: 1, .. }
        )))
    ));
}

#[test]
fn chunks_after_an_early_answer_are_dropped_but_forged_ones_are_errors() {
    let mut pair = Pair::new();
    let (id, server_id) = open_transfer(&mut pair);
    // The receiver refuses at once; chunks already in flight must not kill the connection.
    pair.server
        .send_error(server_id, StatusCode::INVALID_ARGUMENT, "too large", b"");
    frame::encode_stream_data(pair.client.transmit_buffer(), id, b"late", u32::MAX).unwrap();
    pair.drive();
    assert!(events(&mut pair.server).is_empty());
    assert!(!pair.server.is_finished());
    frame::encode_stream_data(
        pair.client.transmit_buffer(),
        RequestId(999),
        b"forged",
        u32::MAX,
    )
    .unwrap();
    pair.drive();
    assert!(matches!(
        events(&mut pair.server).last(),
        Some(Event::Closed(CloseReason::Protocol(
            ProtocolError::UnknownStream { id: RequestId(999) }
        )))
    ));
}
