//! [`Secret`]: a token that is never printed and is compared in constant time.

use serde::Deserialize;
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
