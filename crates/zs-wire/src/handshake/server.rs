//! The server's handshake state machine.

use core::fmt;

use bytes::{Buf, BytesMut};
use snow::HandshakeState;
use subtle::ConstantTimeEq;

use super::error::malformed;
use super::message::{build_noise, read_message, take_message, write_message};
use super::negotiation::{Offer, choose_suite};
use super::*;
use crate::codec::Reader;

#[derive(Debug)]
enum ServerState {
    AwaitHello,
    AwaitMsg1,
    /// msg2 sent with this suite.
    AwaitMsg3 {
        suite: Suite,
    },
    Done(Box<HandshakeOutcome>),
    Failed(HandshakeError),
}

/// The server's handshake state machine. See the module docs for the driving contract.
pub struct ServerHandshake {
    config: ServerConfig,
    noise: Option<HandshakeState>,
    transmit: BytesMut,
    state: ServerState,
    /// msg1 asked for a StableIO link.
    stable_link: bool,
}

impl ServerHandshake {
    /// Starts a handshake that waits for the client's hello.
    pub fn new(config: ServerConfig) -> Result<Self, HandshakeError> {
        if let Some(token) = &config.token
            && token.len() > MAX_TOKEN_LEN
        {
            return Err(HandshakeError::TokenTooLong { len: token.len() });
        }
        let noise = build_noise(&config.keypair, false)?;
        Ok(Self {
            config,
            noise: Some(noise),
            transmit: BytesMut::with_capacity(256),
            state: ServerState::AwaitHello,
            stable_link: false,
        })
    }

    /// Processes received bytes: takes the hello, msg1 and msg3 off the front of `received`
    /// as they complete, queueing msg2 in between. Bytes after msg3 stay in `received`. After
    /// an error every call returns it again; the transmit buffer may hold msg2 with the
    /// refusal, to be flushed before closing.
    pub fn handle_received(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        match &self.state {
            ServerState::Done(_) => return Ok(()),
            ServerState::Failed(error) => return Err(error.clone()),
            _ => {}
        }
        match self.process(received) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.noise = None;
                self.state = ServerState::Failed(error.clone());
                Err(error)
            }
        }
    }

    fn process(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        loop {
            match self.state {
                ServerState::AwaitHello => {
                    if !Self::take_hello(received)? {
                        return Ok(());
                    }
                    self.state = ServerState::AwaitMsg1;
                }
                ServerState::AwaitMsg1 => {
                    let Some(message) = take_message(received, 1, MSG1_MIN, MSG1_MAX)? else {
                        return Ok(());
                    };
                    let suite = self.answer_offer(&message)?;
                    self.state = ServerState::AwaitMsg3 { suite };
                }
                ServerState::AwaitMsg3 { suite } => {
                    let Some(message) = take_message(received, 3, MSG3_MIN, MSG3_MAX)? else {
                        return Ok(());
                    };
                    let outcome = self.finish(&message, suite)?;
                    self.noise = None;
                    self.state = ServerState::Done(Box::new(outcome));
                    return Ok(());
                }
                ServerState::Done(_) | ServerState::Failed(_) => return Ok(()),
            }
        }
    }

    /// Takes the hello off `received`: `Ok(true)` once taken, `Ok(false)` while incomplete.
    fn take_hello(received: &mut BytesMut) -> Result<bool, HandshakeError> {
        let mut reader = Reader::new(received);
        let magic = reader
            .take(received.len().min(HELLO_MAGIC.len()))
            .unwrap_or_default();
        if magic != &HELLO_MAGIC[..magic.len()] {
            return Err(HandshakeError::BadHello {
                found: magic.to_vec(),
            });
        }
        let Ok(theirs) = reader.read_u16() else {
            return Ok(false);
        };
        if theirs != HANDSHAKE_VERSION {
            return Err(HandshakeError::UnsupportedVersion {
                theirs,
                ours: HANDSHAKE_VERSION,
            });
        }
        received.advance(HELLO_SIZE);
        Ok(true)
    }

    /// Reads msg1, chooses a suite and queues msg2. A refusal is queued too, then returned
    /// as the error.
    fn answer_offer(&mut self, message: &[u8]) -> Result<Suite, HandshakeError> {
        let Some(noise) = self.noise.as_mut() else {
            return Err(HandshakeError::Noise(
                "handshake state already consumed".to_owned(),
            ));
        };
        let payload = read_message(noise, 1, message)?;
        let offer = Offer::parse(&payload.0)?;
        self.stable_link = offer.stable_link;
        match choose_suite(&self.config, &offer)? {
            Ok(suite) => {
                write_message(noise, 2, &[STATUS_OK, suite.id()], &mut self.transmit)?;
                Ok(suite)
            }
            Err(reason) => {
                let mut refusal = Vec::with_capacity(1 + reason.len());
                refusal.push(STATUS_REFUSED);
                refusal.extend_from_slice(reason.as_bytes());
                write_message(noise, 2, &refusal, &mut self.transmit)?;
                Err(HandshakeError::NoCommonSuite { reason })
            }
        }
    }

    /// Reads msg3 and checks the client's token.
    fn finish(&mut self, message: &[u8], suite: Suite) -> Result<HandshakeOutcome, HandshakeError> {
        let Some(noise) = self.noise.as_mut() else {
            return Err(HandshakeError::Noise(
                "handshake state already consumed".to_owned(),
            ));
        };
        let payload = read_message(noise, 3, message)?;
        let mut reader = Reader::new(&payload.0);
        let Ok(len) = reader.read_u8() else {
            return Err(malformed("msg3: empty payload"));
        };
        let token = reader.take_rest();
        if token.len() != usize::from(len) {
            return Err(malformed(format!(
                "msg3: token of {len} bytes announced, {} bytes follow",
                token.len()
            )));
        }
        let client_token_ok = match &self.config.token {
            None => true,
            // Constant time in the token's contents (`subtle`); only the length may show.
            Some(expected) => bool::from(expected.as_slice().ct_eq(token)),
        };
        HandshakeOutcome::from_noise(noise, suite, client_token_ok, self.stable_link)
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

    /// True once msg3 is read and the outcome is ready.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ServerState::Done(_))
    }

    /// True once the handshake failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, ServerState::Failed(_))
    }

    /// The result: the outcome when done, the error when failed,
    /// [`HandshakeError::NotFinished`] before either.
    pub fn outcome(self) -> Result<HandshakeOutcome, HandshakeError> {
        match self.state {
            ServerState::Done(outcome) => Ok(*outcome),
            ServerState::Failed(error) => Err(error),
            _ => Err(HandshakeError::NotFinished),
        }
    }
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("state", &self.state)
            .field("config", &self.config)
            .field("transmit_pending", &self.transmit.len())
            .finish_non_exhaustive()
    }
}
