//! Connection security: configuration and the handshake run on each new connection.
//!
//! Every connection starts with a Noise XX handshake (`zs_wire::handshake`): ephemeral X25519
//! keys give each connection fresh keys and forward secrecy, the server proves its static key
//! (whose fingerprint clients may pin), both sides' suite lists are bound into the transcript,
//! and an optional pre-shared token authenticates the client. Then every byte travels in AEAD
//! records ([`SecureStream`](crate::transport::secure::SecureStream)) whose keys rotate after a number of
//! bytes or an interval.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use zs_wire::crypto::record::Suite;
use zs_wire::handshake::{
    ClientConfig, Fingerprint, Handshake, HandshakeError, HandshakeOutcome, ServerConfig,
    StaticKeypair,
};

use crate::transport::secure::{RekeyPolicy, write_all};

/// Default for [`Security::rekey_after_bytes`]: 1 GiB.
pub const DEFAULT_REKEY_AFTER_BYTES: u64 = 1 << 30;
/// Default for [`Security::rekey_after`]: one hour.
pub const DEFAULT_REKEY_AFTER: Duration = Duration::from_secs(3600);
/// Default for [`Security::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Security settings of a server or client. The default encrypts every connection with a
/// fresh key, offers every encrypted suite, and never allows `plain`.
///
/// ```
/// use zs::Security;
/// use zs_wire::crypto::record::Suite;
/// let mut security = Security::default();
/// security.suites(vec![Suite::Aes128Gcm, Suite::ChaCha20Poly1305]).token(b"s3cret".to_vec());
/// ```
#[derive(Clone)]
pub struct Security {
    pub(crate) suites: Vec<Suite>,
    pub(crate) random_suite: bool,
    pub(crate) allow_plain: bool,
    pub(crate) rekey_after_bytes: u64,
    pub(crate) rekey_after: Duration,
    pub(crate) token: Option<Vec<u8>>,
    pub(crate) pinned: Option<Fingerprint>,
    pub(crate) keypair: Option<StaticKeypair>,
    pub(crate) handshake_timeout: Duration,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets (token, private key) are never printed.
        f.debug_struct("Security")
            .field("suites", &self.suites)
            .field("random_suite", &self.random_suite)
            .field("allow_plain", &self.allow_plain)
            .field("rekey_after_bytes", &self.rekey_after_bytes)
            .field("rekey_after", &self.rekey_after)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("pinned", &self.pinned)
            .field(
                "keypair",
                &self.keypair.as_ref().map(StaticKeypair::fingerprint),
            )
            .finish()
    }
}

impl Default for Security {
    fn default() -> Self {
        Self {
            suites: Suite::DEFAULT_SUITES.to_vec(),
            random_suite: false,
            allow_plain: false,
            rekey_after_bytes: DEFAULT_REKEY_AFTER_BYTES,
            rekey_after: DEFAULT_REKEY_AFTER,
            token: None,
            pinned: None,
            keypair: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl Security {
    /// Cipher suites, in preference order: a server's allow-list, a client's offer. `plain`
    /// in the list only takes effect with [`Self::allow_plain`] on both sides.
    pub fn suites(&mut self, suites: Vec<Suite>) -> &mut Self {
        self.suites = suites;
        self
    }

    /// Server: pick a random suite among those both sides allow for each connection (as
    /// ZServer4D picked a random cipher per connection) instead of the first in order.
    pub fn random_suite(&mut self, random: bool) -> &mut Self {
        self.random_suite = random;
        self
    }

    /// Allow the unencrypted `plain` suite (records still authenticated by nothing: use only
    /// on trusted links). Both sides must allow it and list it.
    pub fn allow_plain(&mut self, allow: bool) -> &mut Self {
        self.allow_plain = allow;
        self
    }

    /// Rotate each direction's key after this many bytes (default 1 GiB).
    pub fn rekey_after_bytes(&mut self, bytes: u64) -> &mut Self {
        self.rekey_after_bytes = bytes.max(1);
        self
    }

    /// Rotate each direction's key after this long (default 1 hour).
    pub fn rekey_after(&mut self, interval: Duration) -> &mut Self {
        self.rekey_after = interval;
        self
    }

    /// Server: the token clients must present. Client: the token to present.
    pub fn token(&mut self, token: Vec<u8>) -> &mut Self {
        self.token = Some(token);
        self
    }

    /// Client: refuse servers whose static key has another fingerprint.
    pub fn pin(&mut self, fingerprint: Fingerprint) -> &mut Self {
        self.pinned = Some(fingerprint);
        self
    }

    /// Server: the static key that identifies it (generated at start when not set).
    /// Client: its own static key (random per connection when not set).
    pub fn keypair(&mut self, keypair: StaticKeypair) -> &mut Self {
        self.keypair = Some(keypair);
        self
    }

    /// How long a handshake may take before the connection is dropped (default 10 s).
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    pub(crate) fn rekey_policy(&self) -> RekeyPolicy {
        RekeyPolicy {
            after_bytes: self.rekey_after_bytes,
            after_time: self.rekey_after,
        }
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.suites = self.suites.clone();
        config.allow_plain = self.allow_plain;
        config.pinned = self.pinned;
        config.token = self.token.clone();
        config.static_key = self.keypair.clone();
        config
    }

    pub(crate) fn server_config(&self, keypair: StaticKeypair) -> ServerConfig {
        let mut config = ServerConfig::new(keypair);
        config.suites = self.suites.clone();
        config.random_suite = self.random_suite;
        config.allow_plain = self.allow_plain;
        config.token = self.token.clone();
        config
    }
}

/// A handshake could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The handshake protocol failed (bad peer, no common suite, pinned key mismatch, ...).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The transport failed during the handshake.
    #[error("transport failed during the handshake")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection during the handshake.
    #[error("peer closed the connection during the handshake")]
    Closed,
    /// The handshake took longer than the configured timeout.
    #[error("handshake did not finish within {0:?}")]
    Timeout(Duration),
    /// The record layer refused the negotiated keys.
    #[error(transparent)]
    Record(#[from] zs_wire::crypto::record::RecordError),
    /// Server side: the client did not present the configured token.
    #[error("client token rejected")]
    TokenRejected,
}

/// Moves handshake messages until the handshake is done; returns the outcome and the bytes
/// read past it (the peer's first records).
pub(crate) async fn run_handshake<IO, H>(
    io: &mut IO,
    mut handshake: H,
) -> Result<(HandshakeOutcome, BytesMut), SecurityError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Handshake,
{
    // Handshake messages are a few hundred bytes; whatever follows is sized by the record
    // layer's own reader.
    let mut received = BytesMut::with_capacity(1024);
    loop {
        let transmit = handshake.take_transmit();
        if !transmit.is_empty() {
            write_all(io, &transmit).await?;
        }
        if handshake.is_done() {
            return Ok((Handshake::outcome(handshake)?, received));
        }
        if io.read_buf(&mut received).await? == 0 {
            return Err(SecurityError::Closed);
        }
        if let Err(error) = handshake.handle_received(&mut received) {
            // Whatever the state machine queued (a refusal for the peer) goes out first.
            let transmit = handshake.take_transmit();
            if !transmit.is_empty() {
                let _ = write_all(io, &transmit).await;
            }
            return Err(error.into());
        }
    }
}
