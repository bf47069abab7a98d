//! Decoding: length checks first, then one body at a time, every field bounded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BytesMut};

use super::{CodecError, ControlMessage, LENGTH_PREFIX_LEN, MAX_MESSAGE_LEN, RefuseReason};

/// The declared body length of the message at the front of `buf`, checked against the
/// bounds; `None` while fewer than two bytes are in.
pub fn peek_length(buf: &[u8]) -> Result<Option<usize>, CodecError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_LEN) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
    if len == 0 {
        return Err(CodecError::Empty);
    }
    if len > MAX_MESSAGE_LEN {
        return Err(CodecError::TooLong {
            len,
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(Some(len))
}

/// Takes one complete message off the front of `buf`: `Ok(None)` while it is incomplete
/// (nothing is consumed), an error as soon as the bytes in cannot start a valid message.
pub fn decode(buf: &mut BytesMut) -> Result<Option<ControlMessage>, CodecError> {
    let Some(len) = peek_length(buf)? else {
        return Ok(None);
    };
    if buf.len() < LENGTH_PREFIX_LEN + len {
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX_LEN);
    let body = buf.split_to(len);
    decode_body(&body).map(Some)
}

/// Decodes one message body (without its length prefix).
pub fn decode_body(body: &[u8]) -> Result<ControlMessage, CodecError> {
    let mut reader = Reader { rest: body };
    let message = match reader.u8("type")? {
        1 => ControlMessage::Hello {
            version: reader.u16("version")?,
            agent: reader.str8("agent")?,
        },
        2 => ControlMessage::Welcome {
            version: reader.u16("version")?,
        },
        3 => ControlMessage::Register {
            mapping: reader.str8("mapping")?,
            proof: reader.array("proof")?,
            weight: reader.u16("weight")?,
        },
        4 => ControlMessage::Registered {
            mapping: reader.str8("mapping")?,
            public: reader.str8("public")?,
        },
        5 => ControlMessage::Refused {
            mapping: reader.str8("mapping")?,
            reason: RefuseReason::from_u8(reader.u8("reason")?),
            message: reader.str16("message")?,
        },
        6 => ControlMessage::Error {
            message: reader.str16("message")?,
        },
        7 => {
            let ip = match reader.u8("family")? {
                4 => IpAddr::V4(Ipv4Addr::from(reader.array::<4>("address")?)),
                6 => IpAddr::V6(Ipv6Addr::from(reader.array::<16>("address")?)),
                other => {
                    return Err(CodecError::OutOfRange {
                        field: "family",
                        detail: format!("{other}, allowed 4 or 6"),
                    });
                }
            };
            ControlMessage::Open {
                peer: SocketAddr::new(ip, reader.u16("port")?),
            }
        }
        other => return Err(CodecError::UnknownType(other)),
    };
    if !reader.rest.is_empty() {
        return Err(CodecError::TrailingBytes(reader.rest.len()));
    }
    message.validate()?;
    Ok(message)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, field: &'static str, len: usize) -> Result<&[u8], CodecError> {
        if self.rest.len() < len {
            return Err(CodecError::Truncated(field));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(field, N)?);
        Ok(array)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array::<2>(field)?))
    }

    fn text(&mut self, field: &'static str, len: usize) -> Result<String, CodecError> {
        let bytes = self.take(field, len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CodecError::BadUtf8(field))
    }

    fn str8(&mut self, field: &'static str) -> Result<String, CodecError> {
        let len = usize::from(self.u8(field)?);
        self.text(field, len)
    }

    fn str16(&mut self, field: &'static str) -> Result<String, CodecError> {
        let len = usize::from(self.u16(field)?);
        self.text(field, len)
    }
}
