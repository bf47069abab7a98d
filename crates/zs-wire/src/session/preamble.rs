//! The preamble both sides send first: magic, version, flags, and the largest frame body the
//! sender accepts.

use bytes::{BufMut, BytesMut};

use super::ProtocolError;
use crate::codec::Reader;

/// First bytes of every zserver connection, in both directions.
pub const PREAMBLE_MAGIC: [u8; 4] = *b"ZSRV";

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// Length of the preamble: magic, u16 version, u16 flags (reserved, zero), u32 largest frame
/// body this side accepts.
pub const PREAMBLE_SIZE: usize = 12;

/// Preamble flag: "run my requests in order".
pub const FLAG_ORDERED_REQUESTS: u16 = 0x0001;

/// Smallest frame limit a peer may announce; below it even error replies would not fit.
pub const MIN_FRAME_SIZE: u32 = 1024;

/// What the peer's preamble says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Preamble {
    /// The peer asked for its requests to run in order.
    pub(super) wants_order: bool,
    /// The largest frame body the peer accepts.
    pub(super) max_frame_size: u32,
}

/// Appends this side's preamble.
pub(super) fn encode(out: &mut BytesMut, ordered_requests: bool, max_frame_size: u32) {
    out.put_slice(&PREAMBLE_MAGIC);
    out.put_u16_le(PROTOCOL_VERSION);
    out.put_u16_le(if ordered_requests {
        FLAG_ORDERED_REQUESTS
    } else {
        0
    });
    out.put_u32_le(max_frame_size);
}

/// Reads the peer's preamble from the front of `received` without consuming it: `Ok(None)`
/// while incomplete. A wrong magic is refused as soon as its bytes arrive, not after all 12.
pub(super) fn decode(received: &[u8]) -> Result<Option<Preamble>, ProtocolError> {
    let mut reader = Reader::new(received);
    let seen = reader
        .take(received.len().min(PREAMBLE_MAGIC.len()))
        .unwrap_or_default();
    if seen != &PREAMBLE_MAGIC[..seen.len()] {
        let mut found = [0u8; 4];
        found[..seen.len()].copy_from_slice(seen);
        return Err(ProtocolError::BadPreamble { found });
    }
    let (Ok(theirs), Ok(flags), Ok(max_frame_size)) =
        (reader.read_u16(), reader.read_u16(), reader.read_u32())
    else {
        return Ok(None);
    };
    // A newer peer also speaks every older version; the lower one is used.
    if theirs < PROTOCOL_VERSION {
        return Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    if max_frame_size < MIN_FRAME_SIZE {
        return Err(ProtocolError::FrameLimitTooSmall {
            max: max_frame_size,
        });
    }
    // Unknown flag bits are ignored (reserved for future versions).
    Ok(Some(Preamble {
        wants_order: flags & FLAG_ORDERED_REQUESTS != 0,
        max_frame_size,
    }))
}
