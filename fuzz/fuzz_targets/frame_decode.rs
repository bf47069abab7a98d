//! Frame decoder fed in chunks (size from the first input byte), as a socket would deliver
//! bytes: never panics, and every decoded frame re-encodes and decodes back equal.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_wire::frame::{Frame, FrameDecoder, MAX_MESSAGE_LEN};

const MAX_FRAME_SIZE: u32 = 1 << 16;

fn round_trip(frame: &Frame) {
    let mut wire = BytesMut::new();
    if let Err(error) = frame.encode(&mut wire) {
        panic!("decoded frame does not re-encode: {error}: {frame:?}");
    }
    let decoder = FrameDecoder::new(MAX_FRAME_SIZE);
    let again = decoder
        .decode(&mut wire)
        .unwrap_or_else(|error| panic!("re-encoded frame does not decode: {error}: {frame:?}"))
        .expect("a re-encoded frame is complete");
    assert!(wire.is_empty(), "re-encoded frame has trailing bytes");
    assert_eq!(again, truncated(frame), "frame does not round-trip");
}

/// The encoder cuts error messages and close reasons to `MAX_MESSAGE_LEN` bytes (at a char
/// boundary); the decoder accepts longer ones. That is the only expected difference.
fn truncated(frame: &Frame) -> Frame {
    let cut = |text: &str| {
        let mut end = text.len().min(MAX_MESSAGE_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    };
    match frame {
        Frame::ErrorReply {
            id,
            code,
            message,
            details,
        } => Frame::ErrorReply {
            id: *id,
            code: *code,
            message: cut(message),
            details: details.clone(),
        },
        Frame::Close { code, reason } => Frame::Close {
            code: *code,
            reason: cut(reason),
        },
        other => other.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk_size = usize::from(first).max(1);
    let decoder = FrameDecoder::new(MAX_FRAME_SIZE);
    let mut buffer = BytesMut::new();
    for chunk in rest.chunks(chunk_size) {
        buffer.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => round_trip(&frame),
                Ok(None) => break,
                // A decode error is fatal for the connection: stop feeding it.
                Err(_) => return,
            }
        }
    }
});
