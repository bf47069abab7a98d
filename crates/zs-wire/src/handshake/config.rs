//! The configuration of each side.

use core::fmt;

use super::{Fingerprint, StaticKeypair};
use crate::crypto::record::Suite;

fn describe_token(token: Option<&Vec<u8>>) -> String {
    match token {
        Some(token) => format!("Some(<{} bytes>)", token.len()),
        None => "None".to_owned(),
    }
}

/// The client's side of the handshake.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The suites to offer, most preferred first (duplicates are dropped).
    pub suites: Vec<Suite>,
    /// Accept [`Suite::Plain`] (it must also be in `suites`).
    pub allow_plain: bool,
    /// The server's expected key fingerprint; `None` accepts any server key.
    pub pinned: Option<Fingerprint>,
    /// The pre-shared token sent in msg3 (at most 255 bytes).
    pub token: Option<Vec<u8>>,
    /// This client's static key; `None` makes a random one for the connection.
    pub static_key: Option<StaticKeypair>,
    /// The link will carry StableIO frames ([`crate::stable`]) rather than a session; the server
    /// learns it from msg1
    /// ([`HandshakeOutcome::stable_link`](super::HandshakeOutcome::stable_link)).
    pub stable_link: bool,
}

config_setters!(ClientConfig {
    suites: Vec<Suite> => with_suites,
    allow_plain: bool => with_allow_plain,
    pinned: Option<Fingerprint> => with_pinned,
    token: Option<Vec<u8>> => with_token,
    static_key: Option<StaticKeypair> => with_static_key,
    stable_link: bool => with_stable_link,
});

impl ClientConfig {
    /// The default suites, no plain, no pin, no token, a random static key.
    pub fn new() -> Self {
        Self {
            suites: Suite::DEFAULT_SUITES.to_vec(),
            allow_plain: false,
            pinned: None,
            token: None,
            static_key: None,
            stable_link: false,
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("suites", &self.suites)
            .field("allow_plain", &self.allow_plain)
            .field("pinned", &self.pinned)
            .field("token", &describe_token(self.token.as_ref()))
            .field("static_key", &self.static_key)
            .finish()
    }
}

/// The server's side of the handshake.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The server's identity.
    pub keypair: StaticKeypair,
    /// The suites allowed, most preferred first.
    pub suites: Vec<Suite>,
    /// Pick uniformly at random among the common suites instead of the first in `suites`.
    pub random_suite: bool,
    /// Accept [`Suite::Plain`] (it must also be in `suites`).
    pub allow_plain: bool,
    /// The token clients must present; `None` requires none.
    pub token: Option<Vec<u8>>,
}

config_setters!(ServerConfig {
    keypair: StaticKeypair => with_keypair,
    suites: Vec<Suite> => with_suites,
    random_suite: bool => with_random_suite,
    allow_plain: bool => with_allow_plain,
    token: Option<Vec<u8>> => with_token,
});

impl ServerConfig {
    /// The default suites in fixed order, no plain, no token.
    pub fn new(keypair: StaticKeypair) -> Self {
        Self {
            keypair,
            suites: Suite::DEFAULT_SUITES.to_vec(),
            random_suite: false,
            allow_plain: false,
            token: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("keypair", &self.keypair)
            .field("suites", &self.suites)
            .field("random_suite", &self.random_suite)
            .field("allow_plain", &self.allow_plain)
            .field("token", &describe_token(self.token.as_ref()))
            .finish()
    }
}
