//! The frame decoder: header checks first, then each kind's body layout, all read through
//! the crate's one bounds-checked [`Reader`].

use bytes::{Buf, Bytes, BytesMut};

use super::{
    CloseCode, Compression, DEFAULT_MAX_FRAME_SIZE, Frame, FrameError, FrameKind, HEADER_SIZE,
    Payload, RequestId, STREAM_INFO_SIZE, StatusCode, StreamInfo, StreamMode,
};
use crate::codec::Reader;

/// Decodes frames from a receive buffer, bounded by a maximum body size.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_size: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder refusing bodies over `max_frame_size` bytes.
    pub fn new(max_frame_size: u32) -> Self {
        Self { max_frame_size }
    }

    /// The configured maximum body size.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Takes one frame off the front of `buffer`.
    ///
    /// Returns `Ok(None)` when `buffer` holds no complete frame yet (and reserves room for
    /// the rest of it), `Ok(Some(frame))` after consuming exactly one frame.
    pub fn decode(&self, buffer: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let mut header = Reader::new(buffer);
        let (Ok(kind_byte), Ok(flags), Ok(body_len), Ok(raw_id)) = (
            header.read_u8(),
            header.read_u8(),
            header.read_u32(),
            header.read_u64(),
        ) else {
            return Ok(None);
        };
        let kind =
            FrameKind::from_byte(kind_byte).ok_or(FrameError::UnknownKind { kind: kind_byte })?;
        if flags != 0 {
            return Err(FrameError::UnknownFlags {
                kind: kind_byte,
                flags,
            });
        }
        if body_len > self.max_frame_size {
            return Err(FrameError::FrameTooLarge {
                len: u64::from(body_len),
                max: self.max_frame_size,
            });
        }
        let total = HEADER_SIZE + body_len as usize;
        if buffer.len() < total {
            buffer.reserve(total - buffer.len());
            return Ok(None);
        }
        buffer.advance(HEADER_SIZE);
        let body = buffer.split_to(body_len as usize).freeze();
        parse_body(kind, RequestId(raw_id), body).map(Some)
    }
}

fn malformed(kind: FrameKind, problem: &'static str) -> FrameError {
    FrameError::Malformed { kind, problem }
}

fn utf8(kind: FrameKind, bytes: &[u8], problem: &'static str) -> Result<String, FrameError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| malformed(kind, problem))
}

/// Splits `u8 name_len | name | rest` into the name and the rest (a zero-copy slice).
fn split_name(kind: FrameKind, body: &Bytes) -> Result<(String, Bytes), FrameError> {
    let mut reader = Reader::new(body);
    let name_len = reader
        .read_u8()
        .map_err(|_| malformed(kind, "missing command name length"))?;
    if name_len == 0 {
        return Err(malformed(kind, "empty command name"));
    }
    let name = reader
        .take(usize::from(name_len))
        .map_err(|_| malformed(kind, "command name runs past the frame"))?;
    let name = utf8(kind, name, "command name is not UTF-8")?;
    Ok((name, body.slice_ref(reader.take_rest())))
}

/// Splits `u16 code | utf8 text`.
fn split_code(kind: FrameKind, body: &[u8]) -> Result<(u16, String), FrameError> {
    let mut reader = Reader::new(body);
    let code = reader
        .read_u16()
        .map_err(|_| malformed(kind, "missing code"))?;
    let text = utf8(kind, reader.take_rest(), "message is not UTF-8")?;
    Ok((code, text))
}

/// Splits `u16 code | u16 message length | utf8 message | details`.
fn split_error(kind: FrameKind, id: RequestId, body: &Bytes) -> Result<Frame, FrameError> {
    let mut reader = Reader::new(body);
    let (Ok(code), Ok(message_len)) = (reader.read_u16(), reader.read_u16()) else {
        return Err(malformed(kind, "missing code or message length"));
    };
    let message = reader
        .take(usize::from(message_len))
        .map_err(|_| malformed(kind, "message longer than the body"))?;
    let message = utf8(kind, message, "message is not UTF-8")?;
    Ok(Frame::ErrorReply {
        id,
        code: StatusCode::from_u16(code),
        message,
        details: body.slice_ref(reader.take_rest()),
    })
}

/// Reads the fixed part of a `StreamOpen` body (after the name).
fn stream_info(kind: FrameKind, rest: &[u8]) -> Result<StreamInfo, FrameError> {
    let wrong_size = || malformed(kind, "stream description has the wrong size");
    if rest.len() != STREAM_INFO_SIZE {
        return Err(wrong_size());
    }
    let mut reader = Reader::new(rest);
    let (Ok(total), Ok(offset), Ok(mode), Ok(compression), Ok(original_len)) = (
        reader.read_u64(),
        reader.read_u64(),
        reader.read_u8(),
        reader.read_u8(),
        reader.read_u64(),
    ) else {
        return Err(wrong_size());
    };
    let mode = match mode {
        0 => StreamMode::Chunks,
        1 => StreamMode::Complete,
        _ => return Err(malformed(kind, "unknown stream mode")),
    };
    let compression =
        Compression::from_u8(compression).ok_or(malformed(kind, "unknown compression"))?;
    let total = (total != u64::MAX).then_some(total);
    if mode == StreamMode::Complete && total.is_none() {
        return Err(malformed(kind, "a complete buffer must announce its size"));
    }
    Ok(StreamInfo {
        total,
        offset,
        mode,
        compression,
        original_len,
    })
}

fn parse_body(kind: FrameKind, id: RequestId, body: Bytes) -> Result<Frame, FrameError> {
    let no_body = |frame: Frame| {
        if body.is_empty() {
            Ok(frame)
        } else {
            Err(malformed(kind, "unexpected body"))
        }
    };
    Ok(match kind {
        FrameKind::ConsoleRequest | FrameKind::StreamRequest => {
            let (name, body) = split_name(kind, &body)?;
            let payload = if kind == FrameKind::ConsoleRequest {
                Payload::Console
            } else {
                Payload::Stream
            };
            Frame::Request {
                id,
                payload,
                name,
                body,
            }
        }
        FrameKind::DirectConsole | FrameKind::DirectStream => {
            if id.0 != 0 {
                return Err(malformed(kind, "direct message with a request id"));
            }
            let (name, body) = split_name(kind, &body)?;
            let payload = if kind == FrameKind::DirectConsole {
                Payload::Console
            } else {
                Payload::Stream
            };
            Frame::Direct {
                payload,
                name,
                body,
            }
        }
        FrameKind::Reply => Frame::Reply { id, body },
        FrameKind::ErrorReply => split_error(kind, id, &body)?,
        FrameKind::Ping => no_body(Frame::Ping { nonce: id.0 })?,
        FrameKind::Pong => no_body(Frame::Pong { nonce: id.0 })?,
        FrameKind::Close => {
            let (code, reason) = split_code(kind, &body)?;
            Frame::Close {
                code: CloseCode::from_u16(code),
                reason,
            }
        }
        FrameKind::Cancel => no_body(Frame::Cancel { id })?,
        FrameKind::StreamOpen => {
            let (name, rest) = split_name(kind, &body)?;
            let info = stream_info(kind, &rest)?;
            Frame::StreamOpen { id, name, info }
        }
        FrameKind::StreamData => Frame::StreamData { id, body },
        FrameKind::StreamEnd => no_body(Frame::StreamEnd { id })?,
        FrameKind::StreamCredit => {
            let mut reader = Reader::new(&body);
            let credit = reader
                .read_u32()
                .ok()
                .filter(|_| reader.is_empty())
                .ok_or(malformed(kind, "credit must be 4 bytes"))?;
            Frame::StreamCredit { id, credit }
        }
    })
}
