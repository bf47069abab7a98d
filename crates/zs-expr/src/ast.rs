//! The syntax tree the parser produces (ZServer4D: `TSymbolExpression`, the intermediate
//! form between `ParseText` and `BuildAsOpCode`).
//!
//! [`Expr`]'s `Display` prints canonical, fully parenthesized source that parses back to an
//! equal tree (positions aside).

use std::fmt;

use crate::value::Value;

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`.
    Neg,
    /// `+x` (numbers only).
    Plus,
    /// Pascal `not`: logical on bools, bitwise on integers.
    Not,
    /// C `!`: logical, bools only.
    LogNot,
    /// C `~`: bitwise, integers only.
    BitNot,
}

/// A binary operator. Pascal and C spellings of the same operation share a variant
/// (`mod`/`%`, `shl`/`<<`, `=`/`==`, `<>`/`!=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`: numbers, or string concatenation.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`: always float division.
    Div,
    /// `div`: integer division, truncating.
    IntDiv,
    /// `mod`, `%`: remainder of `div` (sign of the dividend).
    Mod,
    /// Pascal `and`: logical (short-circuit) on bools, bitwise on integers.
    And,
    /// Pascal `or`: logical (short-circuit) on bools, bitwise on integers.
    Or,
    /// Pascal `xor`: logical on bools, bitwise on integers.
    Xor,
    /// `shl`, `<<`.
    Shl,
    /// `shr`, `>>` (arithmetic: keeps the sign).
    Shr,
    /// C `&`: bitwise, integers only.
    BitAnd,
    /// C `|`: bitwise, integers only.
    BitOr,
    /// C `^`: bitwise, integers only.
    BitXor,
    /// C `&&`: logical, short-circuit, bools only.
    LogAnd,
    /// C `||`: logical, short-circuit, bools only.
    LogOr,
    /// `=`, `==`.
    Eq,
    /// `<>`, `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl BinOp {
    /// The canonical spelling (used in messages and by `Display`).
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::IntDiv => "div",
            BinOp::Mod => "mod",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Xor => "xor",
            BinOp::Shl => "shl",
            BinOp::Shr => "shr",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::LogAnd => "&&",
            BinOp::LogOr => "||",
            BinOp::Eq => "=",
            BinOp::Ne => "<>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }

    /// Binding strength: higher binds tighter (see the crate docs' precedence table).
    #[must_use]
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or | BinOp::LogOr => 1,
            BinOp::Xor => 2,
            BinOp::And | BinOp::LogAnd => 3,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 5,
            BinOp::Add | BinOp::Sub | BinOp::BitOr | BinOp::BitXor => 6,
            BinOp::Mul
            | BinOp::Div
            | BinOp::IntDiv
            | BinOp::Mod
            | BinOp::Shl
            | BinOp::Shr
            | BinOp::BitAnd => 7,
        }
    }
}

impl UnOp {
    /// The canonical spelling.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            UnOp::Neg => "-",
            UnOp::Plus => "+",
            UnOp::Not => "not ",
            UnOp::LogNot => "!",
            UnOp::BitNot => "~",
        }
    }
}

/// A node of the syntax tree with the byte offset of its operator, literal or name.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// Byte offset in the source.
    pub pos: usize,
    /// What the node is.
    pub kind: ExprKind,
}

/// The kinds of [`Expr`] node.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A literal value.
    Literal(Value),
    /// A variable or record field (`age`, `user.age`), bound at evaluation time.
    Var(String),
    /// A unary operation.
    Unary(UnOp, Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A function call `name(args)`; names are case-insensitive.
    Call(String, Vec<Expr>),
}

impl Expr {
    /// A node at position 0 (for building trees by hand).
    #[must_use]
    pub fn new(kind: ExprKind) -> Self {
        Expr { pos: 0, kind }
    }

    /// Structural equality ignoring positions.
    #[must_use]
    pub fn same_shape(&self, other: &Expr) -> bool {
        match (&self.kind, &other.kind) {
            (ExprKind::Literal(a), ExprKind::Literal(b)) => match (a, b) {
                (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
                _ => a == b,
            },
            (ExprKind::Var(a), ExprKind::Var(b)) => a == b,
            (ExprKind::Unary(o, a), ExprKind::Unary(p, b)) => o == p && a.same_shape(b),
            (ExprKind::Binary(o, a, c), ExprKind::Binary(p, b, d)) => {
                o == p && a.same_shape(b) && c.same_shape(d)
            }
            (ExprKind::Call(f, a), ExprKind::Call(g, b)) => {
                f.eq_ignore_ascii_case(g)
                    && a.len() == b.len()
                    && a.iter().zip(b).all(|(x, y)| x.same_shape(y))
            }
            _ => false,
        }
    }
}

fn write_literal(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Null => f.write_str("null"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Int(i) if *i < 0 => write!(f, "(-{})", i.unsigned_abs()),
        Value::Int(i) => write!(f, "{i}"),
        // `/` by zero is an error, so the non-finite floats are spelled as conversions.
        Value::Float(x) if x.is_nan() => f.write_str("float('NaN')"),
        Value::Float(x) if x.is_infinite() => {
            write!(f, "float('{}inf')", if *x < 0.0 { "-" } else { "" })
        }
        Value::Float(x) if x.is_sign_negative() => write!(f, "(-{:?})", -x),
        Value::Float(x) => write!(f, "{x:?}"),
        Value::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(v) => write_literal(f, v),
            ExprKind::Var(name) => f.write_str(name),
            // `-5` parses as the literal -5, so negating a literal keeps its own parentheses.
            ExprKind::Unary(UnOp::Neg, e)
                if matches!(e.kind, ExprKind::Literal(Value::Int(_) | Value::Float(_))) =>
            {
                write!(f, "(-({e}))")
            }
            ExprKind::Unary(op, e) => write!(f, "({}{e})", op.symbol()),
            ExprKind::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            ExprKind::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}
