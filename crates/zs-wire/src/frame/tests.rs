//! Round trips (whole and byte by byte), bounds and malformed input.
use super::*;
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

fn arbitrary_frame() -> impl Strategy<Value = Frame> {
    let name = "[a-z_]{1,20}";
    let body = proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
    let payload = prop_oneof![Just(Payload::Console), Just(Payload::Stream)];
    prop_oneof![
        (1..u64::MAX, payload.clone(), name, body.clone()).prop_map(|(id, payload, name, body)| {
            Frame::Request {
                id: RequestId(id),
                payload,
                name,
                body,
            }
        }),
        (payload, name, body.clone()).prop_map(|(payload, name, body)| Frame::Direct {
            payload,
            name,
            body
        }),
        (any::<u64>(), body.clone()).prop_map(|(id, body)| Frame::Reply {
            id: RequestId(id),
            body
        }),
        (any::<u64>(), any::<u16>(), ".{0,40}", body).prop_map(|(id, code, message, details)| {
            Frame::ErrorReply {
                id: RequestId(id),
                code: StatusCode::from_u16(code),
                message,
                details,
            }
        }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        (0..7u16, ".{0,40}").prop_map(|(code, reason)| Frame::Close {
            code: CloseCode::from_u16(code),
            reason
        }),
        any::<u64>().prop_map(|id| Frame::Cancel { id: RequestId(id) }),
        (
            any::<u64>(),
            "[a-z]{1,9}",
            proptest::option::of(0..u64::MAX),
            any::<u64>(),
            any::<bool>(),
            0..3u8,
            any::<u64>()
        )
            .prop_map(
                |(id, name, total, offset, complete, compression, original_len)| {
                    Frame::StreamOpen {
                        id: RequestId(id),
                        name,
                        info: StreamInfo {
                            total: if complete {
                                Some(total.unwrap_or(0))
                            } else {
                                total
                            },
                            offset,
                            mode: if complete {
                                StreamMode::Complete
                            } else {
                                StreamMode::Chunks
                            },
                            compression: Compression::from_u8(compression).unwrap(),
                            original_len,
                        },
                    }
                }
            ),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(id, body)| {
            Frame::StreamData {
                id: RequestId(id),
                body: Bytes::from(body),
            }
        }),
        any::<u64>().prop_map(|id| Frame::StreamEnd { id: RequestId(id) }),
        (any::<u64>(), any::<u32>()).prop_map(|(id, credit)| Frame::StreamCredit {
            id: RequestId(id),
            credit
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn every_frame_round_trips_whole_and_byte_by_byte(frames in proptest::collection::vec(arbitrary_frame(), 1..4)) {
        let mut wire = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut wire).unwrap();
        }
        // Fed one byte at a time, the decoder must wait, then yield each frame exactly once.
        let decoder = FrameDecoder::default();
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in wire.iter() {
            buffer.put_u8(*byte);
            while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
                decoded.push(frame);
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert!(buffer.is_empty());
    }

    #[test]
    fn any_bytes_decode_to_frames_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let decoder = FrameDecoder::new(64);
        let mut buffer = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buffer) {}
    }
}

#[test]
fn oversize_length_is_refused_before_the_body_arrives() {
    let decoder = FrameDecoder::new(1024);
    let mut buffer = BytesMut::new();
    buffer.put_u8(FrameKind::Reply as u8);
    buffer.put_u8(0);
    buffer.put_u32_le(1025);
    buffer.put_u64_le(1);
    assert_eq!(
        decoder.decode(&mut buffer),
        Err(FrameError::FrameTooLarge {
            len: 1025,
            max: 1024
        })
    );
    assert!(
        buffer.capacity() < 1025,
        "nothing was reserved for the body"
    );
}

#[test]
fn unknown_kind_and_flags_are_errors() {
    let decoder = FrameDecoder::default();
    let mut unknown = BytesMut::from(&[0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(
        decoder.decode(&mut unknown),
        Err(FrameError::UnknownKind { kind: 0x7f })
    );
    let mut flagged = BytesMut::from(&[0x07, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(
        decoder.decode(&mut flagged),
        Err(FrameError::UnknownFlags {
            kind: 0x07,
            flags: 0x80
        })
    );
}

#[test]
fn empty_command_name_is_malformed() {
    // Found by the frame_decode fuzz target: the encoder refuses it, so must the decoder.
    let mut buffer = BytesMut::from(&[1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(
        FrameDecoder::default().decode(&mut buffer),
        Err(FrameError::Malformed {
            kind: FrameKind::ConsoleRequest,
            problem: "empty command name"
        })
    );
}

#[test]
fn encoder_refuses_bodies_the_peer_would_refuse() {
    let mut out = BytesMut::new();
    assert_eq!(
        encode_reply(&mut out, RequestId(1), &[0; 100], 99),
        Err(EncodeError::FrameTooLarge { len: 100, max: 99 })
    );
    assert!(out.is_empty());
    assert_eq!(
        encode_command(&mut out, None, Payload::Console, "", b"", 1000),
        Err(EncodeError::BadCommandName { len: 0 })
    );
}
