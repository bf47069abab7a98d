//! Serialization: Rust values into [`Value`]s and frames.

use serde::ser::{self, Serialize};

use super::SerdeError;
use crate::dataframe::{DataFrame, Value};

// ---------------------------------------------------------------------------------------------
// Serialization
// ---------------------------------------------------------------------------------------------

/// Never trust a `Serialize` impl's length hint for more than this many slots up front.
const MAX_PREALLOCATED: usize = 4096;

/// Serializes one value into a [`Value`].
pub(super) struct ValueSerializer;

/// The values of a compound being serialized.
pub(super) struct Compound {
    values: Vec<Value>,
    /// Sequences and tuples of one primitive number type become a packed array.
    pack: bool,
}

impl Compound {
    fn new(len: Option<usize>, pack: bool) -> Self {
        Self {
            values: Vec::with_capacity(len.unwrap_or(0).min(MAX_PREALLOCATED)),
            pack,
        }
    }

    fn variant(name: &str, len: usize) -> Self {
        let mut values = Vec::with_capacity(len.saturating_add(1).min(MAX_PREALLOCATED));
        values.push(Value::String(name.to_owned()));
        Self {
            values,
            pack: false,
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.values.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn finish(self) -> Value {
        if self.pack {
            pack(self.values)
        } else {
            Value::Frame(DataFrame::from_values(self.values))
        }
    }
}

/// A non-empty list of one primitive number type as its packed array, anything else a frame.
fn pack(values: Vec<Value>) -> Value {
    macro_rules! packed {
        ($variant:ident => $array:ident) => {
            values
                .iter()
                .map(|value| match value {
                    Value::$variant(number) => Some(*number),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(Value::$array)
        };
    }
    let packed = match values.first() {
        Some(Value::U8(_)) => packed!(U8 => Bytes),
        Some(Value::I8(_)) => packed!(I8 => ArrayI8),
        Some(Value::I16(_)) => packed!(I16 => ArrayI16),
        Some(Value::I32(_)) => packed!(I32 => ArrayI32),
        Some(Value::I64(_)) => packed!(I64 => ArrayI64),
        Some(Value::U16(_)) => packed!(U16 => ArrayU16),
        Some(Value::U32(_)) => packed!(U32 => ArrayU32),
        Some(Value::U64(_)) => packed!(U64 => ArrayU64),
        Some(Value::F32(_)) => packed!(F32 => ArrayF32),
        Some(Value::F64(_)) => packed!(F64 => ArrayF64),
        _ => None,
    };
    packed.unwrap_or_else(|| Value::Frame(DataFrame::from_values(values)))
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerdeError;
    type SerializeSeq = Compound;
    type SerializeTuple = Compound;
    type SerializeTupleStruct = Compound;
    type SerializeTupleVariant = Compound;
    type SerializeMap = Compound;
    type SerializeStruct = Compound;
    type SerializeStructVariant = Compound;

    fn serialize_bool(self, v: bool) -> Result<Value, SerdeError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, SerdeError> {
        Ok(Value::I8(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, SerdeError> {
        Ok(Value::I16(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, SerdeError> {
        Ok(Value::I32(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, SerdeError> {
        Ok(Value::I64(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, SerdeError> {
        i64::try_from(v)
            .map(Value::I64)
            .map_err(|_| SerdeError::new(format!("i128 {v} does not fit in an i64 value")))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, SerdeError> {
        Ok(Value::U8(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, SerdeError> {
        Ok(Value::U16(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, SerdeError> {
        Ok(Value::U32(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, SerdeError> {
        Ok(Value::U64(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerdeError> {
        u64::try_from(v)
            .map(Value::U64)
            .map_err(|_| SerdeError::new(format!("u128 {v} does not fit in an u64 value")))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerdeError> {
        Ok(Value::F32(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerdeError> {
        Ok(Value::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, SerdeError> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerdeError> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerdeError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, SerdeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, SerdeError> {
        Ok(Compound::variant(variant, 0).finish())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        let mut compound = Compound::variant(variant, 1);
        compound.push(value)?;
        Ok(compound.finish())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound, SerdeError> {
        Ok(Compound::new(len, true))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound, SerdeError> {
        Ok(Compound::new(Some(len), true))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound, SerdeError> {
        Ok(Compound::new(Some(len), false))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound, SerdeError> {
        Ok(Compound::variant(variant, len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound, SerdeError> {
        Ok(Compound::new(len.map(|len| len.saturating_mul(2)), false))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound, SerdeError> {
        Ok(Compound::new(Some(len), false))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound, SerdeError> {
        Ok(Compound::variant(variant, len))
    }
}

impl ser::SerializeSeq for Compound {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for Compound {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for Compound {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for Compound {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeMap for Compound {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerdeError> {
        self.push(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for Compound {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn skip_field(&mut self, _key: &'static str) -> Result<(), SerdeError> {
        // Positional: a skipped field still takes its slot, or every later field would shift.
        self.values.push(Value::Null);
        Ok(())
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Compound {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn skip_field(&mut self, _key: &'static str) -> Result<(), SerdeError> {
        self.values.push(Value::Null);
        Ok(())
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

/// Serializes the top-level value into a whole frame (see the module docs).
pub(super) struct TopSerializer;

/// A top-level compound: `positional` ones become the frame, the others its single value.
pub(super) struct TopCompound {
    inner: Compound,
    positional: bool,
}

impl TopCompound {
    fn finish(self) -> DataFrame {
        if self.positional {
            DataFrame::from_values(self.inner.values)
        } else {
            single(self.inner.finish())
        }
    }
}

fn single(value: Value) -> DataFrame {
    DataFrame::from_values(vec![value])
}

macro_rules! top_scalars {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method(self, $($arg: $ty),*) -> Result<DataFrame, SerdeError> {
                ser::Serializer::$method(ValueSerializer, $($arg),*).map(single)
            }
        )*
    };
}

impl ser::Serializer for TopSerializer {
    type Ok = DataFrame;
    type Error = SerdeError;
    type SerializeSeq = TopCompound;
    type SerializeTuple = TopCompound;
    type SerializeTupleStruct = TopCompound;
    type SerializeTupleVariant = TopCompound;
    type SerializeMap = TopCompound;
    type SerializeStruct = TopCompound;
    type SerializeStructVariant = TopCompound;

    top_scalars! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<DataFrame, SerdeError> {
        value.serialize(ValueSerializer).map(single)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<DataFrame, SerdeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<DataFrame, SerdeError> {
        ser::Serializer::serialize_newtype_variant(ValueSerializer, name, index, variant, value)
            .map(single)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<TopCompound, SerdeError> {
        Ok(TopCompound {
            inner: Compound::new(len, false),
            positional: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<TopCompound, SerdeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<TopCompound, SerdeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<TopCompound, SerdeError> {
        Ok(TopCompound {
            inner: Compound::variant(variant, len),
            positional: false,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<TopCompound, SerdeError> {
        Ok(TopCompound {
            inner: Compound::new(len.map(|len| len.saturating_mul(2)), false),
            positional: false,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<TopCompound, SerdeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<TopCompound, SerdeError> {
        Ok(TopCompound {
            inner: Compound::variant(variant, len),
            positional: false,
        })
    }
}

impl ser::SerializeSeq for TopCompound {
    type Ok = DataFrame;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.inner.push(value)
    }
    fn end(self) -> Result<DataFrame, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for TopCompound {
    type Ok = DataFrame;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.inner.push(value)
    }
    fn end(self) -> Result<DataFrame, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for TopCompound {
    type Ok = DataFrame;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.inner.push(value)
    }
    fn end(self) -> Result<DataFrame, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for TopCompound {
    type Ok = DataFrame;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.inner.push(value)
    }
    fn end(self) -> Result<DataFrame, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeMap for TopCompound {
    type Ok = DataFrame;
    type Error = SerdeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerdeError> {
        self.inner.push(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.inner.push(value)
    }
    fn end(self) -> Result<DataFrame, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for TopCompound {
    type Ok = DataFrame;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), SerdeError> {
        ser::SerializeStruct::skip_field(&mut self.inner, key)
    }
    fn end(self) -> Result<DataFrame, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for TopCompound {
    type Ok = DataFrame;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        ser::SerializeStructVariant::serialize_field(&mut self.inner, key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), SerdeError> {
        ser::SerializeStructVariant::skip_field(&mut self.inner, key)
    }
    fn end(self) -> Result<DataFrame, SerdeError> {
        Ok(self.finish())
    }
}
