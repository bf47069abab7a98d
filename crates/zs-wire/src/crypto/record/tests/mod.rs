//! Record layer tests: round trips for every suite, the wire layout checked against the
//! specification with the primitives used directly, every decoder error, tampering, replay
//! and reordering, key updates, and property tests.

use aes_gcm::aead::{AeadCore, KeyInit};
use bytes::BytesMut;
use chacha20poly1305::ChaCha20Poly1305;
use cipher::consts::U12;
use proptest::prelude::*;

use super::*;
use crate::crypto::{Aes128, Twofish};

const SECRET: [u8; 32] = [0x42; 32];
const SIZES: [usize; 5] = [0, 1, 16384, 16385, 100_000];

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn pair(suite: Suite, rekey_after_bytes: u64) -> (Sealer, Opener) {
    (
        Sealer::new(suite, SECRET, rekey_after_bytes).unwrap(),
        Opener::new(suite, SECRET).unwrap(),
    )
}

fn seal(sealer: &mut Sealer, plaintext: &[u8]) -> BytesMut {
    let mut wire = BytesMut::new();
    sealer.seal(plaintext, &mut wire).unwrap();
    wire
}

/// Opens everything in `wire`, which must hold whole records only.
fn open_all(opener: &mut Opener, wire: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut input = BytesMut::from(wire);
    let mut plaintext = BytesMut::new();
    opener.open(&mut input, &mut plaintext)?;
    assert!(input.is_empty(), "{} bytes left over", input.len());
    Ok(plaintext.to_vec())
}

/// The byte ranges of the records in `wire` (header included).
fn record_ranges(wire: &[u8]) -> Vec<core::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let len = u32::from_le_bytes(wire[at + 1..at + 5].try_into().unwrap()) as usize;
        ranges.push(at..at + HEADER_LEN + len);
        at += HEADER_LEN + len;
    }
    assert_eq!(at, wire.len());
    ranges
}

fn encrypted_suites() -> impl Iterator<Item = Suite> {
    Suite::ALL.into_iter().filter(|suite| !suite.is_plain())
}

mod attacks;
mod flow;
mod spec;
