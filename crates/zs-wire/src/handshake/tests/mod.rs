//! A client and a server handshake wired back to back in memory (the `Pair` of
//! `session/tests.rs`), plus tampering, garbage and key-file tests.

use std::collections::HashSet;
use std::sync::LazyLock;

use bytes::{Buf, BufMut, BytesMut};
use proptest::prelude::*;
use snow::HandshakeState;

use super::identity::decode_hex32;
use super::message::{build_noise, read_message, take_message, write_message};
use super::negotiation::{Offer, choose_suite, random_index};
use super::*;
use crate::crypto::hash::hex;

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

mod flow;
mod identity;
mod negotiation;
mod tampering;
