//! XNat control messages and their byte layout, without I/O.
//!
//! The agent and the server talk on one *control stream* (a virtual stream to the server's
//! [`CONTROL_SERVICE`]); every forwarded connection is a virtual stream of its own that starts
//! with one [`ControlMessage::Open`] written by the server. Each message is framed as
//!
//! | size | field | meaning |
//! |-----:|-------|---------|
//! | 2 | `length` | u16 little-endian, body length, 1..=[`MAX_MESSAGE_LEN`] |
//! | `length` | body | `u8 type`, then the fields of that type |
//!
//! The length is checked against [`MAX_MESSAGE_LEN`] as soon as its two bytes are in, before
//! any body is buffered, and every field's length against its own bound. `docs/PROTOCOL.md`
//! (§11) lists every type's fields.
//!
//! ```
//! use bytes::BytesMut;
//! use zs_nat::codec::{ControlMessage, decode, PROTOCOL_VERSION};
//! let mut wire = BytesMut::new();
//! ControlMessage::Welcome { version: PROTOCOL_VERSION }.encode(&mut wire)?;
//! assert_eq!(&wire[..], &[3, 0, 2, 1, 0]);
//! assert_eq!(decode(&mut wire)?, Some(ControlMessage::Welcome { version: 1 }));
//! assert!(wire.is_empty());
//! # Ok::<(), zs_nat::codec::CodecError>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut, BytesMut};

/// Version of the control protocol this crate speaks (in `Hello` and `Welcome`).
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest message body, in bytes.
pub const MAX_MESSAGE_LEN: usize = 2048;

/// Bytes of the length prefix in front of each body.
pub const LENGTH_PREFIX_LEN: usize = 2;

/// Longest mapping name, in bytes.
pub const MAX_MAPPING_NAME: usize = 64;

/// Longest agent name, in bytes.
pub const MAX_AGENT_NAME: usize = 64;

/// Longest token (in configuration), in bytes. Tokens never cross the link: `Register`
/// carries a proof of one.
pub const MAX_TOKEN_LEN: usize = 255;

/// Longest address text (in `Registered`), in bytes.
pub const MAX_ADDRESS_TEXT: usize = 255;

/// Longest explanation (in `Refused` and `Error`), in bytes.
pub const MAX_TEXT_LEN: usize = 1024;

/// Largest mapping weight.
pub const MAX_WEIGHT: u16 = 1000;

/// The server's service for the control stream.
pub const CONTROL_SERVICE: &str = "nat.control";

/// The agent's service for the forwarded connections of `mapping`.
pub fn mapping_service(mapping: &str) -> String {
    format!("nat.map/{mapping}")
}

/// Whether `name` is a valid mapping name: 1..=[`MAX_MAPPING_NAME`] bytes of ASCII letters,
/// digits, `-`, `_` and `.`.
pub fn is_valid_mapping_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MAPPING_NAME
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// Why the server refused to register a mapping (`u8` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// `1`: the server has no mapping of that name.
    UnknownMapping,
    /// `2`: the token does not match the server's token for that mapping.
    WrongToken,
    /// `3`: the server could not open the mapping's public port (in use, not permitted).
    PublicPortUnavailable,
    /// `4`: this link already registered the mapping.
    AlreadyRegistered,
    /// `5`: the request is invalid (weight out of range, too many registrations).
    Invalid,
    /// A code this version does not know.
    Other(u8),
}

impl RefuseReason {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::UnknownMapping => 1,
            Self::WrongToken => 2,
            Self::PublicPortUnavailable => 3,
            Self::AlreadyRegistered => 4,
            Self::Invalid => 5,
            Self::Other(code) => code,
        }
    }

    /// The reason for a wire value.
    pub fn from_u8(code: u8) -> Self {
        match code {
            1 => Self::UnknownMapping,
            2 => Self::WrongToken,
            3 => Self::PublicPortUnavailable,
            4 => Self::AlreadyRegistered,
            5 => Self::Invalid,
            other => Self::Other(other),
        }
    }

    /// Whether retrying later cannot help without a configuration change.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::UnknownMapping | Self::WrongToken | Self::Invalid
        )
    }
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownMapping => f.write_str("unknown mapping"),
            Self::WrongToken => f.write_str("wrong token"),
            Self::PublicPortUnavailable => f.write_str("public port unavailable"),
            Self::AlreadyRegistered => f.write_str("already registered"),
            Self::Invalid => f.write_str("invalid request"),
            Self::Other(code) => write!(f, "refused (code {code})"),
        }
    }
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Type `1`, agent → server, first on the control stream.
    Hello {
        /// The agent's [`PROTOCOL_VERSION`].
        version: u16,
        /// The agent's name for logs, 0..=[`MAX_AGENT_NAME`] bytes.
        agent: String,
    },
    /// Type `2`, server → agent: the answer to `Hello`.
    Welcome {
        /// The server's [`PROTOCOL_VERSION`].
        version: u16,
    },
    /// Type `3`, agent → server: serve this mapping.
    Register {
        /// The mapping's name.
        mapping: String,
        /// Proof of the mapping's token, bound to this link
        /// ([`Secret::register_proof`](crate::Secret::register_proof)); the token itself is never
        /// sent.
        proof: [u8; 32],
        /// Share of new connections relative to other agents, 1..=[`MAX_WEIGHT`].
        weight: u16,
    },
    /// Type `4`, server → agent: the mapping is served; its public port is open.
    Registered {
        /// The mapping's name.
        mapping: String,
        /// The public address, as text.
        public: String,
    },
    /// Type `5`, server → agent: the mapping is not served by this agent.
    Refused {
        /// The mapping's name.
        mapping: String,
        /// Why.
        reason: RefuseReason,
        /// Details for the agent's log, 0..=[`MAX_TEXT_LEN`] bytes.
        message: String,
    },
    /// Type `6`, either way: a fatal error; the sender closes the link after it.
    Error {
        /// What went wrong, 0..=[`MAX_TEXT_LEN`] bytes.
        message: String,
    },
    /// Type `7`, server → agent, first on each forwarded stream: a public client connected.
    Open {
        /// The public client's address.
        peer: SocketAddr,
    },
}

/// A message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The declared body length is zero.
    #[error("empty control message")]
    Empty,
    /// The declared body length is above [`MAX_MESSAGE_LEN`].
    #[error("control message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message type is not one this version knows.
    #[error("unknown control message type {0}")]
    UnknownType(u8),
    /// The body ends inside a field.
    #[error("control message truncated in field `{0}`")]
    Truncated(&'static str),
    /// The body has bytes after its last field.
    #[error("{0} unexpected bytes after the control message")]
    TrailingBytes(usize),
    /// A text field is not UTF-8.
    #[error("field `{0}` is not UTF-8")]
    BadUtf8(&'static str),
    /// A field's length or value is out of its range.
    #[error("field `{field}` is out of range ({detail})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        detail: String,
    },
}

fn check_len(field: &'static str, len: usize, min: usize, max: usize) -> Result<(), CodecError> {
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(CodecError::OutOfRange {
            field,
            detail: format!("{len} bytes, allowed {min}..={max}"),
        })
    }
}

fn check_weight(weight: u16) -> Result<(), CodecError> {
    if (1..=MAX_WEIGHT).contains(&weight) {
        Ok(())
    } else {
        Err(CodecError::OutOfRange {
            field: "weight",
            detail: format!("{weight}, allowed 1..={MAX_WEIGHT}"),
        })
    }
}

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

    /// Checks every field against its bound.
    pub fn validate(&self) -> Result<(), CodecError> {
        match self {
            Self::Hello { agent, .. } => check_len("agent", agent.len(), 0, MAX_AGENT_NAME),
            Self::Welcome { .. } | Self::Open { .. } => Ok(()),
            Self::Register {
                mapping, weight, ..
            } => {
                check_len("mapping", mapping.len(), 1, MAX_MAPPING_NAME)?;
                check_weight(*weight)
            }
            Self::Registered { mapping, public } => {
                check_len("mapping", mapping.len(), 1, MAX_MAPPING_NAME)?;
                check_len("public", public.len(), 0, MAX_ADDRESS_TEXT)
            }
            Self::Refused {
                mapping, message, ..
            } => {
                check_len("mapping", mapping.len(), 1, MAX_MAPPING_NAME)?;
                check_len("message", message.len(), 0, MAX_TEXT_LEN)
            }
            Self::Error { message } => check_len("message", message.len(), 0, MAX_TEXT_LEN),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn samples() -> Vec<ControlMessage> {
        vec![
            ControlMessage::Hello {
                version: 1,
                agent: "lab-pc".into(),
            },
            ControlMessage::Welcome { version: 1 },
            ControlMessage::Register {
                mapping: "web".into(),
                proof: [0xa5; 32],
                weight: 3,
            },
            ControlMessage::Registered {
                mapping: "web".into(),
                public: "127.0.0.1:8080".into(),
            },
            ControlMessage::Refused {
                mapping: "web".into(),
                reason: RefuseReason::WrongToken,
                message: "wrong token".into(),
            },
            ControlMessage::Error {
                message: "bye".into(),
            },
            ControlMessage::Open {
                peer: "10.1.2.3:5555".parse().unwrap(),
            },
            ControlMessage::Open {
                peer: "[2001:db8::1]:443".parse().unwrap(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            let mut wire = message.to_bytes().unwrap();
            assert_eq!(decode(&mut wire).unwrap(), Some(message));
            assert!(wire.is_empty());
        }
    }

    #[test]
    fn register_layout_is_as_documented() {
        let proof: [u8; 32] = std::array::from_fn(|index| index as u8);
        let wire = ControlMessage::Register {
            mapping: "web".into(),
            proof,
            weight: 2,
        }
        .to_bytes()
        .unwrap();
        let mut expected = vec![39, 0, 3, 3, b'w', b'e', b'b'];
        expected.extend_from_slice(&proof);
        expected.extend_from_slice(&[2, 0]);
        assert_eq!(&wire[..], &expected[..]);
    }

    #[test]
    fn incomplete_input_waits_and_consumes_nothing() {
        let full = ControlMessage::Hello {
            version: 1,
            agent: "a".into(),
        }
        .to_bytes()
        .unwrap();
        for cut in 0..full.len() {
            let mut partial = BytesMut::from(&full[..cut]);
            assert_eq!(decode(&mut partial).unwrap(), None);
            assert_eq!(partial.len(), cut);
        }
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let mut wire = BytesMut::from(&[0xFF, 0xFF][..]);
        assert_eq!(
            decode(&mut wire),
            Err(CodecError::TooLong {
                len: 0xFFFF,
                max: MAX_MESSAGE_LEN
            })
        );
        let mut empty = BytesMut::from(&[0, 0][..]);
        assert_eq!(decode(&mut empty), Err(CodecError::Empty));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        // A `Register` body: mapping text, a 32-byte proof, the weight.
        let register = |mapping: &[u8], weight: [u8; 2]| {
            let mut body = vec![3, mapping.len() as u8];
            body.extend_from_slice(mapping);
            body.extend_from_slice(&[0xAB; 32]);
            body.extend_from_slice(&weight);
            body
        };
        let (empty_mapping, zero_weight) = (register(b"", [1, 0]), register(b"w", [0, 0]));
        let cases: &[(&[u8], CodecError)] = &[
            (&[9], CodecError::UnknownType(9)),
            (&[3, 1, b'w', 1, 2], CodecError::Truncated("proof")),
            (&[2, 1], CodecError::Truncated("version")),
            (&[2, 1, 0, 0], CodecError::TrailingBytes(1)),
            (&[6, 2, 0, 0xFF, 0xFE], CodecError::BadUtf8("message")),
            (
                &empty_mapping,
                CodecError::OutOfRange {
                    field: "mapping",
                    detail: "0 bytes, allowed 1..=64".into(),
                },
            ),
            (
                &zero_weight,
                CodecError::OutOfRange {
                    field: "weight",
                    detail: "0, allowed 1..=1000".into(),
                },
            ),
            (
                &[7, 5, 0, 0],
                CodecError::OutOfRange {
                    field: "family",
                    detail: "5, allowed 4 or 6".into(),
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(&decode_body(body).unwrap_err(), expected, "body {body:?}");
        }
    }

    #[test]
    fn encoding_refuses_fields_out_of_range() {
        let mut out = BytesMut::from(&b"kept"[..]);
        let error = ControlMessage::Register {
            mapping: "m".repeat(MAX_MAPPING_NAME + 1),
            proof: [0; 32],
            weight: 1,
        }
        .encode(&mut out)
        .unwrap_err();
        assert!(matches!(
            error,
            CodecError::OutOfRange {
                field: "mapping",
                ..
            }
        ));
        assert_eq!(&out[..], b"kept");
    }

    #[test]
    fn mapping_names() {
        assert!(is_valid_mapping_name("web-1.example_x"));
        assert!(!is_valid_mapping_name(""));
        assert!(!is_valid_mapping_name("a b"));
        assert!(!is_valid_mapping_name("é"));
        assert!(!is_valid_mapping_name(&"x".repeat(MAX_MAPPING_NAME + 1)));
    }

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..=max).prop_map(move |chars| {
            let mut text = String::new();
            for c in chars {
                if text.len() + c.len_utf8() > max {
                    break;
                }
                text.push(c);
            }
            text
        })
    }

    fn nonempty(max: usize) -> impl Strategy<Value = String> {
        text(max).prop_map(|text| if text.is_empty() { "x".into() } else { text })
    }

    fn message() -> impl Strategy<Value = ControlMessage> {
        prop_oneof![
            (any::<u16>(), text(MAX_AGENT_NAME))
                .prop_map(|(version, agent)| ControlMessage::Hello { version, agent }),
            any::<u16>().prop_map(|version| ControlMessage::Welcome { version }),
            (
                nonempty(MAX_MAPPING_NAME),
                any::<[u8; 32]>(),
                1..=MAX_WEIGHT
            )
                .prop_map(|(mapping, proof, weight)| ControlMessage::Register {
                    mapping,
                    proof,
                    weight
                }),
            (nonempty(MAX_MAPPING_NAME), text(MAX_ADDRESS_TEXT))
                .prop_map(|(mapping, public)| ControlMessage::Registered { mapping, public }),
            (nonempty(MAX_MAPPING_NAME), any::<u8>(), text(MAX_TEXT_LEN)).prop_map(
                |(mapping, reason, message)| ControlMessage::Refused {
                    mapping,
                    reason: RefuseReason::from_u8(reason),
                    message
                }
            ),
            text(MAX_TEXT_LEN).prop_map(|message| ControlMessage::Error { message }),
            any::<SocketAddr>().prop_map(|peer| ControlMessage::Open {
                peer: SocketAddr::new(peer.ip(), peer.port())
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_in_any_split(messages in proptest::collection::vec(message(), 1..8), cut in any::<prop::sample::Index>()) {
            let mut wire = BytesMut::new();
            for message in &messages {
                message.encode(&mut wire).unwrap();
            }
            let cut = cut.index(wire.len() + 1);
            let mut buffer = BytesMut::from(&wire[..cut]);
            let mut decoded = Vec::new();
            while let Some(message) = decode(&mut buffer).unwrap() {
                decoded.push(message);
            }
            buffer.extend_from_slice(&wire[cut..]);
            while let Some(message) = decode(&mut buffer).unwrap() {
                decoded.push(message);
            }
            prop_assert!(buffer.is_empty());
            prop_assert_eq!(decoded, messages);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut buffer = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode(&mut buffer) {}
            prop_assert!(buffer.len() <= bytes.len());
        }
    }
}
