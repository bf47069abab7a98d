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

mod decode;
mod encode;
mod messages;
#[cfg(test)]
mod tests;

pub use decode::{decode, decode_body, peek_length};
pub use messages::{CodecError, ControlMessage, RefuseReason};

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
