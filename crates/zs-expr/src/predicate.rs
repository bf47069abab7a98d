//! A filter made only of comparisons between variables and constants joined by `and` / `or`
//! (`age = 42 and score > 10`), evaluated on borrowed [`Scalar`]s: what a database scan runs
//! on every record, without a [`Value`] per field or a walk of the general evaluator.
//!
//! It gives what [`Program::matches`] gives: the comparisons are the evaluator's own
//! (`ops::compare_scalars`, `ops::test_ordering`), `and` / `or` are evaluated left first and
//! short-circuit where the evaluator does, with the same three-valued logic; and where it
//! cannot decide exactly as the evaluator would — types that do not compare, which are an
//! error there, or a value the caller cannot lend as a scalar — it answers `None` and the
//! caller runs the program.

use crate::ast::BinOp;
use crate::compile::Program;
use crate::eval::Node;
use crate::ops::{compare_scalars, test_ordering};
use crate::value::{Scalar, Value};

/// A [`Program`] that is only comparisons of variables with constants under `and` / `or`.
#[derive(Debug, Clone)]
pub struct Predicate {
    root: Term,
}

#[derive(Debug, Clone)]
enum Term {
    /// `variable op constant` (a constant on the left is moved right, `op` mirrored).
    Compare {
        slot: usize,
        op: BinOp,
        constant: Value,
    },
    And(Box<Term>, Box<Term>),
    Or(Box<Term>, Box<Term>),
}

impl Predicate {
    /// The predicate `program` is, if it is one.
    pub fn of(program: &Program) -> Option<Self> {
        term(program.root()).map(|root| Self { root })
    }

    /// Whether the record passes: `Some(true)` when the program would give `true`,
    /// `Some(false)` for `false` or `Null`; `None` when only the program can tell.
    /// `fetch(slot)` lends variable `slot`'s value (`None`: it cannot, run the program).
    pub fn test<'a>(&self, fetch: &mut impl FnMut(usize) -> Option<Scalar<'a>>) -> Option<bool> {
        Some(eval(&self.root, fetch)? == Some(true))
    }
}

fn term(node: &Node) -> Option<Term> {
    match node {
        Node::ShortCircuit(op @ (BinOp::And | BinOp::LogAnd | BinOp::Or | BinOp::LogOr), l, r) => {
            let (l, r) = (Box::new(term(l)?), Box::new(term(r)?));
            Some(if matches!(op, BinOp::And | BinOp::LogAnd) {
                Term::And(l, r)
            } else {
                Term::Or(l, r)
            })
        }
        Node::Binary(op, l, r) if is_comparison(*op) => match (&**l, &**r) {
            (Node::Var(slot), Node::Const(constant)) => Some(Term::Compare {
                slot: *slot,
                op: *op,
                constant: constant.clone(),
            }),
            (Node::Const(constant), Node::Var(slot)) => Some(Term::Compare {
                slot: *slot,
                op: mirror(*op),
                constant: constant.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
    )
}

/// `c op v` as `v mirror(op) c`.
fn mirror(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::Le => BinOp::Ge,
        BinOp::Gt => BinOp::Lt,
        BinOp::Ge => BinOp::Le,
        other => other,
    }
}

/// Three-valued: `Some(Some(b))` a boolean, `Some(None)` Null, `None` undecided here.
fn eval<'a>(
    term: &Term,
    fetch: &mut impl FnMut(usize) -> Option<Scalar<'a>>,
) -> Option<Option<bool>> {
    match term {
        Term::Compare { slot, op, constant } => {
            let value = fetch(*slot)?;
            let constant = constant.scalar();
            if value == Scalar::Null || constant == Scalar::Null {
                return Some(None);
            }
            let ord = compare_scalars(value, constant)?;
            Some(Some(test_ordering(*op, ord)))
        }
        // As the evaluator: the right side only when the left does not decide, then Kleene
        // logic (a known deciding side wins over Null).
        Term::And(l, r) => match eval(l, fetch)? {
            Some(false) => Some(Some(false)),
            left => match (left, eval(r, fetch)?) {
                (_, Some(false)) => Some(Some(false)),
                (Some(true), Some(true)) => Some(Some(true)),
                _ => Some(None),
            },
        },
        Term::Or(l, r) => match eval(l, fetch)? {
            Some(true) => Some(Some(true)),
            left => match (left, eval(r, fetch)?) {
                (_, Some(true)) => Some(Some(true)),
                (Some(false), Some(false)) => Some(Some(false)),
                _ => Some(None),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::Functions;

    fn scalar_of(value: &Value) -> Scalar<'_> {
        value.scalar()
    }

    #[test]
    fn comparisons_under_and_or_are_predicates_and_others_are_not() {
        let functions = Functions::default();
        for src in [
            "a = 1",
            "1 < a and b <> 'x'",
            "(a >= 2.5 or b = 'y') && c != true",
        ] {
            let program = Program::compile(src, &functions).unwrap();
            assert!(Predicate::of(&program).is_some(), "{src}");
        }
        for src in ["a + 1 = 2", "not a = 1", "a = b", "length(b) > 2", "a"] {
            let program = Program::compile(src, &functions).unwrap();
            assert!(Predicate::of(&program).is_none(), "{src}");
        }
        let program = Program::compile("age = 42 and score > 10", &functions).unwrap();
        let predicate = Predicate::of(&program).unwrap();
        let run = |age: Scalar<'static>, score: Scalar<'static>| {
            predicate.test(&mut |slot| Some(if slot == 0 { age } else { score }))
        };
        assert_eq!(run(Scalar::Int(42), Scalar::Float(10.5)), Some(true));
        assert_eq!(run(Scalar::Int(42), Scalar::Int(10)), Some(false));
        assert_eq!(
            run(Scalar::Int(41), Scalar::Str("x")),
            Some(false),
            "short-circuited"
        );
        assert_eq!(run(Scalar::Null, Scalar::Float(11.0)), Some(false), "null");
        assert_eq!(
            run(Scalar::Int(42), Scalar::Str("x")),
            None,
            "the program's error"
        );
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(Value::Int),
            prop_oneof![Just(f64::NAN), (-3.0f64..3.0)].prop_map(Value::Float),
            "[xy]{0,2}".prop_map(|s| Value::Str(s.into())),
        ]
    }

    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            (-3i64..3).prop_map(|i| i.to_string()),
            (-3.0f64..3.0).prop_map(|x| format!("{x:.2}")),
            "[xy]{0,2}".prop_map(|s| format!("'{s}'")),
            any::<bool>().prop_map(|b| b.to_string()),
        ]
    }

    fn comparison() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["=", "<>", "!=", "<", "<=", ">", ">="]),
            literal(),
            any::<bool>(),
        )
            .prop_map(|(var, op, lit, flip)| {
                if flip {
                    format!("{lit} {op} {var}")
                } else {
                    format!("{var} {op} {lit}")
                }
            })
    }

    fn filter() -> impl Strategy<Value = String> {
        comparison().prop_recursive(3, 8, 2, |inner| {
            (
                inner.clone(),
                prop::sample::select(vec!["and", "or", "&&", "||"]),
                inner,
            )
                .prop_map(|(l, op, r)| format!("({l}) {op} ({r})"))
        })
    }

    proptest! {
        /// Wherever the predicate decides, it decides as the program does.
        #[test]
        fn the_predicate_agrees_with_the_program(
            src in filter(), a in value(), b in value(), c in value()
        ) {
            let functions = Functions::default();
            let Ok(program) = Program::compile(&src, &functions) else {
                return Ok(());
            };
            let Some(predicate) = Predicate::of(&program) else {
                return Ok(());
            };
            let bound: Vec<Value> = program
                .variables()
                .iter()
                .map(|name| match name.as_str() {
                    "a" => a.clone(),
                    "b" => b.clone(),
                    _ => c.clone(),
                })
                .collect();
            let fast = predicate.test(&mut |slot| bound.get(slot).map(scalar_of));
            match program.matches(&bound) {
                Ok(passes) => {
                    prop_assert!(fast.is_none() || fast == Some(passes), "{src}: {fast:?} vs {passes}");
                }
                Err(_) => prop_assert_eq!(fast, None, "{}", src),
            }
        }
    }
}
