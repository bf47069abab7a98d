//! The suites: names, wire ids, key lengths.

use core::fmt;
use core::str::FromStr;

use super::{MAX_RECORD_PLAINTEXT, RecordError, TAG_LEN};

/// A record protection suite: an AEAD, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 in GCM.
    Aes128Gcm,
    /// AES-256 in GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
    /// RC6-32/20/32 (256-bit key) in GCM.
    Rc6Gcm,
    /// Twofish with a 256-bit key in GCM.
    TwofishGcm,
    /// Serpent with a 256-bit key in GCM.
    SerpentGcm,
    /// MARS with a 256-bit key in GCM.
    MarsGcm,
    /// No protection at all: records carry the plaintext (for tests and trusted links).
    Plain,
}

impl Suite {
    /// Every suite, in the default order of preference: the encrypted ones first, `plain`
    /// last.
    pub const ALL: [Suite; 8] = [
        Suite::Aes128Gcm,
        Suite::Aes256Gcm,
        Suite::ChaCha20Poly1305,
        Suite::Rc6Gcm,
        Suite::TwofishGcm,
        Suite::SerpentGcm,
        Suite::MarsGcm,
        Suite::Plain,
    ];

    /// The suites offered by default: every encrypted one, in order of preference.
    pub const DEFAULT_SUITES: &[Suite] = &[
        Suite::Aes128Gcm,
        Suite::Aes256Gcm,
        Suite::ChaCha20Poly1305,
        Suite::Rc6Gcm,
        Suite::TwofishGcm,
        Suite::SerpentGcm,
        Suite::MarsGcm,
    ];

    /// The suite's name, as used in configuration and in the key derivation.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Aes128Gcm => "aes-128-gcm",
            Suite::Aes256Gcm => "aes-256-gcm",
            Suite::ChaCha20Poly1305 => "chacha20-poly1305",
            Suite::Rc6Gcm => "rc6-gcm",
            Suite::TwofishGcm => "twofish-gcm",
            Suite::SerpentGcm => "serpent-gcm",
            Suite::MarsGcm => "mars-gcm",
            Suite::Plain => "plain",
        }
    }

    /// The suite called `name` (ASCII case ignored), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|suite| suite.name().eq_ignore_ascii_case(name))
    }

    /// The suite's id on the wire: 1 to 7 for the encrypted suites, 0 for `plain`.
    pub fn id(self) -> u8 {
        match self {
            Suite::Plain => 0,
            Suite::Aes128Gcm => 1,
            Suite::Aes256Gcm => 2,
            Suite::ChaCha20Poly1305 => 3,
            Suite::Rc6Gcm => 4,
            Suite::TwofishGcm => 5,
            Suite::SerpentGcm => 6,
            Suite::MarsGcm => 7,
        }
    }

    /// The suite whose wire id is `id`, if any.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|suite| suite.id() == id)
    }

    /// Length of the AEAD key in bytes: 16 for `aes-128-gcm`, 0 for `plain`, 32 otherwise.
    pub fn key_len(self) -> usize {
        match self {
            Suite::Aes128Gcm => 16,
            Suite::Plain => 0,
            _ => 32,
        }
    }

    /// Whether the suite leaves records unprotected.
    pub fn is_plain(self) -> bool {
        self == Suite::Plain
    }

    /// Length of the tag that ends each record body: 16, or 0 for `plain`.
    pub fn tag_len(self) -> usize {
        if self.is_plain() { 0 } else { TAG_LEN }
    }

    /// Largest body (the header's `length`) a record of this suite may declare.
    pub fn max_record_body(self) -> usize {
        MAX_RECORD_PLAINTEXT + self.tag_len()
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Suite {
    type Err = RecordError;

    fn from_str(name: &str) -> Result<Self, RecordError> {
        Self::from_name(name).ok_or_else(|| RecordError::UnknownSuite {
            name: name.to_owned(),
        })
    }
}
