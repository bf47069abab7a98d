//! Filter bindings that read a stored record's fields only when the filter asks for them.
//!
//! A filter such as `age = 42 and score > 10` is false for most records after its first
//! term, so most records never need `score`. For an object (record kind 4) the fields are
//! stepped over once, front to back, only as far as the field asked for; every wanted field
//! passed on the way is kept, so no field is read twice. Other kinds are read whole at the
//! start (they are rare in scans: JSON text that is not an object, DataFrames, bytes).
//!
//! A filter that is only comparisons under `and` / `or` ([`Predicate`]) goes faster still:
//! [`test_object`] hands it the fields as borrowed scalars, no [`Value`] built.

use std::cell::{Cell, OnceCell, RefCell};

use zs_expr::{Bindings, Predicate, Scalar, Value};

use crate::DbError;
use crate::object::{Field, Selector, next_field, start};
use crate::record::{KIND_OBJECT, read_fields};

/// Most variables a predicate may read for [`test_object`] to take it.
pub(crate) const PREDICATE_SLOTS: usize = 8;

/// Whether the stored object `stored` passes `predicate` over the top-level fields
/// `selector` names (at most [`PREDICATE_SLOTS`]); `None` when the record is not an object,
/// or the predicate cannot decide (the caller then evaluates the program, which also
/// reports a broken record).
pub(crate) fn test_object(
    stored: &[u8],
    selector: &Selector,
    predicate: &Predicate,
) -> Option<bool> {
    let (&KIND_OBJECT, body) = stored.split_first()? else {
        return None;
    };
    let (mut left, mut rest) = start(body)?;
    let mut found: [Option<Field<'_>>; PREDICATE_SLOTS] = [None; PREDICATE_SLOTS];
    predicate.test(&mut |slot| -> Option<Scalar<'_>> {
        loop {
            if let Some(field) = *found.get(slot)? {
                return field.scalar();
            }
            if left == 0 {
                // Not in the record: null.
                return Some(Scalar::Null);
            }
            let (name, field) = next_field(&mut rest)?;
            left -= 1;
            for (wanted, seen) in found.iter_mut().enumerate().take(selector.len()) {
                if seen.is_none() && selector.is(wanted, name) {
                    *seen = Some(field);
                }
            }
        }
    })
}

/// One record's bindings. `cells` holds one value per selected name, empty at the start
/// (the caller keeps them across records and empties them in between).
pub(crate) struct LazyFields<'a> {
    selector: &'a Selector,
    cells: &'a [OnceCell<Value>],
    /// The object's fields not yet stepped over, and how many of them there are.
    rest: Cell<&'a [u8]>,
    left: Cell<u32>,
    /// The first error met while reading: evaluation sees the field as unbound, and the
    /// caller reports this error instead of the evaluation's.
    error: RefCell<Option<DbError>>,
}

impl<'a> LazyFields<'a> {
    /// Bindings for the stored record `stored`; records that are not objects are read here.
    pub(crate) fn new(
        stored: &'a [u8],
        selector: &'a Selector,
        cells: &'a [OnceCell<Value>],
    ) -> Result<Self, DbError> {
        let lazy = Self {
            selector,
            cells,
            rest: Cell::new(&[]),
            left: Cell::new(0),
            error: RefCell::new(None),
        };
        match stored.split_first() {
            Some((&KIND_OBJECT, body)) => {
                let (count, rest) = start(body)
                    .ok_or_else(|| DbError::BadRecord("object: no field count".to_owned()))?;
                lazy.rest.set(rest);
                lazy.left.set(count);
            }
            _ => {
                let mut values = vec![Value::Null; selector.len()];
                read_fields(stored, selector, &mut values, false)?;
                for (cell, value) in cells.iter().zip(values) {
                    let _ = cell.set(value);
                }
            }
        }
        Ok(lazy)
    }

    /// The error met while reading fields, if any.
    pub(crate) fn into_error(self) -> Option<DbError> {
        self.error.into_inner()
    }

    fn fail(&self, error: DbError) {
        self.left.set(0);
        self.error.borrow_mut().get_or_insert(error);
    }

    /// Steps over fields until `slot` has its value (or the fields end).
    fn read_until(&self, slot: usize) {
        while self.left.get() > 0 {
            let mut rest = self.rest.get();
            let Some((name, field)) = next_field(&mut rest) else {
                let index = self.left.get();
                self.fail(DbError::BadRecord(format!(
                    "object: a field is cut short or of an unknown type ({index} before the end)"
                )));
                return;
            };
            self.rest.set(rest);
            self.left.set(self.left.get() - 1);
            for (wanted, cell) in self.cells.iter().enumerate() {
                if cell.get().is_some() {
                    continue;
                }
                match self.selector.value_of(wanted, name, &field) {
                    Some(Ok(value)) => {
                        let _ = cell.set(value);
                    }
                    Some(Err(error)) => {
                        self.fail(error);
                        return;
                    }
                    None => {}
                }
            }
            if self
                .cells
                .get(slot)
                .is_some_and(|cell| cell.get().is_some())
            {
                return;
            }
        }
    }
}

impl Bindings for LazyFields<'_> {
    fn get(&self, slot: usize) -> Option<Value> {
        self.get_ref(slot).cloned()
    }

    fn get_ref(&self, slot: usize) -> Option<&Value> {
        let cell = self.cells.get(slot)?;
        if cell.get().is_none() {
            self.read_until(slot);
            if self.error.borrow().is_some() {
                return None;
            }
        }
        // Not in the record: null, as for decoded records.
        Some(cell.get_or_init(|| Value::Null))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::Record;

    fn read(stored: &[u8], names: &[&str], order: &[usize]) -> Result<Vec<Value>, DbError> {
        let selector = Selector::new(names);
        let cells = vec![OnceCell::new(); names.len()];
        let lazy = LazyFields::new(stored, &selector, &cells)?;
        let mut values = vec![Value::Null; names.len()];
        for &slot in order {
            let value = lazy.get(slot);
            if let Some(error) = lazy.error.borrow_mut().take() {
                return Err(error);
            }
            values[slot] = value.unwrap();
        }
        Ok(values)
    }

    #[test]
    fn fields_read_lazily_agree_with_decoded_fields_in_any_order() {
        let record = Record::Json(json!({
            "a": 1, "b": "x", "c": {"d": 2.5}, "e": null, "f": [1], "g": true
        }));
        let stored = record.encode().unwrap();
        let names = ["g", "c.d", "a", "missing", "b", "f"];
        let expected: Vec<Value> = names.iter().map(|name| record.field(name)).collect();
        for order in [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [3, 0, 3, 2, 5, 1]] {
            let mut seen = order.to_vec();
            seen.sort_unstable();
            seen.dedup();
            let mut want = vec![Value::Null; names.len()];
            for slot in seen {
                want[slot] = expected[slot].clone();
            }
            assert_eq!(read(&stored, &names, &order).unwrap(), want);
        }
        // Not an object: read whole.
        let frame = Record::Frame(zs_wire::DataFrame::new().with(7i32));
        assert_eq!(
            read(&frame.encode().unwrap(), &["_0"], &[0]).unwrap(),
            vec![Value::Int(7)]
        );
    }

    #[test]
    fn a_field_cut_short_is_an_error_only_when_reached() {
        let stored = Record::Json(json!({"a": 1, "b": "xyz"})).encode().unwrap();
        let cut = &stored[..stored.len() - 1];
        assert_eq!(read(cut, &["a"], &[0]).unwrap(), vec![Value::Int(1)]);
        assert!(matches!(
            read(cut, &["b"], &[0]),
            Err(DbError::BadRecord(_))
        ));
        assert!(read(&[KIND_OBJECT, 1], &["a"], &[0]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_read_lazily_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            slot in 0usize..3,
        ) {
            let mut stored = vec![KIND_OBJECT];
            stored.extend(body);
            let _ = read(&stored, &["a", "b", "a.b"], &[slot]);
        }
    }
}
