//! Operator semantics on [`Value`]s (ZServer4D: the `TOpCode` subclasses' `Execute`, e.g.
//! `op_Add`, `op_Div`, `op_Equal`). Shared by the evaluator, constant folding and the
//! compile-time type probe, so the three cannot disagree.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::ast::{BinOp, UnOp};
use crate::error::EvalError;
use crate::value::{Scalar, Value, cmp_int_float};

/// Applies a unary operator. `Null` in, `Null` out.
pub(crate) fn unary(op: UnOp, v: Value) -> Result<Value, EvalError> {
    Ok(match (op, v) {
        (_, Value::Null) => Value::Null,
        (UnOp::Neg, Value::Int(i)) => {
            Value::Int(i.checked_neg().ok_or(EvalError::Overflow { op: "-" })?)
        }
        (UnOp::Neg, Value::Float(x)) => Value::Float(-x),
        (UnOp::Plus, v @ (Value::Int(_) | Value::Float(_))) => v,
        (UnOp::Not | UnOp::LogNot, Value::Bool(b)) => Value::Bool(!b),
        (UnOp::Not | UnOp::BitNot, Value::Int(i)) => Value::Int(!i),
        (op, v) => return Err(EvalError::unary(op.symbol().trim_end(), v.ty())),
    })
}

fn float_pair(l: &Value, r: &Value) -> Option<(f64, f64)> {
    match (l, r) {
        (Value::Float(a), Value::Float(b)) => Some((*a, *b)),
        (Value::Int(a), Value::Float(b)) => Some((*a as f64, *b)),
        (Value::Float(a), Value::Int(b)) => Some((*a, *b as f64)),
        _ => None,
    }
}

/// Orders two values of comparable types: numbers (ints and floats exactly), strings (by
/// bytes), bools (`false < true`). `Ok(None)` for an unordered NaN.
pub(crate) fn compare(
    op: &'static str,
    l: &Value,
    r: &Value,
) -> Result<Option<Ordering>, EvalError> {
    compare_scalars(l.scalar(), r.scalar()).ok_or_else(|| EvalError::binary(op, l.ty(), r.ty()))
}

/// [`compare`] on borrowed scalars: `None` for types that do not compare (an error in the
/// evaluator), `Some(None)` for a NaN.
pub(crate) fn compare_scalars(l: Scalar<'_>, r: Scalar<'_>) -> Option<Option<Ordering>> {
    Some(match (l, r) {
        (Scalar::Int(a), Scalar::Int(b)) => Some(a.cmp(&b)),
        (Scalar::Float(a), Scalar::Float(b)) => a.partial_cmp(&b),
        (Scalar::Int(a), Scalar::Float(b)) => cmp_int_float(a, b),
        (Scalar::Float(a), Scalar::Int(b)) => cmp_int_float(b, a).map(Ordering::reverse),
        (Scalar::Str(a), Scalar::Str(b)) => Some(a.cmp(b)),
        (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(&b)),
        _ => return None,
    })
}

/// What comparison `op` gives for an ordering (`None`: a NaN was compared).
pub(crate) fn test_ordering(op: BinOp, ord: Option<Ordering>) -> bool {
    match (op, ord) {
        (BinOp::Ne, None) => true,
        (_, None) => false,
        (BinOp::Eq, Some(o)) => o == Ordering::Equal,
        (BinOp::Ne, Some(o)) => o != Ordering::Equal,
        (BinOp::Lt, Some(o)) => o == Ordering::Less,
        (BinOp::Le, Some(o)) => o != Ordering::Greater,
        (BinOp::Gt, Some(o)) => o == Ordering::Greater,
        (_, Some(o)) => o != Ordering::Less,
    }
}

fn shift_count(n: i64) -> Result<u32, EvalError> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n < 64)
        .ok_or(EvalError::ShiftOutOfRange(n))
}

/// Applies a binary operator to two evaluated operands (the evaluator short-circuits the
/// logical ones before getting here).
pub(crate) fn binary(op: BinOp, l: &Value, r: &Value) -> Result<Value, EvalError> {
    use Value::{Bool, Float, Int, Null, Str};
    let sym = op.symbol();
    let mismatch = |l: &Value, r: &Value| EvalError::binary(sym, l.ty(), r.ty());
    let overflow = EvalError::Overflow { op: sym };
    // Kleene logic for the logical operators: a known result wins over an unknown operand.
    match (op, l, r) {
        (BinOp::And | BinOp::LogAnd, Bool(false), Null | Bool(_))
        | (BinOp::And | BinOp::LogAnd, Null, Bool(false)) => return Ok(Bool(false)),
        (BinOp::Or | BinOp::LogOr, Bool(true), Null | Bool(_))
        | (BinOp::Or | BinOp::LogOr, Null, Bool(true)) => return Ok(Bool(true)),
        (BinOp::LogAnd | BinOp::LogOr, Int(_) | Float(_) | Str(_), _)
        | (BinOp::LogAnd | BinOp::LogOr, _, Int(_) | Float(_) | Str(_)) => {
            return Err(mismatch(l, r));
        }
        (_, Null, _) | (_, _, Null) => return Ok(Null),
        _ => {}
    }
    Ok(match op {
        BinOp::Add => match (l, r) {
            (Int(a), Int(b)) => Int(a.checked_add(*b).ok_or(overflow)?),
            (Str(a), Str(b)) => {
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(a);
                s.push_str(b);
                Str(Arc::from(s))
            }
            _ => Float(
                float_pair(l, r)
                    .map(|(a, b)| a + b)
                    .ok_or_else(|| mismatch(l, r))?,
            ),
        },
        BinOp::Sub => match (l, r) {
            (Int(a), Int(b)) => Int(a.checked_sub(*b).ok_or(overflow)?),
            _ => Float(
                float_pair(l, r)
                    .map(|(a, b)| a - b)
                    .ok_or_else(|| mismatch(l, r))?,
            ),
        },
        BinOp::Mul => match (l, r) {
            (Int(a), Int(b)) => Int(a.checked_mul(*b).ok_or(overflow)?),
            _ => Float(
                float_pair(l, r)
                    .map(|(a, b)| a * b)
                    .ok_or_else(|| mismatch(l, r))?,
            ),
        },
        BinOp::Div => {
            let (a, b) = match (l, r) {
                (Int(a), Int(b)) => (*a as f64, *b as f64),
                _ => float_pair(l, r).ok_or_else(|| mismatch(l, r))?,
            };
            if b == 0.0 {
                return Err(EvalError::DivisionByZero);
            }
            Float(a / b)
        }
        BinOp::IntDiv | BinOp::Mod => match (l, r) {
            (Int(_), Int(0)) => return Err(EvalError::DivisionByZero),
            (Int(a), Int(b)) if op == BinOp::IntDiv => Int(a.checked_div(*b).ok_or(overflow)?),
            (Int(a), Int(b)) => Int(a.wrapping_rem(*b)),
            _ => return Err(mismatch(l, r)),
        },
        BinOp::Shl | BinOp::Shr => match (l, r) {
            (Int(a), Int(b)) if op == BinOp::Shl => Int(a << shift_count(*b)?),
            (Int(a), Int(b)) => Int(a >> shift_count(*b)?),
            _ => return Err(mismatch(l, r)),
        },
        BinOp::And | BinOp::Or | BinOp::Xor | BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
            match (l, r) {
                (Int(a), Int(b)) => Int(match op {
                    BinOp::And | BinOp::BitAnd => a & b,
                    BinOp::Or | BinOp::BitOr => a | b,
                    _ => a ^ b,
                }),
                (Bool(a), Bool(b)) if matches!(op, BinOp::And | BinOp::Or | BinOp::Xor) => {
                    Bool(match op {
                        BinOp::And => *a && *b,
                        BinOp::Or => *a || *b,
                        _ => a ^ b,
                    })
                }
                _ => return Err(mismatch(l, r)),
            }
        }
        BinOp::LogAnd | BinOp::LogOr => match (l, r) {
            (Bool(a), Bool(b)) => Bool(if op == BinOp::LogAnd {
                *a && *b
            } else {
                *a || *b
            }),
            _ => return Err(mismatch(l, r)),
        },
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            Bool(test_ordering(op, compare(sym, l, r)?))
        }
    })
}
