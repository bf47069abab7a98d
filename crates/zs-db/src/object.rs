//! The stored form of a JSON object (record kind 4): its fields in a binary layout that a
//! scan reads by stepping over lengths, where JSON text has to be parsed byte by byte.
//!
//! ```text
//! u32 count | count × ( u16 name_len | name (UTF-8) | u8 type | payload )
//! type 0 null | 1 false | 2 true | 3 i64 (8 bytes LE) | 4 f64 (8 bytes LE, IEEE 754)
//!      5 string: u32 len | UTF-8 | 6 other JSON (arrays, objects, integers past i64):
//!      u32 len | JSON text
//! ```
//!
//! Fields are in the object's order (serde_json's maps are sorted by key) and names are
//! unique. Every length is checked against what is left before it is used.

use std::sync::Arc;

use serde_json::{Map, Value as Json};
use zs_expr::Value;

use crate::DbError;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STRING: u8 = 5;
const JSON: u8 = 6;

fn bad(what: impl Into<String>) -> DbError {
    DbError::BadRecord(format!("object: {}", what.into()))
}

/// Appends `map` in the layout above; `false` (nothing appended) when a key is too long for
/// it, and the caller stores JSON text instead.
pub(crate) fn encode(map: &Map<String, Json>, out: &mut Vec<u8>) -> Result<bool, DbError> {
    if map.keys().any(|key| key.len() > usize::from(u16::MAX)) {
        return Ok(false);
    }
    let count = u32::try_from(map.len()).map_err(|_| bad("too many fields"))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (key, value) in map {
        // Checked above.
        let len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        match value {
            Json::Null => out.push(NULL),
            Json::Bool(false) => out.push(FALSE),
            Json::Bool(true) => out.push(TRUE),
            Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => {
                    out.push(INT);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                (None, None, Some(f)) => {
                    out.push(FLOAT);
                    out.extend_from_slice(&f.to_bits().to_le_bytes());
                }
                _ => text(JSON, n.to_string().as_bytes(), out)?,
            },
            Json::String(s) => text(STRING, s.as_bytes(), out)?,
            other => {
                let json = serde_json::to_vec(other).map_err(|error| bad(error.to_string()))?;
                text(JSON, &json, out)?;
            }
        }
    }
    Ok(true)
}

fn text(kind: u8, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DbError> {
    let len = u32::try_from(bytes.len()).map_err(|_| bad("a value over 4 GiB"))?;
    out.push(kind);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// One field's value as stored, borrowed from the record.
pub(crate) enum Field<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// JSON text (not yet checked to parse).
    Json(&'a [u8]),
}

impl Field<'_> {
    /// As an expression value (arrays and objects: null, as for decoded records).
    fn to_value(&self) -> Value {
        match self {
            Field::Null | Field::Json(_) => Value::Null,
            Field::Bool(b) => Value::Bool(*b),
            Field::Int(i) => Value::Int(*i),
            Field::Float(f) => Value::Float(*f),
            Field::Str(s) => Value::Str(Arc::from(*s)),
        }
    }

    fn to_json(&self) -> Result<Json, DbError> {
        Ok(match self {
            Field::Null => Json::Null,
            Field::Bool(b) => Json::Bool(*b),
            Field::Int(i) => Json::from(*i),
            Field::Float(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .ok_or_else(|| bad("a float that is not finite"))?,
            Field::Str(s) => Json::String((*s).to_owned()),
            Field::Json(text) => {
                serde_json::from_slice(text).map_err(|error| bad(format!("JSON: {error}")))?
            }
        })
    }
}

/// Walks the fields of `body`, handing each to `visit` until it returns `false`.
fn walk<'a>(
    body: &'a [u8],
    mut visit: impl FnMut(&'a str, Field<'a>) -> Result<bool, DbError>,
) -> Result<(), DbError> {
    let mut reader = Reader(body);
    let count = u32::from_le_bytes(reader.array()?);
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes(reader.array()?));
        let name = std::str::from_utf8(reader.take(len)?).map_err(|_| bad("a name not UTF-8"))?;
        let field = match reader.array::<1>()?[0] {
            NULL => Field::Null,
            FALSE => Field::Bool(false),
            TRUE => Field::Bool(true),
            INT => Field::Int(i64::from_le_bytes(reader.array()?)),
            FLOAT => Field::Float(f64::from_bits(u64::from_le_bytes(reader.array()?))),
            STRING => {
                let bytes = reader.take_u32_len()?;
                Field::Str(std::str::from_utf8(bytes).map_err(|_| bad("a string not UTF-8"))?)
            }
            JSON => Field::Json(reader.take_u32_len()?),
            other => return Err(bad(format!("unknown type {other}"))),
        };
        if !visit(name, field)? {
            return Ok(());
        }
    }
    if reader.0.is_empty() {
        Ok(())
    } else {
        Err(bad(format!(
            "{} bytes after the last field",
            reader.0.len()
        )))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DbError> {
        if len > self.0.len() {
            return Err(bad(format!("{len} bytes announced, {} left", self.0.len())));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    /// A `u32` length, then that many bytes.
    fn take_u32_len(&mut self) -> Result<&'a [u8], DbError> {
        let len = u32::from_le_bytes(self.array()?);
        self.take(usize::try_from(len).map_err(|_| bad("a length past this machine's"))?)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DbError> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }
}

/// Checks the whole layout, nested JSON included, and that names are unique.
pub(crate) fn validate(body: &[u8]) -> Result<(), DbError> {
    let mut names = std::collections::HashSet::new();
    walk(body, |name, field| {
        if !names.insert(name) {
            return Err(bad(format!("field {name:?} twice")));
        }
        if let Field::Json(text) = field {
            serde_json::from_slice::<serde::de::IgnoredAny>(text)
                .map_err(|error| bad(format!("JSON: {error}")))?;
        }
        Ok(true)
    })
}

/// The object back as JSON.
pub(crate) fn decode(body: &[u8]) -> Result<Json, DbError> {
    let mut map = Map::new();
    walk(body, |name, field| {
        if map.insert(name.to_owned(), field.to_json()?).is_some() {
            return Err(bad(format!("field {name:?} twice")));
        }
        Ok(true)
    })?;
    Ok(Json::Object(map))
}

/// The values of fields `names` (dotted names reach into nested objects), in one walk that
/// stops once all are found.
pub(crate) fn fields<N: AsRef<str>>(body: &[u8], names: &[N]) -> Result<Vec<Value>, DbError> {
    let mut values = vec![Value::Null; names.len()];
    let mut left = names.len();
    walk(body, |name, field| {
        for (slot, wanted) in names.iter().enumerate() {
            let wanted = wanted.as_ref();
            let (head, rest) = match wanted.split_once('.') {
                Some((head, rest)) => (head, Some(rest)),
                None => (wanted, None),
            };
            if head != name {
                continue;
            }
            values[slot] = match (rest, &field) {
                // Integers past i64 are JSON text here; as fields they are floats.
                (None, Field::Json(text)) if text.first().is_some_and(u8::is_ascii_digit) => {
                    crate::record::json_to_value(&Field::Json(text).to_json()?)
                }
                (None, field) => field.to_value(),
                (Some(path), Field::Json(text)) => {
                    let json = Field::Json(text).to_json()?;
                    crate::record::Record::Json(json).field(path)
                }
                (Some(_), _) => Value::Null,
            };
            left -= 1;
        }
        Ok(left > 0)
    })?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::Record;

    fn stored(json: Json) -> Vec<u8> {
        Record::Json(json).encode().unwrap()
    }

    #[test]
    fn objects_use_the_layout_and_round_trip() {
        let json = json!({
            "name": "ann", "age": 41, "score": 2.5, "ok": true, "no": false, "none": null,
            "big": u64::MAX, "tags": [1, "x"], "address": {"city": "Oslo", "zip": 150},
            "text": "quote \" and \\ and ünïcode"
        });
        let bytes = stored(json.clone());
        assert_eq!(bytes[0], 4, "objects are stored in the field layout");
        assert_eq!(Record::decode(&bytes).unwrap(), Record::Json(json.clone()));
        Record::validate(&bytes).unwrap();
        let names = [
            "age",
            "address.city",
            "address.zip",
            "big",
            "name",
            "none",
            "tags",
            "x",
        ];
        let record = Record::Json(json);
        let expected: Vec<Value> = names.iter().map(|name| record.field(name)).collect();
        assert_eq!(
            crate::record::stored_fields(&bytes, &names).unwrap(),
            expected
        );
        // Scalars and arrays stay JSON text.
        assert_eq!(stored(json!([1, 2]))[0], 1);
        assert_eq!(stored(json!(3))[0], 1);
    }

    #[test]
    fn broken_layouts_are_errors() {
        let good = stored(json!({"a": 1, "b": "xy", "c": [1]}));
        // Every truncation is refused by validation and decoding, never a panic.
        for len in 1..good.len() {
            let cut = &good[..len];
            assert!(Record::validate(cut).is_err(), "cut at {len}");
            assert!(Record::decode(cut).is_err(), "cut at {len}");
        }
        let mut trailing = good;
        trailing.push(0);
        assert!(Record::validate(&trailing).is_err());
        // A name twice, an unknown type, bad UTF-8, nested JSON that does not parse.
        let twice = [4, 2, 0, 0, 0, 1, 0, b'a', 0, 1, 0, b'a', 0];
        assert!(Record::validate(&twice).is_err());
        assert!(Record::decode(&twice).is_err());
        assert!(Record::validate(&[4, 1, 0, 0, 0, 1, 0, b'a', 9]).is_err());
        assert!(Record::validate(&[4, 1, 0, 0, 0, 1, 0, 0xff, 0]).is_err());
        assert!(Record::validate(&[4, 1, 0, 0, 0, 1, 0, b'a', 6, 1, 0, 0, 0, b'[']).is_err());
        // A length past the end.
        assert!(Record::validate(&[4, 1, 0, 0, 0, 9, 0, b'a']).is_err());
        assert!(Record::validate(&[4, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    fn scalar() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            (-1e12f64..1e12).prop_map(Json::from),
            "[a-z\"\\\\é]{0,6}".prop_map(Json::String),
        ]
    }

    fn object() -> impl Strategy<Value = Json> {
        let value = scalar().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
                proptest::collection::btree_map("[a-c]{1,2}", inner, 0..3)
                    .prop_map(|map| Json::Object(map.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map("[a-e]{1,3}", value, 0..6)
            .prop_map(|map| Json::Object(map.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn any_object_round_trips_and_its_fields_read_alike(json in object()) {
            let bytes = stored(json.clone());
            prop_assert!(Record::validate(&bytes).is_ok());
            prop_assert_eq!(Record::decode(&bytes).unwrap(), Record::Json(json.clone()));
            let record = Record::Json(json);
            let names = ["a", "b", "c", "d", "e", "a.b", "ab", "b.c"];
            let expected: Vec<Value> = names.iter().map(|name| record.field(name)).collect();
            prop_assert_eq!(crate::record::stored_fields(&bytes, &names).unwrap(), expected);
        }

        #[test]
        fn any_bytes_after_the_kind_are_an_error_or_a_record(
            body in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let mut bytes = vec![4];
            bytes.extend(body);
            prop_assert_eq!(Record::validate(&bytes).is_ok(), Record::decode(&bytes).is_ok());
        }
    }
}
