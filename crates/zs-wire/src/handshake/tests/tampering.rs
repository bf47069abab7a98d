//! Tampered, rogue, malformed, truncated and garbage messages.

use super::*;

#[test]
fn tampering_any_byte_of_msg2_fails() {
    let probe_len = {
        let mut pair = Pair::new(
            client_config(&[Suite::Aes128Gcm]),
            server_config(&[Suite::Aes128Gcm]),
        );
        let mut first = pair.client.take_transmit();
        pair.server.handle_received(&mut first).unwrap();
        pair.server.transmit_pending().len()
    };
    for index in 0..probe_len {
        let mut client = ClientHandshake::new(client_config(&[Suite::Aes128Gcm])).unwrap();
        let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
        let mut first = client.take_transmit();
        server.handle_received(&mut first).unwrap();
        let mut msg2 = server.take_transmit();
        assert_eq!(msg2.len(), probe_len);
        msg2[index] ^= 0x20;
        let result = client.handle_received(&mut msg2);
        assert!(!client.is_done(), "byte {index}");
        if index >= 2 {
            assert!(result.is_err(), "byte {index}");
        }
        // A changed length either fails or waits for bytes that never come.
        assert!(client.transmit_pending().is_empty(), "byte {index}");
    }
}

#[test]
fn tampering_any_byte_of_msg3_fails() {
    let token = Some(b"tok".to_vec());
    let config = |token: Option<Vec<u8>>| ClientConfig {
        token,
        ..client_config(&[Suite::Aes128Gcm])
    };
    let mut probe = ClientHandshake::new(config(token.clone())).unwrap();
    let mut probe_server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
    probe_server
        .handle_received(&mut probe.take_transmit())
        .unwrap();
    probe
        .handle_received(&mut probe_server.take_transmit())
        .unwrap();
    let msg3_len = probe.transmit_pending().len();
    assert_eq!(msg3_len, 2 + KEY_LEN + TAG_LEN + 1 + 3 + TAG_LEN);

    for index in 0..msg3_len {
        let mut client = ClientHandshake::new(config(token.clone())).unwrap();
        let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
        server.handle_received(&mut client.take_transmit()).unwrap();
        client.handle_received(&mut server.take_transmit()).unwrap();
        let mut msg3 = client.take_transmit();
        msg3[index] ^= 0x04;
        let result = server.handle_received(&mut msg3);
        assert!(!server.is_done(), "byte {index}");
        if index >= 2 {
            assert_eq!(
                result,
                Err(HandshakeError::Decrypt { message: 3 }),
                "byte {index}"
            );
        }
    }
}

/// A Noise responder driven by hand, to send what an honest server never would.
fn rogue_server_reply(client: &mut ClientHandshake, payload: &[u8]) -> BytesMut {
    let mut noise = build_noise(&server_keypair(), false).unwrap();
    let mut first = client.take_transmit();
    first.advance(HELLO_SIZE);
    let message = take_message(&mut first, 1, MSG1_MIN, MSG1_MAX)
        .unwrap()
        .unwrap();
    read_message(&mut noise, 1, &message).unwrap();
    let mut reply = BytesMut::new();
    write_message(&mut noise, 2, payload, &mut reply).unwrap();
    reply
}

#[test]
fn a_suite_the_client_did_not_offer_is_refused() {
    let mut client = ClientHandshake::new(client_config(&[Suite::Aes256Gcm])).unwrap();
    let mut reply = rogue_server_reply(&mut client, &[STATUS_OK, Suite::Rc6Gcm.id()]);
    assert_eq!(
        client.handle_received(&mut reply),
        Err(HandshakeError::SuiteNotOffered {
            suite: Suite::Rc6Gcm.id()
        })
    );
    assert!(client.transmit_pending().is_empty());

    let mut client = ClientHandshake::new(client_config(&[Suite::Aes256Gcm])).unwrap();
    let mut reply = rogue_server_reply(&mut client, &[STATUS_OK, 200]);
    assert_eq!(
        client.handle_received(&mut reply),
        Err(HandshakeError::SuiteNotOffered { suite: 200 })
    );

    // Plain listed but not allowed by the client.
    let mut client =
        ClientHandshake::new(client_config(&[Suite::Aes256Gcm, Suite::Plain])).unwrap();
    let mut reply = rogue_server_reply(&mut client, &[STATUS_OK, Suite::Plain.id()]);
    assert_eq!(
        client.handle_received(&mut reply),
        Err(HandshakeError::SuiteNotOffered {
            suite: Suite::Plain.id()
        })
    );
}

#[test]
fn malformed_msg2_payloads_are_named() {
    for (payload, fragment) in [
        (&[STATUS_OK][..], "suite id"),
        (&[STATUS_OK, 1, 2][..], "suite id"),
        (&[7, 1][..], "unknown status 7"),
    ] {
        let mut client = ClientHandshake::new(client_config(&[Suite::Aes128Gcm])).unwrap();
        let mut reply = rogue_server_reply(&mut client, payload);
        let error = client.handle_received(&mut reply).unwrap_err();
        assert!(
            matches!(&error, HandshakeError::Malformed { what } if what.contains(fragment)),
            "{error}"
        );
    }
    // A refusal with invalid UTF-8 still reaches the user.
    let mut client = ClientHandshake::new(client_config(&[Suite::Aes128Gcm])).unwrap();
    let mut reply = rogue_server_reply(&mut client, &[STATUS_REFUSED, b'n', 0xff, b'o']);
    assert_eq!(
        client.handle_received(&mut reply),
        Err(HandshakeError::NoCommonSuite {
            reason: "n\u{fffd}o".to_owned()
        })
    );
}

/// A hand-driven Noise initiator sending `payload` as msg1.
fn rogue_client_hello(payload: &[u8]) -> (HandshakeState, BytesMut) {
    let mut noise = build_noise(&client_keypair(), true).unwrap();
    let mut bytes = BytesMut::from(&hello()[..]);
    write_message(&mut noise, 1, payload, &mut bytes).unwrap();
    (noise, bytes)
}

#[test]
fn unknown_suite_ids_in_the_offer_are_skipped() {
    let (mut noise, mut bytes) = rogue_client_hello(&[3, 200, Suite::TwofishGcm.id(), 99, 0]);
    let mut server =
        ServerHandshake::new(server_config(&[Suite::Aes128Gcm, Suite::TwofishGcm])).unwrap();
    server.handle_received(&mut bytes).unwrap();
    let mut msg2 = server.take_transmit();
    let message = take_message(&mut msg2, 2, MSG2_MIN, MAX_MESSAGE_LEN)
        .unwrap()
        .unwrap();
    let payload = read_message(&mut noise, 2, &message).unwrap();
    assert_eq!(payload.0, [STATUS_OK, Suite::TwofishGcm.id()]);
}

#[test]
fn malformed_offers_are_named() {
    for (payload, fragment) in [
        (
            &[2, 1][..],
            "2 suite ids and a flags byte announced, 1 bytes follow",
        ),
        (
            &[0, 0, 0][..],
            "0 suite ids and a flags byte announced, 2 bytes follow",
        ),
    ] {
        let (_, mut bytes) = rogue_client_hello(payload);
        let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
        let error = server.handle_received(&mut bytes).unwrap_err();
        assert!(
            matches!(&error, HandshakeError::Malformed { what } if what.contains(fragment)),
            "{error}"
        );
    }
}

#[test]
fn malformed_msg3_token_length_is_named() {
    let (mut noise, mut bytes) = rogue_client_hello(&[1, Suite::Aes128Gcm.id(), 0]);
    let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
    server.handle_received(&mut bytes).unwrap();
    let mut msg2 = server.take_transmit();
    let message = take_message(&mut msg2, 2, MSG2_MIN, MAX_MESSAGE_LEN)
        .unwrap()
        .unwrap();
    read_message(&mut noise, 2, &message).unwrap();
    let mut msg3 = BytesMut::new();
    write_message(&mut noise, 3, &[5, b'a', b'b'], &mut msg3).unwrap();
    let error = server.handle_received(&mut msg3).unwrap_err();
    assert_eq!(
        error,
        HandshakeError::Malformed {
            what: "msg3: token of 5 bytes announced, 2 bytes follow".to_owned()
        }
    );
}

#[test]
fn bad_hello_is_refused_from_its_first_differing_byte() {
    let mut server = ServerHandshake::new(ServerConfig::new(server_keypair())).unwrap();
    let mut received = BytesMut::from(&b"ZS"[..]);
    server.handle_received(&mut received).unwrap();
    received.extend_from_slice(b"RV");
    let error = server.handle_received(&mut received).unwrap_err();
    assert_eq!(
        error,
        HandshakeError::BadHello {
            found: b"ZSRV".to_vec()
        }
    );
    assert!(error.to_string().contains("\"ZSRV\""), "{error}");

    let mut server = ServerHandshake::new(ServerConfig::new(server_keypair())).unwrap();
    let mut received = BytesMut::from(&b"G"[..]);
    assert_eq!(
        server.handle_received(&mut received),
        Err(HandshakeError::BadHello {
            found: b"G".to_vec()
        })
    );
    // Failed for good.
    assert!(server.is_failed());
    assert_eq!(
        server.outcome().unwrap_err(),
        HandshakeError::BadHello {
            found: b"G".to_vec()
        }
    );
}

#[test]
fn other_handshake_versions_are_refused() {
    let mut server = ServerHandshake::new(ServerConfig::new(server_keypair())).unwrap();
    let mut received = BytesMut::from(&b"ZSHS\x02\x00"[..]);
    assert_eq!(
        server.handle_received(&mut received),
        Err(HandshakeError::UnsupportedVersion { theirs: 2, ours: 1 })
    );
}

#[test]
fn oversized_messages_are_refused_before_buffering() {
    let mut server = ServerHandshake::new(ServerConfig::new(server_keypair())).unwrap();
    let mut received = BytesMut::from(&b"ZSHS\x01\x00\xff\xff"[..]);
    assert_eq!(
        server.handle_received(&mut received),
        Err(HandshakeError::MessageTooLarge {
            message: 1,
            len: 65535,
            max: MSG1_MAX
        })
    );
    let mut server = ServerHandshake::new(ServerConfig::new(server_keypair())).unwrap();
    let mut received = BytesMut::from(&b"ZSHS\x01\x00\x05\x00"[..]);
    assert!(matches!(
        server.handle_received(&mut received),
        Err(HandshakeError::Malformed { .. })
    ));
}

#[test]
fn truncated_input_waits_and_never_finishes() {
    let mut client = ClientHandshake::new(client_config(&[Suite::Aes128Gcm])).unwrap();
    let first = client.take_transmit();
    for cut in 0..first.len() {
        let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
        let mut received = BytesMut::from(&first[..cut]);
        server.handle_received(&mut received).unwrap();
        assert!(!server.is_done());
        assert!(server.transmit_pending().is_empty());
        assert_eq!(
            server.outcome().unwrap_err(),
            HandshakeError::NotFinished,
            "cut at {cut}"
        );
    }
    assert_eq!(client.outcome().unwrap_err(), HandshakeError::NotFinished);
}

#[test]
fn duplicate_suites_are_offered_once() {
    let mut client = ClientHandshake::new(client_config(&[
        Suite::Aes128Gcm,
        Suite::Aes128Gcm,
        Suite::MarsGcm,
    ]))
    .unwrap();
    let first = client.take_transmit();
    assert_eq!(first[FIRST_SUITE_ID_AT - 1], 2);
    assert_eq!(first.len(), HELLO_SIZE + 2 + KEY_LEN + 1 + 2 + 1);
}

proptest! {
    #[test]
    fn garbage_into_a_fresh_server_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        with_hello in any::<bool>(),
        split in any::<prop::sample::Index>(),
    ) {
        let mut server = ServerHandshake::new(ServerConfig::new(server_keypair())).unwrap();
        let mut input = BytesMut::new();
        if with_hello {
            input.extend_from_slice(&hello());
        }
        input.extend_from_slice(&bytes);
        let at = split.index(input.len() + 1);
        let rest = input.split_off(at);
        let first = server.handle_received(&mut input);
        input.extend_from_slice(&rest);
        let second = server.handle_received(&mut input);
        prop_assert!(!server.is_done());
        if first.is_err() {
            prop_assert_eq!(first, second);
        }
    }

    #[test]
    fn garbage_into_a_waiting_client_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut client = ClientHandshake::new(client_config(&[Suite::Aes128Gcm])).unwrap();
        let mut input = BytesMut::from(&bytes[..]);
        let _ = client.handle_received(&mut input);
        prop_assert!(!client.is_done());
    }

}

proptest! {
    // Each case runs real Diffie-Hellman operations: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn garbage_msg3_after_a_real_msg1_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut client = ClientHandshake::new(client_config(&[Suite::Aes128Gcm])).unwrap();
        let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
        server.handle_received(&mut client.take_transmit()).unwrap();
        let mut input = BytesMut::from(&bytes[..]);
        let _ = server.handle_received(&mut input);
        prop_assert!(!server.is_done());
    }
}
