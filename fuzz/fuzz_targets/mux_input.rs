//! The multiplexer fed arbitrary peer bytes, with an application that reads, echoes and
//! closes what arrives: never panics, and memory stays within the configured bounds.
//!
//! Input: byte 0 = control flags, byte 1 = chunk size, then the peer's bytes.
//! - bit 0: this side is the connection's acceptor (else the initiator);
//! - bit 1: listen on "echo" (streams to it are accepted);
//! - bit 2: open a stream of our own and queue data on it before the input arrives;
//! - bit 3: read what arrives (else leave it buffered, to fill windows);
//! - bit 4: echo what is read back on the same stream, and close on the peer's FIN;
//! - bit 5: send go-away before the input arrives;
//! - bit 6: reset every stream the peer opens as soon as it arrives.
//!
//! Chunk size = (byte 1 + 1) × 16 bytes; the clock moves 1 s between chunks and due timers
//! run, as in a runtime.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_wire::mux::{HEADER_LEN, MAX_FRAME_BODY, Mux, MuxConfig, MuxEvent, Role};

const MAX_STREAMS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, input @ ..] = data else {
        return;
    };
    let mut now = Instant::now();
    let config = MuxConfig::default()
        .with_max_streams(MAX_STREAMS)
        .with_max_peer_services(8)
        .with_keepalive_interval(Some(Duration::from_secs(3)))
        .with_idle_timeout(Some(Duration::from_secs(10)));
    let window = config.stream_window as usize;
    let role = if flags & 1 != 0 {
        Role::Acceptor
    } else {
        Role::Initiator
    };
    let mut mux = Mux::new(config, role, now);
    if flags & 2 != 0 {
        mux.listen("echo").expect("listen on a fresh mux");
    }
    if flags & 4 != 0 {
        let id = mux.open_stream("svc").expect("open on a fresh mux");
        mux.write(id, &[0x5A; 1000])
            .expect("write on a fresh stream");
    }
    if flags & 32 != 0 {
        mux.go_away();
    }
    let read = flags & 8 != 0;
    let echo = flags & 16 != 0;
    let reset_incoming = flags & 64 != 0;

    let chunk_size = (usize::from(*chunk) + 1) * 16;
    let mut received = BytesMut::new();
    let mut wire = BytesMut::new();
    let mut scratch = BytesMut::new();
    for piece in input.chunks(chunk_size) {
        received.extend_from_slice(piece);
        let result = mux.handle_received(&mut received, now);
        if result.is_err() {
            assert!(mux.is_closed(), "an error closes the mux");
        }
        // Only one partial frame is ever left behind.
        assert!(received.len() < HEADER_LEN + MAX_FRAME_BODY as usize);
        while let Some(event) = mux.poll_event() {
            match event {
                MuxEvent::IncomingStream { id, .. } if reset_incoming => {
                    let _ = mux.reset(id);
                }
                MuxEvent::Readable { id } if read => {
                    scratch.clear();
                    mux.read(id, &mut scratch);
                    if echo {
                        let _ = mux.write(id, &scratch);
                    }
                }
                MuxEvent::PeerFinished { id } if echo => {
                    let _ = mux.close(id);
                }
                _ => {}
            }
        }
        let stats = mux.stats();
        assert!(stats.streams <= MAX_STREAMS);
        assert!(stats.buffered_receive <= stats.streams * window);
        assert!(stats.buffered_send <= stats.streams * window);
        if mux.is_closed() {
            assert_eq!(stats.streams, 0);
        }
        // What a runtime does between reads: write out, run due timers.
        wire.clear();
        mux.poll_transmit(&mut wire, 64 * 1024);
        now += Duration::from_secs(1);
        if let Some(deadline) = mux.poll_timeout()
            && deadline <= now
        {
            mux.handle_timeout(now);
        }
    }
    // Whatever is left flushes without panicking.
    while mux.wants_transmit() {
        wire.clear();
        if mux.poll_transmit(&mut wire, usize::MAX) == 0 {
            break;
        }
    }
});
