//! Codec tests: layouts, bounds, incomplete input, and property tests.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use bytes::BytesMut;
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
