//! Suites, round trips, feeding, key rotation and key updates.

use super::*;

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
