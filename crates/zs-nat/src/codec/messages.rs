//! The control messages, their refusal reasons and errors, and the bounds every field is
//! checked against.

use std::net::SocketAddr;

use super::{MAX_ADDRESS_TEXT, MAX_AGENT_NAME, MAX_MAPPING_NAME, MAX_TEXT_LEN, MAX_WEIGHT};

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
        /// The agent's [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
        version: u16,
        /// The agent's name for logs, 0..=[`MAX_AGENT_NAME`] bytes.
        agent: String,
    },
    /// Type `2`, server → agent: the answer to `Hello`.
    Welcome {
        /// The server's [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
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
    /// The declared body length is above [`MAX_MESSAGE_LEN`](super::MAX_MESSAGE_LEN).
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
}
