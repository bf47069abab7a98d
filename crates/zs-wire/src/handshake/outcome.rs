//! What a finished handshake hands the record layer.

use core::fmt;

use snow::HandshakeState;
use zeroize::Zeroize;

use super::message::remote_static;
use super::{Fingerprint, HandshakeError};
use crate::crypto::record::Suite;

/// What a finished handshake gives the record layer. The secrets are wiped when dropped.
pub struct HandshakeOutcome {
    /// The negotiated record suite.
    pub suite: Suite,
    /// Key material for records this side sends; equals the peer's `receive_secret`.
    pub send_secret: [u8; 32],
    /// Key material for records this side receives; equals the peer's `send_secret`.
    pub receive_secret: [u8; 32],
    /// The Noise handshake hash: identical on both sides, unique to this handshake (for
    /// channel binding).
    pub handshake_hash: Vec<u8>,
    /// The peer's static public key (the server's on the client, the client's on the server).
    pub peer_static: [u8; 32],
    /// On the server: the client presented the configured token, or none is configured.
    /// Always true on the client.
    pub client_token_ok: bool,
    /// The client asked for a StableIO link (see
    /// [`ClientConfig::stable_link`](super::ClientConfig::stable_link)).
    pub stable_link: bool,
}

impl HandshakeOutcome {
    /// The fingerprint of [`Self::peer_static`].
    pub fn peer_fingerprint(&self) -> Fingerprint {
        Fingerprint::of_public_key(&self.peer_static)
    }

    /// Takes the split keys of a finished Noise handshake.
    pub(super) fn from_noise(
        noise: &mut HandshakeState,
        suite: Suite,
        client_token_ok: bool,
        stable_link: bool,
    ) -> Result<Self, HandshakeError> {
        let peer_static = remote_static(noise)?;
        let (mut initiator_to_responder, mut responder_to_initiator) =
            noise.dangerously_get_raw_split();
        let (send_secret, receive_secret) = if noise.is_initiator() {
            (initiator_to_responder, responder_to_initiator)
        } else {
            (responder_to_initiator, initiator_to_responder)
        };
        initiator_to_responder.zeroize();
        responder_to_initiator.zeroize();
        Ok(Self {
            suite,
            send_secret,
            receive_secret,
            handshake_hash: noise.get_handshake_hash().to_vec(),
            peer_static,
            client_token_ok,
            stable_link,
        })
    }
}

impl Drop for HandshakeOutcome {
    fn drop(&mut self) {
        self.send_secret.zeroize();
        self.receive_secret.zeroize();
    }
}

impl fmt::Debug for HandshakeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeOutcome")
            .field("suite", &self.suite)
            .field("peer", &self.peer_fingerprint())
            .field("client_token_ok", &self.client_token_ok)
            .finish_non_exhaustive()
    }
}
