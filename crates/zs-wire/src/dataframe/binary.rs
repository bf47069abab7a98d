//! The binary DataFrame codec (layout: `docs/PROTOCOL.md`, section "DataFrame").
//!
//! ```text
//! frame  = u32 count, count × value
//! value  = u8 tag, body
//! ```
//! Scalars are little-endian; strings, bytes, JSON text and nested frames carry a `u32` byte
//! length; numeric arrays carry a `u32` element count. Every length is checked against the
//! bytes actually present before anything is allocated.

use super::{DataFrame, Value, ValueKind};
use crate::codec::{Reader, UnexpectedEnd};

/// Nested frames deeper than this are refused, so a hostile peer cannot exhaust the stack.
pub const MAX_NESTING_DEPTH: usize = 32;

/// A byte string is not a valid encoded DataFrame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("DataFrame truncated at byte {offset}")]
    Truncated {
        /// Offset where more bytes were needed.
        offset: usize,
    },
    /// A value tag no version of this protocol defines.
    #[error("unknown DataFrame value tag {tag} at byte {offset}")]
    UnknownTag {
        /// The tag byte.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// A bool byte other than 0 or 1.
    #[error("invalid bool byte {byte} at byte {offset}")]
    InvalidBool {
        /// The byte found.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// A string value is not UTF-8.
    #[error("string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the string's bytes.
        offset: usize,
    },
    /// A JSON value does not parse.
    #[error("JSON value at byte {offset} does not parse: {message}")]
    InvalidJson {
        /// Offset of the JSON text.
        offset: usize,
        /// The parser's message.
        message: String,
    },
    /// Nested frames go deeper than [`MAX_NESTING_DEPTH`].
    #[error("DataFrame nesting deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Bytes remain after the declared values.
    #[error("{extra} bytes after the end of the DataFrame")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl DataFrame {
    /// Encodes the frame into a new buffer.
    ///
    /// # Panics
    /// Never for frames under 4 GiB; a single string, byte string or array longer than
    /// `u32::MAX` elements cannot be represented and is truncated to an error at decode time,
    /// so callers bound sizes first (the runtime's `max_frame_size` does).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_u32(out, self.values.len());
        for value in &self.values {
            encode_value(value, out);
        }
    }

    fn encoded_len_hint(&self) -> usize {
        4 + self.values.len() * 9
    }

    /// Decodes a whole encoded frame. Trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let frame = decode_frame(&mut reader, 0)?;
        if reader.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                extra: reader.remaining(),
            });
        }
        Ok(frame)
    }
}

/// Lengths are written as u32; values larger than that cannot come from a frame that passed the
/// runtime's size limit, so saturating keeps `encode` infallible and the decoder rejects it.
fn put_u32(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    out.push(value.kind().tag());
    macro_rules! array {
        ($items:expr) => {{
            put_u32(out, $items.len());
            for item in $items {
                out.extend_from_slice(&item.to_le_bytes());
            }
        }};
    }
    match value {
        Value::Null => {}
        Value::Bool(flag) => out.push(u8::from(*flag)),
        Value::I8(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::I16(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::I32(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::I64(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::U8(number) => out.push(*number),
        Value::U16(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::U32(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::U64(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::F32(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::F64(number) => out.extend_from_slice(&number.to_le_bytes()),
        Value::String(text) => {
            put_u32(out, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Value::Bytes(bytes) => {
            put_u32(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        Value::ArrayI8(items) => array!(items),
        Value::ArrayI16(items) => array!(items),
        Value::ArrayI32(items) => array!(items),
        Value::ArrayI64(items) => array!(items),
        Value::ArrayU16(items) => array!(items),
        Value::ArrayU32(items) => array!(items),
        Value::ArrayU64(items) => array!(items),
        Value::ArrayF32(items) => array!(items),
        Value::ArrayF64(items) => array!(items),
        Value::Frame(frame) => {
            // Length-prefixed so a reader can skip a nested frame without parsing it.
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            frame.encode_into(out);
            let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        }
        Value::Json(json) => {
            let text = json.to_string();
            put_u32(out, text.len());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

fn truncated(reader: &Reader<'_>) -> impl Fn(UnexpectedEnd) -> DecodeError + use<> {
    let offset = reader.position();
    move |UnexpectedEnd| DecodeError::Truncated { offset }
}

fn decode_frame(reader: &mut Reader<'_>, depth: usize) -> Result<DataFrame, DecodeError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(DecodeError::TooDeep {
            max: MAX_NESTING_DEPTH,
        });
    }
    let count = reader.read_u32().map_err(truncated(reader))? as usize;
    // Every value takes at least one byte (its tag): never reserve more than the input can hold.
    let mut values = Vec::with_capacity(count.min(reader.remaining()));
    for _ in 0..count {
        values.push(decode_value(reader, depth)?);
    }
    Ok(DataFrame { values })
}

fn decode_value(reader: &mut Reader<'_>, depth: usize) -> Result<Value, DecodeError> {
    let offset = reader.position();
    let tag = reader.read_u8().map_err(truncated(reader))?;
    let kind = ValueKind::from_tag(tag).ok_or(DecodeError::UnknownTag { tag, offset })?;

    macro_rules! scalar {
        ($read:ident, $variant:ident) => {
            Value::$variant(reader.$read().map_err(truncated(reader))?)
        };
    }
    macro_rules! array {
        ($ty:ty, $variant:ident) => {{
            let count = reader.read_u32().map_err(truncated(reader))? as usize;
            let width = std::mem::size_of::<$ty>();
            let bytes = reader
                .take(count.saturating_mul(width))
                .map_err(truncated(reader))?;
            Value::$variant(
                bytes
                    .chunks_exact(width)
                    .map(|chunk| {
                        let mut array = [0u8; std::mem::size_of::<$ty>()];
                        array.copy_from_slice(chunk);
                        <$ty>::from_le_bytes(array)
                    })
                    .collect(),
            )
        }};
    }

    let value = match kind {
        ValueKind::Null => Value::Null,
        ValueKind::Bool => {
            let byte_offset = reader.position();
            match reader.read_u8().map_err(truncated(reader))? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                byte => {
                    return Err(DecodeError::InvalidBool {
                        byte,
                        offset: byte_offset,
                    });
                }
            }
        }
        ValueKind::I8 => scalar!(read_i8, I8),
        ValueKind::I16 => scalar!(read_i16, I16),
        ValueKind::I32 => scalar!(read_i32, I32),
        ValueKind::I64 => scalar!(read_i64, I64),
        ValueKind::U8 => scalar!(read_u8, U8),
        ValueKind::U16 => scalar!(read_u16, U16),
        ValueKind::U32 => scalar!(read_u32, U32),
        ValueKind::U64 => scalar!(read_u64, U64),
        ValueKind::F32 => scalar!(read_f32, F32),
        ValueKind::F64 => scalar!(read_f64, F64),
        ValueKind::String => {
            let bytes = reader.read_len_prefixed().map_err(truncated(reader))?;
            let text = std::str::from_utf8(bytes)
                .map_err(|_| DecodeError::InvalidUtf8 { offset: offset + 5 })?;
            Value::String(text.to_owned())
        }
        ValueKind::Bytes => Value::Bytes(
            reader
                .read_len_prefixed()
                .map_err(truncated(reader))?
                .to_vec(),
        ),
        ValueKind::ArrayI8 => array!(i8, ArrayI8),
        ValueKind::ArrayI16 => array!(i16, ArrayI16),
        ValueKind::ArrayI32 => array!(i32, ArrayI32),
        ValueKind::ArrayI64 => array!(i64, ArrayI64),
        ValueKind::ArrayU16 => array!(u16, ArrayU16),
        ValueKind::ArrayU32 => array!(u32, ArrayU32),
        ValueKind::ArrayU64 => array!(u64, ArrayU64),
        ValueKind::ArrayF32 => array!(f32, ArrayF32),
        ValueKind::ArrayF64 => array!(f64, ArrayF64),
        ValueKind::Frame => {
            let bytes = reader.read_len_prefixed().map_err(truncated(reader))?;
            let mut inner = Reader::new(bytes);
            let frame = decode_frame(&mut inner, depth + 1).map_err(|error| match error {
                // Offsets inside the nested frame are relative to it; report the outer position.
                DecodeError::Truncated { .. } => DecodeError::Truncated { offset },
                other => other,
            })?;
            if inner.remaining() != 0 {
                return Err(DecodeError::TrailingBytes {
                    extra: inner.remaining(),
                });
            }
            Value::Frame(frame)
        }
        ValueKind::Json => {
            let bytes = reader.read_len_prefixed().map_err(truncated(reader))?;
            let json = serde_json::from_slice(bytes).map_err(|error| DecodeError::InvalidJson {
                offset: offset + 5,
                message: error.to_string(),
            })?;
            if !super::value::json_depth_ok(&json) {
                return Err(DecodeError::InvalidJson {
                    offset: offset + 5,
                    message: format!("nested deeper than {}", super::MAX_JSON_DEPTH),
                });
            }
            Value::Json(json)
        }
    };
    Ok(value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i8>().prop_map(Value::I8),
            any::<i16>().prop_map(Value::I16),
            any::<i32>().prop_map(Value::I32),
            any::<i64>().prop_map(Value::I64),
            any::<u8>().prop_map(Value::U8),
            any::<u16>().prop_map(Value::U16),
            any::<u32>().prop_map(Value::U32),
            any::<u64>().prop_map(Value::U64),
            any::<f32>().prop_map(Value::F32),
            any::<f64>().prop_map(Value::F64),
            ".*".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
            proptest::collection::vec(any::<i8>(), 0..16).prop_map(Value::ArrayI8),
            proptest::collection::vec(any::<i16>(), 0..16).prop_map(Value::ArrayI16),
            proptest::collection::vec(any::<i32>(), 0..16).prop_map(Value::ArrayI32),
            proptest::collection::vec(any::<i64>(), 0..16).prop_map(Value::ArrayI64),
            proptest::collection::vec(any::<u16>(), 0..16).prop_map(Value::ArrayU16),
            proptest::collection::vec(any::<u32>(), 0..16).prop_map(Value::ArrayU32),
            proptest::collection::vec(any::<u64>(), 0..16).prop_map(Value::ArrayU64),
            proptest::collection::vec(any::<f32>(), 0..16).prop_map(Value::ArrayF32),
            proptest::collection::vec(any::<f64>(), 0..16).prop_map(Value::ArrayF64),
            (any::<i64>(), ".*").prop_map(|(number, text)| Value::Json(
                serde_json::json!({ "n": number, "text": text, "list": [1, null, true] })
            )),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8)
                .prop_map(|values| Value::Frame(DataFrame::from_values(values)))
        })
    }

    /// Float NaNs are not equal to themselves; compare encodings instead of values.
    fn same_encoding(left: &DataFrame, right: &DataFrame) -> bool {
        left.encode() == right.encode()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_frame_round_trips(values in proptest::collection::vec(arbitrary_value(), 0..12)) {
            let frame = DataFrame::from_values(values);
            let decoded = DataFrame::decode(&frame.encode()).expect("own encoding decodes");
            prop_assert!(same_encoding(&frame, &decoded));
        }

        #[test]
        fn any_bytes_decode_to_a_frame_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Must return, never panic; what decodes re-encodes to something that decodes the same.
            if let Ok(frame) = DataFrame::decode(&bytes) {
                let again = DataFrame::decode(&frame.encode()).expect("re-encoding decodes");
                prop_assert!(same_encoding(&frame, &again));
            }
        }

        #[test]
        fn every_truncation_of_a_valid_frame_is_an_error(values in proptest::collection::vec(arbitrary_value(), 1..6)) {
            let bytes = DataFrame::from_values(values).encode();
            for cut in 0..bytes.len() {
                prop_assert!(DataFrame::decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn huge_announced_count_is_refused_without_allocating() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x0d, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            DataFrame::decode(&bytes),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_tag_and_bad_bool_are_named() {
        assert_eq!(
            DataFrame::decode(&[1, 0, 0, 0, 200]),
            Err(DecodeError::UnknownTag {
                tag: 200,
                offset: 4
            })
        );
        assert_eq!(
            DataFrame::decode(&[1, 0, 0, 0, 1, 2]),
            Err(DecodeError::InvalidBool { byte: 2, offset: 5 })
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut frame = DataFrame::new();
        for _ in 0..(MAX_NESTING_DEPTH + 2) {
            frame = DataFrame::new().with(frame);
        }
        assert_eq!(
            DataFrame::decode(&frame.encode()),
            Err(DecodeError::TooDeep {
                max: MAX_NESTING_DEPTH
            })
        );
    }
}
