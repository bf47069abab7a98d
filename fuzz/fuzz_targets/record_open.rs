//! The record layer's `Opener` fed records in chunks: never panics, errors are final, and
//! what it opens is exactly what was sealed.
//!
//! Input: `control | chunk | rest`. `chunk` is the size of the pieces the opener receives
//! (0: everything at once). `control` bits 0..=2 pick the suite (`Suite::ALL[n]`, 7 =
//! `plain`); bit 3 picks the mode.
//!
//! **Raw mode** (bit 3 = 0): `rest` is the record stream, opened with a fixed secret. The
//! result is checked against a reference parser of the header rules: for `plain` the
//! plaintext, the error and the bytes left must match exactly; for the encrypted suites
//! every complete record must fail authentication (the input cannot carry a valid tag for
//! a key it does not know), with the header errors checked first.
//!
//! **Sealed mode** (bit 3 = 1): `rest` = `u8 rekey | u16 plaintext_len | u8 piece | edits`.
//! A `Sealer` with the same secret seals `plaintext_len` bytes of a pattern in pieces of
//! `(piece + 1) * 61` bytes, updating its key after `rekey * 131` bytes (0: never) and, with
//! control bit 4, forcing a key update after every piece. `edits` are 4-byte
//! `u24 position | u8 xor` changes to the sealed stream (position modulo its length); with
//! control bit 5 the stream is then cut to the first edit's position. Untouched, everything
//! must open back; touched (encrypted suites), the plaintext opened must be a prefix of the
//! original and the change must be detected (an error, or an incomplete record waiting).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_wire::crypto::record::{
    HEADER_LEN, MAX_RECORD_PLAINTEXT, Opener, RECORD_TYPE_DATA, RECORD_TYPE_KEY_UPDATE,
    RecordError, Sealer, Suite,
};

const SECRET: [u8; 32] = [3; 32];

/// Feeds `stream` in pieces; returns the plaintext, the bytes left and the first error
/// (checked to be final).
fn open_all(
    opener: &mut Opener,
    stream: &[u8],
    chunk: usize,
) -> (BytesMut, BytesMut, Option<RecordError>) {
    let mut input = BytesMut::new();
    let mut plaintext = BytesMut::new();
    let mut error: Option<RecordError> = None;
    for piece in stream.chunks(chunk.max(1)) {
        input.extend_from_slice(piece);
        let before = plaintext.len();
        let result = opener.open(&mut input, &mut plaintext);
        match (&error, result) {
            (Some(first), again) => {
                assert_eq!(again.as_ref(), Err(first), "errors are final");
                assert_eq!(plaintext.len(), before, "nothing opened after an error");
            }
            (None, Err(new)) => error = Some(new),
            (None, Ok(())) => {}
        }
    }
    (plaintext, input, error)
}

/// What the reference parser expects for the first record that does not open.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// Every complete record opened; `consumed` bytes of records, the rest incomplete.
    Ok,
    UnknownRecordType,
    RecordTooLarge,
    RecordTooShort,
    NonEmptyKeyUpdate,
    Decrypt,
}

fn kind(error: &Option<RecordError>) -> Expected {
    match error {
        None => Expected::Ok,
        Some(RecordError::UnknownRecordType { .. }) => Expected::UnknownRecordType,
        Some(RecordError::RecordTooLarge { .. }) => Expected::RecordTooLarge,
        Some(RecordError::RecordTooShort { .. }) => Expected::RecordTooShort,
        Some(RecordError::NonEmptyKeyUpdate { .. }) => Expected::NonEmptyKeyUpdate,
        Some(RecordError::Decrypt { .. }) => Expected::Decrypt,
        Some(other) => panic!("unexpected error {other:?}"),
    }
}

/// The header rules of the record layer: returns the outcome, the plaintext of the data
/// records opened (plain only) and how many bytes were taken.
fn reference(suite: Suite, stream: &[u8]) -> (Expected, Vec<u8>, usize, u64) {
    let tag_len = suite.tag_len();
    let mut at = 0;
    let mut plaintext = Vec::new();
    let mut key_updates = 0;
    while let Some(header) = stream.get(at..at + HEADER_LEN) {
        let record_type = header[0];
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if record_type != RECORD_TYPE_DATA && record_type != RECORD_TYPE_KEY_UPDATE {
            return (Expected::UnknownRecordType, plaintext, at, key_updates);
        }
        if len > MAX_RECORD_PLAINTEXT + tag_len {
            return (Expected::RecordTooLarge, plaintext, at, key_updates);
        }
        if len < tag_len {
            return (Expected::RecordTooShort, plaintext, at, key_updates);
        }
        if record_type == RECORD_TYPE_KEY_UPDATE && len != tag_len {
            return (Expected::NonEmptyKeyUpdate, plaintext, at, key_updates);
        }
        let Some(body) = stream.get(at + HEADER_LEN..at + HEADER_LEN + len) else {
            break;
        };
        if !suite.is_plain() {
            return (Expected::Decrypt, plaintext, at, key_updates);
        }
        if record_type == RECORD_TYPE_DATA {
            plaintext.extend_from_slice(body);
        } else {
            key_updates += 1;
        }
        at += HEADER_LEN + len;
    }
    (Expected::Ok, plaintext, at, key_updates)
}

fn raw_mode(suite: Suite, stream: &[u8], chunk: usize) {
    let mut opener = Opener::new(suite, SECRET).expect("valid secret");
    let (plaintext, left, error) = open_all(&mut opener, stream, chunk);
    let (expected, expected_plaintext, consumed, key_updates) = reference(suite, stream);
    assert_eq!(kind(&error), expected, "{error:?}");
    assert_eq!(&plaintext[..], &expected_plaintext[..]);
    assert_eq!(
        &left[..],
        &stream[consumed..],
        "the bad or incomplete record stays in the input"
    );
    assert_eq!(opener.key_updates(), key_updates);
}

fn sealed_mode(suite: Suite, control: u8, rest: &[u8], chunk: usize) {
    let [rekey, len_low, len_high, piece, ref edits @ ..] = rest[..] else {
        return;
    };
    let rekey_after = u64::from(rekey) * 131;
    let len = usize::from(u16::from_le_bytes([len_low, len_high]));
    let piece = (usize::from(piece) + 1) * 61;
    let original: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect();

    let mut sealer = Sealer::new(suite, SECRET, rekey_after).expect("valid secret");
    let mut wire = BytesMut::new();
    for part in original.chunks(piece) {
        sealer
            .seal(part, &mut wire)
            .expect("sealing never fails here");
        if control & 16 != 0 {
            sealer.force_key_update(&mut wire).expect("key update");
        }
    }
    let sealed = wire.to_vec();

    let mut stream = sealed.clone();
    let mut first_position = None;
    for edit in edits.chunks_exact(4) {
        if stream.is_empty() {
            break;
        }
        let position =
            (usize::from(edit[0]) | usize::from(edit[1]) << 8 | usize::from(edit[2]) << 16)
                % stream.len();
        first_position.get_or_insert(position);
        stream[position] ^= edit[3];
    }
    if control & 32 != 0
        && let Some(position) = first_position
    {
        stream.truncate(position);
    }
    let touched =
        stream[..] != sealed[..stream.len().min(sealed.len())] || stream.len() != sealed.len();

    let mut opener = Opener::new(suite, SECRET).expect("valid secret");
    let (plaintext, left, error) = open_all(&mut opener, &stream, chunk);
    if !touched {
        assert_eq!(error, None, "an untouched stream failed to open");
        assert!(
            left.is_empty(),
            "an untouched stream left {} bytes",
            left.len()
        );
        assert_eq!(&plaintext[..], &original[..], "plaintext differs");
        assert_eq!(opener.key_updates(), sealer.key_updates());
        return;
    }
    if suite.is_plain() {
        // No integrity: anything may come out, as long as nothing panicked.
        return;
    }
    assert!(
        original.starts_with(&plaintext),
        "a changed record opened to other plaintext"
    );
    let cut_only = stream.len() < sealed.len() && sealed.starts_with(&stream);
    if cut_only {
        assert_eq!(
            error, None,
            "a stream cut short is an incomplete record, not an error"
        );
    } else {
        assert!(
            error.is_some() || !left.is_empty(),
            "a changed stream opened without complaint (error {error:?}, {} bytes left)",
            left.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [control, chunk, ref rest @ ..] = data[..] else {
        return;
    };
    let chunk = if chunk == 0 {
        usize::MAX
    } else {
        usize::from(chunk)
    };
    let suite = Suite::ALL[usize::from(control & 7)];
    if control & 8 == 0 {
        raw_mode(suite, rest, chunk);
    } else {
        sealed_mode(suite, control, rest, chunk);
    }
});
