//! [`Handshake`]: the one driving contract both sides share, so a runtime moves bytes for
//! either with one generic function.

use bytes::BytesMut;

use super::{ClientHandshake, HandshakeError, HandshakeOutcome, ServerHandshake};

/// One side of the handshake ([`ClientHandshake`] or [`ServerHandshake`]), driven without
/// I/O: write [`Self::take_transmit`] (or [`Self::transmit_pending`] +
/// [`Self::advance_transmit`]) to the peer, feed what the peer sends to
/// [`Self::handle_received`], and once [`Self::is_done`] take [`Self::outcome`].
///
/// ```
/// use bytes::BytesMut;
/// use zs_wire::handshake::{
///     ClientConfig, ClientHandshake, Handshake, HandshakeError, ServerConfig, ServerHandshake,
///     StaticKeypair,
/// };
///
/// /// Moves one side's pending bytes into the other's receive buffer.
/// fn pump(from: &mut impl Handshake, to: &mut impl Handshake) -> Result<(), HandshakeError> {
///     let mut bytes = from.take_transmit();
///     to.handle_received(&mut bytes)
/// }
///
/// # fn main() -> Result<(), HandshakeError> {
/// let mut client = ClientHandshake::new(ClientConfig::new())?;
/// let mut server = ServerHandshake::new(ServerConfig::new(StaticKeypair::generate()?))?;
/// while !(client.is_done() && server.is_done()) {
///     pump(&mut client, &mut server)?;
///     pump(&mut server, &mut client)?;
/// }
/// let (client, server) = (Handshake::outcome(client)?, Handshake::outcome(server)?);
/// assert_eq!(client.send_secret, server.receive_secret);
/// # Ok(())
/// # }
/// ```
pub trait Handshake {
    /// Takes every complete handshake message off the front of `received` and answers it;
    /// bytes after the last handshake message (the peer's first records) stay there. After
    /// an error every call returns it again; the transmit buffer may still hold a refusal
    /// for the peer, to be flushed before closing.
    fn handle_received(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError>;

    /// Bytes waiting to be written to the peer.
    fn transmit_pending(&self) -> &[u8];

    /// Marks `written` bytes of [`Self::transmit_pending`] as sent.
    fn advance_transmit(&mut self, written: usize);

    /// Takes every byte waiting to be written.
    fn take_transmit(&mut self) -> BytesMut;

    /// True once the outcome is ready (the client's last message may still be pending in
    /// the transmit buffer: write it before the first record).
    fn is_done(&self) -> bool;

    /// True once the handshake failed.
    fn is_failed(&self) -> bool;

    /// The result: the outcome when done, the error when failed,
    /// [`HandshakeError::NotFinished`] before either.
    fn outcome(self) -> Result<HandshakeOutcome, HandshakeError>
    where
        Self: Sized;
}

/// Implements [`Handshake`] with the side's inherent methods of the same names (kept so that
/// callers need no trait import).
macro_rules! impl_handshake {
    ($side:ty) => {
        impl Handshake for $side {
            fn handle_received(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
                <$side>::handle_received(self, received)
            }

            fn transmit_pending(&self) -> &[u8] {
                <$side>::transmit_pending(self)
            }

            fn advance_transmit(&mut self, written: usize) {
                <$side>::advance_transmit(self, written)
            }

            fn take_transmit(&mut self) -> BytesMut {
                <$side>::take_transmit(self)
            }

            fn is_done(&self) -> bool {
                <$side>::is_done(self)
            }

            fn is_failed(&self) -> bool {
                <$side>::is_failed(self)
            }

            fn outcome(self) -> Result<HandshakeOutcome, HandshakeError> {
                <$side>::outcome(self)
            }
        }
    };
}

impl_handshake!(ClientHandshake);
impl_handshake!(ServerHandshake);
