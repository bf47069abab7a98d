//! The handshake of the security layer, without I/O.
//!
//! Before any record is exchanged, client and server run a Noise
//! `Noise_XX_25519_ChaChaPoly_BLAKE2s` handshake (via the `snow` crate). It authenticates the
//! server by its static X25519 key, gives the server the client's static key (random per
//! connection unless configured, so clients can later be authenticated by key), negotiates the
//! record layer's cipher suite and derives one secret per direction for it.
//!
//! ```text
//!  client                                                            server
//!    │ hello  "ZSHS" | u16 version = 1                                    │
//!    │ msg1   u16 len | -> e                                              │
//!    │        payload (clear, hashed):                                    │
//!    │          u8 count | count × u8 suite id | u8 flags (bit0: plain)   │
//!    │ ─────────────────────────────────────────────────────────────────▶ │
//!    │ msg2   u16 len | <- e, ee, s, es                                   │
//!    │        payload (encrypted):                                        │
//!    │          u8 status = 0 (ok)      | u8 chosen suite id              │
//!    │       or u8 status = 1 (refused) | UTF-8 reason                    │
//!    │ ◀───────────────────────────────────────────────────────────────── │
//!    │ msg3   u16 len | -> s, se                                          │
//!    │        payload (encrypted):                                        │
//!    │          u8 token_len | token_len × u8 token                       │
//!    │ ─────────────────────────────────────────────────────────────────▶ │
//!    │ records, keyed with the split of the Noise chaining key            │
//! ```
//!
//! All integers are little-endian. Each handshake message is framed as `u16 length | noise
//! message`; a declared length beyond what that message can hold is refused before its bytes
//! are buffered ([`HandshakeError::MessageTooLarge`]), and a hello whose magic differs is
//! refused as soon as the first differing byte arrives ([`HandshakeError::BadHello`]). The
//! 6-byte hello is also the Noise prologue, so both sides must agree on it.
//!
//! ## Suite negotiation and downgrade protection
//!
//! The client offers its suites in preference order in msg1. The server takes the
//! intersection of its own ordered allow-list and the offer — [`Suite::Plain`] only when it
//! is in both lists *and* both sides set their "allow plain" flag — and picks either the first
//! in its own order or, with [`ServerConfig::random_suite`], one uniformly at random. msg1's
//! payload travels in the clear, but Noise hashes every payload into the transcript, and msg2
//! is encrypted under keys mixed with that transcript: an offer modified on the wire makes msg2
//! fail to decrypt at the client ([`HandshakeError::Decrypt`]). The client also checks that the
//! chosen suite is one it offered ([`HandshakeError::SuiteNotOffered`]). With no common suite
//! the server answers with status 1 and a reason naming what it allows; both sides end with
//! [`HandshakeError::NoCommonSuite`].
//!
//! ## Identities and the client token
//!
//! After msg2 the client knows the server's static key; if a fingerprint is pinned
//! ([`ClientConfig::pinned`]) and differs, it fails with
//! [`HandshakeError::FingerprintMismatch`] before sending msg3. msg3 carries the client's
//! static key and an optional pre-shared token. The server compares the token in constant time
//! but does **not** fail the handshake on a mismatch: the outcome says
//! [`HandshakeOutcome::client_token_ok`] and the runtime closes the connection with an
//! "unauthorized" code over the now encrypted channel. A handshake failure could only drop the
//! connection (the client's next step is sending records, not reading a refusal), so the client
//! would see a bare reset; this way it gets a clear reason, privately.
//!
//! ## Driving it
//!
//! Same contract as [`crate::session::Session`]: read socket bytes into a `BytesMut` and pass
//! it to `handle_received`, which takes every complete handshake message off its front and
//! leaves the rest — bytes after the last handshake message belong to the record layer and stay
//! in the buffer. Write [`ClientHandshake::transmit_pending`] to the socket and
//! [`ClientHandshake::advance_transmit`] by what was written (or
//! [`ClientHandshake::take_transmit`]). When `is_done()`, take the secrets with `outcome()`.
//! On an error the transmit buffer may still hold a message for the peer (the server's
//! refusal): flush it, then close. The client is done once msg3 is queued; that message must be
//! written before the first record.

use crate::crypto::record::Suite;

mod client;
mod config;
mod driver;
mod error;
mod identity;
mod message;
mod negotiation;
mod outcome;
mod server;
mod x25519;

pub use client::ClientHandshake;
pub use config::{ClientConfig, ServerConfig};
pub use driver::Handshake;
pub use error::HandshakeError;
pub use identity::{Fingerprint, StaticKeypair};
pub use outcome::HandshakeOutcome;
pub use server::ServerHandshake;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// First bytes the client sends.
pub const HELLO_MAGIC: [u8; 4] = *b"ZSHS";

/// The handshake version this crate speaks.
pub const HANDSHAKE_VERSION: u16 = 1;

/// Length of the hello: magic and u16 version.
pub const HELLO_SIZE: usize = 6;

/// Largest Noise message (and so the largest handshake message body).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Longest client token.
pub const MAX_TOKEN_LEN: usize = 255;

/// Longest refusal reason the server sends, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// Bytes of an X25519 key.
const KEY_LEN: usize = 32;
/// Bytes of a Noise AEAD tag.
const TAG_LEN: usize = 16;
/// msg1: `e` and the offer (at least count and flags, at most 255 ids).
const MSG1_MIN: usize = KEY_LEN + 2;
const MSG1_MAX: usize = KEY_LEN + 2 + 255;
/// msg2: `e`, encrypted `s`, encrypted payload of at least a status byte.
const MSG2_MIN: usize = KEY_LEN + KEY_LEN + TAG_LEN + 1 + TAG_LEN;
/// msg3: encrypted `s`, encrypted payload (token length and token).
const MSG3_MIN: usize = KEY_LEN + TAG_LEN + 1 + TAG_LEN;
const MSG3_MAX: usize = KEY_LEN + TAG_LEN + 1 + MAX_TOKEN_LEN + TAG_LEN;

const STATUS_OK: u8 = 0;
const STATUS_REFUSED: u8 = 1;
const FLAG_ALLOW_PLAIN: u8 = 0x01;
/// msg1 flag: the link will carry StableIO frames (`zs_wire::stable`) instead of a session.
const FLAG_STABLE_LINK: u8 = 0x02;

/// The hello, also used as the Noise prologue.
fn hello() -> [u8; HELLO_SIZE] {
    let version = HANDSHAKE_VERSION.to_le_bytes();
    [
        HELLO_MAGIC[0],
        HELLO_MAGIC[1],
        HELLO_MAGIC[2],
        HELLO_MAGIC[3],
        version[0],
        version[1],
    ]
}

fn random_bytes<const N: usize>() -> Result<[u8; N], HandshakeError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| HandshakeError::Random(error.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
