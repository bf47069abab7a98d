//! Frame encoders: the `encode_*` functions the runtime calls, and [`Frame::encode`].

use bytes::{BufMut, BytesMut};

use super::{
    CloseCode, Frame, FrameKind, HEADER_SIZE, MAX_COMMAND_NAME, Payload, RequestId,
    STREAM_INFO_SIZE, StatusCode, StreamInfo, StreamMode,
};

/// A frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The body is larger than the peer accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Body length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// Command names are 1 to 255 bytes.
    #[error("command name of {len} bytes: names are 1 to {MAX_COMMAND_NAME} bytes")]
    BadCommandName {
        /// The name's length.
        len: usize,
    },
}

fn put_header(out: &mut BytesMut, kind: FrameKind, body_len: usize, id: u64) {
    out.reserve(HEADER_SIZE + body_len);
    out.put_u8(kind as u8);
    out.put_u8(0);
    // Callers check body_len against max_frame_size (a u32) before calling.
    out.put_u32_le(u32::try_from(body_len).unwrap_or(u32::MAX));
    out.put_u64_le(id);
}

fn check_len(len: usize, max: u32) -> Result<(), EncodeError> {
    if len as u64 > u64::from(max) {
        return Err(EncodeError::FrameTooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(())
}

/// Appends a request (`id = Some`) or a direct message (`id = None`).
///
/// `max_frame_size` is the peer's limit; a larger body is refused here rather than costing
/// the connection at the other end.
pub fn encode_command(
    out: &mut BytesMut,
    id: Option<RequestId>,
    payload: Payload,
    name: &str,
    body: &[u8],
    max_frame_size: u32,
) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > MAX_COMMAND_NAME {
        return Err(EncodeError::BadCommandName { len: name.len() });
    }
    let body_len = 1 + name.len() + body.len();
    check_len(body_len, max_frame_size)?;
    let kind = match (id.is_some(), payload) {
        (true, Payload::Console) => FrameKind::ConsoleRequest,
        (true, Payload::Stream) => FrameKind::StreamRequest,
        (false, Payload::Console) => FrameKind::DirectConsole,
        (false, Payload::Stream) => FrameKind::DirectStream,
    };
    put_header(out, kind, body_len, id.map_or(0, |id| id.0));
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    out.put_slice(body);
    Ok(())
}

/// Appends a successful reply.
pub fn encode_reply(
    out: &mut BytesMut,
    id: RequestId,
    body: &[u8],
    max_frame_size: u32,
) -> Result<(), EncodeError> {
    check_len(body.len(), max_frame_size)?;
    put_header(out, FrameKind::Reply, body.len(), id.0);
    out.put_slice(body);
    Ok(())
}

/// Longest message kept in error replies and close frames; longer ones are cut at a char
/// boundary so a huge error string can never exceed the frame limit.
pub const MAX_MESSAGE_LEN: usize = 4096;

fn truncate_message(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_LEN {
        return message;
    }
    let mut end = MAX_MESSAGE_LEN;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

fn put_code_frame(out: &mut BytesMut, kind: FrameKind, id: u64, code: u16, message: &str) {
    let message = truncate_message(message);
    put_header(out, kind, 2 + message.len(), id);
    out.put_u16_le(code);
    out.put_slice(message.as_bytes());
}

/// Appends an error reply. Messages longer than [`MAX_MESSAGE_LEN`] are truncated; details
/// that would take the frame over `max_frame_size` are left out (the code and message still
/// reach the caller), which the return value reports as `false`.
pub fn encode_error_reply(
    out: &mut BytesMut,
    id: RequestId,
    code: StatusCode,
    message: &str,
    details: &[u8],
    max_frame_size: u32,
) -> bool {
    let message = truncate_message(message);
    let fixed = 4 + message.len();
    let details_fit = check_len(fixed + details.len(), max_frame_size).is_ok();
    let details = if details_fit { details } else { &[] };
    put_header(out, FrameKind::ErrorReply, fixed + details.len(), id.0);
    out.put_u16_le(code.to_u16());
    // `truncate_message` keeps it at MAX_MESSAGE_LEN (4096), well inside a u16.
    out.put_u16_le(message.len() as u16);
    out.put_slice(message.as_bytes());
    out.put_slice(details);
    details_fit
}

/// Appends a close frame. Reasons longer than [`MAX_MESSAGE_LEN`] are truncated.
pub fn encode_close(out: &mut BytesMut, code: CloseCode, reason: &str) {
    put_code_frame(out, FrameKind::Close, 0, code.to_u16(), reason);
}

/// Appends a ping.
pub fn encode_ping(out: &mut BytesMut, nonce: u64) {
    put_header(out, FrameKind::Ping, 0, nonce);
}

/// Appends a pong.
pub fn encode_pong(out: &mut BytesMut, nonce: u64) {
    put_header(out, FrameKind::Pong, 0, nonce);
}

/// Appends a cancel.
pub fn encode_cancel(out: &mut BytesMut, id: RequestId) {
    put_header(out, FrameKind::Cancel, 0, id.0);
}

/// Appends a transfer's opening frame.
pub fn encode_stream_open(
    out: &mut BytesMut,
    id: RequestId,
    name: &str,
    info: &StreamInfo,
) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > MAX_COMMAND_NAME {
        return Err(EncodeError::BadCommandName { len: name.len() });
    }
    put_header(
        out,
        FrameKind::StreamOpen,
        1 + name.len() + STREAM_INFO_SIZE,
        id.0,
    );
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    out.put_u64_le(info.total.unwrap_or(u64::MAX));
    out.put_u64_le(info.offset);
    out.put_u8(match info.mode {
        StreamMode::Chunks => 0,
        StreamMode::Complete => 1,
    });
    out.put_u8(info.compression.to_u8());
    out.put_u64_le(info.original_len);
    Ok(())
}

/// Appends a chunk of transfer `id`.
pub fn encode_stream_data(
    out: &mut BytesMut,
    id: RequestId,
    chunk: &[u8],
    max_frame_size: u32,
) -> Result<(), EncodeError> {
    check_len(chunk.len(), max_frame_size)?;
    put_header(out, FrameKind::StreamData, chunk.len(), id.0);
    out.put_slice(chunk);
    Ok(())
}

/// Appends only the header of a `len`-byte chunk of transfer `id`; the caller sends the
/// chunk's bytes right after it (a runtime that queues the chunk without copying it).
pub fn encode_stream_data_header(
    out: &mut BytesMut,
    id: RequestId,
    len: usize,
    max_frame_size: u32,
) -> Result<(), EncodeError> {
    check_len(len, max_frame_size)?;
    put_header(out, FrameKind::StreamData, len, id.0);
    Ok(())
}

/// Appends the end of transfer `id`.
pub fn encode_stream_end(out: &mut BytesMut, id: RequestId) {
    put_header(out, FrameKind::StreamEnd, 0, id.0);
}

/// Appends a credit grant for transfer `id`.
pub fn encode_stream_credit(out: &mut BytesMut, id: RequestId, credit: u32) {
    put_header(out, FrameKind::StreamCredit, 4, id.0);
    out.put_u32_le(credit);
}

impl Frame {
    /// Appends this frame's encoding (used by tests and tools; the runtime uses the
    /// `encode_*` functions to avoid building a `Frame`).
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Frame::Request {
                id,
                payload,
                name,
                body,
            } => encode_command(out, Some(*id), *payload, name, body, u32::MAX),
            Frame::Direct {
                payload,
                name,
                body,
            } => encode_command(out, None, *payload, name, body, u32::MAX),
            Frame::Reply { id, body } => encode_reply(out, *id, body, u32::MAX),
            Frame::ErrorReply {
                id,
                code,
                message,
                details,
            } => {
                encode_error_reply(out, *id, *code, message, details, u32::MAX);
                Ok(())
            }
            Frame::Ping { nonce } => {
                encode_ping(out, *nonce);
                Ok(())
            }
            Frame::Pong { nonce } => {
                encode_pong(out, *nonce);
                Ok(())
            }
            Frame::Close { code, reason } => {
                encode_close(out, *code, reason);
                Ok(())
            }
            Frame::Cancel { id } => {
                encode_cancel(out, *id);
                Ok(())
            }
            Frame::StreamOpen { id, name, info } => encode_stream_open(out, *id, name, info),
            Frame::StreamData { id, body } => encode_stream_data(out, *id, body, u32::MAX),
            Frame::StreamEnd { id } => {
                encode_stream_end(out, *id);
                Ok(())
            }
            Frame::StreamCredit { id, credit } => {
                encode_stream_credit(out, *id, *credit);
                Ok(())
            }
        }
    }
}
