//! Static identities: key pairs, their key-file text form, and fingerprints.

use core::fmt;
use core::str::FromStr;

use sha3::Digest;
use zeroize::Zeroizing;

use super::{HandshakeError, random_bytes};
use crate::crypto::hash::hex;

fn decode_hex_nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// 64 hex digits (either case) to 32 bytes.
pub(super) fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (decode_hex_nibble(pair[0])? << 4) | decode_hex_nibble(pair[1])?;
    }
    Some(out)
}

/// The SHA3-256 of a static public key: how people compare and pin keys.
///
/// Displayed as `sha3-256:<64 lower-case hex digits>`; parsed with or without the prefix,
/// in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub(super) [u8; 32]);

impl Fingerprint {
    /// The text before the hex digits.
    pub const PREFIX: &'static str = "sha3-256:";

    /// The fingerprint of a public key.
    pub fn of_public_key(public: &[u8; 32]) -> Self {
        Self(sha3::Sha3_256::digest(public).into())
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = HandshakeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let digits = match text.get(..Self::PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(Self::PREFIX) => {
                &text[Self::PREFIX.len()..]
            }
            _ => text,
        };
        decode_hex32(digits).map(Self).ok_or_else(|| {
            let count = digits.chars().count();
            HandshakeError::BadFingerprint {
                what: if count == 64 {
                    "not a hexadecimal number".to_owned()
                } else {
                    format!("{count} characters where 64 hex digits are expected")
                },
            }
        })
    }
}

/// A static X25519 key pair: the server's identity, or a client's.
///
/// The private key is wiped when dropped. Text form ([`Self::to_text`]):
///
/// ```text
/// private = "<64 hex digits>"
/// public = "<64 hex digits>"
/// ```
#[derive(Clone)]
pub struct StaticKeypair {
    private: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl StaticKeypair {
    /// A new random key pair from the operating system's generator.
    pub fn generate() -> Result<Self, HandshakeError> {
        let private = Zeroizing::new(random_bytes::<32>()?);
        Ok(Self::from_private(&private))
    }

    /// The key pair of a private key (the public key is derived from it).
    pub fn from_private(private: &[u8; 32]) -> Self {
        // aws-lc's fixed-base multiply (the handshake's); the portable one if it ever refused.
        let public = super::x25519::public_key(private).unwrap_or_else(|| {
            let secret = x25519_dalek::StaticSecret::from(*private);
            x25519_dalek::PublicKey::from(&secret).to_bytes()
        });
        Self {
            private: Zeroizing::new(*private),
            public,
        }
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The public key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_public_key(&self.public)
    }

    /// The text form: two lines, `private = "<hex>"` and `public = "<hex>"`. It holds the
    /// secret key; store it accordingly.
    pub fn to_text(&self) -> String {
        format!(
            "private = \"{}\"\npublic = \"{}\"\n",
            hex(self.private.as_slice()),
            hex(&self.public)
        )
    }

    /// Parses [`Self::to_text`]'s form. Blank lines and `#` comments are ignored; both keys
    /// are required, and the public key must be the one the private key derives. Errors never
    /// quote the private key.
    pub fn from_text(text: &str) -> Result<Self, HandshakeError> {
        let key_file = |what: String| HandshakeError::KeyFile { what };
        let mut private: Option<Zeroizing<[u8; 32]>> = None;
        let mut public: Option<[u8; 32]> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(key_file(format!(
                    "line {number}: expected `name = \"hex\"`"
                )));
            };
            let name = name.trim();
            let value = value.trim();
            let Some(digits) = value
                .strip_prefix('"')
                .and_then(|value| value.strip_suffix('"'))
            else {
                return Err(key_file(format!(
                    "line {number}: the value of {name:?} must be in double quotes"
                )));
            };
            let bad_key = || {
                key_file(format!(
                    "line {number}: {name} must be 64 hexadecimal digits"
                ))
            };
            match name {
                "private" if private.is_none() => {
                    private = Some(Zeroizing::new(decode_hex32(digits).ok_or_else(bad_key)?));
                }
                "public" if public.is_none() => {
                    public = Some(decode_hex32(digits).ok_or_else(bad_key)?);
                }
                "private" | "public" => {
                    return Err(key_file(format!("line {number}: {name} given twice")));
                }
                other => {
                    return Err(key_file(format!(
                        "line {number}: unknown name {other:?} (expected private or public)"
                    )));
                }
            }
        }
        let private = private.ok_or_else(|| key_file("no `private = ...` line".to_owned()))?;
        let public = public.ok_or_else(|| key_file("no `public = ...` line".to_owned()))?;
        let keypair = Self::from_private(&private);
        if keypair.public != public {
            return Err(HandshakeError::PublicKeyMismatch {
                derived: keypair.fingerprint(),
            });
        }
        Ok(keypair)
    }

    pub(super) fn private(&self) -> &[u8; 32] {
        &self.private
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &self.fingerprint())
            .finish_non_exhaustive()
    }
}
