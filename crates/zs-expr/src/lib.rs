//! ZExpression: the expression evaluator of ZServer4D (`zExpression.pas` / `OpCode.pas`),
//! for query filters over record fields. Parse and compile once into a [`Program`], then
//! evaluate it many times, from many threads, against different [`Bindings`].
//!
//! ```
//! use zs_expr::{Functions, Program, Value};
//!
//! let functions = Functions::new();
//! let program = Program::compile("age > 30 and name <> 'x'", &functions)?;
//! assert_eq!(program.variables(), ["age", "name"]);
//! // Bind by slot: slot i is variables()[i].
//! assert!(program.matches(&[Value::Int(42), Value::from("bob")])?);
//! assert!(!program.matches(&[Value::Int(18), Value::from("bob")])?);
//!
//! // One-shot evaluation of a constant expression (ZServer4D `EvaluateExpressionValue`).
//! assert_eq!(zs_expr::evaluate("$10 + 0x10 * 2")?, Value::Int(48));
//! assert_eq!(zs_expr::evaluate("upper('it''s') + \"\\n\"")?, Value::from("IT'S\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Binding and evaluation
//!
//! [`Program::variables`] lists the names the program reads; slot `i` is `variables()[i]`.
//! A [`Bindings`] hands out values by slot, so evaluating does no name lookups or hashing:
//! bind a `[Value]` / `Vec<Value>` in slot order (operators then borrow the values, see
//! [`Bindings::get_ref`]), or implement [`Bindings`] on a record type. [`Program::evaluate`]
//! returns the value; [`Program::matches`] is the filter form (`Null` does not match).
//!
//! # Grammar
//!
//! ```text
//! expr     = unary | expr binop expr
//! unary    = ("-" | "+" | "!" | "~" | "not") unary | primary
//! primary  = literal | name | name "(" [expr {"," expr}] ")" | "(" expr ")"
//! literal  = int | float | hex | string | "true" | "false" | "null" | "nil"
//! int      = digit+                       42
//! float    = digit+ "." digit+ [exp] | digit+ exp | "." digit+ [exp]
//!                                         1.5  1.0e-2  2E3  .5
//! hex      = "$" hexdigit+ | "0x" hexdigit+   $FF  0xFF (a 64-bit pattern: $FFFFFFFFFFFFFFFF = -1)
//! string   = "'" { char | "''" } "'"      Pascal: 'it''s'
//!          | '"' { char | escape } '"'    C: "a\"b"  escapes \" \\ \n \t \r \0 \'
//! name     = (letter | "_") { letter | digit | "_" | "." }   age  user.age
//! ```
//!
//! Keywords (`div mod and or xor not shl shr true false null nil`) and function names are
//! case-insensitive, like Pascal; variable names are case-sensitive (record field names).
//! Whitespace is insignificant. Input is bounded by [`Limits`]: 64 KiB and nesting depth 256
//! by default, checked before recursing.
//!
//! # Precedence
//!
//! Highest first; binary operators of equal precedence associate to the left.
//!
//! | level | operators                                             |
//! |-------|-------------------------------------------------------|
//! | 8     | unary `-` `+` `!` `~`                                 |
//! | 7     | `*` `/` `div` `mod` `%` `shl` `shr` `<<` `>>` `&`     |
//! | 6     | `+` `-` `\|` `^`                                      |
//! | 5     | `=` `==` `<>` `!=` `<` `<=` `>` `>=`                  |
//! | 4     | `not` (its operand is a comparison: `not a = b` is `not (a = b)`) |
//! | 3     | `and` `&&`                                            |
//! | 2     | `xor`                                                 |
//! | 1     | `or` `\|\|`                                           |
//!
//! Unlike Delphi, and like ZServer4D's own priority table (`SymbolOperationPriority` in
//! zExpression.pas puts `or and xor` below the comparisons) and SQL, the word operators
//! `and`/`or`/`xor`/`not` bind *looser* than comparisons, so `age > 30 and name <> 'x'` needs
//! no parentheses. On integers they are still bitwise (`6 and 3` is `2`), at that low
//! precedence; the C operators `& | ^ ~` are the bitwise ones with tight precedence.
//! (ZServer4D spells power `^`; here `^` is C's exclusive or and power is `pow(x, y)`.)
//!
//! # Values and types
//!
//! A [`Value`] is `Null`, `Bool`, `Int` (`i64`), `Float` (`f64`) or `Str`.
//!
//! * `+ - *` on two ints give an int, checked: overflow is [`EvalError::Overflow`]. With a
//!   float on either side the int is promoted and the result is a float. `+` on two strings
//!   concatenates. `/` always divides as floats.
//! * `div`, `mod`, `%` take ints only (`mod` has the dividend's sign, like Pascal and C).
//!   Division by zero, by `/`, `div` or `mod`, is [`EvalError::DivisionByZero`].
//! * `shl shr << >>` take ints and a count in `0..=63` (else [`EvalError::ShiftOutOfRange`]);
//!   `shr` is arithmetic. `& | ^ ~` take ints; `&& || !` take bools; `and or xor not` take two
//!   bools (logical) or two ints (bitwise). `and`/`or`/`&&`/`||` short-circuit.
//! * Comparisons: numbers with numbers (ints and floats compare exactly, NaN is unordered),
//!   strings with strings (byte order, case-sensitive), bools with bools (`false < true`).
//!   Comparing different types (`1 = '1'`) is a type error, not `false`.
//! * `Null` propagates like SQL: an operator or built-in function with a `Null` operand
//!   gives `Null`, except that the logical operators use three-valued logic
//!   (`null and false` is `false`, `null or true` is `true`) and `isnull`, `coalesce` and `if`
//!   look at it. [`Program::matches`] treats a `Null` result as not matching.
//! * Type errors between types known at compile time (literals, operator and pure function
//!   results) are compile errors with the operator's position: `'a' - 1` does not compile.
//!   Constant subexpressions are folded, so `1 div 0` does not compile either. Values of
//!   variables are checked when evaluating ([`EvalError::Type`]).
//!
//! # Functions
//!
//! Built-in (names case-insensitive; [`Functions::new`]):
//!
//! * math: `abs(x)`, `min(x, ...)`, `max(x, ...)`, `round(x)` (half to even, like Delphi),
//!   `trunc(x)`, `floor(x)`, `ceil(x)` (these four give ints), `sqrt(x)`, `pow(x, y)`
//!   (`power`), `sin(x)`, `cos(x)` (floats);
//! * strings (character positions are 1-based, as in Pascal): `length(s)` (`len`),
//!   `upper(s)`, `lower(s)`, `trim(s)`, `substr(s, start[, len])` (`copy`), `pos(sub, s)`
//!   (0 when absent), `contains(s, sub)`, `startswith(s, p)`, `endswith(s, p)`,
//!   `replace(s, from, to)`;
//! * conversions: `int(x)`, `float(x)`, `str(x)`, `bool(x)`;
//! * nulls and choice: `isnull(x)`, `coalesce(x, ...)`, `if(cond, a, b)` (`iif`; lazy: only
//!   the chosen branch is evaluated; a `Null` condition chooses `b`).
//!
//! Applications add their own with [`Functions::register`] (ZServer4D `RegOpM`/`RegOpC`).

pub mod ast;
mod builtins;
mod compile;
mod error;
mod eval;
mod functions;
mod lexer;
mod ops;
mod parser;
mod predicate;
mod value;

pub use compile::{Program, evaluate};
pub use error::{Error, EvalError};
pub use eval::Bindings;
pub use functions::{Arity, Function, Functions, NativeFn};
pub use parser::{Limits, parse, parse_with};
pub use predicate::Predicate;
pub use value::{Scalar, Type, Value};

#[cfg(test)]
mod tests;
