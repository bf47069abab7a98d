//! Encoding: [`ControlMessage::encode`] and the framing around each body.

use std::net::IpAddr;

use bytes::{BufMut, BytesMut};

use super::{CodecError, ControlMessage, LENGTH_PREFIX_LEN, MAX_MESSAGE_LEN};

impl ControlMessage {
    fn type_code(&self) -> u8 {
        match self {
            Self::Hello { .. } => 1,
            Self::Welcome { .. } => 2,
            Self::Register { .. } => 3,
            Self::Registered { .. } => 4,
            Self::Refused { .. } => 5,
            Self::Error { .. } => 6,
            Self::Open { .. } => 7,
        }
    }

    /// Appends the framed message to `out`; nothing is appended if a field is out of range.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        self.validate()?;
        let start = out.len();
        out.put_u16_le(0);
        out.put_u8(self.type_code());
        match self {
            Self::Hello { version, agent } => {
                out.put_u16_le(*version);
                put_str8(out, agent);
            }
            Self::Welcome { version } => out.put_u16_le(*version),
            Self::Register {
                mapping,
                proof,
                weight,
            } => {
                put_str8(out, mapping);
                out.put_slice(proof);
                out.put_u16_le(*weight);
            }
            Self::Registered { mapping, public } => {
                put_str8(out, mapping);
                put_str8(out, public);
            }
            Self::Refused {
                mapping,
                reason,
                message,
            } => {
                put_str8(out, mapping);
                out.put_u8(reason.to_u8());
                put_str16(out, message);
            }
            Self::Error { message } => put_str16(out, message),
            Self::Open { peer } => {
                match peer.ip() {
                    IpAddr::V4(ip) => {
                        out.put_u8(4);
                        out.put_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        out.put_u8(6);
                        out.put_slice(&ip.octets());
                    }
                }
                out.put_u16_le(peer.port());
            }
        }
        // Every field is bounded above, so the body always fits in MAX_MESSAGE_LEN.
        let body_len = out.len() - start - LENGTH_PREFIX_LEN;
        let Ok(prefix) = u16::try_from(body_len) else {
            out.truncate(start);
            return Err(CodecError::TooLong {
                len: body_len,
                max: MAX_MESSAGE_LEN,
            });
        };
        out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&prefix.to_le_bytes());
        Ok(())
    }

    /// The framed message as a new buffer.
    pub fn to_bytes(&self) -> Result<BytesMut, CodecError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

fn put_str8(out: &mut BytesMut, text: &str) {
    // Callers validated the length (every str8 bound is <= 255).
    out.put_u8(u8::try_from(text.len()).unwrap_or(u8::MAX));
    out.put_slice(text.as_bytes());
}

fn put_str16(out: &mut BytesMut, text: &str) {
    out.put_u16_le(u16::try_from(text.len()).unwrap_or(u16::MAX));
    out.put_slice(text.as_bytes());
}
