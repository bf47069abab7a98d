//! A client and a server handshake wired back to back in memory (the `Pair` of
//! `session/tests.rs`), plus tampering, garbage and key-file tests.

use std::collections::HashSet;
use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;

/// RFC 7748, section 6.1: Alice's private and public key.
const ALICE_PRIVATE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

/// Hello (6) + length (2) + `e` (32) + count (1): the offset of the first suite id in the
/// client's first transmission.
const FIRST_SUITE_ID_AT: usize = HELLO_SIZE + 2 + KEY_LEN + 1;

/// Fixed keys, derived once (scalar multiplication is slow in unoptimized builds).
static SERVER_KEYPAIR: LazyLock<StaticKeypair> =
    LazyLock::new(|| StaticKeypair::from_private(&[0x42; 32]));
static CLIENT_KEYPAIR: LazyLock<StaticKeypair> =
    LazyLock::new(|| StaticKeypair::from_private(&[0x17; 32]));

fn server_keypair() -> StaticKeypair {
    SERVER_KEYPAIR.clone()
}

fn client_keypair() -> StaticKeypair {
    CLIENT_KEYPAIR.clone()
}

fn server_config(suites: &[Suite]) -> ServerConfig {
    ServerConfig {
        suites: suites.to_vec(),
        ..ServerConfig::new(server_keypair())
    }
}

fn client_config(suites: &[Suite]) -> ClientConfig {
    ClientConfig {
        suites: suites.to_vec(),
        static_key: Some(client_keypair()),
        ..ClientConfig::new()
    }
}

/// Every suite but plain.
fn encrypted_suites() -> Vec<Suite> {
    Suite::ALL
        .into_iter()
        .filter(|suite| !suite.is_plain())
        .collect()
}

struct Pair {
    client: ClientHandshake,
    server: ServerHandshake,
    client_received: BytesMut,
    server_received: BytesMut,
    /// The first error of each side.
    client_error: Option<HandshakeError>,
    server_error: Option<HandshakeError>,
}

impl Pair {
    fn new(client: ClientConfig, server: ServerConfig) -> Self {
        Self {
            client: ClientHandshake::new(client).unwrap(),
            server: ServerHandshake::new(server).unwrap(),
            client_received: BytesMut::new(),
            server_received: BytesMut::new(),
            client_error: None,
            server_error: None,
        }
    }

    /// Moves every pending byte in both directions until both are quiet.
    fn drive(&mut self) {
        loop {
            let to_server = self.client.take_transmit();
            let to_client = self.server.take_transmit();
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            self.server_received.extend_from_slice(&to_server);
            self.client_received.extend_from_slice(&to_client);
            if let Err(error) = self.server.handle_received(&mut self.server_received) {
                self.server_error.get_or_insert(error);
            }
            if let Err(error) = self.client.handle_received(&mut self.client_received) {
                self.client_error.get_or_insert(error);
            }
        }
    }

    fn outcomes(
        self,
    ) -> (
        Result<HandshakeOutcome, HandshakeError>,
        Result<HandshakeOutcome, HandshakeError>,
    ) {
        (self.client.outcome(), self.server.outcome())
    }
}

/// Runs a whole handshake in memory.
fn run(
    client: ClientConfig,
    server: ServerConfig,
) -> (
    Result<HandshakeOutcome, HandshakeError>,
    Result<HandshakeOutcome, HandshakeError>,
) {
    let mut pair = Pair::new(client, server);
    pair.drive();
    pair.outcomes()
}

fn assert_keys_match(client: &HandshakeOutcome, server: &HandshakeOutcome) {
    assert_eq!(client.send_secret, server.receive_secret);
    assert_eq!(client.receive_secret, server.send_secret);
    assert_ne!(client.send_secret, client.receive_secret);
    assert_ne!(client.send_secret, [0; 32]);
    assert_eq!(client.handshake_hash, server.handshake_hash);
    assert_eq!(client.handshake_hash.len(), 32);
    assert_eq!(client.suite, server.suite);
}

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

proptest! {
    #[test]
    fn fingerprint_text_round_trips(bytes in any::<[u8; 32]>()) {
        let fingerprint = Fingerprint(bytes);
        let text = fingerprint.to_string();
        prop_assert_eq!(text.parse::<Fingerprint>().unwrap(), fingerprint);
        prop_assert_eq!(text.to_uppercase().parse::<Fingerprint>().unwrap(), fingerprint);
        prop_assert_eq!(hex(&bytes).parse::<Fingerprint>().unwrap(), fingerprint);
    }

    #[test]
    fn fingerprint_parse_never_panics(text in "\\PC{0,80}") {
        let _ = text.parse::<Fingerprint>();
    }

    #[test]
    fn key_file_parse_never_panics(text in "\\PC{0,200}") {
        let _ = StaticKeypair::from_text(&text);
    }
}

#[test]
fn public_key_derivation_matches_rfc_7748() {
    let private = decode_hex32(ALICE_PRIVATE).unwrap();
    let keypair = StaticKeypair::from_private(&private);
    assert_eq!(hex(&keypair.public()), ALICE_PUBLIC);
}

#[test]
fn public_key_derivation_matches_snow() {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().unwrap();
    for _ in 0..4 {
        let generated = snow::Builder::new(params.clone())
            .generate_keypair()
            .unwrap();
        let private: [u8; 32] = generated.private.as_slice().try_into().unwrap();
        assert_eq!(
            StaticKeypair::from_private(&private).public().as_slice(),
            generated.public.as_slice()
        );
    }
}

#[test]
fn generated_keypairs_differ() {
    let a = StaticKeypair::generate().unwrap();
    let b = StaticKeypair::generate().unwrap();
    assert_ne!(a.public(), b.public());
    assert_eq!(
        StaticKeypair::from_private(a.private()).public(),
        a.public()
    );
}

#[test]
fn keypair_text_round_trips() {
    let keypair = StaticKeypair::generate().unwrap();
    let text = keypair.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("private = \"") && lines[0].len() == 11 + 64 + 1);
    assert_eq!(lines[1], format!("public = \"{}\"", hex(&keypair.public())));
    let back = StaticKeypair::from_text(&text).unwrap();
    assert_eq!(back.public(), keypair.public());
    assert_eq!(back.private(), keypair.private());
    // Comments, blank lines, upper case, other order and spacing are fine.
    let loose = format!(
        "# server key\n\n  public=\"{}\"\nprivate   =   \"{}\"\n",
        hex(&keypair.public()).to_uppercase(),
        hex(keypair.private())
    );
    assert_eq!(
        StaticKeypair::from_text(&loose).unwrap().public(),
        keypair.public()
    );
    // Debug shows the fingerprint, not the private key.
    let debug = format!("{keypair:?}");
    assert!(!debug.contains(&hex(keypair.private())));
    assert!(debug.contains(&keypair.fingerprint().to_string()));
}

#[test]
fn keypair_text_with_a_wrong_public_key_is_refused() {
    let keypair = StaticKeypair::from_private(&[1; 32]);
    let text = format!(
        "private = \"{}\"\npublic = \"{}\"\n",
        hex(keypair.private()),
        hex(&[2; 32])
    );
    assert_eq!(
        StaticKeypair::from_text(&text).unwrap_err(),
        HandshakeError::PublicKeyMismatch {
            derived: keypair.fingerprint()
        }
    );
}

#[test]
fn bad_key_files_are_named_without_quoting_the_secret() {
    let private = hex(&[0x5a; 32]);
    let public = hex(&StaticKeypair::from_private(&[0x5a; 32]).public());
    let cases = [
        (
            format!("public = \"{public}\"\n"),
            "no `private = ...` line",
        ),
        (
            format!("private = \"{private}\"\n"),
            "no `public = ...` line",
        ),
        (
            format!("private = \"{private}\"\nprivate = \"{private}\"\n"),
            "line 2: private given twice",
        ),
        (
            format!("private = \"{}\"\n", &private[..63]),
            "line 1: private must be 64 hexadecimal digits",
        ),
        (
            format!("private = {private}\n"),
            "line 1: the value of \"private\" must be in double quotes",
        ),
        (
            "secret = \"00\"\n".to_owned(),
            "line 1: unknown name \"secret\"",
        ),
        (
            "just words\n".to_owned(),
            "line 1: expected `name = \"hex\"`",
        ),
        (
            format!("private = \"{}zz\"\n", &private[..62]),
            "must be 64",
        ),
    ];
    for (text, fragment) in cases {
        let error = StaticKeypair::from_text(&text).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(fragment), "{message}");
        assert!(!message.contains(&private[..16]), "{message}");
    }
}

#[test]
fn fingerprint_is_sha3_256_of_the_public_key() {
    let fingerprint = Fingerprint::of_public_key(&[0; 32]);
    assert_eq!(
        fingerprint.to_string(),
        "sha3-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e"
    );
    assert_eq!(
        format!("{fingerprint:?}"),
        format!("Fingerprint({fingerprint})")
    );
    let keypair = server_keypair();
    assert_eq!(
        keypair.fingerprint(),
        Fingerprint::of_public_key(&keypair.public())
    );
    assert_eq!(keypair.fingerprint().as_bytes().len(), 32);
}

#[test]
fn fingerprints_parse_with_or_without_prefix_in_any_case() {
    let expected = Fingerprint::of_public_key(&[0; 32]);
    for text in [
        "sha3-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e",
        "SHA3-256:9E6291970CB44DD94008C79BCAF9D86F18B4B49BA5B2A04781DB7199ED3B9E4E",
        "9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e",
        "  9E6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e\n",
    ] {
        assert_eq!(text.parse::<Fingerprint>().unwrap(), expected, "{text}");
    }
}

#[test]
fn bad_fingerprints_are_refused() {
    let short = "sha3-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4";
    assert_eq!(
        short.parse::<Fingerprint>().unwrap_err(),
        HandshakeError::BadFingerprint {
            what: "63 characters where 64 hex digits are expected".to_owned()
        }
    );
    let long = "9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e00";
    assert!(long.parse::<Fingerprint>().is_err());
    let not_hex = "xe6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e";
    assert_eq!(
        not_hex.parse::<Fingerprint>().unwrap_err(),
        HandshakeError::BadFingerprint {
            what: "not a hexadecimal number".to_owned()
        }
    );
    assert!("".parse::<Fingerprint>().is_err());
    assert!("sha3-256:".parse::<Fingerprint>().is_err());
    assert!(
        "sha2-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e"
            .parse::<Fingerprint>()
            .is_err()
    );
    // Multi-byte characters near the prefix boundary.
    assert!("sha3-25é:00".parse::<Fingerprint>().is_err());
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
