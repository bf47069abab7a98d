//! Why a handshake (or a key, key file or fingerprint) was refused.

use super::{Fingerprint, MAX_TOKEN_LEN};

/// Why a handshake failed, or a key, key file or fingerprint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The client's first bytes are not a zserver handshake hello.
    #[error("not a zserver handshake: first bytes {} ({found:02x?}), expected \"ZSHS\"", show_bytes(.found))]
    BadHello {
        /// The bytes seen (up to four).
        found: Vec<u8>,
    },
    /// The client speaks another handshake version.
    #[error("client speaks handshake version {theirs}, this side {ours}")]
    UnsupportedVersion {
        /// The client's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// A handshake message declares more bytes than it can hold.
    #[error("handshake message {message} declares {len} bytes, at most {max} allowed")]
    MessageTooLarge {
        /// Which message (1, 2 or 3).
        message: u8,
        /// The declared length.
        len: usize,
        /// The largest length accepted for it.
        max: usize,
    },
    /// The Noise library refused an operation.
    #[error("noise: {0}")]
    Noise(String),
    /// A message failed to authenticate: changed on the wire (e.g. a downgraded offer), or
    /// not from the peer the keys belong to.
    #[error("handshake message {message} failed to decrypt: tampered with or not from the peer")]
    Decrypt {
        /// Which message (2 or 3).
        message: u8,
    },
    /// No cipher suite both sides allow; on the client, the server's refusal text.
    #[error("no common cipher suite: {reason}")]
    NoCommonSuite {
        /// What each side allows.
        reason: String,
    },
    /// The server chose a suite the client did not offer.
    #[error("server chose suite id {suite}, which this client did not offer")]
    SuiteNotOffered {
        /// The id of the chosen suite.
        suite: u8,
    },
    /// The server's static key is not the pinned one.
    #[error("server key fingerprint mismatch: expected {expected}, got {actual}")]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The server's.
        actual: Fingerprint,
    },
    /// A handshake message's payload does not follow the layout.
    #[error("malformed handshake message: {what}")]
    Malformed {
        /// What is wrong, with the numbers seen.
        what: String,
    },
    /// A configured client token is longer than 255 bytes.
    #[error("client token of {len} bytes; at most {MAX_TOKEN_LEN}")]
    TokenTooLong {
        /// Its length.
        len: usize,
    },
    /// The client offers more than 255 suites.
    #[error("{count} suites offered; at most 255")]
    TooManySuites {
        /// How many.
        count: usize,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// A key file does not follow the format.
    #[error("bad key file: {what}")]
    KeyFile {
        /// What is wrong (never the secret itself).
        what: String,
    },
    /// A key file's public key does not belong to its private key.
    #[error("the public key does not match the private key (derived {derived})")]
    PublicKeyMismatch {
        /// The fingerprint of the public key derived from the private one.
        derived: Fingerprint,
    },
    /// A fingerprint could not be parsed.
    #[error("bad fingerprint: {what}")]
    BadFingerprint {
        /// What is wrong.
        what: String,
    },
    /// `outcome` was called before the handshake finished.
    #[error("the handshake has not finished")]
    NotFinished,
}

/// Bytes as an escaped byte string, e.g. `"GET"`.
pub(super) fn show_bytes(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

pub(super) fn malformed(what: impl Into<String>) -> HandshakeError {
    HandshakeError::Malformed { what: what.into() }
}

/// Maps a Noise error on handshake message `message`.
pub(super) fn noise_error(message: u8, error: snow::Error) -> HandshakeError {
    match error {
        snow::Error::Decrypt => HandshakeError::Decrypt { message },
        other => HandshakeError::Noise(format!("message {message}: {other}")),
    }
}
