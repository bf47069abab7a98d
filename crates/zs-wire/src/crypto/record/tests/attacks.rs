//! Tampering, replay, reordering, size limits, malformed headers and final errors.

use super::*;

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
        // The bad record stays in the input: its header as it was; its body may have been
        // overwritten by the failed decryption (aws-lc does that).
        assert_eq!(input.len(), wire.len(), "the bad record stays in the input");
        assert_eq!(&input[..HEADER_LEN], &wire[..HEADER_LEN]);

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
