//! Handshake messages on the wire: `u16 length | Noise message`, bounded before buffering.

use bytes::{Buf, BufMut, BytesMut};
use snow::HandshakeState;
use zeroize::Zeroize;

use super::error::{malformed, noise_error};
use super::{HandshakeError, MAX_MESSAGE_LEN, NOISE_PARAMS, StaticKeypair, hello};
use crate::codec::Reader;

pub(super) fn remote_static(noise: &HandshakeState) -> Result<[u8; 32], HandshakeError> {
    noise
        .get_remote_static()
        .and_then(|key| <[u8; 32]>::try_from(key).ok())
        .ok_or_else(|| malformed("the peer's static key is missing"))
}

/// Bytes wiped when dropped (tokens).
#[derive(Clone, Default)]
pub(super) struct SecretBytes(pub(super) Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

/// A Noise handshake state for one side.
pub(super) fn build_noise(
    keypair: &StaticKeypair,
    initiator: bool,
) -> Result<HandshakeState, HandshakeError> {
    let setup = |error: snow::Error| HandshakeError::Noise(format!("setup: {error}"));
    let params = NOISE_PARAMS.parse().map_err(setup)?;
    let prologue = hello();
    let builder = snow::Builder::with_resolver(params, super::x25519::resolver(keypair))
        .local_private_key(keypair.private())
        .map_err(setup)?
        .prologue(&prologue)
        .map_err(setup)?;
    if initiator {
        builder.build_initiator().map_err(setup)
    } else {
        builder.build_responder().map_err(setup)
    }
}

/// Writes Noise message `message` with `payload` into `transmit`, framed.
pub(super) fn write_message(
    noise: &mut HandshakeState,
    message: u8,
    payload: &[u8],
    transmit: &mut BytesMut,
) -> Result<(), HandshakeError> {
    // Keys, tags and the payload: 128 bytes covers every overhead of XX.
    let mut buffer = vec![0u8; (payload.len() + 128).min(MAX_MESSAGE_LEN)];
    let len = noise
        .write_message(payload, &mut buffer)
        .map_err(|error| noise_error(message, error))?;
    let framed = u16::try_from(len).map_err(|_| HandshakeError::MessageTooLarge {
        message,
        len,
        max: MAX_MESSAGE_LEN,
    })?;
    transmit.put_u16_le(framed);
    transmit.put_slice(&buffer[..len]);
    Ok(())
}

/// Takes handshake message `message` off the front of `received` once complete. Lengths are
/// checked against `min..=max` before any of the body is waited for.
pub(super) fn take_message(
    received: &mut BytesMut,
    message: u8,
    min: usize,
    max: usize,
) -> Result<Option<BytesMut>, HandshakeError> {
    let Ok(len) = Reader::new(received).read_u16() else {
        return Ok(None);
    };
    let len = usize::from(len);
    if len > max {
        return Err(HandshakeError::MessageTooLarge { message, len, max });
    }
    if len < min {
        return Err(malformed(format!(
            "message {message} declares {len} bytes; it takes at least {min}"
        )));
    }
    if received.len() < 2 + len {
        received.reserve(2 + len - received.len());
        return Ok(None);
    }
    received.advance(2);
    Ok(Some(received.split_to(len)))
}

/// Decrypts (or, for msg1, authenticates into the transcript) one Noise message.
pub(super) fn read_message(
    noise: &mut HandshakeState,
    message: u8,
    bytes: &[u8],
) -> Result<SecretBytes, HandshakeError> {
    let mut payload = SecretBytes(vec![0u8; bytes.len()]);
    let len = noise
        .read_message(bytes, &mut payload.0)
        .map_err(|error| noise_error(message, error))?;
    payload.0.truncate(len);
    Ok(payload)
}
