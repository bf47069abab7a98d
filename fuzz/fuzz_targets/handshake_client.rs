//! A real `ClientHandshake` against a real `ServerHandshake`, with msg2 replaced or mutated
//! by the input before the client sees it: the client never panics, never sends msg3 after
//! a failure, never accepts a msg2 that differs from the server's, and an untouched msg2
//! always completes with both sides agreeing on every key.
//!
//! Input: `control | chunk | rest`.
//!
//! `chunk` is the size of the pieces the client receives (0: everything at once).
//!
//! `control`:
//! - bit 0: 0 = mutate the server's msg2, 1 = replace it with `rest`;
//! - bit 1: the client pins the server's fingerprint;
//! - bit 2: the client pins a wrong fingerprint (overrides bit 1);
//! - bit 3: both sides list and allow plain;
//! - bit 4: the client offers only `chacha20-poly1305` (and plain with bit 3);
//! - bit 5: the server requires a token, bit 6: the client sends it (`fuzz-token`).
//!
//! Mutation (bit 0 = 0): `rest` is a list of 4-byte edits `u16 position | u8 xor | u8 op`,
//! applied in order to the framed msg2 (`u16 len | noise message`): the byte at
//! `position % len` is XORed with `xor`; then `op` 1 cuts the message to `position % len`
//! bytes, `op` 2 appends `xor` bytes of `0xa5`, any other `op` does nothing more.
#![no_main]

use std::sync::LazyLock;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zs_wire::crypto::record::Suite;
use zs_wire::handshake::{
    ClientConfig, ClientHandshake, Fingerprint, HandshakeError, ServerConfig, ServerHandshake,
    StaticKeypair,
};

const TOKEN: &[u8] = b"fuzz-token";

static SERVER_KEYPAIR: LazyLock<StaticKeypair> =
    LazyLock::new(|| StaticKeypair::from_private(&[7; 32]));
static CLIENT_KEYPAIR: LazyLock<StaticKeypair> =
    LazyLock::new(|| StaticKeypair::from_private(&[5; 32]));

fn mutate(original: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut msg2 = original.to_vec();
    for edit in edits.chunks_exact(4) {
        if msg2.is_empty() {
            break;
        }
        let position = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % msg2.len();
        msg2[position] ^= edit[2];
        match edit[3] {
            1 => msg2.truncate(position),
            2 => msg2.extend(std::iter::repeat_n(0xa5, usize::from(edit[2]))),
            _ => {}
        }
    }
    msg2
}

fuzz_target!(|data: &[u8]| {
    let [control, chunk, ref rest @ ..] = data[..] else {
        return;
    };
    let chunk = if chunk == 0 {
        usize::MAX
    } else {
        usize::from(chunk)
    };
    let replace = control & 1 != 0;

    let mut client_config = ClientConfig::new();
    client_config.static_key = Some(CLIENT_KEYPAIR.clone());
    let mut server_config = ServerConfig::new(SERVER_KEYPAIR.clone());
    let wrong_pin = control & 4 != 0;
    if wrong_pin {
        client_config.pinned = Some(StaticKeypair::from_private(&[8; 32]).fingerprint());
    } else if control & 2 != 0 {
        client_config.pinned = Some(SERVER_KEYPAIR.fingerprint());
    }
    if control & 16 != 0 {
        client_config.suites = vec![Suite::ChaCha20Poly1305];
    }
    if control & 8 != 0 {
        client_config.suites.push(Suite::Plain);
        client_config.allow_plain = true;
        server_config.suites.push(Suite::Plain);
        server_config.allow_plain = true;
    }
    let token_required = control & 32 != 0;
    let token_sent = control & 64 != 0;
    if token_required {
        server_config.token = Some(TOKEN.to_vec());
    }
    if token_sent {
        client_config.token = Some(TOKEN.to_vec());
    }
    let offered = client_config.suites.clone();

    let mut client = ClientHandshake::new(client_config).expect("valid client config");
    let mut server = ServerHandshake::new(server_config).expect("valid server config");
    let mut to_server = client.take_transmit();
    server
        .handle_received(&mut to_server)
        .expect("an honest msg1 is accepted");
    assert!(to_server.is_empty());
    let original = server.take_transmit();
    assert!(!original.is_empty(), "the server answers msg1");

    let msg2 = if replace {
        rest.to_vec()
    } else {
        mutate(&original, rest)
    };
    let changed = msg2.get(..original.len()) != Some(&original[..]);

    let mut received = BytesMut::new();
    let mut error: Option<HandshakeError> = None;
    for piece in msg2.chunks(chunk.max(1)) {
        received.extend_from_slice(piece);
        let result = client.handle_received(&mut received);
        match (&error, result) {
            (Some(first), again) => assert_eq!(again.as_ref(), Err(first), "errors are final"),
            (None, Err(new)) => error = Some(new),
            (None, Ok(())) => {}
        }
    }

    if let Some(error) = &error {
        assert!(client.is_failed() && !client.is_done());
        assert!(
            client.transmit_pending().is_empty(),
            "msg3 queued although the client failed: {error}"
        );
        if !changed && !wrong_pin {
            panic!("the server's own msg2 was refused: {error}");
        }
        if wrong_pin && !changed {
            assert!(
                matches!(error, HandshakeError::FingerprintMismatch { .. }),
                "{error}"
            );
        }
        return;
    }
    if !client.is_done() {
        // Waiting for more: only possible when msg2 was cut short or its length grew.
        assert!(changed, "the full msg2 left the client waiting");
        return;
    }

    // Done: the client must have taken exactly the server's msg2.
    assert!(
        !changed,
        "the client accepted a msg2 that differs from the server's"
    );
    assert_eq!(
        &received[..],
        &msg2[original.len()..],
        "bytes after msg2 stay in the buffer"
    );
    assert!(!wrong_pin, "a wrong pinned fingerprint was accepted");

    let mut to_server = client.take_transmit();
    server
        .handle_received(&mut to_server)
        .expect("an honest msg3 is accepted");
    assert!(server.is_done());
    let client_outcome = client.outcome().expect("done");
    let server_outcome = server.outcome().expect("done");
    assert!(offered.contains(&client_outcome.suite));
    assert_eq!(client_outcome.suite, server_outcome.suite);
    assert_eq!(client_outcome.send_secret, server_outcome.receive_secret);
    assert_eq!(client_outcome.receive_secret, server_outcome.send_secret);
    assert_eq!(client_outcome.handshake_hash, server_outcome.handshake_hash);
    assert_eq!(client_outcome.peer_static, SERVER_KEYPAIR.public());
    assert_eq!(server_outcome.peer_static, CLIENT_KEYPAIR.public());
    assert_eq!(
        client_outcome.peer_fingerprint(),
        Fingerprint::of_public_key(&SERVER_KEYPAIR.public())
    );
    assert_eq!(
        server_outcome.client_token_ok,
        !token_required || token_sent
    );
});
