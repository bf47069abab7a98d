//! Suite negotiation, plain, random choice and downgrade attempts.

use super::*;

#[test]
fn no_common_suite_gives_both_sides_a_clear_error() {
    let mut pair = Pair::new(
        client_config(&[Suite::Rc6Gcm, Suite::MarsGcm]),
        server_config(&[Suite::Aes128Gcm, Suite::ChaCha20Poly1305]),
    );
    pair.drive();
    let expected = format!(
        "no common cipher suite; server allows: {}, {}; client offered: {}, {}",
        Suite::Aes128Gcm.name(),
        Suite::ChaCha20Poly1305.name(),
        Suite::Rc6Gcm.name(),
        Suite::MarsGcm.name()
    );
    assert_eq!(
        pair.server_error,
        Some(HandshakeError::NoCommonSuite {
            reason: expected.clone()
        })
    );
    // The client got the server's reason over the encrypted msg2.
    assert_eq!(
        pair.client_error,
        Some(HandshakeError::NoCommonSuite { reason: expected })
    );
    assert!(pair.client.is_failed() && pair.server.is_failed());
}

#[test]
fn refusal_is_queued_for_the_client_when_the_server_fails() {
    let mut client = ClientHandshake::new(client_config(&[Suite::Rc6Gcm])).unwrap();
    let mut server = ServerHandshake::new(server_config(&[Suite::Aes128Gcm])).unwrap();
    let mut received = client.take_transmit();
    assert!(matches!(
        server.handle_received(&mut received),
        Err(HandshakeError::NoCommonSuite { .. })
    ));
    // msg2 with the refusal is waiting to be flushed before the close.
    assert!(!server.transmit_pending().is_empty());
}

#[test]
fn plain_is_chosen_only_when_both_list_and_allow_it() {
    let both = [Suite::Plain, Suite::Aes128Gcm];
    let choose = |client_allows: bool, server_allows: bool, client: &[Suite], server: &[Suite]| {
        let client = ClientConfig {
            allow_plain: client_allows,
            ..client_config(client)
        };
        let server = ServerConfig {
            allow_plain: server_allows,
            ..server_config(server)
        };
        let (client, server) = run(client, server);
        match (client, server) {
            (Ok(client), Ok(server)) => {
                assert_keys_match(&client, &server);
                Some(client.suite)
            }
            (Err(_), Err(_)) => None,
            other => panic!("one side failed alone: {other:?}"),
        }
    };
    assert_eq!(choose(true, true, &both, &both), Some(Suite::Plain));
    assert_eq!(choose(false, true, &both, &both), Some(Suite::Aes128Gcm));
    assert_eq!(choose(true, false, &both, &both), Some(Suite::Aes128Gcm));
    assert_eq!(choose(false, false, &both, &both), Some(Suite::Aes128Gcm));
    // Both allow it but one does not list it.
    assert_eq!(
        choose(true, true, &[Suite::Aes128Gcm], &both),
        Some(Suite::Aes128Gcm)
    );
    assert_eq!(
        choose(true, true, &both, &[Suite::Aes128Gcm]),
        Some(Suite::Aes128Gcm)
    );
    // Plain alone without both flags: nothing in common.
    assert_eq!(choose(true, false, &[Suite::Plain], &[Suite::Plain]), None);
    assert_eq!(choose(false, true, &[Suite::Plain], &[Suite::Plain]), None);
}

#[test]
fn server_order_decides_unless_random() {
    let (client, _) = run(
        client_config(&[Suite::Aes256Gcm, Suite::TwofishGcm, Suite::Aes128Gcm]),
        server_config(&[Suite::Aes128Gcm, Suite::TwofishGcm]),
    );
    assert_eq!(client.unwrap().suite, Suite::Aes128Gcm);
}

#[test]
fn random_suite_picks_several_and_only_from_the_intersection() {
    let server = ServerConfig {
        random_suite: true,
        ..server_config(&encrypted_suites())
    };
    let offered = [
        Suite::MarsGcm,
        Suite::Rc6Gcm,
        Suite::Aes256Gcm,
        Suite::SerpentGcm,
    ];
    // Many choices through the pure selection...
    let offer = Offer {
        suites: vec![
            Suite::MarsGcm,
            Suite::Rc6Gcm,
            Suite::Aes256Gcm,
            Suite::SerpentGcm,
            Suite::Plain,
        ],
        allow_plain: true,
        stable_link: false,
    };
    let mut seen = HashSet::new();
    for _ in 0..400 {
        seen.insert(choose_suite(&server, &offer).unwrap().unwrap());
    }
    assert_eq!(seen, offered.into_iter().collect::<HashSet<_>>());
    // ...and some through whole handshakes.
    let mut seen = HashSet::new();
    for _ in 0..24 {
        let (client, server) = run(client_config(&offered), server.clone());
        let (client, server) = (client.unwrap(), server.unwrap());
        assert_keys_match(&client, &server);
        assert!(offered.contains(&client.suite), "{:?}", client.suite);
        seen.insert(client.suite);
    }
    assert!(seen.len() > 1, "always {seen:?}");
}

#[test]
fn random_index_stays_in_range() {
    for n in 1..10 {
        for _ in 0..50 {
            assert!(random_index(n).unwrap() < n);
        }
    }
}

/// Runs a handshake with the client's first transmission altered by `tamper`; returns both
/// sides' first errors and whether each finished.
fn run_tampered_msg1(
    client: ClientConfig,
    server: ServerConfig,
    tamper: impl FnOnce(&mut BytesMut),
) -> (Option<HandshakeError>, Option<HandshakeError>, bool) {
    let mut pair = Pair::new(client, server);
    let mut first = pair.client.take_transmit();
    tamper(&mut first);
    pair.server_received.extend_from_slice(&first);
    if let Err(error) = pair.server.handle_received(&mut pair.server_received) {
        pair.server_error = Some(error);
    }
    pair.drive();
    let done = pair.client.is_done() || pair.server.is_done();
    (pair.client_error, pair.server_error, done)
}

#[test]
fn downgrade_by_replacing_an_offered_suite_fails_at_the_client() {
    // The client offers only strong suites; an attacker swaps in one the server prefers.
    let client = client_config(&[Suite::Aes256Gcm, Suite::ChaCha20Poly1305]);
    let server = server_config(&[Suite::Rc6Gcm, Suite::Aes256Gcm, Suite::ChaCha20Poly1305]);
    let (client_error, _, done) = run_tampered_msg1(client, server, |bytes| {
        bytes[FIRST_SUITE_ID_AT] = Suite::Rc6Gcm.id();
    });
    assert_eq!(client_error, Some(HandshakeError::Decrypt { message: 2 }));
    assert!(!done);
}

#[test]
fn downgrade_by_reordering_the_offer_fails_at_the_client() {
    let client = client_config(&[Suite::Aes256Gcm, Suite::Aes128Gcm]);
    let server = ServerConfig {
        random_suite: false,
        ..server_config(&[Suite::Aes128Gcm, Suite::Aes256Gcm])
    };
    let (client_error, _, done) = run_tampered_msg1(client, server, |bytes| {
        bytes.swap(FIRST_SUITE_ID_AT, FIRST_SUITE_ID_AT + 1);
    });
    assert_eq!(client_error, Some(HandshakeError::Decrypt { message: 2 }));
    assert!(!done);
}

#[test]
fn downgrade_to_plain_by_setting_the_flag_fails_at_the_client() {
    // The client lists plain but does not allow it; the attacker sets the flag.
    let client = client_config(&[Suite::Aes256Gcm, Suite::Plain]);
    let server = ServerConfig {
        allow_plain: true,
        ..server_config(&[Suite::Plain, Suite::Aes256Gcm])
    };
    let (client_error, _, done) = run_tampered_msg1(client, server, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] |= FLAG_ALLOW_PLAIN;
    });
    assert_eq!(client_error, Some(HandshakeError::Decrypt { message: 2 }));
    assert!(!done);
}

#[test]
fn downgrade_by_dropping_suites_fails_at_the_client_or_the_server() {
    // Shrinking the count makes the payload malformed; the server sees it.
    let client = client_config(&[Suite::Aes256Gcm, Suite::Aes128Gcm]);
    let (client_error, server_error, done) =
        run_tampered_msg1(client, server_config(&[Suite::Aes128Gcm]), |bytes| {
            bytes[FIRST_SUITE_ID_AT - 1] = 1;
        });
    assert!(matches!(
        server_error,
        Some(HandshakeError::Malformed { .. })
    ));
    assert!(client_error.is_none() && !done);
}

#[test]
fn every_byte_of_msg1_matters() {
    let template = ClientHandshake::new(client_config(&[Suite::Aes128Gcm]))
        .unwrap()
        .take_transmit();
    for index in HELLO_SIZE + 2..template.len() {
        let (client_error, server_error, done) = run_tampered_msg1(
            client_config(&[Suite::Aes128Gcm]),
            server_config(&[Suite::Aes128Gcm]),
            |bytes| bytes[index] ^= 0x01,
        );
        assert!(!done, "byte {index}");
        assert!(
            client_error.is_some() || server_error.is_some(),
            "byte {index}"
        );
    }
}
