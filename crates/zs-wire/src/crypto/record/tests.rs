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

#[test]
fn suite_names_ids_and_key_lengths() {
    let names = [
        "aes-128-gcm",
        "aes-256-gcm",
        "chacha20-poly1305",
        "rc6-gcm",
        "twofish-gcm",
        "serpent-gcm",
        "mars-gcm",
        "plain",
    ];
    for (i, (suite, name)) in Suite::ALL.into_iter().zip(names).enumerate() {
        assert_eq!(suite.name(), name);
        assert_eq!(suite.to_string(), name);
        assert_eq!(Suite::from_name(name), Some(suite));
        assert_eq!(Suite::from_name(&name.to_uppercase()), Some(suite));
        assert_eq!(name.parse::<Suite>(), Ok(suite));
        assert_eq!(Suite::from_id(suite.id()), Some(suite));
        let expected_id = if suite == Suite::Plain {
            0
        } else {
            i as u8 + 1
        };
        assert_eq!(suite.id(), expected_id);
        let expected_key = match suite {
            Suite::Aes128Gcm => 16,
            Suite::Plain => 0,
            _ => 32,
        };
        assert_eq!(suite.key_len(), expected_key);
        assert_eq!(suite.is_plain(), suite == Suite::Plain);
    }
    assert_eq!(Suite::DEFAULT_SUITES, &Suite::ALL[..7]);
    assert!(Suite::DEFAULT_SUITES.iter().all(|suite| !suite.is_plain()));
    assert_eq!(Suite::from_id(8), None);
    assert_eq!(Suite::from_name("aes-gcm"), None);

    let error = "des-cbc".parse::<Suite>().unwrap_err();
    assert_eq!(
        error,
        RecordError::UnknownSuite {
            name: "des-cbc".into()
        }
    );
    let message = error.to_string();
    assert!(message.contains("des-cbc"), "{message}");
    for name in names {
        assert!(message.contains(name), "{message} lacks {name}");
    }
}

#[test]
fn round_trip_every_suite_and_size() {
    for suite in Suite::ALL {
        let (mut sealer, mut opener) = pair(suite, 0);
        for size in SIZES {
            let plaintext = data(size);
            let wire = seal(&mut sealer, &plaintext);
            let records = size.div_ceil(MAX_RECORD_PLAINTEXT);
            assert_eq!(
                wire.len(),
                size + records * (HEADER_LEN + suite.tag_len()),
                "{suite} {size}"
            );
            for range in record_ranges(&wire) {
                assert_eq!(wire[range.start], RECORD_TYPE_DATA);
                assert!(range.len() - HEADER_LEN <= suite.max_record_body());
            }
            assert_eq!(
                open_all(&mut opener, &wire).unwrap(),
                plaintext,
                "{suite} {size}"
            );
        }
        assert_eq!(sealer.key_updates(), 0);
        assert_eq!(opener.key_updates(), 0);
    }
}

#[test]
fn byte_by_byte_feeding() {
    for suite in Suite::ALL {
        let (mut sealer, mut opener) = pair(suite, 10_000);
        let plaintext = data(40_000);
        let wire = seal(&mut sealer, &plaintext);
        assert_eq!(sealer.key_updates(), 4);
        let mut input = BytesMut::new();
        let mut opened = BytesMut::new();
        for &byte in wire.iter() {
            input.extend_from_slice(&[byte]);
            opener.open(&mut input, &mut opened).unwrap();
        }
        assert!(input.is_empty());
        assert_eq!(&opened[..], &plaintext[..], "{suite}");
        assert_eq!(opener.key_updates(), 4);
    }
}

#[test]
fn incomplete_record_stays_and_gets_room() {
    let (mut sealer, mut opener) = pair(Suite::Aes128Gcm, 0);
    let wire = seal(&mut sealer, &data(20_000));
    let first = record_ranges(&wire)[0].clone();
    let mut input = BytesMut::from(&wire[..first.end + 7]);
    let mut opened = BytesMut::new();
    opener.open(&mut input, &mut opened).unwrap();
    assert_eq!(opened.len(), MAX_RECORD_PLAINTEXT);
    assert_eq!(&input[..], &wire[first.end..first.end + 7]);
    let rest = wire.len() - first.end;
    assert!(input.capacity() >= rest, "{} < {rest}", input.capacity());
}

#[test]
fn key_rotation_every_kib_over_a_mib() {
    for suite in Suite::ALL {
        let total = 1 << 20;
        let kib = total as u64 / 1024;
        let plaintext = data(total);

        // By volume: the sealer rotates by itself, cutting records at each KiB boundary,
        // whatever the sizes of the pieces it is given.
        let (mut sealer, mut opener) = pair(suite, 1024);
        let mut wire = BytesMut::new();
        for piece in plaintext.chunks(3000) {
            sealer.seal(piece, &mut wire).unwrap();
        }
        assert_eq!(sealer.key_updates(), kib, "{suite}");
        let mut sealed_under_key = 0;
        for range in record_ranges(&wire) {
            if wire[range.start] == RECORD_TYPE_KEY_UPDATE {
                assert_eq!(sealed_under_key, 1024);
                sealed_under_key = 0;
            } else {
                sealed_under_key += range.len() - HEADER_LEN - suite.tag_len();
                assert!(sealed_under_key <= 1024);
            }
        }
        assert_eq!(open_all(&mut opener, &wire).unwrap(), plaintext, "{suite}");
        assert_eq!(opener.key_updates(), sealer.key_updates());

        // Forced: the runtime's timer calls force_key_update after every KiB.
        let (mut sealer, mut opener) = pair(suite, 0);
        let mut wire = BytesMut::new();
        for piece in plaintext.chunks(1024) {
            sealer.seal(piece, &mut wire).unwrap();
            sealer.force_key_update(&mut wire).unwrap();
        }
        assert_eq!(sealer.key_updates(), kib);
        assert_eq!(open_all(&mut opener, &wire).unwrap(), plaintext, "{suite}");
        assert_eq!(opener.key_updates(), kib);
    }
}

#[test]
fn key_update_record_is_empty_and_switches_keys() {
    for suite in Suite::ALL {
        let (mut sealer, _) = pair(suite, 0);
        let mut wire = BytesMut::new();
        sealer.seal(b"before", &mut wire).unwrap();
        sealer.force_key_update(&mut wire).unwrap();
        sealer.seal(b"before", &mut wire).unwrap();
        let ranges = record_ranges(&wire);
        assert_eq!(ranges.len(), 3);
        let update = &wire[ranges[1].clone()];
        assert_eq!(update[0], RECORD_TYPE_KEY_UPDATE);
        assert_eq!(update.len(), HEADER_LEN + suite.tag_len());
        if !suite.is_plain() {
            // Same plaintext, same counter (0): only the key differs.
            let first = &wire[ranges[0].clone()];
            let after = &wire[ranges[2].clone()];
            assert_eq!(first[..HEADER_LEN], after[..HEADER_LEN]);
            assert_ne!(first, after, "{suite}");
        }
    }
}

#[test]
fn tampering_any_byte_fails() {
    for suite in encrypted_suites() {
        let (mut sealer, _) = pair(suite, 0);
        let mut wire = seal(&mut sealer, &data(100));
        // Something after the record, so that a longer declared length is still complete.
        sealer.seal(&data(20_000), &mut wire).unwrap();
        let record_len = HEADER_LEN + 100 + TAG_LEN;
        for at in 0..record_len {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut tampered = wire.clone();
                tampered[at] ^= mask;
                let mut opener = Opener::new(suite, SECRET).unwrap();
                let mut input = tampered;
                let mut opened = BytesMut::new();
                let error = opener.open(&mut input, &mut opened).unwrap_err();
                assert!(opened.is_empty());
                if at >= HEADER_LEN {
                    assert_eq!(
                        error,
                        RecordError::Decrypt {
                            counter: 0,
                            key_updates: 0
                        },
                        "{suite} byte {at}"
                    );
                }
            }
        }
    }
}

#[test]
fn replayed_record_fails() {
    for suite in encrypted_suites() {
        let (mut sealer, mut opener) = pair(suite, 0);
        let wire = seal(&mut sealer, b"pay me once");
        let mut replayed = wire.to_vec();
        replayed.extend_from_slice(&wire);
        let mut input = BytesMut::from(&replayed[..]);
        let mut opened = BytesMut::new();
        let error = opener.open(&mut input, &mut opened).unwrap_err();
        assert_eq!(
            error,
            RecordError::Decrypt {
                counter: 1,
                key_updates: 0
            }
        );
        assert_eq!(&opened[..], b"pay me once");
        assert_eq!(&input[..], &wire[..], "the bad record stays in the input");

        // Also across a key update: an old record under the new key.
        let (mut sealer, mut opener) = pair(suite, 0);
        let mut wire = seal(&mut sealer, b"old");
        sealer.force_key_update(&mut wire).unwrap();
        let first = wire[record_ranges(&wire)[0].clone()].to_vec();
        wire.extend_from_slice(&first);
        assert_eq!(
            open_all(&mut opener, &wire).unwrap_err(),
            RecordError::Decrypt {
                counter: 0,
                key_updates: 1
            }
        );
    }
}

#[test]
fn reordered_records_fail() {
    for suite in encrypted_suites() {
        let (mut sealer, mut opener) = pair(suite, 0);
        let mut wire = seal(&mut sealer, b"first");
        sealer.seal(b"second", &mut wire).unwrap();
        let ranges = record_ranges(&wire);
        let mut swapped = wire[ranges[1].clone()].to_vec();
        swapped.extend_from_slice(&wire[ranges[0].clone()]);
        let mut input = BytesMut::from(&swapped[..]);
        let mut opened = BytesMut::new();
        assert_eq!(
            opener.open(&mut input, &mut opened).unwrap_err(),
            RecordError::Decrypt {
                counter: 0,
                key_updates: 0
            }
        );
        assert!(opened.is_empty());

        // A dropped record fails the same way.
        let (_, mut opener) = pair(suite, 0);
        assert!(matches!(
            open_all(&mut opener, &wire[ranges[1].clone()]),
            Err(RecordError::Decrypt { counter: 0, .. })
        ));
    }
}

#[test]
fn gigabyte_record_rejected_before_buffering() {
    for suite in Suite::ALL {
        let (_, mut opener) = pair(suite, 0);
        let mut input = BytesMut::with_capacity(64);
        input.extend_from_slice(&[RECORD_TYPE_DATA]);
        input.extend_from_slice(&(1u32 << 30).to_le_bytes());
        let mut opened = BytesMut::new();
        assert_eq!(
            opener.open(&mut input, &mut opened).unwrap_err(),
            RecordError::RecordTooLarge {
                len: 1 << 30,
                max: (MAX_RECORD_PLAINTEXT + suite.tag_len()) as u64,
            }
        );
        assert!(input.capacity() < 4096, "grew to {}", input.capacity());
        assert_eq!(opened.capacity(), 0);
    }
}

#[test]
fn largest_record_accepted_one_more_byte_rejected() {
    for suite in Suite::ALL {
        let max = suite.max_record_body() as u32;
        let (_, mut opener) = pair(suite, 0);
        let mut input = BytesMut::from(&header(RECORD_TYPE_DATA, max as usize)[..]);
        let mut opened = BytesMut::new();
        opener.open(&mut input, &mut opened).unwrap();
        assert!(input.capacity() >= HEADER_LEN + max as usize);

        let (_, mut opener) = pair(suite, 0);
        let mut input = BytesMut::from(&header(RECORD_TYPE_DATA, max as usize + 1)[..]);
        assert_eq!(
            opener.open(&mut input, &mut opened).unwrap_err(),
            RecordError::RecordTooLarge {
                len: u64::from(max) + 1,
                max: u64::from(max),
            }
        );
    }
}

#[test]
fn malformed_headers_are_typed_errors() {
    let mut opened = BytesMut::new();
    for record_type in [0u8, 3, 0x17, 0xff] {
        for suite in [Suite::Aes128Gcm, Suite::Plain] {
            let (_, mut opener) = pair(suite, 0);
            let mut input = BytesMut::from(&header(record_type, 16)[..]);
            assert_eq!(
                opener.open(&mut input, &mut opened).unwrap_err(),
                RecordError::UnknownRecordType { record_type }
            );
        }
    }

    let (_, mut opener) = pair(Suite::ChaCha20Poly1305, 0);
    let mut input = BytesMut::from(&header(RECORD_TYPE_KEY_UPDATE, TAG_LEN + 4)[..]);
    assert_eq!(
        opener.open(&mut input, &mut opened).unwrap_err(),
        RecordError::NonEmptyKeyUpdate { len: 4 }
    );
    let (_, mut opener) = pair(Suite::Plain, 0);
    let mut input = BytesMut::from(&header(RECORD_TYPE_KEY_UPDATE, 3)[..]);
    input.extend_from_slice(b"abc");
    assert_eq!(
        opener.open(&mut input, &mut opened).unwrap_err(),
        RecordError::NonEmptyKeyUpdate { len: 3 }
    );

    let (_, mut opener) = pair(Suite::SerpentGcm, 0);
    let mut input = BytesMut::from(&header(RECORD_TYPE_DATA, 15)[..]);
    assert_eq!(
        opener.open(&mut input, &mut opened).unwrap_err(),
        RecordError::RecordTooShort { len: 15, min: 16 }
    );
    assert!(opened.is_empty());
}

#[test]
fn errors_are_final() {
    let (mut sealer, mut opener) = pair(Suite::Aes256Gcm, 0);
    let good = seal(&mut sealer, b"fine");
    let mut input = BytesMut::from(&[9u8, 0, 0, 0, 0][..]);
    let mut opened = BytesMut::new();
    let error = opener.open(&mut input, &mut opened).unwrap_err();
    assert_eq!(error, RecordError::UnknownRecordType { record_type: 9 });
    let mut input = good;
    assert_eq!(opener.open(&mut input, &mut opened).unwrap_err(), error);
    assert!(opened.is_empty());
}

#[test]
fn counter_never_wraps() {
    for suite in [Suite::Aes128Gcm, Suite::Plain] {
        let (mut sealer, mut opener) = pair(suite, 0);
        sealer.keys.counter = u64::MAX - 1;
        opener.keys.counter = u64::MAX - 1;
        let mut wire = BytesMut::new();
        sealer.seal(b"last", &mut wire).unwrap();
        let last = wire.len();
        assert_eq!(
            sealer.seal(b"one too many", &mut wire).unwrap_err(),
            RecordError::CounterExhausted
        );
        assert_eq!(
            sealer.force_key_update(&mut wire).unwrap_err(),
            RecordError::CounterExhausted
        );
        assert_eq!(wire.len(), last, "nothing appended after exhaustion");
        assert_eq!(open_all(&mut opener, &wire).unwrap(), b"last");

        // A peer that goes on anyway is refused, not wrapped around to counter 0.
        let (mut fresh, _) = pair(suite, 0);
        let next = seal(&mut fresh, b"wrapped");
        let mut input = next;
        let mut opened = BytesMut::new();
        assert_eq!(
            opener.open(&mut input, &mut opened).unwrap_err(),
            RecordError::CounterExhausted
        );
    }
}

#[test]
fn plain_shows_plaintext_encrypted_hides_it() {
    let marker = b"MARKER-4d61726b6572-this-must-not-leak";
    let mut plaintext = data(5000);
    plaintext.extend_from_slice(marker);
    plaintext.extend_from_slice(&data(20_000));
    plaintext.extend_from_slice(marker);
    for suite in Suite::ALL {
        let (mut sealer, mut opener) = pair(suite, 0);
        let wire = seal(&mut sealer, &plaintext);
        let contains = wire.windows(marker.len()).any(|window| window == marker);
        assert_eq!(contains, suite.is_plain(), "{suite}");
        if suite.is_plain() {
            assert_eq!(&wire[HEADER_LEN..HEADER_LEN + 5000], &plaintext[..5000]);
        }
        assert_eq!(open_all(&mut opener, &wire).unwrap(), plaintext);
    }
}

/// HKDF-Expand-SHA256 with the secret as PRK, done with the `hkdf` crate directly.
fn spec_expand(secret: &[u8; 32], info: &[u8], len: usize) -> Vec<u8> {
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::from_prk(secret).unwrap();
    let mut okm = vec![0u8; len];
    hkdf.expand(info, &mut okm).unwrap();
    okm
}

fn spec_nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// Opens one record with a stand-alone AEAD, following the specification byte by byte.
fn spec_open<A>(aead: &A, counter: u64, record: &[u8]) -> Vec<u8>
where
    A: aes_gcm::aead::Aead + AeadCore<NonceSize = U12>,
{
    let header = &record[..5];
    let len = u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize;
    assert_eq!(record.len(), 5 + len);
    let nonce = spec_nonce(counter);
    aead.decrypt(
        (&nonce).into(),
        aes_gcm::aead::Payload {
            msg: &record[5..],
            aad: header,
        },
    )
    .unwrap()
}

#[test]
fn wire_layout_matches_the_specification() {
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8);
    let mut sealer = Sealer::new(Suite::Aes128Gcm, secret, 0).unwrap();
    let mut wire = BytesMut::new();
    sealer.seal(b"first record", &mut wire).unwrap();
    sealer.seal(b"second record", &mut wire).unwrap();
    sealer.force_key_update(&mut wire).unwrap();
    sealer.seal(b"under the next key", &mut wire).unwrap();
    let ranges = record_ranges(&wire);
    assert_eq!(ranges.len(), 4);

    // Header: type 1, little-endian length = plaintext + 16.
    assert_eq!(wire[..5], [1, 12 + 16, 0, 0, 0]);

    let key = spec_expand(&secret, b"zs record key aes-128-gcm", 16);
    let aead = aes_gcm::AesGcm::<Aes128, U12>::new_from_slice(&key).unwrap();
    assert_eq!(
        spec_open(&aead, 0, &wire[ranges[0].clone()]),
        b"first record"
    );
    assert_eq!(
        spec_open(&aead, 1, &wire[ranges[1].clone()]),
        b"second record"
    );
    assert_eq!(wire[ranges[2].start..ranges[2].start + 5], [2, 16, 0, 0, 0]);
    assert_eq!(spec_open(&aead, 2, &wire[ranges[2].clone()]), b"");

    let next_secret: [u8; 32] = spec_expand(&secret, b"zs key update", 32)
        .try_into()
        .unwrap();
    let next_key = spec_expand(&next_secret, b"zs record key aes-128-gcm", 16);
    let next = aes_gcm::AesGcm::<Aes128, U12>::new_from_slice(&next_key).unwrap();
    assert_eq!(
        spec_open(&next, 0, &wire[ranges[3].clone()]),
        b"under the next key"
    );

    // The same for ChaCha20-Poly1305, whose key is 32 bytes.
    let mut sealer = Sealer::new(Suite::ChaCha20Poly1305, secret, 0).unwrap();
    let wire = seal(&mut sealer, b"chacha");
    let key = spec_expand(&secret, b"zs record key chacha20-poly1305", 32);
    let aead = ChaCha20Poly1305::new_from_slice(&key).unwrap();
    assert_eq!(spec_open(&aead, 0, &wire), b"chacha");

    // And for a finalist: Twofish with a 256-bit key.
    let mut sealer = Sealer::new(Suite::TwofishGcm, secret, 0).unwrap();
    let wire = seal(&mut sealer, b"twofish");
    let key = spec_expand(&secret, b"zs record key twofish-gcm", 32);
    let aead = aes_gcm::AesGcm::<Twofish, U12>::new_from_slice(&key).unwrap();
    assert_eq!(spec_open(&aead, 0, &wire), b"twofish");
    // The `twofish` crate, an independent implementation, opens it too.
    let aead = aes_gcm::AesGcm::<::twofish::Twofish, U12>::new_from_slice(&key).unwrap();
    assert_eq!(spec_open(&aead, 0, &wire), b"twofish");
}

#[test]
fn directions_with_different_secrets_do_not_open_each_other() {
    let mut sealer = Sealer::new(Suite::MarsGcm, [1; 32], 0).unwrap();
    let mut opener = Opener::new(Suite::MarsGcm, [2; 32]).unwrap();
    let wire = seal(&mut sealer, b"hello");
    assert!(matches!(
        open_all(&mut opener, &wire),
        Err(RecordError::Decrypt { counter: 0, .. })
    ));
    let mut opener = Opener::new(Suite::SerpentGcm, [1; 32]).unwrap();
    assert!(
        open_all(&mut opener, &wire).is_err(),
        "another suite fails too"
    );
}

fn any_suite() -> impl Strategy<Value = Suite> {
    (0..Suite::ALL.len()).prop_map(|i| Suite::ALL[i])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn chunks_and_split_points_round_trip(
        suite in any_suite(),
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40_000), 0..6),
        rekey in prop_oneof![Just(0u64), 1u64..70_000],
        force_after in prop::collection::vec(any::<bool>(), 6),
        splits in prop::collection::vec(1usize..20_000, 0..12),
    ) {
        let (mut sealer, mut opener) = pair(suite, rekey);
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for (chunk, force) in chunks.iter().zip(&force_after) {
            sealer.seal(chunk, &mut wire).unwrap();
            expected.extend_from_slice(chunk);
            if *force {
                sealer.force_key_update(&mut wire).unwrap();
            }
        }
        let mut input = BytesMut::new();
        let mut opened = BytesMut::new();
        let mut rest = &wire[..];
        for split in splits.iter().chain(core::iter::repeat(&7777)) {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*split).min(rest.len()));
            input.extend_from_slice(now);
            opener.open(&mut input, &mut opened).unwrap();
            rest = later;
        }
        prop_assert!(input.is_empty());
        prop_assert_eq!(&opened[..], &expected[..]);
        prop_assert_eq!(opener.key_updates(), sealer.key_updates());
    }

    #[test]
    fn opener_never_panics_on_random_bytes(
        suite in any_suite(),
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        splits in prop::collection::vec(0usize..300, 0..8),
    ) {
        let (_, mut opener) = pair(suite, 0);
        let mut input = BytesMut::new();
        let mut opened = BytesMut::new();
        let mut rest = &bytes[..];
        for split in splits.iter().chain(core::iter::once(&usize::MAX)) {
            let (now, later) = rest.split_at((*split).min(rest.len()));
            input.extend_from_slice(now);
            if opener.open(&mut input, &mut opened).is_err() {
                break;
            }
            rest = later;
        }
        prop_assert!(input.capacity() <= 64 * 1024);
    }

    #[test]
    fn opener_never_panics_on_damaged_records(
        suite in any_suite(),
        plaintext in prop::collection::vec(any::<u8>(), 0..3000),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let (mut sealer, mut opener) = pair(suite, 1000);
        let mut wire = seal(&mut sealer, &plaintext);
        if wire.is_empty() {
            return Ok(());
        }
        for (at, byte) in damage {
            let at = at.index(wire.len());
            wire[at] = byte;
        }
        let mut input = wire;
        let mut opened = BytesMut::new();
        let _ = opener.open(&mut input, &mut opened);
        prop_assert!(opened.len() <= plaintext.len() || suite.is_plain());
    }
}

/// Sealing and opening speed of every suite over 16 KiB records, in release builds:
/// `cargo test --release -p zs-wire record_speed -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
fn record_speed() {
    use std::time::{Duration, Instant};

    let plaintext = data(MAX_RECORD_PLAINTEXT);
    let budget = Duration::from_millis(700);
    for suite in Suite::ALL {
        let (mut sealer, _) = pair(suite, 0);
        let mut wire = BytesMut::with_capacity(2 * (MAX_RECORD_PLAINTEXT + 64));

        let start = Instant::now();
        let mut sealed = 0u64;
        while start.elapsed() < budget {
            for _ in 0..64 {
                wire.clear();
                sealer.seal(&plaintext, &mut wire).unwrap();
                sealed += plaintext.len() as u64;
            }
        }
        let seal_mbs = sealed as f64 / start.elapsed().as_secs_f64() / 1e6;

        // Open 1 MiB batches sealed ahead of time by a fresh sealer, each with a fresh
        // opener (the copy into the input buffer is timed too, as a socket read would be).
        let batch = {
            let (mut batch_sealer, _) = pair(suite, 0);
            let mut batch = BytesMut::new();
            for _ in 0..64 {
                batch_sealer.seal(&plaintext, &mut batch).unwrap();
            }
            batch
        };
        let mut input = BytesMut::with_capacity(batch.len());
        let mut opened = BytesMut::with_capacity(batch.len());
        let start = Instant::now();
        let mut opened_bytes = 0u64;
        while start.elapsed() < budget {
            input.clear();
            opened.clear();
            input.extend_from_slice(&batch);
            let (_, mut opener) = pair(suite, 0);
            opener.open(&mut input, &mut opened).unwrap();
            opened_bytes += opened.len() as u64;
        }
        let open_mbs = opened_bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
        println!(
            "{:>18}: seal {seal_mbs:>8.0} MB/s   open {open_mbs:>8.0} MB/s",
            suite.name()
        );
    }
}
