//! [`Secret`]: a token that is never printed and is compared in constant time.

use serde::Deserialize;
use subtle::ConstantTimeEq;
use zs_wire::crypto::mac;

/// A mapping token (or any shared secret): `Debug` prints `<hidden>`, and [`Secret::matches`]
/// compares in constant time, so neither logs nor timing reveal it.
///
/// ```
/// use zs_nat::Secret;
/// let token = Secret::new("change-me");
/// assert!(token.matches(&Secret::new("change-me")));
/// assert!(!token.matches(&Secret::new("guess")));
/// assert_eq!(format!("{token:?}"), "Secret(<hidden>)");
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret's text (for sending it; never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Constant-time comparison: the time taken depends on the lengths only, not on where
    /// the first difference is.
    pub fn matches(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Secret {
    /// The proof that registers `mapping` on a link: HMAC-SHA256 keyed by this token over
    /// `"zs-nat register v1" ‖ u8 len ‖ mapping ‖ channel binding` (the link's
    /// [`zs::EncryptedStream::channel_binding`]). The token itself never crosses the link, and a
    /// proof captured on one link (or relayed by a man in the middle) fails on every other.
    pub fn register_proof(&self, mapping: &str, channel_binding: &[u8; 32]) -> [u8; 32] {
        let len = mapping_len(mapping);
        mac::prove(
            self.0.as_bytes(),
            &register_message(&len, mapping, channel_binding),
        )
    }

    /// Whether `proof` is [`Self::register_proof`] for this token (constant time).
    pub fn verify_register_proof(
        &self,
        mapping: &str,
        channel_binding: &[u8; 32],
        proof: &[u8; 32],
    ) -> bool {
        let len = mapping_len(mapping);
        mac::verify(
            self.0.as_bytes(),
            &register_message(&len, mapping, channel_binding),
            proof,
        )
    }
}

/// The `u8 len` field of the registration message (mapping names are at most 255 bytes).
fn mapping_len(mapping: &str) -> [u8; 1] {
    [u8::try_from(mapping.len()).unwrap_or(u8::MAX)]
}

/// The registration proof's message, as [`mac::prove`] parts.
fn register_message<'a>(
    len: &'a [u8; 1],
    mapping: &'a str,
    channel_binding: &'a [u8; 32],
) -> [&'a [u8]; 4] {
    [
        b"zs-nat register v1",
        len,
        mapping.as_bytes(),
        channel_binding,
    ]
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// Equality is [`Secret::matches`]: constant time.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl Eq for Secret {}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_register_proof_holds_only_for_its_token_mapping_and_link() {
        let token = Secret::new("change-me");
        let link = [7u8; 32];
        let proof = token.register_proof("web", &link);
        assert!(token.verify_register_proof("web", &link, &proof));
        assert!(!Secret::new("guess").verify_register_proof("web", &link, &proof));
        assert!(!token.verify_register_proof("ssh", &link, &proof));
        assert!(!token.verify_register_proof("web", &[8u8; 32], &proof));
        assert_ne!(proof, token.register_proof("web", &[8u8; 32]));
    }
}
