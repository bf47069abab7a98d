//! The frames of a StableIO link: a 5-byte header (type, body length) and a fixed or bounded
//! body. See the module docs of [`crate::stable`] for the byte layout.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{Reader, UnexpectedEnd};

use super::{RefuseReason, SessionId, StableError};

/// Bytes of a frame header: `u8` type, `u32` body length.
pub const HEADER_LEN: usize = 5;

/// Most application bytes one `Data` frame carries (64 KiB).
pub const MAX_SEGMENT: usize = 64 * 1024;

/// Largest body any frame may declare: a `Data` frame's offset plus [`MAX_SEGMENT`].
pub const MAX_BODY: u32 = 8 + MAX_SEGMENT as u32;

/// The frame type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Client → server: start a new session.
    Open = 1,
    /// Server → client: the new session's id and secret share.
    Opened = 2,
    /// Server → client, first on every link: the link's nonce.
    Challenge = 3,
    /// Client → server: rebind a session to this link.
    Resume = 4,
    /// Server → client: the session is bound to this link.
    Resumed = 5,
    /// Server → client: no session for this link.
    Refused = 6,
    /// Application bytes at a stream offset.
    Data = 7,
    /// Cumulative acknowledgement.
    Ack = 8,
    /// Orderly end of the sender's direction.
    Close = 9,
}

impl FrameType {
    fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Open,
            2 => Self::Opened,
            3 => Self::Challenge,
            4 => Self::Resume,
            5 => Self::Resumed,
            6 => Self::Refused,
            7 => Self::Data,
            8 => Self::Ack,
            9 => Self::Close,
            _ => return None,
        })
    }

    /// The exact body length of a fixed-size frame; `None` for `Data`.
    fn fixed_len(self) -> Option<u32> {
        Some(match self {
            Self::Open => 0,
            Self::Opened => 16 + 32,
            Self::Challenge => 32,
            Self::Resume => 16 + 32 + 8,
            Self::Resumed | Self::Ack | Self::Close => 8,
            Self::Refused => 1,
            Self::Data => return None,
        })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Start a new session.
    Open,
    /// The new session.
    Opened {
        /// Its id.
        session_id: SessionId,
        /// Random bytes mixed into the session secret.
        share: [u8; 32],
    },
    /// The link's nonce, to be covered by a `Resume` proof.
    Challenge {
        /// Fresh random bytes.
        nonce: [u8; 32],
    },
    /// Rebind a session to this link.
    Resume {
        /// The session.
        session_id: SessionId,
        /// HMAC-SHA256 proof of the session secret over this link's nonce.
        proof: [u8; 32],
        /// The client's next expected offset of the server's stream.
        next_expected: u64,
    },
    /// The session is bound to this link.
    Resumed {
        /// The server's next expected offset of the client's stream.
        next_expected: u64,
    },
    /// No session for this link.
    Refused {
        /// Why.
        reason: RefuseReason,
    },
    /// Application bytes.
    Data {
        /// Stream offset of the first byte.
        offset: u64,
        /// The bytes (1..=[`MAX_SEGMENT`]).
        bytes: Bytes,
    },
    /// Everything before this offset was delivered to the application.
    Ack {
        /// Next offset the receiver's application will read.
        next_expected: u64,
    },
    /// The sender will write nothing more; its stream ends at `end`.
    Close {
        /// Length of the sender's stream.
        end: u64,
    },
}

impl Frame {
    /// Takes one complete frame off the front of `buf`. `Ok(None)`: more bytes are needed.
    /// Header checks (type, length) happen before any body is buffered.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, StableError> {
        let mut header = Reader::new(buf);
        let (Ok(type_byte), Ok(len)) = (header.read_u8(), header.read_u32()) else {
            return Ok(None);
        };
        let Some(kind) = FrameType::from_u8(type_byte) else {
            return Err(StableError::UnknownFrameType {
                frame_type: type_byte,
            });
        };
        match kind.fixed_len() {
            Some(expected) if expected != len => {
                return Err(StableError::Malformed {
                    what: "fixed-size frame with a wrong body length",
                });
            }
            None if len > MAX_BODY => {
                return Err(StableError::FrameTooLarge { len, max: MAX_BODY });
            }
            None if len <= 8 => {
                return Err(StableError::Malformed {
                    what: "data frame without data",
                });
            }
            _ => {}
        }
        let len = len as usize;
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let body = buf.split_to(len).freeze();
        // The lengths were checked above, so the body holds every field of its type.
        let frame = parse_body(kind, &body).map_err(|_| StableError::Malformed {
            what: "body shorter than its type",
        })?;
        Ok(Some(frame))
    }

    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Open => FrameType::Open,
            Self::Opened { .. } => FrameType::Opened,
            Self::Challenge { .. } => FrameType::Challenge,
            Self::Resume { .. } => FrameType::Resume,
            Self::Resumed { .. } => FrameType::Resumed,
            Self::Refused { .. } => FrameType::Refused,
            Self::Data { .. } => FrameType::Data,
            Self::Ack { .. } => FrameType::Ack,
            Self::Close { .. } => FrameType::Close,
        }
    }

    /// Encoded length, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Self::Data { bytes, .. } => 8 + bytes.len(),
                other => other.frame_type().fixed_len().unwrap_or(0) as usize,
            }
    }

    /// Appends the encoded frame to `out`. A `Data` frame must carry 1..=[`MAX_SEGMENT`]
    /// bytes (the endpoint never builds another).
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        out.put_u8(self.frame_type() as u8);
        out.put_u32_le((self.encoded_len() - HEADER_LEN) as u32);
        match self {
            Self::Open => {}
            Self::Opened { session_id, share } => {
                out.put_slice(&session_id.0);
                out.put_slice(share);
            }
            Self::Challenge { nonce } => out.put_slice(nonce),
            Self::Resume {
                session_id,
                proof,
                next_expected,
            } => {
                out.put_slice(&session_id.0);
                out.put_slice(proof);
                out.put_u64_le(*next_expected);
            }
            Self::Resumed { next_expected } | Self::Ack { next_expected } => {
                out.put_u64_le(*next_expected);
            }
            Self::Refused { reason } => out.put_u8(reason.to_u8()),
            Self::Data { offset, bytes } => {
                out.put_u64_le(*offset);
                out.put_slice(bytes);
            }
            Self::Close { end } => out.put_u64_le(*end),
        }
    }
}

/// Appends a `Data` frame for `bytes` (1..=[`MAX_SEGMENT`]) without building a [`Frame`].
pub(super) fn encode_data(offset: u64, bytes: &[u8], out: &mut BytesMut) {
    out.reserve(HEADER_LEN + 8 + bytes.len());
    out.put_u8(FrameType::Data as u8);
    out.put_u32_le((8 + bytes.len()) as u32);
    out.put_u64_le(offset);
    out.put_slice(bytes);
}

/// Reads the body of a frame of type `kind` (its length already checked).
fn parse_body(kind: FrameType, body: &Bytes) -> Result<Frame, UnexpectedEnd> {
    let mut reader = Reader::new(body);
    Ok(match kind {
        FrameType::Open => Frame::Open,
        FrameType::Opened => Frame::Opened {
            session_id: SessionId(reader.take_array()?),
            share: reader.take_array()?,
        },
        FrameType::Challenge => Frame::Challenge {
            nonce: reader.take_array()?,
        },
        FrameType::Resume => Frame::Resume {
            session_id: SessionId(reader.take_array()?),
            proof: reader.take_array()?,
            next_expected: reader.read_u64()?,
        },
        FrameType::Resumed => Frame::Resumed {
            next_expected: reader.read_u64()?,
        },
        FrameType::Refused => Frame::Refused {
            reason: RefuseReason::from_u8(reader.read_u8()?),
        },
        FrameType::Data => {
            let offset = reader.read_u64()?;
            Frame::Data {
                offset,
                bytes: body.slice_ref(reader.take_rest()),
            }
        }
        FrameType::Ack => Frame::Ack {
            next_expected: reader.read_u64()?,
        },
        FrameType::Close => Frame::Close {
            end: reader.read_u64()?,
        },
    })
}
