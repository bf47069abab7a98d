//! [`Record`]: what a database holds under each id, and its stored form.
//!
//! Stored form: `u8 kind | body`. Kind 1 is JSON (UTF-8 text of one JSON value), kind 2 is
//! opaque bytes, kind 3 a DataFrame in its binary encoding (`zs_wire::dataframe`), kind 4 a
//! JSON object in the binary field layout of `object.rs` (what JSON objects are stored as, so
//! scans step over fields instead of parsing text). All are bounded by [`MAX_RECORD_LEN`]
//! before anything is allocated for them.

use std::sync::Arc;

use zs_expr::Value;

use crate::DbError;
use crate::object::Selector;

/// Largest stored record, kind byte included: 16 MiB.
pub const MAX_RECORD_LEN: usize = 16 * 1024 * 1024;

const KIND_JSON: u8 = 1;
const KIND_BYTES: u8 = 2;
const KIND_FRAME: u8 = 3;
pub(crate) const KIND_OBJECT: u8 = 4;

/// One record (the original's ZDB entry: a DataFrame, JSON or a raw stream).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A JSON value; an object's fields are what filters and indexes see.
    Json(serde_json::Value),
    /// Opaque bytes: stored and returned, invisible to filters (every field is null).
    Bytes(Vec<u8>),
    /// A DataFrame (the original's ZDB records): its values are fields `_0`, `_1`, ... by
    /// position.
    Frame(zs_wire::DataFrame),
}

impl Record {
    /// The stored form.
    pub fn encode(&self) -> Result<Vec<u8>, DbError> {
        let mut out = Vec::new();
        match self {
            Record::Json(serde_json::Value::Object(map)) => {
                out.push(KIND_OBJECT);
                if !crate::object::encode(map, &mut out)? {
                    out.clear();
                    out.push(KIND_JSON);
                    serde_json::to_writer(&mut out, map)
                        .map_err(|error| DbError::BadRecord(error.to_string()))?;
                }
            }
            Record::Json(value) => {
                out.push(KIND_JSON);
                serde_json::to_writer(&mut out, value)
                    .map_err(|error| DbError::BadRecord(error.to_string()))?;
            }
            Record::Bytes(bytes) => {
                out.reserve(1 + bytes.len());
                out.push(KIND_BYTES);
                out.extend_from_slice(bytes);
            }
            Record::Frame(frame) => {
                out.push(KIND_FRAME);
                frame.encode_into(&mut out);
            }
        }
        if out.len() > MAX_RECORD_LEN {
            return Err(DbError::RecordTooLarge {
                len: out.len(),
                max: MAX_RECORD_LEN,
            });
        }
        Ok(out)
    }

    /// Checks that `stored` is a record's stored form without building it: the length,
    /// the kind, and for JSON that the body is one well-formed JSON value.
    pub fn validate(stored: &[u8]) -> Result<(), DbError> {
        if stored.len() > MAX_RECORD_LEN {
            return Err(DbError::RecordTooLarge {
                len: stored.len(),
                max: MAX_RECORD_LEN,
            });
        }
        match stored.split_first() {
            Some((&KIND_JSON, body)) => serde_json::from_slice::<serde::de::IgnoredAny>(body)
                .map(drop)
                .map_err(|error| DbError::BadRecord(format!("JSON: {error}"))),
            Some((&KIND_BYTES, _)) => Ok(()),
            Some((&KIND_OBJECT, body)) => crate::object::validate(body),
            Some((&KIND_FRAME, body)) => zs_wire::DataFrame::decode(body)
                .map(drop)
                .map_err(|error| DbError::BadRecord(format!("DataFrame: {error}"))),
            Some((kind, _)) => Err(DbError::BadRecord(format!("unknown kind {kind}"))),
            None => Err(DbError::BadRecord("empty".to_owned())),
        }
    }

    /// Reads a stored form back.
    pub fn decode(stored: &[u8]) -> Result<Self, DbError> {
        if stored.len() > MAX_RECORD_LEN {
            return Err(DbError::RecordTooLarge {
                len: stored.len(),
                max: MAX_RECORD_LEN,
            });
        }
        match stored.split_first() {
            Some((&KIND_JSON, body)) => serde_json::from_slice(body)
                .map(Record::Json)
                .map_err(|error| DbError::BadRecord(format!("JSON: {error}"))),
            Some((&KIND_BYTES, body)) => Ok(Record::Bytes(body.to_vec())),
            Some((&KIND_OBJECT, body)) => crate::object::decode(body).map(Record::Json),
            Some((&KIND_FRAME, body)) => zs_wire::DataFrame::decode(body)
                .map(Record::Frame)
                .map_err(|error| DbError::BadRecord(format!("DataFrame: {error}"))),
            Some((kind, _)) => Err(DbError::BadRecord(format!("unknown kind {kind}"))),
            None => Err(DbError::BadRecord("empty".to_owned())),
        }
    }

    /// The value of field `name` as an expression value: a top-level field of a JSON object,
    /// or a path through nested objects with dots (`address.city`); in a DataFrame, `_N` is
    /// its value at position N. Missing fields, arrays, objects and byte records give
    /// [`Value::Null`].
    pub fn field(&self, name: &str) -> Value {
        let json = match self {
            Record::Json(json) => json,
            Record::Frame(frame) => return frame_field(frame, name),
            Record::Bytes(_) => return Value::Null,
        };
        let mut current = json;
        for part in name.split('.') {
            match current.get(part) {
                Some(next) => current = next,
                None => return Value::Null,
            }
        }
        json_to_value(current)
    }
}

/// The values of fields `names` of a stored record (see [`read_fields`]).
#[cfg(test)]
pub(crate) fn stored_fields<N: AsRef<str>>(
    stored: &[u8],
    names: &[N],
) -> Result<Vec<Value>, DbError> {
    let selector = Selector::new(names);
    let mut values = vec![Value::Null; selector.len()];
    read_fields(stored, &selector, &mut values, false)?;
    Ok(values)
}

/// Reads the fields `selector` names from a stored record into `values` (one per name, null
/// when missing) without building the record: an object's other fields are stepped over, a
/// JSON text's skipped by the parser. Dotted names in JSON text, and DataFrames, go through
/// [`Record::decode`]. With `check`, the whole record is checked as [`Record::validate`]
/// does, in the same pass.
pub(crate) fn read_fields(
    stored: &[u8],
    selector: &Selector,
    values: &mut [Value],
    check: bool,
) -> Result<(), DbError> {
    if stored.len() > MAX_RECORD_LEN {
        return Err(DbError::RecordTooLarge {
            len: stored.len(),
            max: MAX_RECORD_LEN,
        });
    }
    match stored.split_first() {
        Some((&KIND_OBJECT, body)) => crate::object::fields(body, selector, values, check),
        Some((&KIND_BYTES, _)) => {
            values.fill(Value::Null);
            Ok(())
        }
        Some((&KIND_JSON, body)) if selector.is_flat() => {
            values.fill(Value::Null);
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            serde::de::DeserializeSeed::deserialize(
                FieldsSeed { selector, values },
                &mut deserializer,
            )
            .and_then(|()| deserializer.end())
            .map_err(|error| DbError::BadRecord(format!("JSON: {error}")))
        }
        _ => {
            let record = Record::decode(stored)?;
            for (name, slot) in selector.names().zip(values.iter_mut()) {
                *slot = record.field(&name);
            }
            Ok(())
        }
    }
}

/// Picks fields out of a JSON object as it is parsed (anything else leaves them null).
struct FieldsSeed<'a> {
    selector: &'a Selector,
    values: &'a mut [Value],
}

impl<'de> serde::de::DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.selector.position(&key) {
                Some(slot) => {
                    let json: serde_json::Value = map.next_value()?;
                    self.values[slot] = json_to_value(&json);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    // Not an object: no fields, but the value must still be well-formed.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Field `_N` of a DataFrame record: its value at position N, when it is a scalar.
fn frame_field(frame: &zs_wire::DataFrame, name: &str) -> Value {
    use zs_wire::dataframe::Value as F;
    let Some(index) = name.strip_prefix('_').and_then(|n| n.parse::<usize>().ok()) else {
        return Value::Null;
    };
    match frame.values().get(index) {
        Some(F::Bool(b)) => Value::Bool(*b),
        Some(F::I8(v)) => Value::Int(i64::from(*v)),
        Some(F::I16(v)) => Value::Int(i64::from(*v)),
        Some(F::I32(v)) => Value::Int(i64::from(*v)),
        Some(F::I64(v)) => Value::Int(*v),
        Some(F::U8(v)) => Value::Int(i64::from(*v)),
        Some(F::U16(v)) => Value::Int(i64::from(*v)),
        Some(F::U32(v)) => Value::Int(i64::from(*v)),
        Some(F::U64(v)) => i64::try_from(*v).map_or(Value::Null, Value::Int),
        Some(F::F32(v)) => Value::Float(f64::from(*v)),
        Some(F::F64(v)) => Value::Float(*v),
        Some(F::String(text)) => Value::Str(Arc::from(text.as_str())),
        Some(F::Json(json)) => json_to_value(json),
        _ => Value::Null,
    }
}

/// A JSON scalar as an expression value (integers that fit in `i64` stay integers).
pub(crate) fn json_to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Null, Value::Float),
        },
        serde_json::Value::String(s) => Value::Str(Arc::from(s.as_str())),
        _ => Value::Null,
    }
}

/// An expression value as JSON (aggregation results).
pub(crate) fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Str(s) => serde_json::Value::String(s.to_string()),
    }
}

/// An index key for a field value: equal values (also `1` and `1.0`) give equal keys.
pub(crate) fn index_key(value: &Value) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    index_key_into(value, &mut key);
    key
}

/// [`index_key`], appended to `key`.
pub(crate) fn index_key_into(value: &Value, key: &mut Vec<u8>) {
    match value {
        Value::Null => key.push(0),
        Value::Bool(b) => key.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            key.push(2);
            key.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            // An integral float indexes as the integer it equals.
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            if f.fract() == 0.0 && f.abs() < 9.0e18 {
                return index_key_into(&Value::Int(*f as i64), key);
            }
            key.push(3);
            key.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Str(s) => {
            key.push(4);
            key.extend_from_slice(s.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_round_trip_and_fields_are_found() {
        let record = Record::Json(serde_json::json!({
            "name": "ann", "age": 41, "score": 2.5, "ok": true,
            "address": {"city": "Oslo"}, "tags": [1, 2]
        }));
        let back = Record::decode(&record.encode().unwrap()).unwrap();
        assert_eq!(back, record);
        assert_eq!(record.field("name"), Value::Str("ann".into()));
        assert_eq!(record.field("age"), Value::Int(41));
        assert_eq!(record.field("score"), Value::Float(2.5));
        assert_eq!(record.field("ok"), Value::Bool(true));
        assert_eq!(record.field("address.city"), Value::Str("Oslo".into()));
        assert_eq!(record.field("tags"), Value::Null);
        assert_eq!(record.field("missing"), Value::Null);
        let frame = Record::Frame(
            zs_wire::DataFrame::new()
                .with("ann")
                .with(41u32)
                .with(2.5f64),
        );
        assert_eq!(Record::decode(&frame.encode().unwrap()).unwrap(), frame);
        assert_eq!(frame.field("_0"), Value::Str("ann".into()));
        assert_eq!(frame.field("_1"), Value::Int(41));
        assert_eq!(frame.field("_2"), Value::Float(2.5));
        assert_eq!(frame.field("_3"), Value::Null);
        assert_eq!(frame.field("name"), Value::Null);
        let bytes = Record::Bytes(vec![0, 1, 2]);
        assert_eq!(Record::decode(&bytes.encode().unwrap()).unwrap(), bytes);
        assert_eq!(bytes.field("anything"), Value::Null);
    }

    #[test]
    fn bad_stored_forms_are_errors() {
        for bad in [
            &[][..],
            &[9, 1],
            &[KIND_JSON, b'{'],
            &[KIND_JSON, b'1', b' ', b'2'],
        ] {
            assert!(
                matches!(Record::validate(bad), Err(DbError::BadRecord(_))),
                "{bad:?}"
            );
        }
        assert!(Record::validate(&[KIND_JSON, b'[', b']']).is_ok());
        assert!(Record::validate(&[KIND_BYTES]).is_ok());
        assert!(matches!(Record::decode(&[]), Err(DbError::BadRecord(_))));
        assert!(matches!(
            Record::decode(&[9, 1]),
            Err(DbError::BadRecord(_))
        ));
        assert!(matches!(
            Record::decode(&[KIND_JSON, b'{']),
            Err(DbError::BadRecord(_))
        ));
    }

    #[test]
    fn equal_values_share_an_index_key() {
        assert_eq!(index_key(&Value::Int(3)), index_key(&Value::Float(3.0)));
        assert_ne!(index_key(&Value::Int(3)), index_key(&Value::Float(3.5)));
        assert_ne!(index_key(&Value::Int(0)), index_key(&Value::Bool(false)));
        assert_ne!(
            index_key(&Value::Str("1".into())),
            index_key(&Value::Int(1))
        );
    }

    #[test]
    fn stored_fields_match_decoded_fields() {
        let record = Record::Json(serde_json::json!({
            "name": "ann", "age": 41, "nested": {"a": [1, {"b": 2}]}, "esc": "a\"b", "n": null
        }));
        let stored = record.encode().unwrap();
        let names = ["age", "esc", "missing", "name", "nested", "n"];
        let fields = stored_fields(&stored, &names).unwrap();
        let expected: Vec<Value> = names.iter().map(|name| record.field(name)).collect();
        assert_eq!(fields, expected);
        assert_eq!(
            stored_fields(&stored, &["nested.a"]).unwrap(),
            vec![Value::Null]
        );
        let frame = Record::Frame(zs_wire::DataFrame::new().with(7i32));
        assert_eq!(
            stored_fields(&frame.encode().unwrap(), &["_0"]).unwrap(),
            vec![Value::Int(7)]
        );
        assert!(stored_fields(&[KIND_JSON, b'{', b'"'], &["a"]).is_err());
    }

    proptest! {
        #[test]
        fn stored_fields_agree_with_field(
            a in any::<i64>(), b in "[a-z\"\\\\]{0,8}", c in any::<bool>(), f in -1e9f64..1e9
        ) {
            let record = Record::Json(serde_json::json!({"a": a, "b": b, "c": c, "f": f, "x": [a]}));
            let stored = record.encode().unwrap();
            let names = ["f", "c", "b", "a", "x"];
            let expected: Vec<Value> = names.iter().map(|name| record.field(name)).collect();
            prop_assert_eq!(stored_fields(&stored, &names).unwrap(), expected);
        }
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Validation and decoding agree on what is a record.
            prop_assert_eq!(Record::validate(&bytes).is_ok(), Record::decode(&bytes).is_ok());
        }

        #[test]
        fn byte_records_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let record = Record::Bytes(bytes);
            prop_assert_eq!(Record::decode(&record.encode().unwrap()).unwrap(), record);
        }
    }
}
