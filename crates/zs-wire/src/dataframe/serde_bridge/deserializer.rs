//! Deserialization: [`Value`]s and frames into Rust values.

use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use super::SerdeError;
use crate::dataframe::{Value, ValueKind};

// ---------------------------------------------------------------------------------------------
// Deserialization
// ---------------------------------------------------------------------------------------------

/// A primitive number, from a scalar value or an element of a packed array.
#[derive(Debug, Clone, Copy)]
enum Num {
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
}

impl Num {
    /// The value as an integer, or `None` for a float. Every integer kind fits in an i128.
    fn integer(self) -> Option<i128> {
        match self {
            Self::I8(n) => Some(n.into()),
            Self::I16(n) => Some(n.into()),
            Self::I32(n) => Some(n.into()),
            Self::I64(n) => Some(n.into()),
            Self::U8(n) => Some(n.into()),
            Self::U16(n) => Some(n.into()),
            Self::U32(n) => Some(n.into()),
            Self::U64(n) => Some(n.into()),
            Self::F32(_) | Self::F64(_) => None,
        }
    }

    fn kind(self) -> ValueKind {
        match self {
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
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind())?;
        match *self {
            Self::I8(n) => write!(f, "{n}"),
            Self::I16(n) => write!(f, "{n}"),
            Self::I32(n) => write!(f, "{n}"),
            Self::I64(n) => write!(f, "{n}"),
            Self::U8(n) => write!(f, "{n}"),
            Self::U16(n) => write!(f, "{n}"),
            Self::U32(n) => write!(f, "{n}"),
            Self::U64(n) => write!(f, "{n}"),
            Self::F32(n) => write!(f, "{n}"),
            Self::F64(n) => write!(f, "{n}"),
        }
    }
}

/// The element at `index` of a packed array (`Bytes` counts as an array of `u8`).
fn array_element(value: &Value, index: usize) -> Option<Num> {
    match value {
        Value::Bytes(items) => items.get(index).copied().map(Num::U8),
        Value::ArrayI8(items) => items.get(index).copied().map(Num::I8),
        Value::ArrayI16(items) => items.get(index).copied().map(Num::I16),
        Value::ArrayI32(items) => items.get(index).copied().map(Num::I32),
        Value::ArrayI64(items) => items.get(index).copied().map(Num::I64),
        Value::ArrayU16(items) => items.get(index).copied().map(Num::U16),
        Value::ArrayU32(items) => items.get(index).copied().map(Num::U32),
        Value::ArrayU64(items) => items.get(index).copied().map(Num::U64),
        Value::ArrayF32(items) => items.get(index).copied().map(Num::F32),
        Value::ArrayF64(items) => items.get(index).copied().map(Num::F64),
        _ => None,
    }
}

/// The elements of a packed array, as numbers.
struct ArrayItems<'de> {
    array: &'de Value,
    indices: std::ops::Range<usize>,
}

impl Iterator for ArrayItems<'_> {
    type Item = Num;
    fn next(&mut self) -> Option<Num> {
        self.indices
            .next()
            .and_then(|index| array_element(self.array, index))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.indices.size_hint()
    }
}

impl ExactSizeIterator for ArrayItems<'_> {}

/// What a value looks like to the deserializer.
enum Shape<'de> {
    Null,
    Bool(bool),
    Num(Num),
    Str(&'de str),
    Bytes(&'de [u8]),
    Array(ArrayItems<'de>),
    Frame(&'de [Value]),
    Json(&'de serde_json::Value),
}

fn shape(value: &Value) -> Shape<'_> {
    let array = |len: usize| {
        Shape::Array(ArrayItems {
            array: value,
            indices: 0..len,
        })
    };
    match value {
        Value::Null => Shape::Null,
        Value::Bool(flag) => Shape::Bool(*flag),
        Value::I8(n) => Shape::Num(Num::I8(*n)),
        Value::I16(n) => Shape::Num(Num::I16(*n)),
        Value::I32(n) => Shape::Num(Num::I32(*n)),
        Value::I64(n) => Shape::Num(Num::I64(*n)),
        Value::U8(n) => Shape::Num(Num::U8(*n)),
        Value::U16(n) => Shape::Num(Num::U16(*n)),
        Value::U32(n) => Shape::Num(Num::U32(*n)),
        Value::U64(n) => Shape::Num(Num::U64(*n)),
        Value::F32(n) => Shape::Num(Num::F32(*n)),
        Value::F64(n) => Shape::Num(Num::F64(*n)),
        Value::String(text) => Shape::Str(text),
        Value::Bytes(bytes) => Shape::Bytes(bytes),
        Value::ArrayI8(items) => array(items.len()),
        Value::ArrayI16(items) => array(items.len()),
        Value::ArrayI32(items) => array(items.len()),
        Value::ArrayI64(items) => array(items.len()),
        Value::ArrayU16(items) => array(items.len()),
        Value::ArrayU32(items) => array(items.len()),
        Value::ArrayU64(items) => array(items.len()),
        Value::ArrayF32(items) => array(items.len()),
        Value::ArrayF64(items) => array(items.len()),
        Value::Frame(frame) => Shape::Frame(frame.values()),
        Value::Json(json) => Shape::Json(json),
    }
}

/// Feeds `items` to `visitor` as a sequence; values the visitor leaves unread are an error.
/// `offset` is the frame index of the first item, for error paths.
fn visit_items<'de, V, I, D>(visitor: V, items: I, offset: usize) -> Result<V::Value, SerdeError>
where
    V: Visitor<'de>,
    I: ExactSizeIterator<Item = D>,
    D: de::Deserializer<'de, Error = SerdeError>,
{
    let len = items.len();
    let mut access = Items {
        items,
        next: 0,
        offset,
    };
    let value = visitor.visit_seq(&mut access)?;
    let left = access.items.len();
    if left != 0 {
        return Err(SerdeError::new(format!(
            "{len} values where the type reads only {}",
            len - left
        )));
    }
    Ok(value)
}

struct Items<I> {
    items: I,
    next: usize,
    offset: usize,
}

impl<'de, I, D> SeqAccess<'de> for Items<I>
where
    I: ExactSizeIterator<Item = D>,
    D: de::Deserializer<'de, Error = SerdeError>,
{
    type Error = SerdeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, SerdeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.offset.saturating_add(self.next);
        self.next += 1;
        seed.deserialize(item)
            .map(Some)
            .map_err(|error| error.at(index))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

fn frame_items(values: &[Value]) -> impl ExactSizeIterator<Item = ValueDeserializer<'_>> {
    values.iter().map(ValueDeserializer)
}

/// A frame read as a map: key, value, key, value, ...
struct MapItems<'de> {
    values: &'de [Value],
    next: usize,
}

impl<'de> MapAccess<'de> for MapItems<'de> {
    type Error = SerdeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, SerdeError> {
        let index = self.next;
        let Some(key) = self.values.get(index) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(ValueDeserializer(key))
            .map(Some)
            .map_err(|error| error.at(index))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, SerdeError> {
        let index = self.next;
        let Some(value) = self.values.get(index) else {
            return Err(SerdeError::new(format!(
                "a map frame holds key, value pairs, but this one has an odd number of values ({})",
                self.values.len()
            )));
        };
        self.next += 1;
        seed.deserialize(ValueDeserializer(value))
            .map_err(|error| error.at(index))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.values.len().saturating_sub(self.next) / 2)
    }
}

/// An enum: the variant identifier and the content that follows it in its frame.
struct EnumItems<'de> {
    variant: &'de Value,
    content: &'de [Value],
    /// The variant came from a frame `[variant, content...]` (not a lone name).
    framed: bool,
}

impl<'de> EnumAccess<'de> for EnumItems<'de> {
    type Error = SerdeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), SerdeError> {
        match seed.deserialize(ValueDeserializer(self.variant)) {
            Ok(variant) => Ok((variant, self)),
            Err(error) if self.framed => Err(error.at(0)),
            Err(error) => Err(error),
        }
    }
}

impl<'de> VariantAccess<'de> for EnumItems<'de> {
    type Error = SerdeError;

    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.content {
            [] | [Value::Null] => Ok(()),
            content => Err(SerdeError::new(format!(
                "a unit variant has no content, found {} values after its name",
                content.len()
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        match self.content {
            [value] => seed
                .deserialize(ValueDeserializer(value))
                .map_err(|error| error.at(1)),
            content => Err(SerdeError::new(format!(
                "a newtype variant holds one value after its name, found {}",
                content.len()
            ))),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visit_items(visitor, frame_items(self.content), 1)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visit_items(visitor, frame_items(self.content), 1)
    }
}

macro_rules! num_integers {
    ($($method:ident => $visit:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
                match self.integer() {
                    Some(integer) => match <$ty>::try_from(integer) {
                        Ok(number) => visitor.$visit(number),
                        Err(_) => Err(SerdeError::new(format!(
                            "{self} does not fit in {}",
                            stringify!($ty)
                        ))),
                    },
                    None => self.deserialize_any(visitor),
                }
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Num {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Self::I8(n) => visitor.visit_i8(n),
            Self::I16(n) => visitor.visit_i16(n),
            Self::I32(n) => visitor.visit_i32(n),
            Self::I64(n) => visitor.visit_i64(n),
            Self::U8(n) => visitor.visit_u8(n),
            Self::U16(n) => visitor.visit_u16(n),
            Self::U32(n) => visitor.visit_u32(n),
            Self::U64(n) => visitor.visit_u64(n),
            Self::F32(n) => visitor.visit_f32(n),
            Self::F64(n) => visitor.visit_f64(n),
        }
    }

    num_integers! {
        deserialize_i8 => visit_i8(i8),
        deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64),
        deserialize_i128 => visit_i128(i128),
        deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32),
        deserialize_u64 => visit_u64(u64),
        deserialize_u128 => visit_u128(u128),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool f32 f64 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map
        struct enum identifier ignored_any
    }
}

/// Deserializes from one borrowed [`Value`].
#[derive(Clone, Copy)]
pub(super) struct ValueDeserializer<'de>(pub(super) &'de Value);

macro_rules! value_numbers {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
                match shape(self.0) {
                    Shape::Num(number) => number.$method(visitor),
                    Shape::Json(json) => json.$method(visitor).map_err(SerdeError::from_json),
                    _ => self.deserialize_any(visitor),
                }
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match shape(self.0) {
            Shape::Null => visitor.visit_unit(),
            Shape::Bool(flag) => visitor.visit_bool(flag),
            Shape::Num(number) => number.deserialize_any(visitor),
            Shape::Str(text) => visitor.visit_borrowed_str(text),
            // Bytes are a sequence of u8 here, so `Vec<u8>`, `serde_json::Value` and serde's
            // buffered content (untagged enums) all take them; `deserialize_bytes` gives bytes.
            Shape::Bytes(bytes) => visit_items(
                visitor,
                ArrayItems {
                    array: self.0,
                    indices: 0..bytes.len(),
                },
                0,
            ),
            Shape::Array(items) => visit_items(visitor, items, 0),
            Shape::Frame(values) => visit_items(visitor, frame_items(values), 0),
            Shape::Json(json) => json.deserialize_any(visitor).map_err(SerdeError::from_json),
        }
    }

    value_numbers! {
        deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64, deserialize_i128,
        deserialize_u8, deserialize_u16, deserialize_u32, deserialize_u64, deserialize_u128,
        deserialize_f32, deserialize_f64,
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match shape(self.0) {
            Shape::Bytes(bytes) => visitor.visit_borrowed_bytes(bytes),
            Shape::Json(json) => json
                .deserialize_bytes(visitor)
                .map_err(SerdeError::from_json),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match shape(self.0) {
            Shape::Null => visitor.visit_none(),
            Shape::Json(json) => json
                .deserialize_option(visitor)
                .map_err(SerdeError::from_json),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match shape(self.0) {
            Shape::Json(json) => json
                .deserialize_newtype_struct(name, visitor)
                .map_err(SerdeError::from_json),
            _ => visitor.visit_newtype_struct(self),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match shape(self.0) {
            Shape::Frame(values) => visitor.visit_map(MapItems { values, next: 0 }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match shape(self.0) {
            Shape::Frame([variant, content @ ..]) => visitor.visit_enum(EnumItems {
                variant,
                content,
                framed: true,
            }),
            Shape::Frame([]) => Err(SerdeError::new(format!(
                "enum {name}: an empty frame has no variant name"
            ))),
            Shape::Json(json) => json
                .deserialize_enum(name, variants, visitor)
                .map_err(SerdeError::from_json),
            _ => visitor.visit_enum(EnumItems {
                variant: self.0,
                content: &[],
                framed: false,
            }),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match shape(self.0) {
            // A unit variant `[name]`: serde writes adjacently tagged enums' tags that way.
            Shape::Frame([name]) => ValueDeserializer(name)
                .deserialize_identifier(visitor)
                .map_err(|error| error.at(0)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool char str string unit unit_struct seq tuple tuple_struct struct
    }
}

/// Deserializes from a whole top-level frame (see the module docs).
#[derive(Clone, Copy)]
pub(super) struct TopDeserializer<'de>(pub(super) &'de [Value]);

impl<'de> TopDeserializer<'de> {
    /// The frame's single value, for a type that is not read positionally.
    fn single(self, what: &str) -> Result<ValueDeserializer<'de>, SerdeError> {
        match self.0 {
            [value] => Ok(ValueDeserializer(value)),
            values => Err(SerdeError::new(format!(
                "{what} is read from a frame of exactly one value, this frame holds {}",
                values.len()
            ))),
        }
    }
}

macro_rules! top_single {
    ($($method:ident => $what:literal),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
                self.single($what)?.$method(visitor).map_err(|error| error.at(0))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for TopDeserializer<'de> {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            [value] => ValueDeserializer(value)
                .deserialize_any(visitor)
                .map_err(|error| error.at(0)),
            values => visit_items(visitor, frame_items(values), 0),
        }
    }

    top_single! {
        deserialize_bool => "a bool",
        deserialize_i8 => "an i8",
        deserialize_i16 => "an i16",
        deserialize_i32 => "an i32",
        deserialize_i64 => "an i64",
        deserialize_i128 => "an i128",
        deserialize_u8 => "an u8",
        deserialize_u16 => "an u16",
        deserialize_u32 => "an u32",
        deserialize_u64 => "an u64",
        deserialize_u128 => "an u128",
        deserialize_f32 => "an f32",
        deserialize_f64 => "an f64",
        deserialize_char => "a char",
        deserialize_str => "a string",
        deserialize_string => "a string",
        deserialize_bytes => "a byte string",
        deserialize_byte_buf => "a byte string",
        deserialize_map => "a map",
        deserialize_identifier => "an identifier",
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        if self.0.is_empty() {
            return visitor.visit_none();
        }
        self.single("an option")?
            .deserialize_option(visitor)
            .map_err(|error| error.at(0))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        if self.0.is_empty() {
            return visitor.visit_unit();
        }
        self.single("a unit")?
            .deserialize_unit(visitor)
            .map_err(|error| error.at(0))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_items(visitor, frame_items(self.0), 0)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.single("an enum")?
            .deserialize_enum(name, variants, visitor)
            .map_err(|error| error.at(0))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }
}
