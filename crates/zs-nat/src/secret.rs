//! [`Secret`]: a token that is never printed and is compared in constant time.

use hkdf::hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

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
        // HMAC takes keys of any length, so this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_bytes()) else {
            return [0; 32];
        };
        mac.update(b"zs-nat register v1");
        mac.update(&[u8::try_from(mapping.len()).unwrap_or(u8::MAX)]);
        mac.update(mapping.as_bytes());
        mac.update(channel_binding);
        mac.finalize().into_bytes().into()
    }

    /// Whether `proof` is [`Self::register_proof`] for this token (constant time).
    pub fn verify_register_proof(
        &self,
        mapping: &str,
        channel_binding: &[u8; 32],
        proof: &[u8; 32],
    ) -> bool {
        self.register_proof(mapping, channel_binding)
            .ct_eq(proof)
            .into()
    }
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
