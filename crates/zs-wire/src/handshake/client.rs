//! The client's handshake state machine.

use core::fmt;

use bytes::{Buf, BufMut, BytesMut};
use snow::HandshakeState;

use super::error::malformed;
use super::message::{
    SecretBytes, build_noise, read_message, remote_static, take_message, write_message,
};
use super::*;
use crate::codec::Reader;

#[derive(Debug)]
enum ClientState {
    /// hello and msg1 queued; waiting for msg2.
    AwaitMsg2,
    Done(Box<HandshakeOutcome>),
    Failed(HandshakeError),
}

/// The client's handshake state machine. See the module docs for the driving contract.
pub struct ClientHandshake {
    noise: Option<HandshakeState>,
    offered: Vec<Suite>,
    allow_plain: bool,
    pinned: Option<Fingerprint>,
    token: SecretBytes,
    transmit: BytesMut,
    state: ClientState,
    stable_link: bool,
}

impl ClientHandshake {
    /// Starts a handshake: the hello and msg1 are queued for transmission at once.
    pub fn new(config: ClientConfig) -> Result<Self, HandshakeError> {
        let token = SecretBytes(config.token.unwrap_or_default());
        if token.0.len() > MAX_TOKEN_LEN {
            return Err(HandshakeError::TokenTooLong { len: token.0.len() });
        }
        let mut offered: Vec<Suite> = Vec::with_capacity(config.suites.len());
        for suite in config.suites {
            if !offered.contains(&suite) {
                offered.push(suite);
            }
        }
        let count = u8::try_from(offered.len()).map_err(|_| HandshakeError::TooManySuites {
            count: offered.len(),
        })?;
        let keypair = match config.static_key {
            Some(keypair) => keypair,
            None => StaticKeypair::generate()?,
        };
        let mut noise = build_noise(&keypair, true)?;

        let mut payload = Vec::with_capacity(offered.len() + 2);
        payload.push(count);
        payload.extend(offered.iter().map(|suite| suite.id()));
        let mut flags = 0;
        if config.allow_plain {
            flags |= FLAG_ALLOW_PLAIN;
        }
        if config.stable_link {
            flags |= FLAG_STABLE_LINK;
        }
        payload.push(flags);
        let mut transmit = BytesMut::with_capacity(512);
        transmit.put_slice(&hello());
        write_message(&mut noise, 1, &payload, &mut transmit)?;
        Ok(Self {
            noise: Some(noise),
            offered,
            allow_plain: config.allow_plain,
            pinned: config.pinned,
            token,
            transmit,
            state: ClientState::AwaitMsg2,
            stable_link: config.stable_link,
        })
    }

    /// Processes received bytes: takes msg2 off the front of `received` once complete,
    /// verifies the server and queues msg3. Bytes after msg2 stay in `received`. After an
    /// error every call returns it again.
    pub fn handle_received(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        match &self.state {
            ClientState::AwaitMsg2 => {}
            ClientState::Done(_) => return Ok(()),
            ClientState::Failed(error) => return Err(error.clone()),
        }
        match self.process(received) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.noise = None;
                self.state = ClientState::Failed(error.clone());
                Err(error)
            }
        }
    }

    fn process(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        let Some(message) = take_message(received, 2, MSG2_MIN, MAX_MESSAGE_LEN)? else {
            return Ok(());
        };
        let Some(noise) = self.noise.as_mut() else {
            return Err(HandshakeError::Noise(
                "handshake state already consumed".to_owned(),
            ));
        };
        let payload = read_message(noise, 2, &message)?;

        // Who the server is comes first: a refusal from an impostor means nothing.
        let actual = Fingerprint::of_public_key(&remote_static(noise)?);
        if let Some(expected) = self.pinned
            && expected != actual
        {
            return Err(HandshakeError::FingerprintMismatch { expected, actual });
        }

        let mut reader = Reader::new(&payload.0);
        let suite = match reader.read_u8() {
            Ok(STATUS_OK) => match (reader.read_u8(), reader.is_empty()) {
                (Ok(id), true) => Suite::from_id(id)
                    .filter(|suite| self.offered.contains(suite))
                    .filter(|suite| !suite.is_plain() || self.allow_plain)
                    .ok_or(HandshakeError::SuiteNotOffered { suite: id })?,
                _ => {
                    return Err(malformed(format!(
                        "msg2: status ok takes 1 byte of suite id, got {}",
                        payload.0.len() - 1
                    )));
                }
            },
            Ok(STATUS_REFUSED) => {
                return Err(HandshakeError::NoCommonSuite {
                    reason: String::from_utf8_lossy(reader.take_rest()).into_owned(),
                });
            }
            Ok(status) => return Err(malformed(format!("msg2: unknown status {status}"))),
            Err(_) => return Err(malformed("msg2: empty payload")),
        };

        let mut payload3 = SecretBytes(Vec::with_capacity(1 + self.token.0.len()));
        // The length was checked in `new`.
        payload3
            .0
            .push(u8::try_from(self.token.0.len()).unwrap_or(u8::MAX));
        payload3.0.extend_from_slice(&self.token.0);
        write_message(noise, 3, &payload3.0, &mut self.transmit)?;
        let outcome = HandshakeOutcome::from_noise(noise, suite, true, self.stable_link)?;
        self.noise = None;
        self.token = SecretBytes::default();
        self.state = ClientState::Done(Box::new(outcome));
        Ok(())
    }

    /// Bytes waiting to be written to the socket.
    pub fn transmit_pending(&self) -> &[u8] {
        &self.transmit
    }

    /// Marks `written` bytes of [`Self::transmit_pending`] as sent.
    pub fn advance_transmit(&mut self, written: usize) {
        self.transmit.advance(written.min(self.transmit.len()));
    }

    /// Takes every byte waiting to be written.
    pub fn take_transmit(&mut self) -> BytesMut {
        self.transmit.split()
    }

    /// True once msg3 is queued and the outcome is ready.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ClientState::Done(_))
    }

    /// True once the handshake failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, ClientState::Failed(_))
    }

    /// The result: the outcome when done, the error when failed,
    /// [`HandshakeError::NotFinished`] before either.
    pub fn outcome(self) -> Result<HandshakeOutcome, HandshakeError> {
        match self.state {
            ClientState::Done(outcome) => Ok(*outcome),
            ClientState::Failed(error) => Err(error),
            ClientState::AwaitMsg2 => Err(HandshakeError::NotFinished),
        }
    }
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("state", &self.state)
            .field("offered", &self.offered)
            .field("transmit_pending", &self.transmit.len())
            .finish_non_exhaustive()
    }
}
