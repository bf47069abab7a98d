//! How records, posts, fragments and aggregations travel in DataFrames.

use zs_wire::DataFrame;
use zs_wire::dataframe::{ReadError, Value as FrameValue};

use crate::{Group, QueryEnd, Record};

/// A record as one DataFrame value: JSON as a JSON value, bytes as bytes, a DataFrame as a
/// nested frame.
pub(crate) fn record_value(record: Record) -> FrameValue {
    match record {
        Record::Json(json) => FrameValue::Json(json),
        Record::Bytes(bytes) => FrameValue::Bytes(bytes),
        Record::Frame(frame) => FrameValue::Frame(frame),
    }
}

/// A DataFrame value back to a record; anything but JSON, bytes or a frame is refused.
pub(crate) fn value_record(value: &FrameValue) -> Result<Record, String> {
    match value {
        FrameValue::Json(json) => Ok(Record::Json(json.clone())),
        FrameValue::Bytes(bytes) => Ok(Record::Bytes(bytes.clone())),
        FrameValue::Frame(frame) => Ok(Record::Frame(frame.clone())),
        other => Err(format!(
            "a record is JSON, bytes or a DataFrame, not {:?}",
            other.kind()
        )),
    }
}

/// Fragment state byte: records follow.
pub(crate) const FRAGMENT_RECORDS: u8 = 0;
/// Fragment state byte: the query is over; the end kind follows.
pub(crate) const FRAGMENT_END: u8 = 1;

pub(crate) fn end_code(end: QueryEnd) -> u8 {
    match end {
        QueryEnd::Complete => 0,
        QueryEnd::Stopped => 1,
        QueryEnd::OutOfTime => 2,
    }
}

pub(crate) fn end_from_code(code: u8) -> Option<QueryEnd> {
    match code {
        0 => Some(QueryEnd::Complete),
        1 => Some(QueryEnd::Stopped),
        2 => Some(QueryEnd::OutOfTime),
        _ => None,
    }
}

/// One result fragment as the client receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteFragment {
    /// Matching records with their ids, and the query's progress so far.
    Records {
        /// The records.
        records: Vec<(u64, Record)>,
        /// Records looked at so far.
        scanned: u64,
        /// Records matched so far.
        matched: u64,
    },
    /// The query is over.
    End {
        /// How it ended.
        end: QueryEnd,
        /// Records looked at.
        scanned: u64,
        /// Records matched.
        matched: u64,
    },
}

/// Decodes a `next` reply: `[state: u8, end: u8, scanned: u64, matched: u64, (id: u64,
/// stored: bytes)*]`, each `stored` a record's stored form.
pub(crate) fn decode_fragment(frame: &DataFrame) -> Result<RemoteFragment, String> {
    let mut reader = frame.reader();
    let state = reader.read_u8().map_err(text)?;
    let end = reader.read_u8().map_err(text)?;
    let scanned = reader.read_u64().map_err(text)?;
    let matched = reader.read_u64().map_err(text)?;
    if state == FRAGMENT_END {
        let end = end_from_code(end).ok_or(format!("unknown query end {end}"))?;
        return Ok(RemoteFragment::End {
            end,
            scanned,
            matched,
        });
    }
    let mut records = Vec::with_capacity((frame.len().saturating_sub(4)) / 2);
    while reader.peek().is_some() {
        let id = reader.read_u64().map_err(text)?;
        let stored = reader.read_value().map_err(text)?;
        let FrameValue::Bytes(stored) = stored else {
            return Err(format!("a stored record is bytes, not {:?}", stored.kind()));
        };
        let record = Record::decode(stored).map_err(|error| error.to_string())?;
        records.push((id, record));
    }
    Ok(RemoteFragment::Records {
        records,
        scanned,
        matched,
    })
}

/// Encodes aggregation groups: one nested frame `[key: JSON, count, values, sum, min, max,
/// average]` per group (min, max and average are null when no value was seen).
pub(crate) fn encode_groups(groups: Vec<Group>) -> DataFrame {
    let mut frame = DataFrame::new();
    for group in groups {
        let optional = |value: Option<f64>| value.map_or(FrameValue::Null, FrameValue::F64);
        frame.push(
            DataFrame::new()
                .with(FrameValue::Json(group.key))
                .with(group.count)
                .with(group.values)
                .with(group.sum)
                .with(optional(group.min))
                .with(optional(group.max))
                .with(optional(group.average)),
        );
    }
    frame
}

fn text(error: ReadError) -> String {
    error.to_string()
}

pub(crate) fn decode_groups(frame: &DataFrame) -> Result<Vec<Group>, String> {
    let mut groups = Vec::with_capacity(frame.len());
    let mut reader = frame.reader();
    while reader.peek().is_some() {
        let group = reader.read_frame().map_err(text)?;
        let mut fields = group.reader();
        let key = fields.read_json().map_err(text)?;
        let count = fields.read_u64().map_err(text)?;
        let values = fields.read_u64().map_err(text)?;
        let sum = fields.read_f64().map_err(text)?;
        let mut optional = || -> Result<Option<f64>, String> {
            match fields.read_value().map_err(text)? {
                FrameValue::Null => Ok(None),
                FrameValue::F64(value) => Ok(Some(*value)),
                other => Err(format!("expected f64, found {:?}", other.kind())),
            }
        };
        let (min, max, average) = (optional()?, optional()?, optional()?);
        groups.push(Group {
            key,
            count,
            values,
            sum,
            min,
            max,
            average,
        });
    }
    Ok(groups)
}
