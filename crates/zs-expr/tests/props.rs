//! Property tests: integer expressions against a reference evaluator on `i128`, printing and
//! re-parsing, algebraic laws, and no panics on arbitrary input.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use zs_expr::ast::{BinOp, Expr, ExprKind, UnOp};
use zs_expr::{Functions, Program, Value, parse};

const OPS: [BinOp; 10] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::IntDiv,
    BinOp::Mod,
    BinOp::BitAnd,
    BinOp::BitOr,
    BinOp::BitXor,
    BinOp::And,
    BinOp::Shl,
];

fn lit(i: i64) -> Expr {
    Expr::new(ExprKind::Literal(Value::Int(i)))
}

fn int_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (-1000i64..1000).prop_map(lit),
        any::<i64>().prop_map(lit),
        Just(Expr::new(ExprKind::Var("x".into()))),
        Just(Expr::new(ExprKind::Var("y".into()))),
    ];
    leaf.prop_recursive(6, 48, 2, |inner| {
        prop_oneof![
            (0..OPS.len(), inner.clone(), inner.clone()).prop_map(|(i, l, r)| {
                let op = OPS[i];
                // Shift counts stay in range: `l shl (r & 63)`.
                let r = if op == BinOp::Shl {
                    Expr::new(ExprKind::Binary(
                        BinOp::BitAnd,
                        Box::new(r),
                        Box::new(lit(63)),
                    ))
                } else {
                    r
                };
                Expr::new(ExprKind::Binary(op, Box::new(l), Box::new(r)))
            }),
            inner
                .clone()
                .prop_map(|e| Expr::new(ExprKind::Unary(UnOp::Neg, Box::new(e)))),
            inner.prop_map(|e| Expr::new(ExprKind::Unary(UnOp::BitNot, Box::new(e)))),
        ]
    })
}

/// The reference: exact arithmetic on `i128`; `None` where `i64` arithmetic must fail.
fn reference(e: &Expr, x: i64, y: i64) -> Option<i64> {
    let fit = |v: i128| i64::try_from(v).ok();
    match &e.kind {
        ExprKind::Literal(Value::Int(i)) => Some(*i),
        ExprKind::Var(n) => Some(if n == "x" { x } else { y }),
        ExprKind::Unary(UnOp::Neg, a) => fit(-i128::from(reference(a, x, y)?)),
        ExprKind::Unary(UnOp::BitNot, a) => Some(!reference(a, x, y)?),
        ExprKind::Binary(op, l, r) => {
            let (a, b) = (reference(l, x, y)?, reference(r, x, y)?);
            let (a1, b1) = (i128::from(a), i128::from(b));
            match op {
                BinOp::Add => fit(a1 + b1),
                BinOp::Sub => fit(a1 - b1),
                BinOp::Mul => fit(a1 * b1),
                BinOp::IntDiv if b == 0 => None,
                BinOp::IntDiv => fit(a1 / b1),
                BinOp::Mod if b == 0 => None,
                BinOp::Mod => fit(a1 % b1),
                BinOp::BitAnd | BinOp::And => Some(a & b),
                BinOp::BitOr => Some(a | b),
                BinOp::BitXor => Some(a ^ b),
                BinOp::Shl => Some(a.wrapping_shl(u32::try_from(b).ok()?)),
                _ => unreachable!(),
            }
        }
        _ => unreachable!(),
    }
}

proptest! {
    #[test]
    fn integer_expressions_match_reference(e in int_expr(), x in any::<i64>(), y in -100i64..100) {
        let src = e.to_string();
        let parsed = parse(&src).unwrap();
        prop_assert!(parsed.same_shape(&e), "{} reparsed as {}", src, parsed);
        let want = reference(&e, x, y);
        let got = Program::compile(&src, &Functions::new())
            .ok()
            .and_then(|p| {
                let vals: Vec<Value> = p
                    .variables()
                    .iter()
                    .map(|n| Value::Int(if n == "x" { x } else { y }))
                    .collect();
                p.evaluate(&vals).ok()
            });
        prop_assert_eq!(got, want.map(Value::Int), "{}", src);
    }

    #[test]
    fn add_then_subtract_is_identity(a in any::<i64>(), b in any::<i64>()) {
        let p = Program::compile("a + b - b", &Functions::new()).unwrap();
        let r = p.evaluate(&[Value::Int(a), Value::Int(b)]);
        if a.checked_add(b).is_some() {
            prop_assert_eq!(r, Ok(Value::Int(a)));
        } else {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn comparisons_agree_with_rust(a in any::<i64>(), b in any::<f64>()) {
        let p = Program::compile("a < b", &Functions::new()).unwrap();
        let r = p.evaluate(&[Value::Int(a), Value::Float(b)]).unwrap();
        // For an integer a, a < b exactly when a < ceil(b); i128 holds both.
        let exact = if b.is_nan() {
            false
        } else if b >= 1e30 {
            true
        } else if b <= -1e30 {
            false
        } else {
            i128::from(a) < b.ceil() as i128
        };
        prop_assert_eq!(r, Value::Bool(exact));
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,80}") {
        if let Ok(p) = Program::compile(&s, &Functions::new()) {
            let _ = p.evaluate(&[Value::Int(1), Value::from("a"), Value::Null]);
        }
    }

    #[test]
    fn never_panics_on_expression_like_text(s in "[-+*/%()xyab01259 '\"$.,<>=!&|^~_eE]{0,64}|(abs|min|substr|if|not|and|or|div|shl)\\([-0-9a-z ,'.]{0,20}\\)") {
        if let Ok(p) = Program::compile(&s, &Functions::new()) {
            let _ = p.evaluate(&[Value::Int(-1), Value::Float(0.5), Value::from("s"), Value::Null]);
            let _ = p.evaluate(&());
        }
    }
}
