//! The DataFrame: an ordered list of typed values, zserver's payload for stream commands.
//!
//! A [`DataFrame`] is what the original ZServer4D called `TDataFrameEngine`: the sender pushes
//! values in order, the receiver reads them back in the same order with typed reads. A read of
//! the wrong type or past the end returns a [`ReadError`]; nothing here panics on peer data.
//!
//! Three representations:
//! - **binary** ([`DataFrame::encode`], [`DataFrame::decode`]): compact, little-endian, the
//!   layout in `docs/PROTOCOL.md` §DataFrame;
//! - **JSON** ([`DataFrame::to_json`], [`DataFrame::from_json`]): typed and lossless, also
//!   accepts plain JSON scalars for hand-written input;
//! - **serde** ([`DataFrame::from_serialize`], [`DataFrame::deserialize_into`]): any
//!   `Serialize`/`Deserialize` type in and out.
//!
//! ```
//! use zs_wire::dataframe::DataFrame;
//!
//! let mut frame = DataFrame::new();
//! frame.push("alice").push(42u32).push(vec![1.5f64, 2.5]);
//! let bytes = frame.encode();
//!
//! let decoded = DataFrame::decode(&bytes).unwrap();
//! let mut reader = decoded.reader();
//! assert_eq!(reader.read_string().unwrap(), "alice");
//! assert_eq!(reader.read::<u32>().unwrap(), 42);
//! assert!(reader.read_string().is_err()); // wrong type: an error, not a panic
//! ```

mod binary;
mod json;
mod serde_bridge;
mod value;

pub use binary::{DecodeError, MAX_NESTING_DEPTH};
pub use json::JsonError;
pub use serde_bridge::{SerdeError, from_value, to_value};
pub use value::{FromValue, MAX_JSON_DEPTH, Value, ValueKind};

/// An ordered list of typed [`Value`]s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataFrame {
    values: Vec<Value>,
}

/// A typed read from a [`DataFrame`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The value at `index` has another type than the one asked for.
    #[error("value {index} is {found}, not {expected}")]
    TypeMismatch {
        /// Position of the value in the frame.
        index: usize,
        /// The type the reader asked for.
        expected: ValueKind,
        /// The type the frame holds there.
        found: ValueKind,
    },
    /// The reader asked for value `index` but the frame holds only `len` values.
    #[error("read past the end of the frame: value {index} asked, frame holds {len}")]
    EndOfFrame {
        /// Position asked for.
        index: usize,
        /// Number of values in the frame.
        len: usize,
    },
}

impl DataFrame {
    /// An empty frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame holding `values`.
    pub fn from_values(values: Vec<Value>) -> Self {
        Self { values }
    }

    /// Appends a value; chains.
    pub fn push(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self
    }

    /// Appends a value; builder style.
    pub fn with(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the frame holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at `index`.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// All values, in order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// A reader positioned at the first value.
    pub fn reader(&self) -> DataFrameReader<'_> {
        DataFrameReader {
            frame: self,
            index: 0,
        }
    }
}

impl From<Vec<Value>> for DataFrame {
    fn from(values: Vec<Value>) -> Self {
        Self { values }
    }
}

impl FromIterator<Value> for DataFrame {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Self {
            values: iter.into_iter().collect(),
        }
    }
}

/// Reads a [`DataFrame`]'s values in order, each read checking the type.
///
/// A failed read does not advance the cursor, so a caller may retry with another type.
#[derive(Debug, Clone)]
pub struct DataFrameReader<'a> {
    frame: &'a DataFrame,
    index: usize,
}

macro_rules! typed_reads {
    ($($name:ident -> $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Reads the next value as `", stringify!($ty), "`.")]
            pub fn $name(&mut self) -> Result<$ty, ReadError> {
                self.read::<$ty>()
            }
        )*
    };
}

impl<'a> DataFrameReader<'a> {
    /// Index of the next value to read.
    pub fn position(&self) -> usize {
        self.index
    }

    /// Values left to read.
    pub fn remaining(&self) -> usize {
        self.frame.len().saturating_sub(self.index)
    }

    /// The next value without reading it.
    pub fn peek(&self) -> Option<&'a Value> {
        self.frame.get(self.index)
    }

    /// Reads the next value whatever its type.
    pub fn read_value(&mut self) -> Result<&'a Value, ReadError> {
        let value = self.frame.get(self.index).ok_or(ReadError::EndOfFrame {
            index: self.index,
            len: self.frame.len(),
        })?;
        self.index += 1;
        Ok(value)
    }

    /// Reads the next value as `T`; a value of another type is a [`ReadError::TypeMismatch`].
    pub fn read<T: FromValue>(&mut self) -> Result<T, ReadError> {
        let value = self.frame.get(self.index).ok_or(ReadError::EndOfFrame {
            index: self.index,
            len: self.frame.len(),
        })?;
        let read = T::from_value(value).ok_or(ReadError::TypeMismatch {
            index: self.index,
            expected: T::KIND,
            found: value.kind(),
        })?;
        self.index += 1;
        Ok(read)
    }

    /// Reads the next value as a borrowed string.
    pub fn read_str(&mut self) -> Result<&'a str, ReadError> {
        match self.peek() {
            Some(Value::String(text)) => {
                self.index += 1;
                Ok(text)
            }
            _ => self.read::<String>().map(|_| ""),
        }
    }

    typed_reads! {
        read_bool -> bool, read_i8 -> i8, read_i16 -> i16, read_i32 -> i32, read_i64 -> i64,
        read_u8 -> u8, read_u16 -> u16, read_u32 -> u32, read_u64 -> u64,
        read_f32 -> f32, read_f64 -> f64, read_string -> String, read_bytes -> Vec<u8>,
        read_frame -> DataFrame, read_json -> serde_json::Value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_return_typed_errors_and_do_not_advance_on_failure() {
        let frame = DataFrame::new().with(7i32).with("x");
        let mut reader = frame.reader();
        assert_eq!(
            reader.read_string(),
            Err(ReadError::TypeMismatch {
                index: 0,
                expected: ValueKind::String,
                found: ValueKind::I32
            })
        );
        assert_eq!(reader.read_i32(), Ok(7));
        assert_eq!(reader.read_str(), Ok("x"));
        assert_eq!(
            reader.read_u8(),
            Err(ReadError::EndOfFrame { index: 2, len: 2 })
        );
    }
}
