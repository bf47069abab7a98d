//! serde bridge: any `Serialize` type into a [`DataFrame`] and any `Deserialize` type out of one.
//!
//! The mapping keeps Rust types (an `u8` is a [`Value::U8`], a `String` a [`Value::String`])
//! and, like bincode, is **positional**: field names are not stored.
//!
//! | Rust (serde data model)             | [`Value`]                                              |
//! |-------------------------------------|--------------------------------------------------------|
//! | `bool`, `i8`..`u64`, `f32`, `f64`   | the scalar of the same type                            |
//! | `i128`, `u128`                      | `I64` / `U64` when it fits, else an error              |
//! | `char`, `str`, `String`             | `String`                                               |
//! | bytes (`serialize_bytes`)           | `Bytes`                                                |
//! | `None`, `()`, unit struct           | `Null`; `Some(x)` is `x`                               |
//! | newtype struct                      | its inner value                                        |
//! | struct, tuple struct                | `Frame` of the fields, in order                        |
//! | sequence, tuple                     | `Frame` of the elements, or packed (below)             |
//! | map                                 | `Frame` of key, value, key, value, ...                 |
//! | enum variant                        | `Frame` of `[String name, content...]`; unit: `[name]` |
//!
//! A non-empty sequence or tuple whose elements are all the same primitive number is packed:
//! `u8`s into `Bytes` (so `Vec<u8>` and `[u8; N]` are `Bytes`), others into the matching
//! `Array*` (`Vec<f64>` is `ArrayF64`).
//!
//! **Top level.** [`DataFrame::from_serialize`] turns a struct, tuple, tuple struct or sequence
//! into the frame itself (one value per field or element, never packed); any other value
//! (scalar, option, map, enum) becomes a frame holding that single value. A newtype struct is
//! transparent. [`DataFrame::deserialize_into`] mirrors this: structs, tuples and sequences read
//! the frame's values in order, everything else reads the frame's single value (`()` and `None`
//! also accept an empty frame).
//!
//! **Deserialization** is self-describing: `deserialize_any` works on every value (a `Frame`,
//! `Bytes` and numeric arrays are sequences; `Json` goes through serde_json), so
//! `serde_json::Value` and untagged or internally tagged enums work. Typed requests accept the
//! mapping above; structs are read from a `Frame` by position or from a `Json` object by name;
//! an enum is a `Frame` `[variant, content...]` or a lone variant name or index. Integers are
//! lenient: any integer value that fits the target type is accepted, one that does not is an
//! error. A sequence or struct must consume every value of its frame.
//!
//! Known limits: a map read through `deserialize_any` (e.g. into `serde_json::Value`) is a
//! sequence `[key, value, ...]`; a top-level frame read through `deserialize_any` is its single
//! value if it holds exactly one, else a sequence; a field skipped by `skip_serializing_if` is
//! written as `Null` to keep positions (so it should be an `Option`); serde reads inline struct
//! variants of untagged enums only from maps (use a newtype variant around a struct), unit
//! variants of adjacently tagged enums lack the content slot a positional read needs, and
//! externally tagged enums nested in untagged, internally tagged or flattened containers are
//! read only from a name or a map: these do not round-trip. Types with a distinct
//! human-readable form (`IpAddr`, ...) use it.
//!
//! Errors name the problem and the path of frame indices to the value (`at [2][0]: ...`).

use std::fmt;

use serde::de;
use serde::ser::{self, Serialize};

use super::{DataFrame, Value};

/// A value could not be converted between a Rust type and a [`DataFrame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", PathPrefix(.path))]
pub struct SerdeError {
    path: Vec<usize>,
    message: String,
}

impl SerdeError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// Records that the error happened inside the value at `index` of the enclosing frame.
    fn at(mut self, index: usize) -> Self {
        self.path.insert(0, index);
        self
    }

    fn from_json(error: serde_json::Error) -> Self {
        Self::new(error.to_string())
    }

    /// What went wrong, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Indices from the outer frame down to the value that failed (empty when unknown or
    /// when the failure concerns the outer value itself).
    pub fn path(&self) -> &[usize] {
        &self.path
    }
}

impl ser::Error for SerdeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

impl de::Error for SerdeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

struct PathPrefix<'a>(&'a [usize]);

impl fmt::Display for PathPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("at ")?;
        for index in self.0 {
            write!(f, "[{index}]")?;
        }
        f.write_str(": ")
    }
}

/// Converts any serializable value into one [`Value`], keeping Rust types.
///
/// Numbers keep their width, `char`/`String` are [`Value::String`], bytes are
/// [`Value::Bytes`], `None` and `()` are [`Value::Null`] (`Some(x)` is `x`); structs, tuples
/// and sequences are a [`Value::Frame`] of their fields or elements in order (a non-empty
/// sequence or tuple of one primitive number type is packed into `Bytes` or an `Array*`
/// value); a map is a frame of key, value, key, value, ...; an enum variant is a frame
/// `[name, content...]`. `i128`/`u128` beyond 64 bits are an error.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, SerdeError> {
    value.serialize(ValueSerializer)
}

/// Reads any deserializable type out of a [`Value`]: the inverse of [`to_value`].
///
/// Self-describing (`deserialize_any` works on every value, so `serde_json::Value` and
/// untagged enums work); any integer value that fits the target number type is accepted; a
/// [`Value::Json`] is read through serde_json. Errors name the problem and the path of frame
/// indices to the failing value.
pub fn from_value<T: de::DeserializeOwned>(value: &Value) -> Result<T, SerdeError> {
    T::deserialize(ValueDeserializer(value))
}

impl DataFrame {
    /// Converts any serializable value into a frame.
    ///
    /// A struct, tuple, tuple struct or sequence becomes the frame itself: one value per field
    /// or element, in order (field names are not stored). Any other value (scalar, option,
    /// map, enum) becomes a frame holding that single value. Nested values follow
    /// [`to_value`].
    ///
    /// ```
    /// use zs_wire::dataframe::{DataFrame, Value};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Login { user: String, age: u8, tags: Vec<String> }
    ///
    /// let login = Login { user: "alice".into(), age: 42, tags: vec!["ops".into()] };
    /// let frame = DataFrame::from_serialize(&login).unwrap();
    /// assert_eq!(frame.get(1), Some(&Value::U8(42)));
    /// let decoded = DataFrame::decode(&frame.encode()).unwrap();
    /// assert_eq!(decoded.deserialize_into::<Login>().unwrap(), login);
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, SerdeError> {
        value.serialize(TopSerializer)
    }

    /// Converts the frame into any deserializable type, mirroring
    /// [`from_serialize`](Self::from_serialize): structs, tuples and sequences read the
    /// frame's values in order, anything else reads the frame's single value (`()` and `None`
    /// also accept an empty frame). Nested values follow [`from_value`].
    pub fn deserialize_into<T: de::DeserializeOwned>(&self) -> Result<T, SerdeError> {
        T::deserialize(TopDeserializer(self.values()))
    }
}

mod deserializer;
mod serializer;
#[cfg(test)]
mod tests;

use deserializer::{TopDeserializer, ValueDeserializer};
use serializer::{TopSerializer, ValueSerializer};
