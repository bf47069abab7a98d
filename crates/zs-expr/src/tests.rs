//! Unit tests of the whole pipeline: parse, compile, evaluate.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crate::{Arity, Error, EvalError, Functions, Limits, Program, Type, Value, evaluate, parse};

fn ev(src: &str) -> Value {
    match evaluate(src) {
        Ok(v) => v,
        Err(e) => panic!("{src}: {e}"),
    }
}

fn int(src: &str) -> i64 {
    match ev(src) {
        Value::Int(i) => i,
        v => panic!("{src}: {v:?}"),
    }
}

fn b(src: &str) -> bool {
    match ev(src) {
        Value::Bool(x) => x,
        v => panic!("{src}: {v:?}"),
    }
}

fn f(src: &str) -> f64 {
    match ev(src) {
        Value::Float(x) => x,
        v => panic!("{src}: {v:?}"),
    }
}

fn s(src: &str) -> String {
    match ev(src) {
        Value::Str(x) => x.to_string(),
        v => panic!("{src}: {v:?}"),
    }
}

fn err(src: &str) -> Error {
    match evaluate(src) {
        Ok(v) => panic!("{src}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

fn compile(src: &str) -> Program {
    Program::compile(src, &Functions::new()).unwrap()
}

#[test]
fn literals() {
    assert_eq!(int("42"), 42);
    assert_eq!(int("$FF"), 255);
    assert_eq!(int("0xff"), 255);
    assert_eq!(int("$FFFFFFFFFFFFFFFF"), -1);
    assert_eq!(int("-9223372036854775808"), i64::MIN);
    assert_eq!(f("1.5"), 1.5);
    assert_eq!(f("1.0e-2"), 0.01);
    assert_eq!(f(".5"), 0.5);
    assert_eq!(s("'it''s'"), "it's");
    assert_eq!(s(r#""a\"b\\c\n""#), "a\"b\\c\n");
    assert!(b("TRUE") && !b("False"));
    assert_eq!(ev("null"), Value::Null);
    assert_eq!(ev("NIL"), Value::Null);
}

#[test]
fn arithmetic() {
    assert_eq!(int("1 + 2 * 3"), 7);
    assert_eq!(int("(1 + 2) * 3"), 9);
    assert_eq!(int("10 - 4 - 3"), 3);
    assert_eq!(f("7 / 2"), 3.5);
    assert_eq!(int("7 div 2"), 3);
    assert_eq!(int("-7 div 2"), -3);
    assert_eq!(int("7 mod 3"), 1);
    assert_eq!(int("-7 mod 3"), -1);
    assert_eq!(int("7 % 3"), 1);
    assert_eq!(f("1 + 0.5"), 1.5);
    assert_eq!(f("0.5 * 4"), 2.0);
    assert_eq!(int("-(3)"), -3);
    assert_eq!(int("+3"), 3);
    assert_eq!(int("- -3"), 3);
    assert_eq!(s("'ab' + 'cd'"), "abcd");
}

#[test]
fn bitwise_and_logical() {
    assert_eq!(int("6 and 3"), 2);
    assert_eq!(int("6 or 3"), 7);
    assert_eq!(int("6 xor 3"), 5);
    assert_eq!(int("not 0"), -1);
    assert_eq!(int("6 & 3"), 2);
    assert_eq!(int("6 | 3"), 7);
    assert_eq!(int("6 ^ 3"), 5);
    assert_eq!(int("~0"), -1);
    assert_eq!(int("1 shl 4"), 16);
    assert_eq!(int("1 << 4"), 16);
    assert_eq!(int("256 shr 4"), 16);
    assert_eq!(int("-16 >> 2"), -4);
    assert!(b("true and not false"));
    assert!(b("true && !false"));
    assert!(b("false or true"));
    assert!(b("false || true"));
    assert!(b("true xor false"));
    assert!(!b("true xor true"));
    assert!(matches!(err("1 && 2"), Error::Eval { pos: 2, .. }));
    assert!(matches!(err("!1"), Error::Eval { pos: 0, .. }));
    assert!(matches!(err("~true"), Error::Eval { pos: 0, .. }));
    assert!(matches!(err("true & false"), Error::Eval { pos: 5, .. }));
    assert!(matches!(
        err("1 shl 64"),
        Error::Eval {
            pos: 2,
            source: EvalError::ShiftOutOfRange(64)
        }
    ));
    assert!(matches!(
        err("1 << -1"),
        Error::Eval {
            source: EvalError::ShiftOutOfRange(-1),
            ..
        }
    ));
}

#[test]
fn comparisons() {
    for (src, want) in [
        ("1 = 1", true),
        ("1 == 1", true),
        ("1 <> 1", false),
        ("1 != 2", true),
        ("1 < 2", true),
        ("2 <= 2", true),
        ("3 > 2", true),
        ("2 >= 3", false),
        ("1 = 1.0", true),
        ("1 < 1.5", true),
        ("9007199254740993 > 9007199254740992.0", true),
        ("'abc' < 'abd'", true),
        ("'B' < 'a'", true),
        ("false < true", true),
        ("float('NaN') = float('NaN')", false),
        ("float('NaN') <> float('NaN')", true),
    ] {
        assert_eq!(b(src), want, "{src}");
    }
    assert!(matches!(err("1 = '1'"), Error::Eval { pos: 2, .. }));
    assert!(matches!(err("true < 1"), Error::Eval { pos: 5, .. }));
}

#[test]
fn precedence() {
    // Multiplicative over additive, additive over comparison, comparison over the words.
    assert_eq!(int("2 + 3 * 4 - 1"), 13);
    assert_eq!(int("1 + 2 shl 3"), 17);
    assert_eq!(int("1 | 2 & 3"), 3);
    assert!(b("1 + 1 = 2 and 2 * 2 = 4"));
    assert!(b("1 < 2 && 3 > 2 || false"));
    // `and` over `xor` over `or`.
    assert!(b("true or true and false"));
    assert!(b("true xor true or true"));
    assert!(!b("false and true or false"));
    // `not` takes a comparison.
    assert!(b("not 1 = 2"));
    assert!(b("not false and true"));
    assert!(b("!false && true"));
    // Tight unaries bind before everything.
    assert_eq!(int("-2 * 3"), -6);
    assert_eq!(int("-(2 + 3) * 2"), -10);
    // Left associativity.
    assert_eq!(int("100 div 10 div 5"), 2);
    assert_eq!(f("8 / 4 / 2"), 1.0);
    // Parsed shapes.
    assert_eq!(parse("a + b * c").unwrap().to_string(), "(a + (b * c))");
    assert_eq!(
        parse("not a = b and c or d").unwrap().to_string(),
        "(((not (a = b)) and c) or d)"
    );
    assert_eq!(parse("-a shl 2").unwrap().to_string(), "((-a) shl 2)");
}

#[test]
fn overflow_and_division() {
    for src in [
        "9223372036854775807 + 1",
        "-9223372036854775808 - 1",
        "4611686018427387904 * 2",
        "-(-9223372036854775808)",
        "-9223372036854775808 div -1",
        "abs(-9223372036854775808)",
    ] {
        assert!(
            matches!(
                err(src),
                Error::Eval {
                    source: EvalError::Overflow { .. },
                    ..
                }
            ),
            "{src}"
        );
    }
    assert!(matches!(
        err("1 div 0"),
        Error::Eval {
            pos: 2,
            source: EvalError::DivisionByZero
        }
    ));
    assert!(matches!(
        err("1 mod 0"),
        Error::Eval {
            source: EvalError::DivisionByZero,
            ..
        }
    ));
    assert!(matches!(
        err("1 / 0"),
        Error::Eval {
            source: EvalError::DivisionByZero,
            ..
        }
    ));
    assert!(matches!(
        err("1.5 / 0.0"),
        Error::Eval {
            source: EvalError::DivisionByZero,
            ..
        }
    ));
    assert_eq!(int("-9223372036854775808 mod -1"), 0);
    // At run time too.
    let p = compile("a div b");
    assert_eq!(
        p.evaluate(&[Value::Int(1), Value::Int(0)]),
        Err(EvalError::DivisionByZero)
    );
    assert!(matches!(
        p.evaluate(&[Value::Int(i64::MIN), Value::Int(-1)]),
        Err(EvalError::Overflow { .. })
    ));
    assert!(matches!(
        err("9223372036854775808"),
        Error::Literal { pos: 0, .. }
    ));
    assert!(matches!(err("1.5 div 2"), Error::Eval { pos: 4, .. }));
}

#[test]
fn compile_time_type_errors() {
    let e = err("'a' - 1");
    assert_eq!(e.pos(), Some(4));
    assert!(matches!(
        e,
        Error::Eval {
            source: EvalError::Type { op: "-", .. },
            ..
        }
    ));
    // One side unknown, but no type makes `'a' - x` work.
    let e = Program::compile("x + ('a' - y)", &Functions::new()).unwrap_err();
    assert_eq!(e.pos(), Some(9));
    assert!(Program::compile("upper(x) * 2", &Functions::new()).is_err());
    assert!(Program::compile("length(1)", &Functions::new()).is_err());
    assert!(Program::compile("if(1, 2, 3)", &Functions::new()).is_err());
    // Unknown types compile and are checked when evaluating.
    let p = compile("x - 1");
    assert_eq!(p.result_type(), Type::Any);
    assert!(matches!(
        p.evaluate(&[Value::from("a")]),
        Err(EvalError::Type {
            op: "-",
            lhs: Type::Str,
            rhs: Some(Type::Int)
        })
    ));
    assert_eq!(compile("x > 1").result_type(), Type::Bool);
    assert_eq!(compile("length(x)").result_type(), Type::Int);
}

#[test]
fn variables_and_slots() {
    let p = compile("user.age >= 18 and user.name = name and user.age < 65");
    assert_eq!(p.variables(), ["user.age", "user.name", "name"]);
    assert_eq!(p.slot("name"), Some(2));
    assert_eq!(p.slot("Name"), None);
    let vals = vec![Value::Int(30), Value::from("x"), Value::from("x")];
    assert_eq!(p.evaluate(&vals), Ok(Value::Bool(true)));
    assert_eq!(
        p.evaluate(&vals[..2]),
        Err(EvalError::Unbound("name".into()))
    );
    assert!(matches!(
        evaluate("a + 1"),
        Err(Error::Runtime(EvalError::Unbound(_)))
    ));
    assert!(compile("1 + 2").constant().is_some());
}

#[test]
fn nulls() {
    assert_eq!(ev("null + 1"), Value::Null);
    assert_eq!(ev("null = null"), Value::Null);
    assert_eq!(ev("-null"), Value::Null);
    assert_eq!(ev("upper(null)"), Value::Null);
    assert!(!b("null and false"));
    assert!(b("null or true"));
    assert_eq!(ev("null and true"), Value::Null);
    assert!(b("isnull(null)"));
    assert_eq!(int("coalesce(null, null, 3)"), 3);
    assert_eq!(int("if(null, 1, 2)"), 2);
    let p = compile("x > 1");
    assert_eq!(p.matches(&[Value::Null]), Ok(false));
    assert_eq!(p.matches(&[Value::Int(2)]), Ok(true));
    assert!(compile("x + 1").matches(&[Value::Int(1)]).is_err());
}

#[test]
fn short_circuit_and_lazy_if() {
    // The right side would fail (unbound, or division by zero) but is never evaluated.
    let p = compile("false and x > 1");
    assert_eq!(p.evaluate(&()), Ok(Value::Bool(false)));
    let p = compile("x = 0 || 10 div x > 1");
    assert_eq!(p.evaluate(&[Value::Int(0)]), Ok(Value::Bool(true)));
    let p = compile("if(x = 0, 0, 10 div x)");
    assert_eq!(p.evaluate(&[Value::Int(0)]), Ok(Value::Int(0)));
    assert_eq!(p.evaluate(&[Value::Int(5)]), Ok(Value::Int(2)));
    assert_eq!(int("IIF(1 < 2, 1, 2)"), 1);
}

#[test]
fn builtins() {
    assert_eq!(int("abs(-3)"), 3);
    assert_eq!(f("abs(-1.5)"), 1.5);
    assert_eq!(int("min(3, 1, 2)"), 1);
    assert_eq!(f("max(1, 2.5)"), 2.5);
    assert_eq!(s("max('a', 'b')"), "b");
    assert_eq!(int("round(2.5)"), 2);
    assert_eq!(int("round(3.5)"), 4);
    assert_eq!(int("trunc(-2.7)"), -2);
    assert_eq!(int("floor(-2.5)"), -3);
    assert_eq!(int("ceil(2.1)"), 3);
    assert_eq!(f("sqrt(16)"), 4.0);
    assert_eq!(f("pow(2, 10)"), 1024.0);
    assert_eq!(f("sin(0)"), 0.0);
    assert_eq!(f("cos(0)"), 1.0);
    assert_eq!(int("length('héllo')"), 5);
    assert_eq!(int("LEN('')"), 0);
    assert_eq!(s("upper('abc')"), "ABC");
    assert_eq!(s("Lower('ABC')"), "abc");
    assert_eq!(s("trim('  a ')"), "a");
    assert_eq!(s("substr('hello', 2, 3)"), "ell");
    assert_eq!(s("substr('hello', 2)"), "ello");
    assert_eq!(s("substr('hello', 0, 2)"), "he");
    assert_eq!(s("substr('hello', 9, 2)"), "");
    assert_eq!(int("pos('ll', 'hello')"), 3);
    assert_eq!(int("pos('z', 'hello')"), 0);
    assert!(b("contains('hello', 'ell')"));
    assert!(b("startswith('hello', 'he')"));
    assert!(b("endswith('hello', 'lo')"));
    assert_eq!(s("replace('a-b-c', '-', '+')"), "a+b+c");
    assert_eq!(int("int('42')"), 42);
    assert_eq!(int("int(' $ff ')"), 255);
    assert_eq!(int("int(2.9)"), 2);
    assert_eq!(int("int(true)"), 1);
    assert_eq!(f("float('1.5')"), 1.5);
    assert_eq!(f("float(2)"), 2.0);
    assert_eq!(s("str(42)"), "42");
    assert_eq!(s("str(1.5)"), "1.5");
    assert!(b("bool('True')"));
    assert!(!b("bool(0)"));
    assert!(matches!(
        err("int('x')"),
        Error::Eval {
            pos: 0,
            source: EvalError::Argument { .. }
        }
    ));
    assert!(matches!(
        err("round(1e300)"),
        Error::Eval {
            source: EvalError::Overflow { .. },
            ..
        }
    ));
    assert!(matches!(
        err("nosuch(1)"),
        Error::UnknownFunction { pos: 0, .. }
    ));
    assert!(matches!(
        err("1 + abs(1, 2)"),
        Error::Arity { pos: 4, got: 2, .. }
    ));
    assert!(matches!(err("if(true, 1)"), Error::Arity { .. }));
}

#[test]
fn registered_functions() {
    let mut fns = Functions::new();
    fns.register("Twice", Arity::Exact(1), |a: &[Value]| match a {
        [Value::Int(i)] => i
            .checked_mul(2)
            .map(Value::Int)
            .ok_or(EvalError::Overflow { op: "twice" }),
        _ => Err(EvalError::argument("twice", "wants an int")),
    });
    fns.register_pure("sum", Arity::AtLeast(0), |a: &[Value]| {
        let mut t = 0i64;
        for v in a {
            t += v
                .as_int()
                .ok_or_else(|| EvalError::argument("sum", "ints only"))?;
        }
        Ok(Value::Int(t))
    });
    let p = Program::compile("twice(x) + SUM(1, 2, 3, 4, 5, 6)", &fns).unwrap();
    assert_eq!(p.evaluate(&[Value::Int(4)]), Ok(Value::Int(29)));
    assert!(matches!(
        p.evaluate(&[Value::from("a")]),
        Err(EvalError::Argument { .. })
    ));
    let p = Program::compile("sum(x, x, x, x, x)", &fns).unwrap();
    assert_eq!(p.evaluate(&[Value::Int(2)]), Ok(Value::Int(10)));
    assert!(Program::compile("twice()", &fns).is_err());
    assert!(fns.remove("twice"));
    assert!(Program::compile("twice(1)", &fns).is_err());
    // A registry without built-ins.
    assert!(Program::compile("abs(1)", &Functions::empty()).is_err());
}

#[test]
fn syntax_errors_have_positions() {
    for (src, pos) in [
        ("", 0),
        ("1 +", 3),
        ("(1 + 2", 6),
        ("1 2", 2),
        ("f(1,", 4),
        ("f(1 2)", 4),
        (")", 0),
        ("1 + * 2", 4),
        ("'abc", 0),
        ("a # b", 2),
    ] {
        let e = parse(src).unwrap_err();
        assert_eq!(e.pos(), Some(pos), "{src}: {e}");
    }
    let e = parse("1 + * 2").unwrap_err();
    assert_eq!(e.to_string(), "at byte 4: expected an operand, found `*`");
    let e = parse("(1").unwrap_err();
    assert_eq!(e.to_string(), "at byte 2: expected `)`, found end of input");
}

#[test]
fn limits() {
    let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
    assert!(matches!(parse(&deep), Err(Error::TooDeep { max: 256, .. })));
    let deep = format!("{}1", "-".repeat(300));
    assert!(matches!(parse(&deep), Err(Error::TooDeep { .. })));
    // A long flat chain builds a deep tree: rejected too.
    let chain = vec!["1"; 1000].join(" + ");
    assert!(matches!(parse(&chain), Err(Error::TooDeep { .. })));
    let ok = vec!["1"; 200].join(" + ");
    assert_eq!(int(&ok), 200);
    let long = "1".repeat(70_000);
    assert!(matches!(
        parse(&long),
        Err(Error::TooLong { len: 70_000, .. })
    ));
    let small = Limits {
        max_len: 10,
        max_depth: 3,
    };
    assert!(crate::parse_with("1 + 2", &small).is_ok());
    assert!(crate::parse_with("((1))", &small).is_ok());
    assert!(crate::parse_with("(((1)))", &small).is_err());
    assert!(crate::parse_with("1 + 2 + 3 + 4", &small).is_err());
    // Deep nesting on a thread with a small stack: limited before it can overflow.
    let deep = format!("{}x{}", "abs(".repeat(255), ")".repeat(255));
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let p = compile(&deep);
            assert_eq!(p.evaluate(&[Value::Int(-1)]), Ok(Value::Int(1)));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn programs_are_send_sync_and_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Program>();
    assert_send_sync::<Functions>();
    let p = Arc::new(compile("x * 2 + 1"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.evaluate(&[Value::Int(i)]))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), Ok(Value::Int(i as i64 * 2 + 1)));
    }
}

#[test]
fn display_round_trips() {
    for src in [
        "a + b * -c",
        "'it''s' + \"x\"",
        "not (a = b) or c && !d",
        "f(1, 2.5, -3, $FF)",
        "-9223372036854775808",
        "1.0e-7 + -0.0",
    ] {
        let e = parse(src).unwrap();
        let again = parse(&e.to_string()).unwrap();
        assert!(e.same_shape(&again), "{src} -> {e} -> {again}");
    }
}

#[test]
fn custom_bindings_without_references() {
    /// A record that builds values on demand (only `get`).
    struct Row {
        age: i64,
        name: &'static str,
    }
    impl crate::Bindings for Row {
        fn get(&self, slot: usize) -> Option<Value> {
            match slot {
                0 => Some(Value::Int(self.age)),
                1 => Some(Value::from(self.name)),
                _ => None,
            }
        }
    }
    let p = compile("age > 30 and name <> 'x' and upper(name) = 'BOB'");
    assert!(
        p.matches(&Row {
            age: 40,
            name: "bob"
        })
        .unwrap()
    );
    assert!(!p.matches(&Row { age: 40, name: "x" }).unwrap());
    assert!(
        !p.matches(&Row {
            age: 20,
            name: "bob"
        })
        .unwrap()
    );
}
