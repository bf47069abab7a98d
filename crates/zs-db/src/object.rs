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
    // The size is known but for nested values (guessed): one allocation, not a few.
    out.reserve(
        4 + map
            .iter()
            .map(|(key, value)| {
                3 + key.len()
                    + match value {
                        Json::String(s) => 5 + s.len(),
                        Json::Array(_) | Json::Object(_) => 64,
                        _ => 9,
                    }
            })
            .sum::<usize>(),
    );
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
/// One field's value as stored, borrowed from the record. Text is checked to be UTF-8 only
/// when it is used: a scan steps over the fields it does not read without looking at them.
#[derive(Clone, Copy)]
pub(crate) enum Field<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// UTF-8 text (not yet checked).
    Str(&'a [u8]),
    /// JSON text (not yet checked to parse).
    Json(&'a [u8]),
}

fn utf8(bytes: &[u8]) -> Result<&str, DbError> {
    std::str::from_utf8(bytes).map_err(|_| bad("a string not UTF-8"))
}

impl<'a> Field<'a> {
    /// As an expression value (arrays and objects: null, as for decoded records; integers
    /// past i64, which are JSON text here, as floats).
    fn to_value(self) -> Result<Value, DbError> {
        Ok(match self {
            Field::Null => Value::Null,
            Field::Json(text) if text.first().is_some_and(u8::is_ascii_digit) => {
                crate::record::json_to_value(&self.to_json()?)
            }
            Field::Json(_) => Value::Null,
            Field::Bool(b) => Value::Bool(b),
            Field::Int(i) => Value::Int(i),
            Field::Float(f) => Value::Float(f),
            Field::Str(s) => Value::Str(Arc::from(utf8(s)?)),
        })
    }

    fn to_json(self) -> Result<Json, DbError> {
        Ok(match self {
            Field::Null => Json::Null,
            Field::Bool(b) => Json::Bool(b),
            Field::Int(i) => Json::from(i),
            Field::Float(f) => serde_json::Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| bad("a float that is not finite"))?,
            Field::Str(s) => Json::String(utf8(s)?.to_owned()),
            Field::Json(text) => {
                serde_json::from_slice(text).map_err(|error| bad(format!("JSON: {error}")))?
            }
        })
    }

    /// As a borrowed scalar for a [`zs_expr::Predicate`], where [`Field::to_value`] would
    /// give the same value; `None` where it would not (text that is not UTF-8, an integer
    /// past i64) and the predicate has to leave the record to the program.
    pub(crate) fn scalar(self) -> Option<zs_expr::Scalar<'a>> {
        use zs_expr::Scalar;
        Some(match self {
            Field::Null => Scalar::Null,
            Field::Json(text) if text.first().is_some_and(u8::is_ascii_digit) => return None,
            Field::Json(_) => Scalar::Null,
            Field::Bool(b) => Scalar::Bool(b),
            Field::Int(i) => Scalar::Int(i),
            Field::Float(f) => Scalar::Float(f),
            Field::Str(s) => Scalar::Str(std::str::from_utf8(s).ok()?),
        })
    }

    /// Checks what [`walk`] leaves unchecked: UTF-8 text and nested JSON that parses.
    fn check(&self) -> Result<(), DbError> {
        match self {
            Field::Str(s) => utf8(s).map(drop),
            Field::Json(text) => serde_json::from_slice::<serde::de::IgnoredAny>(text)
                .map(drop)
                .map_err(|error| bad(format!("JSON: {error}"))),
            _ => Ok(()),
        }
    }
}

/// The field count of `body` and the fields after it; `None` when it is cut short.
pub(crate) fn start(body: &[u8]) -> Option<(u32, &[u8])> {
    let mut rest = body;
    let count = take_array::<4>(&mut rest)?;
    Some((u32::from_le_bytes(count), rest))
}

/// Walks the fields of `body`, handing each (with its name's bytes) to `visit` until it
/// returns `false`. Lengths and types are checked; names and text are not (see
/// [`Field::check`]).
fn walk<'a>(
    body: &'a [u8],
    mut visit: impl FnMut(&'a [u8], Field<'a>) -> Result<bool, DbError>,
) -> Result<(), DbError> {
    let mut rest = body;
    let count = take_array::<4>(&mut rest).ok_or_else(|| bad("no field count"))?;
    for index in 0..u32::from_le_bytes(count) {
        let Some((name, field)) = next_field(&mut rest) else {
            return Err(bad(format!(
                "field {index} is cut short or of an unknown type ({} bytes left)",
                rest.len()
            )));
        };
        if !visit(name, field)? {
            return Ok(());
        }
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(bad(format!("{} bytes after the last field", rest.len())))
    }
}

/// The next field of `rest`, stepping past it; `None` when it is cut short or its type is
/// unknown (the caller says which field). Kept free of error values: this is the inner
/// loop of every scan.
#[inline(always)]
pub(crate) fn next_field<'a>(rest: &mut &'a [u8]) -> Option<(&'a [u8], Field<'a>)> {
    let len = u16::from_le_bytes(take_array(rest)?);
    let name = take(rest, usize::from(len))?;
    let [kind] = take_array(rest)?;
    let field = match kind {
        NULL => Field::Null,
        FALSE => Field::Bool(false),
        TRUE => Field::Bool(true),
        INT => Field::Int(i64::from_le_bytes(take_array(rest)?)),
        FLOAT => Field::Float(f64::from_bits(u64::from_le_bytes(take_array(rest)?))),
        STRING | JSON => {
            let len = u32::from_le_bytes(take_array(rest)?);
            let bytes = take(rest, usize::try_from(len).ok()?)?;
            if kind == STRING {
                Field::Str(bytes)
            } else {
                Field::Json(bytes)
            }
        }
        _ => return None,
    };
    Some((name, field))
}

#[inline(always)]
fn take<'a>(rest: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    let (head, tail) = rest.split_at_checked(len)?;
    *rest = tail;
    Some(head)
}

#[inline(always)]
fn take_array<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

/// Names seen so far in one object, to refuse a name twice (a linear search: objects
/// mostly have a handful of fields; a set past that).
#[derive(Default)]
struct Seen<'a> {
    few: Vec<&'a [u8]>,
    many: std::collections::HashSet<&'a [u8]>,
}

impl<'a> Seen<'a> {
    const FEW: usize = 32;

    fn insert(&mut self, name: &'a [u8]) -> Result<(), DbError> {
        let fresh = if self.few.len() < Self::FEW {
            let fresh = !self.few.contains(&name);
            self.few.push(name);
            fresh
        } else {
            if self.many.is_empty() {
                self.many.extend(self.few.iter().copied());
            }
            self.many.insert(name)
        };
        if fresh {
            Ok(())
        } else {
            Err(bad(format!(
                "field {:?} twice",
                String::from_utf8_lossy(name)
            )))
        }
    }
}

/// Checks the whole layout, nested JSON included, and that names are unique UTF-8.
pub(crate) fn validate(body: &[u8]) -> Result<(), DbError> {
    fields(body, &Selector::new::<&str>(&[]), &mut [], true)
}

/// The object back as JSON.
pub(crate) fn decode(body: &[u8]) -> Result<Json, DbError> {
    let mut map = Map::new();
    walk(body, |name, field| {
        if map
            .insert(utf8(name)?.to_owned(), field.to_json()?)
            .is_some()
        {
            return Err(bad(format!(
                "field {:?} twice",
                String::from_utf8_lossy(name)
            )));
        }
        Ok(true)
    })?;
    Ok(Json::Object(map))
}

/// Field names compiled once for reading many records: each name split at its first dot
/// (`address.city` reaches into the nested object `address`).
pub(crate) struct Selector {
    wanted: Vec<(Box<str>, Option<Box<str>>)>,
}

impl Selector {
    pub(crate) fn new<N: AsRef<str>>(names: &[N]) -> Self {
        let wanted = names
            .iter()
            .map(|name| match name.as_ref().split_once('.') {
                Some((head, rest)) => (head.into(), Some(rest.into())),
                None => (name.as_ref().into(), None),
            })
            .collect();
        Self { wanted }
    }

    pub(crate) fn len(&self) -> usize {
        self.wanted.len()
    }

    /// Whether every name is a top-level field.
    pub(crate) fn is_flat(&self) -> bool {
        self.wanted.iter().all(|(_, rest)| rest.is_none())
    }

    /// The value for slot `wanted` if field `name` is the one it names (`None` otherwise).
    #[inline]
    pub(crate) fn value_of(
        &self,
        wanted: usize,
        name: &[u8],
        field: &Field<'_>,
    ) -> Option<Result<Value, DbError>> {
        let (head, rest) = self.wanted.get(wanted)?;
        if head.as_bytes() != name {
            return None;
        }
        Some(match (rest, field) {
            (None, field) => field.to_value(),
            (Some(path), Field::Json(text)) => Field::Json(text)
                .to_json()
                .map(|json| crate::record::Record::Json(json).field(path)),
            (Some(_), _) => Ok(Value::Null),
        })
    }

    /// Whether slot `wanted` is the top-level field `name`.
    #[inline]
    pub(crate) fn is(&self, wanted: usize, name: &[u8]) -> bool {
        self.wanted
            .get(wanted)
            .is_some_and(|(head, rest)| rest.is_none() && head.as_bytes() == name)
    }

    /// The slot of top-level field `name`, if it is wanted.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.wanted
            .iter()
            .position(|(head, rest)| rest.is_none() && **head == *name)
    }

    /// The names as given.
    pub(crate) fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.wanted.iter().map(|(head, rest)| match rest {
            Some(rest) => format!("{head}.{rest}"),
            None => head.to_string(),
        })
    }
}

/// Reads the fields `selector` names from `body` into `values` (one per name, null when
/// missing). Without `check` the walk stops once all are found and only the fields read are
/// checked; with it, the whole object is checked as [`validate`] does, in the same walk.
pub(crate) fn fields(
    body: &[u8],
    selector: &Selector,
    values: &mut [Value],
    check: bool,
) -> Result<(), DbError> {
    values.fill(Value::Null);
    let mut left = selector.len();
    let mut seen = Seen::default();
    walk(body, |name, field| {
        if check {
            utf8(name)?;
            seen.insert(name)?;
            field.check()?;
        }
        for (wanted, slot) in values.iter_mut().enumerate() {
            let Some(value) = selector.value_of(wanted, name, &field) else {
                continue;
            };
            *slot = value?;
            // Saturating: an unchecked record may repeat a name.
            left = left.saturating_sub(1);
        }
        Ok(check || left > 0)
    })
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
