//! The 12-byte mux frame header: typed, and checked without any state before a body is
//! buffered. The layout is documented in the [module docs](super).

use bytes::BufMut;

use super::{MuxError, StreamId};
use crate::codec::Reader;

/// The only mux frame version this crate speaks (first byte of every header).
pub const VERSION: u8 = 1;

/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 12;

/// Largest body a `Data` frame may carry. Checked from the header, before the body is
/// buffered: a longer frame is [`MuxError::FrameTooLarge`].
pub const MAX_FRAME_BODY: u32 = 256 * 1024;

/// Longest service name (the body of `SYN`, `Listen` and `Unlisten` frames), in bytes.
pub const MAX_SERVICE_NAME: usize = 255;

/// Bytes either side may send on a new stream before the other grants more: the protocol's
/// initial window, in both directions. A receiver configured for a larger window grants the
/// difference at once (see [`MuxConfig::stream_window`](super::MuxConfig::stream_window)).
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// The type byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Stream data, and the stream's open (`SYN`), half-close (`FIN`) and reset (`RST`).
    Data = 0,
    /// Grants the peer `length` more bytes of send window on a stream; with `ACK` it also
    /// accepts a stream the peer opened.
    WindowUpdate = 1,
    /// Keep-alive probe (`SYN`) or its answer (`ACK`); `length` is an opaque nonce.
    Ping = 2,
    /// The sender accepts no new streams; `length` is a [`GoAwayCode`](super::GoAwayCode).
    GoAway = 3,
    /// The sender listens on the service named by the body.
    Listen = 4,
    /// The sender no longer listens on the service named by the body.
    Unlisten = 5,
}

impl FrameType {
    /// The type for a type byte, if it is one.
    pub fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Data,
            1 => Self::WindowUpdate,
            2 => Self::Ping,
            3 => Self::GoAway,
            4 => Self::Listen,
            5 => Self::Unlisten,
            _ => return None,
        })
    }
}

/// The flag bits of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

impl Flags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// Opens a stream (`Data`) or asks for a pong (`Ping`).
    pub const SYN: Self = Self(0x0001);
    /// Accepts a stream (`WindowUpdate`) or answers a ping (`Ping`).
    pub const ACK: Self = Self(0x0002);
    /// The sender sends no more data on this stream (half-close).
    pub const FIN: Self = Self(0x0004);
    /// The stream is aborted in both directions.
    pub const RST: Self = Self(0x0008);

    /// Flags from their wire bits (unknown bits are kept, and refused by
    /// [`Header::decode`]).
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// The wire bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// True when every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A decoded frame header.
///
/// What `length` means depends on the type: a body length for `Data`, `Listen` and
/// `Unlisten`; a window increment for `WindowUpdate`; a nonce for `Ping`; a code for
/// `GoAway`. Only [`Header::body_len`] bytes follow the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Frame type.
    pub frame_type: FrameType,
    /// Flag bits.
    pub flags: Flags,
    /// The stream (0 for `Ping`, `GoAway`, `Listen`, `Unlisten`).
    pub stream_id: u32,
    /// Body length, window increment, nonce or code (see the type docs).
    pub length: u32,
}

impl Header {
    /// A `Data` frame header.
    pub fn data(id: StreamId, flags: Flags, length: u32) -> Self {
        Self {
            frame_type: FrameType::Data,
            flags,
            stream_id: id.0,
            length,
        }
    }

    /// A `WindowUpdate` frame header.
    pub fn window_update(id: StreamId, flags: Flags, delta: u32) -> Self {
        Self {
            frame_type: FrameType::WindowUpdate,
            flags,
            stream_id: id.0,
            length: delta,
        }
    }

    /// A session-level frame header (stream id 0).
    pub fn session(frame_type: FrameType, flags: Flags, length: u32) -> Self {
        Self {
            frame_type,
            flags,
            stream_id: 0,
            length,
        }
    }

    /// Bytes of body that follow this header on the wire.
    pub fn body_len(&self) -> usize {
        match self.frame_type {
            FrameType::Data | FrameType::Listen | FrameType::Unlisten => self.length as usize,
            FrameType::WindowUpdate | FrameType::Ping | FrameType::GoAway => 0,
        }
    }

    /// Appends the 12 header bytes to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(VERSION);
        out.put_u8(self.frame_type as u8);
        out.put_u16_le(self.flags.bits());
        out.put_u32_le(self.stream_id);
        out.put_u32_le(self.length);
    }

    /// The 12 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        let mut cursor = &mut bytes[..];
        self.encode(&mut cursor);
        bytes
    }

    /// Decodes and checks a header without any connection state: version, type, the flags
    /// allowed on that type, where stream id 0 is required or forbidden, and every length
    /// bound — so a frame that fails here is refused before its body is buffered.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, MuxError> {
        // Twelve bytes always hold a whole header: `peek` never asks for more here.
        Self::peek(bytes)?.ok_or(MuxError::BadVersion { version: bytes[0] })
    }

    /// [`Self::decode`] on the front of `input`: `Ok(None)` while it holds fewer than
    /// [`HEADER_LEN`] bytes.
    pub fn peek(input: &[u8]) -> Result<Option<Self>, MuxError> {
        let mut reader = Reader::new(input);
        let (Ok(version), Ok(kind), Ok(flags), Ok(stream_id), Ok(length)) = (
            reader.read_u8(),
            reader.read_u8(),
            reader.read_u16(),
            reader.read_u32(),
            reader.read_u32(),
        ) else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(MuxError::BadVersion { version });
        }
        let frame_type =
            FrameType::from_u8(kind).ok_or(MuxError::UnknownType { frame_type: kind })?;
        let header = Self {
            frame_type,
            flags: Flags(flags),
            stream_id,
            length,
        };
        header.check()?;
        Ok(Some(header))
    }

    fn check(&self) -> Result<(), MuxError> {
        let bad_flags = || MuxError::BadFlags {
            frame_type: self.frame_type,
            flags: self.flags.bits(),
        };
        let on_stream = matches!(self.frame_type, FrameType::Data | FrameType::WindowUpdate);
        if on_stream == (self.stream_id == 0) {
            return Err(MuxError::BadStreamId {
                id: StreamId(self.stream_id),
            });
        }
        match self.frame_type {
            FrameType::Data => match self.flags {
                Flags::SYN => check_name_len(self.length),
                Flags::RST if self.length != 0 => Err(MuxError::UnexpectedBody {
                    frame_type: self.frame_type,
                    len: self.length,
                }),
                Flags::NONE | Flags::FIN | Flags::RST => {
                    if self.length > MAX_FRAME_BODY {
                        Err(MuxError::FrameTooLarge {
                            len: self.length,
                            max: MAX_FRAME_BODY,
                        })
                    } else {
                        Ok(())
                    }
                }
                _ => Err(bad_flags()),
            },
            FrameType::WindowUpdate => match self.flags {
                Flags::NONE | Flags::ACK => Ok(()),
                _ => Err(bad_flags()),
            },
            FrameType::Ping => match self.flags {
                Flags::SYN | Flags::ACK => Ok(()),
                _ => Err(bad_flags()),
            },
            FrameType::GoAway => match self.flags {
                Flags::NONE => Ok(()),
                _ => Err(bad_flags()),
            },
            FrameType::Listen | FrameType::Unlisten => match self.flags {
                Flags::NONE => check_name_len(self.length),
                _ => Err(bad_flags()),
            },
        }
    }
}

fn check_name_len(length: u32) -> Result<(), MuxError> {
    if length == 0 {
        return Err(MuxError::InvalidServiceName { len: 0 });
    }
    if length as usize > MAX_SERVICE_NAME {
        return Err(MuxError::FrameTooLarge {
            len: length,
            max: MAX_SERVICE_NAME as u32,
        });
    }
    Ok(())
}
