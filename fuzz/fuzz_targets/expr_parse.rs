//! ZExpression from untrusted text: parsing, compiling and evaluating never panic, and a
//! parsed tree prints to source that parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zs_expr::{Functions, Program, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = zs_expr::parse(src) {
        let printed = expr.to_string();
        // Printing adds parentheses, so the limits may reject what the original passed.
        if let Ok(again) = zs_expr::parse(&printed) {
            assert!(
                expr.same_shape(&again),
                "{src:?} printed as {printed:?} reparsed differently"
            );
        }
    }
    let Ok(program) = Program::compile(src, &Functions::new()) else {
        return;
    };
    let _ = program.evaluate(&());
    let bindings: Vec<Value> = (0..program.variables().len())
        .map(|i| match i % 5 {
            0 => Value::Int(i64::MAX - 1),
            1 => Value::Float(-0.5),
            2 => Value::from("Ab'c"),
            3 => Value::Bool(true),
            _ => Value::Null,
        })
        .collect();
    let _ = program.evaluate(&bindings);
    let _ = program.matches(&bindings);
});
