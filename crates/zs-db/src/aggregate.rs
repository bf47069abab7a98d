//! Aggregations: count, sum, min, max and average of a field over the records a filter
//! matches, optionally grouped by another field; computed in parallel per chunk and merged.

use std::collections::HashMap;
use std::ops::ControlFlow;

use zs_expr::Value;

use crate::object::Selector;
use crate::record::{index_key_into, read_fields, value_to_json};
use crate::scan::{self, Control, Plan};
use crate::{Database, DbError};

/// What to aggregate (ZServer4D: the statistics a `TZDBPipeline` query computes).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Aggregate {
    /// Only records matching this ZExpression; none means all.
    pub filter: Option<String>,
    /// The numeric field summed, averaged and ranged; none counts only.
    pub field: Option<String>,
    /// One result per distinct value of this field; none gives one result.
    pub group_by: Option<String>,
}

impl Aggregate {
    /// Counts every record.
    pub fn count() -> Self {
        Self::default()
    }

    /// Sum, min, max and average of `field`.
    pub fn of(field: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::default()
        }
    }

    /// Only over records matching `filter`.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// One result per distinct value of `field`.
    pub fn group_by(mut self, field: impl Into<String>) -> Self {
        self.group_by = Some(field.into());
        self
    }
}

/// One group's figures. Only numeric values of the field count towards `sum`, `min`, `max`
/// and `average` (`values` says how many there were); `count` counts matching records.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The group's value of the `group_by` field (null without grouping).
    pub key: serde_json::Value,
    /// Matching records in the group.
    pub count: u64,
    /// Numeric values of the field seen.
    pub values: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
    /// `sum / values`.
    pub average: Option<f64>,
}

#[derive(Clone)]
struct Acc {
    key: Value,
    count: u64,
    values: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn new(key: Value) -> Self {
        Self {
            key,
            count: 0,
            values: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn add(&mut self, value: Option<f64>) {
        self.count += 1;
        if let Some(value) = value {
            self.values += 1;
            self.sum += value;
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.values += other.values;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn into_group(self) -> Group {
        let seen = self.values > 0;
        #[allow(clippy::cast_precision_loss)]
        let average = seen.then(|| self.sum / self.values as f64);
        Group {
            key: value_to_json(&self.key),
            count: self.count,
            values: self.values,
            sum: self.sum,
            min: seen.then_some(self.min),
            max: seen.then_some(self.max),
            average,
        }
    }
}

type Partial = HashMap<Vec<u8>, Acc>;

/// One chunk's groups, and buffers kept across its records.
struct Fold {
    partial: Partial,
    fields: [Value; 2],
    key: Vec<u8>,
}

fn number(value: &Value) -> Option<f64> {
    match value {
        #[allow(clippy::cast_precision_loss)]
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Runs `aggregate` over `database`; groups come sorted by their key's stored form.
pub(crate) fn run(
    database: &Database,
    aggregate: &Aggregate,
    functions: &zs_expr::Functions,
    control: &Control,
) -> Result<Vec<Group>, DbError> {
    let plan = Plan::new(database, aggregate.filter.as_deref(), functions)?;
    // Only the two fields are read from each record, not the whole record.
    let selector = Selector::new(&[
        aggregate.group_by.as_deref().unwrap_or(""),
        aggregate.field.as_deref().unwrap_or(""),
    ]);
    let add = |fold: &mut Fold, _id: u64, stored: &[u8]| -> Result<(), DbError> {
        read_fields(stored, &selector, &mut fold.fields, false)?;
        let [key, value] = &mut fold.fields;
        let value = number(value);
        // The group is found by the key's bytes in a buffer kept across records; only a
        // new group allocates.
        fold.key.clear();
        index_key_into(key, &mut fold.key);
        match fold.partial.get_mut(fold.key.as_slice()) {
            Some(acc) => acc.add(value),
            None => {
                let mut acc = Acc::new(std::mem::take(key));
                acc.add(value);
                fold.partial.insert(fold.key.clone(), acc);
            }
        }
        Ok(())
    };
    let start = || Fold {
        partial: Partial::new(),
        fields: [Value::Null, Value::Null],
        key: Vec::new(),
    };
    let mut total = Partial::new();
    scan::run(
        database,
        &plan,
        false,
        None,
        control,
        start,
        add,
        |window| {
            for fold in window {
                for (key, acc) in fold.partial {
                    match total.get_mut(&key) {
                        Some(sum) => sum.merge(&acc),
                        None => {
                            total.insert(key, acc);
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    let mut groups: Vec<(Vec<u8>, Acc)> = total.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    if groups.is_empty() && aggregate.group_by.is_none() {
        groups.push((Vec::new(), Acc::new(Value::Null)));
    }
    Ok(groups
        .into_iter()
        .map(|(_, acc)| acc.into_group())
        .collect())
}
