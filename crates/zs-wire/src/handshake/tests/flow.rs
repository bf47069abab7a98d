//! Whole handshakes: every suite, buffering, feeding, pins, tokens and the StableIO flag.

use super::*;

#[test]
fn full_handshake_for_every_suite() {
    for suite in Suite::ALL {
        let mut client = client_config(&[suite]);
        client.allow_plain = suite.is_plain();
        let mut server = server_config(&[suite]);
        server.allow_plain = suite.is_plain();
        let (client, server) = run(client, server);
        let (client, server) = (client.unwrap(), server.unwrap());
        assert_eq!(client.suite, suite);
        assert_keys_match(&client, &server);
        assert_eq!(client.peer_static, server_keypair().public());
        assert_eq!(client.peer_fingerprint(), server_keypair().fingerprint());
        assert_eq!(server.peer_static, client_keypair().public());
        assert!(client.client_token_ok && server.client_token_ok);
    }
}

#[test]
fn default_configs_agree_and_a_random_client_key_differs_each_time() {
    let first = run(ClientConfig::new(), ServerConfig::new(server_keypair()));
    let second = run(ClientConfig::new(), ServerConfig::new(server_keypair()));
    let (client, server) = (first.0.unwrap(), first.1.unwrap());
    assert_keys_match(&client, &server);
    assert_eq!(client.suite, Suite::DEFAULT_SUITES[0]);
    let other_server = second.1.unwrap();
    assert_ne!(server.peer_static, other_server.peer_static);
    // Fresh ephemeral keys: fresh secrets each time.
    assert_ne!(server.send_secret, other_server.send_secret);
}

#[test]
fn outcome_debug_shows_no_secret() {
    let (client, _) = run(
        client_config(&[Suite::Aes128Gcm]),
        server_config(&[Suite::Aes128Gcm]),
    );
    let client = client.unwrap();
    let text = format!("{client:?}");
    assert!(!text.contains(&hex(&client.send_secret)));
    assert!(text.contains("sha3-256:"));
    let config = ClientConfig {
        token: Some(b"hunter2".to_vec()),
        ..ClientConfig::new()
    };
    assert!(!format!("{config:?}").contains("104, 117"));
    assert!(format!("{config:?}").contains("<7 bytes>"));
}

#[test]
fn bytes_after_the_last_handshake_message_stay_in_the_buffer() {
    let mut client = ClientHandshake::new(client_config(&[Suite::Aes128Gcm])).unwrap();
    let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();

    let mut server_received = client.take_transmit();
    server.handle_received(&mut server_received).unwrap();
    assert!(server_received.is_empty());
    assert!(!server.is_done());

    let mut client_received = server.take_transmit();
    client_received.extend_from_slice(b"early");
    client.handle_received(&mut client_received).unwrap();
    assert!(client.is_done());
    assert_eq!(&client_received[..], b"early");
    // Done: later input is left alone.
    client.handle_received(&mut client_received).unwrap();
    assert_eq!(&client_received[..], b"early");

    let mut server_received = BytesMut::new();
    server_received.extend_from_slice(client.transmit_pending());
    let msg3_len = client.transmit_pending().len();
    client.advance_transmit(msg3_len);
    assert!(client.transmit_pending().is_empty());
    server_received.extend_from_slice(b"RECORD bytes");
    server.handle_received(&mut server_received).unwrap();
    assert!(server.is_done());
    assert_eq!(&server_received[..], b"RECORD bytes");
    assert!(server.transmit_pending().is_empty());

    let (client, server) = (client.outcome().unwrap(), server.outcome().unwrap());
    assert_keys_match(&client, &server);
}

#[test]
fn hello_msg1_and_trailing_msg3_in_one_read_are_split_correctly() {
    // The server may get msg3 and the first record in the same read.
    let mut client = ClientHandshake::new(client_config(&[Suite::ChaCha20Poly1305])).unwrap();
    let mut server = ServerHandshake::new(server_config(&[Suite::ChaCha20Poly1305])).unwrap();
    let mut to_server = client.take_transmit();
    server.handle_received(&mut to_server).unwrap();
    let mut to_client = server.take_transmit();
    client.handle_received(&mut to_client).unwrap();
    let mut to_server = client.take_transmit();
    to_server.extend_from_slice(&[1, 2, 3]);
    server.handle_received(&mut to_server).unwrap();
    assert_eq!(&to_server[..], &[1, 2, 3]);
    assert!(server.is_done());
}

#[test]
fn byte_by_byte_feeding_completes() {
    let mut client = ClientHandshake::new(client_config(&[Suite::SerpentGcm])).unwrap();
    let mut server = ServerHandshake::new(server_config(&[Suite::SerpentGcm])).unwrap();
    let mut server_received = BytesMut::new();
    let mut client_received = BytesMut::new();
    for _ in 0..4 {
        for byte in client.take_transmit() {
            server_received.put_u8(byte);
            server.handle_received(&mut server_received).unwrap();
        }
        for byte in server.take_transmit() {
            client_received.put_u8(byte);
            client.handle_received(&mut client_received).unwrap();
        }
    }
    assert!(client.is_done() && server.is_done());
    assert!(server_received.is_empty() && client_received.is_empty());
    assert_keys_match(&client.outcome().unwrap(), &server.outcome().unwrap());
}

#[test]
fn pinned_fingerprint_that_matches_is_accepted() {
    let client = ClientConfig {
        pinned: Some(server_keypair().fingerprint()),
        ..client_config(&[Suite::Aes256Gcm])
    };
    let (client, server) = run(client, server_config(&[Suite::Aes256Gcm]));
    assert_keys_match(&client.unwrap(), &server.unwrap());
}

#[test]
fn pinned_fingerprint_mismatch_fails_before_msg3() {
    let expected = Fingerprint::of_public_key(&[9; 32]);
    let client = ClientConfig {
        pinned: Some(expected),
        ..client_config(&[Suite::Aes256Gcm])
    };
    let mut pair = Pair::new(client, server_config(&[Suite::Aes256Gcm]));
    pair.drive();
    assert_eq!(
        pair.client_error,
        Some(HandshakeError::FingerprintMismatch {
            expected,
            actual: server_keypair().fingerprint(),
        })
    );
    assert!(pair.client.is_failed());
    assert!(pair.client.transmit_pending().is_empty());
    // The server never got msg3.
    assert!(!pair.server.is_done() && pair.server_error.is_none());
    // The error names both fingerprints.
    let text = pair.client_error.unwrap().to_string();
    assert!(text.contains(&expected.to_string()));
    assert!(text.contains(&server_keypair().fingerprint().to_string()));
    // Asked again, the client repeats the error.
    let mut more = BytesMut::from(&b"xx"[..]);
    assert!(matches!(
        pair.client.handle_received(&mut more),
        Err(HandshakeError::FingerprintMismatch { .. })
    ));
    assert!(matches!(
        pair.client.outcome(),
        Err(HandshakeError::FingerprintMismatch { .. })
    ));
}

fn run_with_tokens(client_token: Option<&[u8]>, server_token: Option<&[u8]>) -> (bool, bool) {
    let client = ClientConfig {
        token: client_token.map(<[u8]>::to_vec),
        ..client_config(&[Suite::Aes128Gcm])
    };
    let server = ServerConfig {
        token: server_token.map(<[u8]>::to_vec),
        ..server_config(&[Suite::Aes128Gcm])
    };
    let (client, server) = run(client, server);
    let (client, server) = (client.unwrap(), server.unwrap());
    assert_keys_match(&client, &server);
    (client.client_token_ok, server.client_token_ok)
}

#[test]
fn client_token_is_checked_by_the_server_without_failing_the_handshake() {
    // Required and right.
    assert_eq!(
        run_with_tokens(Some(b"s3cret"), Some(b"s3cret")),
        (true, true)
    );
    // Required and wrong: the handshake completes, the outcome says so.
    assert_eq!(
        run_with_tokens(Some(b"s3creT"), Some(b"s3cret")),
        (true, false)
    );
    assert_eq!(
        run_with_tokens(Some(b"s3cre"), Some(b"s3cret")),
        (true, false)
    );
    // Required and absent.
    assert_eq!(run_with_tokens(None, Some(b"s3cret")), (true, false));
    // Not required: anything goes.
    assert_eq!(run_with_tokens(Some(b"whatever"), None), (true, true));
    assert_eq!(run_with_tokens(None, None), (true, true));
    // The longest token.
    let long = [0xab; MAX_TOKEN_LEN];
    assert_eq!(run_with_tokens(Some(&long), Some(&long)), (true, true));
}

#[test]
fn tokens_longer_than_255_bytes_are_refused_up_front() {
    let client = ClientConfig {
        token: Some(vec![0; 256]),
        ..ClientConfig::new()
    };
    assert_eq!(
        ClientHandshake::new(client).unwrap_err(),
        HandshakeError::TokenTooLong { len: 256 }
    );
    let server = ServerConfig {
        token: Some(vec![0; 300]),
        ..ServerConfig::new(server_keypair())
    };
    assert_eq!(
        ServerHandshake::new(server).unwrap_err(),
        HandshakeError::TokenTooLong { len: 300 }
    );
}
#[test]
fn the_stable_link_flag_reaches_the_server_and_is_bound_to_the_transcript() {
    for stable_link in [false, true] {
        let mut client = ClientConfig::new();
        client.stable_link = stable_link;
        let (client, server) = run(client, ServerConfig::new(server_keypair()));
        let (client, server) = (client.unwrap(), server.unwrap());
        assert_eq!(server.stable_link, stable_link);
        assert_eq!(client.stable_link, stable_link);
        assert_keys_match(&client, &server);
    }
    // msg1 is in clear, but it is hashed into the transcript: a flipped flag breaks msg2.
    let mut client_config = ClientConfig::new();
    client_config.stable_link = true;
    let mut client = ClientHandshake::new(client_config).unwrap();
    let mut server = ServerHandshake::new(ServerConfig::new(server_keypair())).unwrap();
    let mut to_server = client.take_transmit();
    let flags_at = to_server.len() - 1; // msg1's last payload byte: the flags
    to_server[flags_at] &= !0x02;
    server.handle_received(&mut to_server).unwrap();
    let mut to_client = server.take_transmit();
    assert!(client.handle_received(&mut to_client).is_err());
}
