//! The wire layout checked against the specification with the primitives used directly; property
//! tests and the speed measurement.

use super::*;

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Sealing pieces is sealing their concatenation: the same records byte for byte (the
    /// runtime's gathering writes must not change the wire), `max` is honoured, and
    /// `open_record` (in place, one record at a time) gives back what `open` does.
    #[test]
    fn vectored_sealing_equals_sealing_the_concatenation(
        suite in any_suite(),
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20_000), 0..6),
        rekey in prop_oneof![Just(0u64), 1u64..50_000],
        max in prop_oneof![Just(usize::MAX), 0usize..60_000],
    ) {
        let joined: Vec<u8> = parts.concat();
        let expected_len = joined.len().min(max);
        let (mut whole, _) = pair(suite, rekey);
        let (mut pieces, mut opener) = pair(suite, rekey);
        let mut one = BytesMut::new();
        whole.seal(&joined[..expected_len], &mut one).unwrap();
        let mut many = BytesMut::new();
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let sealed = pieces.seal_vectored(&slices, max, &mut many).unwrap();
        prop_assert_eq!(sealed, expected_len);
        prop_assert_eq!(&one[..], &many[..]);
        let mut opened = Vec::new();
        while let Some(text) = opener.open_record(&mut many).unwrap() {
            opened.extend_from_slice(&text);
        }
        prop_assert!(many.is_empty());
        prop_assert_eq!(&opened[..], &joined[..expected_len]);
        prop_assert_eq!(opener.key_updates(), pieces.key_updates());
    }
}

/// A plain record sent as `plain_header` + the body is the record `seal` makes, and the
/// counter moves the same way; encrypted suites and the key-update boundary say `None`.
#[test]
fn plain_headers_make_the_records_seal_would() {
    let (mut by_seal, _) = pair(Suite::Plain, 0);
    let (mut by_header, mut opener) = pair(Suite::Plain, 0);
    let mut sealed = BytesMut::new();
    let mut sent = BytesMut::new();
    for len in [1usize, 100, 16384] {
        let body = data(len);
        by_seal.seal(&body, &mut sealed).unwrap();
        let header = by_header.plain_header(len).unwrap();
        sent.extend_from_slice(&header);
        sent.extend_from_slice(&body);
    }
    assert_eq!(sealed, sent);
    assert_eq!(open_all(&mut opener, &sent).unwrap().len(), 16485);
    assert_eq!(by_header.plain_header(0), None);
    assert_eq!(by_header.plain_header(16385), None);
    let (mut encrypted, _) = pair(Suite::Aes128Gcm, 0);
    assert_eq!(encrypted.plain_header(10), None);
    let (mut near_rekey, _) = pair(Suite::Plain, 1000);
    assert!(near_rekey.plain_header(999).is_some());
    assert_eq!(near_rekey.plain_header(1), None);
}
