//! StableIO fed arbitrary peer bytes, on either side: never panics, errors end only the link,
//! and memory stays within the configured bounds.
//!
//! Input: byte 0 = control flags, byte 1 = chunk size, then the peer's bytes.
//! - bit 0: play the client (the input is what a server sends) instead of the server;
//! - bit 1: server: prepend a valid `Open`, so the rest reaches a live session;
//! - bit 2: read what arrives and write it back (else leave it buffered, to fill windows);
//! - bit 3: write a window's worth of data of our own before the input arrives;
//! - bit 4: close our side before the input arrives;
//! - bit 5: after an error, start a new link and go on with the rest of the input.
//!
//! Chunk size = (byte 1 + 1) × 8 bytes; the clock moves 1 s between chunks and due timers
//! run, as in a runtime.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_wire::stable::{
    Frame, HEADER_LEN, MAX_BODY, MIN_WINDOW, SessionId, StableConfig, StableEndpoint,
    StableRegistry,
};

const MAX_SESSIONS: usize = 4;

fn config() -> StableConfig {
    StableConfig::default()
        .with_window(MIN_WINDOW)
        .with_max_sessions(MAX_SESSIONS)
        .with_give_up_after(Duration::from_secs(30))
}

fn check(endpoint: &StableEndpoint, input: &BytesMut) {
    assert!(endpoint.buffered_bytes() <= 2 * MIN_WINDOW + 1024);
    assert!(endpoint.unacked_len() <= MIN_WINDOW);
    assert!(input.len() < HEADER_LEN + MAX_BODY as usize);
    if endpoint.is_expired() {
        assert_eq!(endpoint.buffered_bytes(), 0);
        assert_eq!(endpoint.write_capacity(), 0);
    }
}

fn app(endpoint: &mut StableEndpoint, flags: u8, out: &mut BytesMut) {
    while endpoint.poll_event().is_some() {}
    if flags & 4 != 0 {
        let mut data = BytesMut::new();
        endpoint.read(&mut data);
        endpoint.write(&data);
    }
    out.clear();
    endpoint.poll_link_transmit(out, 1 << 20);
}

fn prepare(endpoint: &mut StableEndpoint, flags: u8) {
    if flags & 8 != 0 {
        assert_eq!(endpoint.write(&vec![0x5a; 2 * MIN_WINDOW]), MIN_WINDOW);
    }
    if flags & 16 != 0 {
        endpoint.close();
    }
}

fn run_client(flags: u8, chunk: usize, input: &[u8]) {
    let mut now = Instant::now();
    let mut client = StableEndpoint::new_client(config(), now);
    prepare(&mut client, flags);
    client.link_established(now, b"link");
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        if client.handle_link_bytes(&mut buf, now).is_err() {
            assert!(buf.is_empty());
            if flags & 32 == 0 {
                return;
            }
            client.link_established(now, b"again");
        }
        check(&client, &buf);
        app(&mut client, flags, &mut out);
        now += Duration::from_secs(1);
        client.handle_timeout(now);
    }
}

fn run_server(flags: u8, chunk: usize, input: &[u8]) {
    let mut now = Instant::now();
    let mut registry = StableRegistry::new(config());
    let mut link = registry.new_link(b"link").expect("random");
    let mut buf = BytesMut::new();
    if flags & 2 != 0 {
        Frame::Open.encode(&mut buf);
    }
    let mut bound: Option<SessionId> = None;
    let mut out = BytesMut::new();
    let mut prepared = false;
    let mut pieces = input.chunks(chunk).peekable();
    // An `Open` alone (no input) still runs once.
    let mut first = true;
    while first || pieces.peek().is_some() {
        first = false;
        if let Some(piece) = pieces.next() {
            buf.extend_from_slice(piece);
        }
        if bound.is_none() {
            match registry.handle_pending_link(&mut link, &mut buf, now) {
                Ok(Some(id)) => bound = Some(id),
                Ok(None) => {}
                Err(_) => {
                    assert!(buf.is_empty());
                    if flags & 32 == 0 {
                        return;
                    }
                    link = registry.new_link(b"again").expect("random");
                }
            }
        }
        if let Some(id) = bound {
            let Some(endpoint) = registry.get_mut(id) else {
                bound = None;
                link = registry.new_link(b"after expiry").expect("random");
                continue;
            };
            if !prepared {
                prepared = true;
                prepare(endpoint, flags);
            }
            if endpoint.handle_link_bytes(&mut buf, now).is_err() {
                assert!(buf.is_empty());
                assert!(!endpoint.is_linked());
                if flags & 32 == 0 {
                    return;
                }
                bound = None;
                link = registry.new_link(b"again").expect("random");
            } else {
                check(endpoint, &buf);
                app(endpoint, flags, &mut out);
            }
        }
        assert!(buf.len() < HEADER_LEN + MAX_BODY as usize);
        now += Duration::from_secs(1);
        registry.handle_timeout(now);
        assert!(registry.len() <= MAX_SESSIONS);
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, input @ ..] = data else {
        return;
    };
    let chunk = (*chunk as usize + 1) * 8;
    if flags & 1 != 0 {
        run_client(*flags, chunk, input);
    } else {
        run_server(*flags, chunk, input);
    }
});
