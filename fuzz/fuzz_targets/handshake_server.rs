//! A fresh `ServerHandshake` (fixed key pair) fed client bytes in chunks: never panics,
//! errors are final, garbage never completes a handshake, and a handshake that does
//! complete agrees with the client about every key.
//!
//! Input: `control | chunk | rest`.
//!
//! `chunk` is the size of the pieces the server receives (0: everything at once).
//!
//! `control`:
//! - bits 0..=1, what comes before `rest`:
//!   - 0: nothing, `rest` is all the server gets;
//!   - 1: a valid hello;
//!   - 2: the hello and a real msg1 from a deterministic Noise initiator, whose payload (the
//!     offer) is taken from `rest` as `u8 len | len bytes`; what is left of `rest` follows
//!     as garbage where msg3 belongs;
//!   - 3: as 2, then — if the server accepted the offer — a real msg3 whose payload is
//!     taken from `rest` the same way (`u8 len | len bytes`: token length and token, or
//!     anything else); what is left follows msg3 and must stay in the buffer;
//! - bit 2: the server requires the token `fuzz-token`;
//! - bit 3: the server allows plain and lists every suite, plain included;
//! - bit 4: the server picks a random common suite.
#![no_main]

use std::sync::LazyLock;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_wire::crypto::record::Suite;
use zs_wire::handshake::{
    HANDSHAKE_VERSION, HELLO_MAGIC, NOISE_PARAMS, ServerConfig, ServerHandshake, StaticKeypair,
};

const TOKEN: &[u8] = b"fuzz-token";

static SERVER_KEYPAIR: LazyLock<StaticKeypair> =
    LazyLock::new(|| StaticKeypair::from_private(&[7; 32]));
/// The deterministic initiator's static and ephemeral private keys.
const CLIENT_STATIC: [u8; 32] = [9; 32];
const CLIENT_EPHEMERAL: [u8; 32] = [11; 32];
static CLIENT_PUBLIC: LazyLock<[u8; 32]> =
    LazyLock::new(|| StaticKeypair::from_private(&CLIENT_STATIC).public());

fn hello() -> Vec<u8> {
    let mut hello = HELLO_MAGIC.to_vec();
    hello.extend_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
    hello
}

/// A Noise initiator with fixed keys, speaking zserver's prologue.
fn initiator() -> snow::HandshakeState {
    let prologue = hello();
    snow::Builder::new(NOISE_PARAMS.parse().expect("valid Noise parameters"))
        .local_private_key(&CLIENT_STATIC)
        .expect("key")
        .fixed_ephemeral_key_for_testing_only(&CLIENT_EPHEMERAL)
        .prologue(&prologue)
        .expect("prologue")
        .build_initiator()
        .expect("initiator")
}

/// Splits `u8 len | len bytes` off the front of `input` (short input: what is there).
fn take_payload<'a>(input: &mut &'a [u8]) -> &'a [u8] {
    let Some((&len, rest)) = input.split_first() else {
        return &[];
    };
    let (payload, rest) = rest.split_at(usize::from(len).min(rest.len()));
    *input = rest;
    payload
}

/// Appends one framed Noise message (`u16 len | message`) to `out`.
fn write_framed(noise: &mut snow::HandshakeState, payload: &[u8], out: &mut Vec<u8>) {
    let mut buffer = vec![0u8; 65535];
    let len = noise
        .write_message(payload, &mut buffer)
        .expect("small payloads always fit");
    out.extend_from_slice(&u16::try_from(len).expect("fits in u16").to_le_bytes());
    out.extend_from_slice(&buffer[..len]);
}

struct Fed {
    server: ServerHandshake,
    received: BytesMut,
    error: Option<zs_wire::handshake::HandshakeError>,
}

impl Fed {
    /// Feeds `bytes` in pieces of `chunk`; stops at the first error, which must be final.
    fn feed(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk.max(1)) {
            self.received.extend_from_slice(piece);
            if let Some(error) = &self.error {
                // Final: the same error again, whatever arrives.
                assert_eq!(
                    self.server.handle_received(&mut self.received).as_ref(),
                    Err(error)
                );
                continue;
            }
            if let Err(error) = self.server.handle_received(&mut self.received) {
                assert!(self.server.is_failed());
                assert!(!self.server.is_done());
                self.error = Some(error);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [control, chunk, ref rest @ ..] = data[..] else {
        return;
    };
    let mut rest = rest;
    let chunk = if chunk == 0 {
        usize::MAX
    } else {
        usize::from(chunk)
    };
    let mode = control & 3;

    let mut config = ServerConfig::new(SERVER_KEYPAIR.clone());
    if control & 4 != 0 {
        config.token = Some(TOKEN.to_vec());
    }
    if control & 8 != 0 {
        config.allow_plain = true;
        config.suites = Suite::ALL.to_vec();
    }
    config.random_suite = control & 16 != 0;
    let token_required = config.token.is_some();
    let server_suites = config.suites.clone();
    let mut fed = Fed {
        server: ServerHandshake::new(config).expect("valid config"),
        received: BytesMut::new(),
        error: None,
    };

    if mode == 0 || mode == 1 {
        if mode == 1 {
            fed.feed(&hello(), chunk);
        }
        fed.feed(rest, chunk);
        // Completing needs msg3 under keys mixed with the server's random ephemeral key.
        assert!(!fed.server.is_done(), "garbage completed a handshake");
        return;
    }

    // A real hello and msg1 with a fuzzed offer.
    let mut noise = initiator();
    let offer = take_payload(&mut rest);
    let mut first = hello();
    write_framed(&mut noise, offer, &mut first);
    fed.feed(&first, chunk);
    let msg2 = fed.server.take_transmit();

    if mode == 2 || fed.error.is_some() || msg2.is_empty() {
        // A refusal still goes out as msg2 before the error; the client can read it.
        if let Some(error) = &fed.error
            && !msg2.is_empty()
        {
            let mut payload = vec![0u8; 65535];
            let body = &msg2[2..];
            let len = noise
                .read_message(body, &mut payload)
                .expect("the server's msg2 decrypts");
            assert_eq!(
                payload[..len].first(),
                Some(&1),
                "msg2 with an error must be a refusal: {error}"
            );
        }
        assert!(
            fed.error.is_some() || !msg2.is_empty(),
            "a complete msg1 got no answer"
        );
        fed.feed(rest, chunk);
        assert!(!fed.server.is_done(), "handshake completed without msg3");
        return;
    }

    // Accepted: read msg2 as the client would, then send a real msg3 with a fuzzed payload.
    let declared = usize::from(u16::from_le_bytes([msg2[0], msg2[1]]));
    assert_eq!(declared + 2, msg2.len(), "msg2 is framed exactly");
    let mut payload2 = vec![0u8; 65535];
    let len = noise
        .read_message(&msg2[2..], &mut payload2)
        .expect("the server's msg2 decrypts");
    let [0, chosen] = payload2[..len] else {
        panic!(
            "accepting msg2 payload is not `0 | suite`: {:?}",
            &payload2[..len]
        );
    };
    let suite = Suite::from_id(chosen).expect("the server chose a known suite");
    assert!(
        server_suites.contains(&suite),
        "the server chose a suite it does not allow"
    );
    assert!(!offer.is_empty(), "an empty offer was accepted");
    assert_eq!(
        offer.len(),
        usize::from(offer[0]) + 2,
        "a malformed offer was accepted"
    );
    assert!(
        offer[1..offer.len() - 1].contains(&chosen),
        "chose a suite not offered"
    );
    if suite.is_plain() {
        assert!(
            control & 8 != 0 && offer[offer.len() - 1] & 1 != 0,
            "plain without both flags"
        );
    }
    assert_eq!(
        noise.get_remote_static(),
        Some(&SERVER_KEYPAIR.public()[..]),
        "msg2 carries the server's static key"
    );

    let token_payload = take_payload(&mut rest);
    let mut third = Vec::new();
    write_framed(&mut noise, token_payload, &mut third);
    third.extend_from_slice(rest);
    fed.feed(&third, chunk);

    let well_formed = token_payload
        .split_first()
        .is_some_and(|(&len, token)| usize::from(len) == token.len());
    if !well_formed {
        assert!(
            fed.error.is_some(),
            "malformed msg3 payload accepted: {token_payload:?}"
        );
        return;
    }
    assert!(
        fed.error.is_none(),
        "well-formed msg3 refused: {:?}",
        fed.error
    );
    assert!(fed.server.is_done());
    assert_eq!(
        &fed.received[..],
        rest,
        "bytes after msg3 must stay in the buffer"
    );
    let token = &token_payload[1..];
    let outcome = fed.server.outcome().expect("done");
    assert_eq!(outcome.suite, suite);
    assert_eq!(outcome.client_token_ok, !token_required || token == TOKEN);
    assert_eq!(outcome.peer_static, *CLIENT_PUBLIC);
    let (client_to_server, server_to_client) = noise.dangerously_get_raw_split();
    assert_eq!(outcome.receive_secret, client_to_server);
    assert_eq!(outcome.send_secret, server_to_client);
    assert_eq!(outcome.handshake_hash, noise.get_handshake_hash());
});
