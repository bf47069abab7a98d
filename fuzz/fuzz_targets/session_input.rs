//! The session state machine fed arbitrary peer bytes: never panics.
//!
//! First input byte = control flags:
//! - bit 0: prepend a valid preamble (so most inputs reach the frame layer);
//! - bit 1: have four requests (ids 1..=4) of our own in flight, so replies can match;
//! - bit 2: start a drain-close before the input arrives;
//! - bits 3..=7: number of chunks the rest is split into (1..=32).
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_wire::frame::{CloseCode, Payload, RequestId, StatusCode};
use zs_wire::session::{Event, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut session = Session::<u32>::new(SessionConfig::default(), now);

    let mut input = Vec::with_capacity(rest.len() + 8);
    if flags & 1 != 0 {
        // A well-behaved peer's preamble, whatever its current layout.
        let peer = Session::<()>::new(SessionConfig::default(), now);
        input.extend_from_slice(peer.transmit_pending());
    }
    input.extend_from_slice(rest);
    if flags & 2 != 0 {
        for id in 1..=4u32 {
            let _ = session.send_request(
                RequestId(u64::from(id)),
                Payload::Console,
                "echo",
                b"hi",
                id,
            );
        }
    }
    if flags & 4 != 0 {
        session.close_after_drain(CloseCode::ShuttingDown, "fuzz drain");
    }

    let chunks = usize::from(flags >> 3) + 1;
    let chunk_size = input.len().div_ceil(chunks).max(1);
    let mut received = BytesMut::new();
    for (index, chunk) in input.chunks(chunk_size).enumerate() {
        received.extend_from_slice(chunk);
        let _ = session.handle_received(&mut received, now);
        while let Some(event) = session.poll_event() {
            if let Event::Request { id, body, .. } = event {
                if index % 2 == 0 {
                    session.send_reply(id, &body);
                } else {
                    session.send_error(id, StatusCode::UNKNOWN, "fuzz", &body);
                }
            }
        }
        // What a runtime would do between reads: write out, run due timers.
        let _ = session.transmit_buffer().split();
        now += Duration::from_secs(1);
        if let Some(deadline) = session.poll_timeout()
            && deadline <= now
        {
            session.handle_timeout(now);
        }
    }
    let _ = session.take_in_flight().count();
});
