//! The built-in functions (ZServer4D: the `SystemOpRunTime` registrations in OpCode.pas).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::EvalError;
use crate::functions::{Arity, Functions, extreme};
use crate::value::Value;

type R = Result<Value, EvalError>;

fn ty_err(name: &'static str, v: &Value) -> EvalError {
    EvalError::unary(name, v.ty())
}

fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Null)
}

fn num(name: &'static str, v: &Value) -> Result<f64, EvalError> {
    v.as_f64().ok_or_else(|| ty_err(name, v))
}

fn int(name: &'static str, v: &Value) -> Result<i64, EvalError> {
    v.as_int().ok_or_else(|| ty_err(name, v))
}

fn text<'v>(name: &'static str, v: &'v Value) -> Result<&'v str, EvalError> {
    v.as_str().ok_or_else(|| ty_err(name, v))
}

/// A float to an integer, `Overflow` when it does not fit (or is NaN).
fn to_int(name: &'static str, x: f64) -> R {
    // -2^63 is representable and fits; 2^63 is the first float that does not.
    if x.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        return Err(EvalError::Overflow { op: name });
    }
    Ok(Value::Int(x as i64))
}

/// A float-to-int rounding function: ints pass through.
fn rounding(name: &'static str, f: fn(f64) -> f64) -> impl Fn(&[Value]) -> R {
    move |a| match arg(a, 0) {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Float(x) => to_int(name, f(*x)),
        v => Err(ty_err(name, v)),
    }
}

fn float_fn(name: &'static str, f: fn(f64) -> f64) -> impl Fn(&[Value]) -> R {
    move |a| Ok(Value::Float(f(num(name, arg(a, 0))?)))
}

fn string_fn(name: &'static str, f: fn(&str) -> String) -> impl Fn(&[Value]) -> R {
    move |a| Ok(Value::from(f(text(name, arg(a, 0))?)))
}

fn string_test(name: &'static str, f: fn(&str, &str) -> bool) -> impl Fn(&[Value]) -> R {
    move |a| {
        Ok(Value::Bool(f(
            text(name, arg(a, 0))?,
            text(name, arg(a, 1))?,
        )))
    }
}

/// Pascal `Copy(s, start, len)`: 1-based character positions, clamped.
fn substr(a: &[Value]) -> R {
    let s = text("substr", arg(a, 0))?;
    let start = int("substr", arg(a, 1))?.max(1);
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let chars = s.chars().skip(skip);
    Ok(Value::from(match a.get(2) {
        None => chars.collect::<String>(),
        Some(n) => {
            let n = usize::try_from(int("substr", n)?.max(0)).unwrap_or(usize::MAX);
            chars.take(n).collect()
        }
    }))
}

/// Pascal `Pos(sub, s)`: 1-based character position, 0 when absent.
fn pos(a: &[Value]) -> R {
    let sub = text("pos", arg(a, 0))?;
    let s = text("pos", arg(a, 1))?;
    Ok(Value::Int(match s.find(sub) {
        Some(byte) => s.get(..byte).map_or(0, |p| p.chars().count() as i64) + 1,
        None => 0,
    }))
}

fn replace(a: &[Value]) -> R {
    let s = text("replace", arg(a, 0))?;
    let from = text("replace", arg(a, 1))?;
    let to = text("replace", arg(a, 2))?;
    Ok(if from.is_empty() {
        arg(a, 0).clone()
    } else {
        Value::from(s.replace(from, to))
    })
}

fn conv_int(a: &[Value]) -> R {
    match arg(a, 0) {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Float(x) => to_int("int", x.trunc()),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Str(s) => {
            let t = s.trim();
            let parsed = match t.strip_prefix('$').or_else(|| t.strip_prefix("0x")) {
                Some(h) => u64::from_str_radix(h, 16).ok().map(|u| u as i64),
                None => t.parse().ok(),
            };
            parsed
                .map(Value::Int)
                .ok_or_else(|| EvalError::argument("int", format!("`{t}` is not an integer")))
        }
        Value::Null => Ok(Value::Null),
    }
}

fn conv_float(a: &[Value]) -> R {
    match arg(a, 0) {
        Value::Int(i) => Ok(Value::Float(*i as f64)),
        Value::Float(x) => Ok(Value::Float(*x)),
        Value::Bool(b) => Ok(Value::Float(if *b { 1.0 } else { 0.0 })),
        Value::Str(s) => {
            let t = s.trim();
            t.parse()
                .map(Value::Float)
                .map_err(|_| EvalError::argument("float", format!("`{t}` is not a number")))
        }
        Value::Null => Ok(Value::Null),
    }
}

fn conv_bool(a: &[Value]) -> R {
    match arg(a, 0) {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::Int(i) => Ok(Value::Bool(*i != 0)),
        Value::Float(x) => Ok(Value::Bool(*x != 0.0)),
        Value::Str(s) => {
            let t = s.trim();
            if t.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if t.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err(EvalError::argument(
                    "bool",
                    format!("`{t}` is not a boolean"),
                ))
            }
        }
        Value::Null => Ok(Value::Null),
    }
}

fn abs(a: &[Value]) -> R {
    match arg(a, 0) {
        Value::Int(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or(EvalError::Overflow { op: "abs" }),
        Value::Float(x) => Ok(Value::Float(x.abs())),
        v => Err(ty_err("abs", v)),
    }
}

/// Installs the built-ins into `f`.
pub(crate) fn install(f: &mut Functions) {
    use Arity::{AtLeast, Exact, Range};
    let mut add = |names: &[&str], arity, strict, body: Arc<crate::functions::NativeFn>| {
        for n in names {
            f.insert(n, arity, true, strict, Arc::clone(&body));
        }
    };
    add(&["abs"], Exact(1), true, Arc::new(abs));
    add(
        &["min"],
        AtLeast(1),
        true,
        Arc::new(|a: &[Value]| extreme("min", a, Ordering::Less)),
    );
    add(
        &["max"],
        AtLeast(1),
        true,
        Arc::new(|a: &[Value]| extreme("max", a, Ordering::Greater)),
    );
    // Delphi's Round rounds half to even.
    add(
        &["round"],
        Exact(1),
        true,
        Arc::new(rounding("round", f64::round_ties_even)),
    );
    add(
        &["trunc"],
        Exact(1),
        true,
        Arc::new(rounding("trunc", f64::trunc)),
    );
    add(
        &["floor"],
        Exact(1),
        true,
        Arc::new(rounding("floor", f64::floor)),
    );
    add(
        &["ceil"],
        Exact(1),
        true,
        Arc::new(rounding("ceil", f64::ceil)),
    );
    add(
        &["sqrt"],
        Exact(1),
        true,
        Arc::new(float_fn("sqrt", f64::sqrt)),
    );
    add(
        &["sin"],
        Exact(1),
        true,
        Arc::new(float_fn("sin", f64::sin)),
    );
    add(
        &["cos"],
        Exact(1),
        true,
        Arc::new(float_fn("cos", f64::cos)),
    );
    add(
        &["pow", "power"],
        Exact(2),
        true,
        Arc::new(|a: &[Value]| {
            Ok(Value::Float(
                num("pow", arg(a, 0))?.powf(num("pow", arg(a, 1))?),
            ))
        }),
    );
    add(
        &["length", "len"],
        Exact(1),
        true,
        Arc::new(|a: &[Value]| Ok(Value::Int(text("length", arg(a, 0))?.chars().count() as i64))),
    );
    add(
        &["upper", "uppercase"],
        Exact(1),
        true,
        Arc::new(string_fn("upper", str::to_uppercase)),
    );
    add(
        &["lower", "lowercase"],
        Exact(1),
        true,
        Arc::new(string_fn("lower", str::to_lowercase)),
    );
    add(
        &["trim"],
        Exact(1),
        true,
        Arc::new(string_fn("trim", |s| s.trim().to_owned())),
    );
    add(&["substr", "copy"], Range(2, 3), true, Arc::new(substr));
    add(&["pos"], Exact(2), true, Arc::new(pos));
    add(
        &["contains"],
        Exact(2),
        true,
        Arc::new(string_test("contains", |s, p| s.contains(p))),
    );
    add(
        &["startswith"],
        Exact(2),
        true,
        Arc::new(string_test("startswith", |s, p| s.starts_with(p))),
    );
    add(
        &["endswith"],
        Exact(2),
        true,
        Arc::new(string_test("endswith", |s, p| s.ends_with(p))),
    );
    add(&["replace"], Exact(3), true, Arc::new(replace));
    add(&["int"], Exact(1), true, Arc::new(conv_int));
    add(&["float"], Exact(1), true, Arc::new(conv_float));
    add(&["bool"], Exact(1), true, Arc::new(conv_bool));
    add(
        &["str"],
        Exact(1),
        true,
        Arc::new(|a: &[Value]| Ok(Value::from(arg(a, 0).to_string()))),
    );
    add(
        &["isnull"],
        Exact(1),
        false,
        Arc::new(|a: &[Value]| Ok(Value::Bool(arg(a, 0).is_null()))),
    );
    add(
        &["coalesce"],
        AtLeast(1),
        false,
        Arc::new(|a: &[Value]| {
            Ok(a.iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or(Value::Null))
        }),
    );
}
