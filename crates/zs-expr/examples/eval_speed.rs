//! Rough evaluation speed: `cargo run --release -p zs-expr --example eval_speed`.

use std::time::Instant;

use zs_expr::{Functions, Program, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let functions = Functions::new();
    for src in [
        "age > 30 and name <> 'x'",
        "user.age >= 18 && user.age < 65 && startswith(user.name, 'b')",
        "(a + b * 2) div 3 mod 7 = 1 or c",
    ] {
        let program = Program::compile(src, &functions)?;
        let rows: Vec<Vec<Value>> = (0..1024_i64)
            .map(|i| {
                program
                    .variables()
                    .iter()
                    .map(|v| match v.as_str() {
                        "name" | "user.name" => Value::from(if i % 3 == 0 { "x" } else { "bob" }),
                        "c" => Value::Bool(i % 2 == 0),
                        _ => Value::Int(i % 90),
                    })
                    .collect()
            })
            .collect();
        let n = 4_000_000_usize;
        let start = Instant::now();
        let mut hits = 0_usize;
        for i in 0..n {
            if program.matches(&rows[i % rows.len()])? {
                hits += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{src:<64} {:>6.1} M evaluations/s ({:.1} ns each, {hits} matched)",
            n as f64 / secs / 1e6,
            secs * 1e9 / n as f64
        );
    }
    Ok(())
}
