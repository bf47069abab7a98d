//! The XNat control-message decoder fed arbitrary bytes: never panics, never consumes past
//! what it decodes, bounds every message, and every decoded message re-encodes to the exact
//! bytes it came from.
//!
//! Input: byte 0 = chunk size, then the stream of control messages.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_nat::codec::{LENGTH_PREFIX_LEN, MAX_MESSAGE_LEN, decode};

fuzz_target!(|data: &[u8]| {
    let [chunk, input @ ..] = data else {
        return;
    };
    let chunk_size = usize::from(*chunk) + 1;
    let mut buffer = BytesMut::new();
    for piece in input.chunks(chunk_size) {
        buffer.extend_from_slice(piece);
        loop {
            let before = buffer.clone();
            match decode(&mut buffer) {
                Ok(Some(message)) => {
                    let consumed = before.len() - buffer.len();
                    assert!(consumed <= LENGTH_PREFIX_LEN + MAX_MESSAGE_LEN);
                    let encoded = message.to_bytes().expect("a decoded message re-encodes");
                    assert_eq!(&encoded[..], &before[..consumed]);
                }
                Ok(None) => {
                    assert_eq!(buffer, before, "an incomplete message consumes nothing");
                    assert!(buffer.len() < LENGTH_PREFIX_LEN + MAX_MESSAGE_LEN);
                    break;
                }
                Err(_) => return, // a real peer's link ends here
            }
        }
    }
});
