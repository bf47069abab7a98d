//! `zs_wire::compress::decompress` on hostile buffers: first byte = compression kind, next
//! four = announced size (little-endian), the rest = the compressed bytes. Never panics,
//! never returns other than exactly the announced size within the limit; and the same bytes
//! taken as plain data compress and decompress back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zs_wire::compress::{Compression, compress, decompress};

/// The receiver's limit: announcements above it must be refused before allocating.
const MAX: usize = 1 << 20;

const KINDS: [Compression; 3] = [Compression::None, Compression::Lz4, Compression::Zstd];

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(kind) % KINDS.len()];
    let Some((announced, input)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let announced = u64::from(u32::from_le_bytes(*announced));
    if let Ok(output) = decompress(kind, input, announced, MAX) {
        assert_eq!(
            output.len() as u64,
            announced,
            "output differs from the announcement"
        );
        assert!(output.len() <= MAX, "output over the limit");
    }
    let packed = compress(kind, input).expect("compression of any input succeeds");
    let unpacked = decompress(kind, &packed, input.len() as u64, input.len())
        .expect("a compressed buffer decompresses");
    assert_eq!(unpacked, input, "round trip changed the data");
});
