//! The values a [`DataFrame`](super::DataFrame) holds.

use super::DataFrame;

/// One typed value in a [`DataFrame`](super::DataFrame).
///
/// The original ZServer4D `TDataFrameEngine` offered a similar set (string, integers, floats,
/// byte streams, numeric arrays, nested frames); zserver adds the full signed/unsigned integer
/// range, `null` (so `Option` round-trips through the serde bridge) and JSON values.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// The absence of a value (`Option::None`, JSON `null`).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Signed 8-bit integer.
    I8(i8),
    /// Signed 16-bit integer.
    I16(i16),
    /// Signed 32-bit integer.
    I32(i32),
    /// Signed 64-bit integer.
    I64(i64),
    /// Unsigned 8-bit integer.
    U8(u8),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// 32-bit float.
    F32(f32),
    /// 64-bit float.
    F64(f64),
    /// UTF-8 text.
    String(String),
    /// Raw bytes (also the "array of u8").
    Bytes(Vec<u8>),
    /// Array of `i8`.
    ArrayI8(Vec<i8>),
    /// Array of `i16`.
    ArrayI16(Vec<i16>),
    /// Array of `i32`.
    ArrayI32(Vec<i32>),
    /// Array of `i64`.
    ArrayI64(Vec<i64>),
    /// Array of `u16`.
    ArrayU16(Vec<u16>),
    /// Array of `u32`.
    ArrayU32(Vec<u32>),
    /// Array of `u64`.
    ArrayU64(Vec<u64>),
    /// Array of `f32`.
    ArrayF32(Vec<f32>),
    /// Array of `f64`.
    ArrayF64(Vec<f64>),
    /// A nested DataFrame.
    Frame(DataFrame),
    /// A JSON document.
    Json(serde_json::Value),
}

/// The type of a [`Value`], without its content. Used in errors and in the JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueKind {
    /// [`Value::Null`]
    Null,
    /// [`Value::Bool`]
    Bool,
    /// [`Value::I8`]
    I8,
    /// [`Value::I16`]
    I16,
    /// [`Value::I32`]
    I32,
    /// [`Value::I64`]
    I64,
    /// [`Value::U8`]
    U8,
    /// [`Value::U16`]
    U16,
    /// [`Value::U32`]
    U32,
    /// [`Value::U64`]
    U64,
    /// [`Value::F32`]
    F32,
    /// [`Value::F64`]
    F64,
    /// [`Value::String`]
    String,
    /// [`Value::Bytes`]
    Bytes,
    /// [`Value::ArrayI8`]
    ArrayI8,
    /// [`Value::ArrayI16`]
    ArrayI16,
    /// [`Value::ArrayI32`]
    ArrayI32,
    /// [`Value::ArrayI64`]
    ArrayI64,
    /// [`Value::ArrayU16`]
    ArrayU16,
    /// [`Value::ArrayU32`]
    ArrayU32,
    /// [`Value::ArrayU64`]
    ArrayU64,
    /// [`Value::ArrayF32`]
    ArrayF32,
    /// [`Value::ArrayF64`]
    ArrayF64,
    /// [`Value::Frame`]
    Frame,
    /// [`Value::Json`]
    Json,
}

impl ValueKind {
    /// Every kind, in wire-tag order (the tag is the index).
    pub const ALL: [ValueKind; 25] = [
        Self::Null,
        Self::Bool,
        Self::I8,
        Self::I16,
        Self::I32,
        Self::I64,
        Self::U8,
        Self::U16,
        Self::U32,
        Self::U64,
        Self::F32,
        Self::F64,
        Self::String,
        Self::Bytes,
        Self::ArrayI8,
        Self::ArrayI16,
        Self::ArrayI32,
        Self::ArrayI64,
        Self::ArrayU16,
        Self::ArrayU32,
        Self::ArrayU64,
        Self::ArrayF32,
        Self::ArrayF64,
        Self::Frame,
        Self::Json,
    ];

    /// The one-byte tag that precedes a value of this kind on the wire.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The kind for a wire tag, or `None` for an unknown tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.get(tag as usize).copied()
    }

    /// The lower-case name used in the typed JSON form (`"i32"`, `"string"`, `"f64_array"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "bool",
            Self::I8 => "i8",
            Self::I16 => "i16",
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::U8 => "u8",
            Self::U16 => "u16",
            Self::U32 => "u32",
            Self::U64 => "u64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::String => "string",
            Self::Bytes => "bytes",
            Self::ArrayI8 => "i8_array",
            Self::ArrayI16 => "i16_array",
            Self::ArrayI32 => "i32_array",
            Self::ArrayI64 => "i64_array",
            Self::ArrayU16 => "u16_array",
            Self::ArrayU32 => "u32_array",
            Self::ArrayU64 => "u64_array",
            Self::ArrayF32 => "f32_array",
            Self::ArrayF64 => "f64_array",
            Self::Frame => "frame",
            Self::Json => "json",
        }
    }

    /// The kind for a typed-JSON name, or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for ValueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Value {
    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Self::Null => ValueKind::Null,
            Self::Bool(_) => ValueKind::Bool,
            Self::I8(_) => ValueKind::I8,
            Self::I16(_) => ValueKind::I16,
            Self::I32(_) => ValueKind::I32,
            Self::I64(_) => ValueKind::I64,
            Self::U8(_) => ValueKind::U8,
            Self::U16(_) => ValueKind::U16,
            Self::U32(_) => ValueKind::U32,
            Self::U64(_) => ValueKind::U64,
            Self::F32(_) => ValueKind::F32,
            Self::F64(_) => ValueKind::F64,
            Self::String(_) => ValueKind::String,
            Self::Bytes(_) => ValueKind::Bytes,
            Self::ArrayI8(_) => ValueKind::ArrayI8,
            Self::ArrayI16(_) => ValueKind::ArrayI16,
            Self::ArrayI32(_) => ValueKind::ArrayI32,
            Self::ArrayI64(_) => ValueKind::ArrayI64,
            Self::ArrayU16(_) => ValueKind::ArrayU16,
            Self::ArrayU32(_) => ValueKind::ArrayU32,
            Self::ArrayU64(_) => ValueKind::ArrayU64,
            Self::ArrayF32(_) => ValueKind::ArrayF32,
            Self::ArrayF64(_) => ValueKind::ArrayF64,
            Self::Frame(_) => ValueKind::Frame,
            Self::Json(_) => ValueKind::Json,
        }
    }
}

/// Deepest nesting of arrays and objects accepted inside a JSON value.
///
/// Bounded so that a frame's JSON form (which wraps each value in an object and each nested
/// frame in two more levels) always stays within the 128 levels JSON parsers accept.
pub const MAX_JSON_DEPTH: usize = 48;

/// True when `json` nests arrays/objects no deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn json_depth_ok(json: &serde_json::Value) -> bool {
    fn depth_ok(json: &serde_json::Value, budget: usize) -> bool {
        match json {
            serde_json::Value::Array(items) => {
                budget > 0 && items.iter().all(|item| depth_ok(item, budget - 1))
            }
            serde_json::Value::Object(map) => {
                budget > 0 && map.values().all(|item| depth_ok(item, budget - 1))
            }
            _ => true,
        }
    }
    depth_ok(json, MAX_JSON_DEPTH)
}

/// Conversions between Rust types and [`Value`], used by the generic
/// [`DataFrame::push`](super::DataFrame::push) and [`DataFrameReader::read`](super::DataFrameReader::read).
pub trait FromValue: Sized {
    /// The kind this type is read from.
    const KIND: ValueKind;
    /// Takes the content out of a value of kind [`Self::KIND`], or returns `None`.
    fn from_value(value: &Value) -> Option<Self>;
}

macro_rules! value_conversions {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(
            impl From<$ty> for Value {
                fn from(value: $ty) -> Self {
                    Value::$variant(value)
                }
            }
            impl FromValue for $ty {
                const KIND: ValueKind = ValueKind::$variant;
                fn from_value(value: &Value) -> Option<Self> {
                    match value {
                        Value::$variant(inner) => Some(inner.clone()),
                        _ => None,
                    }
                }
            }
        )*
    };
}

value_conversions! {
    bool => Bool, i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64, f32 => F32, f64 => F64,
    String => String, Vec<u8> => Bytes,
    Vec<i8> => ArrayI8, Vec<i16> => ArrayI16, Vec<i32> => ArrayI32, Vec<i64> => ArrayI64,
    Vec<u16> => ArrayU16, Vec<u32> => ArrayU32, Vec<u64> => ArrayU64,
    Vec<f32> => ArrayF32, Vec<f64> => ArrayF64,
    DataFrame => Frame, serde_json::Value => Json,
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::String(value.to_owned())
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Self {
        Value::Bytes(value.to_vec())
    }
}

impl From<()> for Value {
    fn from((): ()) -> Self {
        Value::Null
    }
}
