//! Errors: [`Error`] for parsing and compiling (with the byte position), [`EvalError`] for
//! evaluation.

use crate::value::Type;

/// A parse or compile error. Every variant that points into the source carries the byte
/// offset `pos` of the offending token (ZServer4D reports these through `ParseText`'s
/// `TSymbolExpression` error list; here they are typed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The parser wanted one thing and met another.
    #[error("at byte {pos}: expected {expected}, found {found}")]
    Syntax {
        /// Byte offset of the unexpected token.
        pos: usize,
        /// What would have been accepted.
        expected: &'static str,
        /// What was there (a short quotation, or "end of input").
        found: String,
    },
    /// A malformed literal (number out of range, bad escape, unterminated string).
    #[error("at byte {pos}: {message}")]
    Literal {
        /// Byte offset of the literal.
        pos: usize,
        /// What is wrong with it.
        message: &'static str,
    },
    /// The source is longer than [`Limits::max_len`](crate::Limits::max_len).
    #[error("expression is {len} bytes, over the {max} byte limit")]
    TooLong {
        /// The source's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The expression nests deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("at byte {pos}: expression nests deeper than {max}")]
    TooDeep {
        /// Byte offset where the limit was crossed.
        pos: usize,
        /// The limit.
        max: usize,
    },
    /// A call to a function the registry does not know.
    #[error("at byte {pos}: unknown function `{name}`")]
    UnknownFunction {
        /// Byte offset of the name.
        pos: usize,
        /// The name as written.
        name: String,
    },
    /// A call with the wrong number of arguments.
    #[error("at byte {pos}: `{name}` takes {expected} arguments, got {got}")]
    Arity {
        /// Byte offset of the name.
        pos: usize,
        /// The name as written.
        name: String,
        /// The accepted counts, e.g. "2" or "1 or more".
        expected: String,
        /// The count given.
        got: usize,
    },
    /// An operation that fails whatever the bindings are: a type mismatch between known types
    /// (`'a' - 1`) or a constant subexpression that cannot be evaluated (`1 div 0`).
    #[error("at byte {pos}: {source}")]
    Eval {
        /// Byte offset of the operator or call.
        pos: usize,
        /// Why it fails.
        source: EvalError,
    },
    /// Evaluation failed (from [`evaluate`](crate::evaluate), which compiles and evaluates).
    #[error(transparent)]
    Runtime(#[from] EvalError),
}

impl Error {
    /// The byte offset the error points at, when it points into the source.
    #[must_use]
    pub fn pos(&self) -> Option<usize> {
        match self {
            Error::Syntax { pos, .. }
            | Error::Literal { pos, .. }
            | Error::TooDeep { pos, .. }
            | Error::UnknownFunction { pos, .. }
            | Error::Arity { pos, .. }
            | Error::Eval { pos, .. } => Some(*pos),
            Error::TooLong { .. } | Error::Runtime(_) => None,
        }
    }
}

/// An evaluation error (ZServer4D raises exceptions from `TOpCode.Execute`; here they are
/// values).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// An operator applied to operands of types it does not accept.
    #[error("`{op}` cannot apply to {lhs}{}", rhs.map(|t| format!(" and {t}")).unwrap_or_default())]
    Type {
        /// The operator or function.
        op: &'static str,
        /// The (first) operand's type.
        lhs: Type,
        /// The second operand's type, for binary operators.
        rhs: Option<Type>,
    },
    /// Integer arithmetic overflowed `i64`.
    #[error("integer overflow in `{op}`")]
    Overflow {
        /// The operator or function.
        op: &'static str,
    },
    /// Integer `div`, `mod` or `%` by zero.
    #[error("integer division by zero")]
    DivisionByZero,
    /// A shift count outside `0..=63`.
    #[error("shift count {0} outside 0..=63")]
    ShiftOutOfRange(i64),
    /// The bindings had no value for a variable the program reads.
    #[error("variable `{0}` is not bound")]
    Unbound(String),
    /// A function rejected its arguments (bad conversion, negative length, ...).
    #[error("{function}: {message}")]
    Argument {
        /// The function's name.
        function: String,
        /// What is wrong.
        message: String,
    },
}

impl EvalError {
    /// An [`EvalError::Argument`], for registered functions to return.
    #[must_use]
    pub fn argument(function: impl Into<String>, message: impl Into<String>) -> Self {
        EvalError::Argument {
            function: function.into(),
            message: message.into(),
        }
    }

    pub(crate) fn unary(op: &'static str, t: Type) -> Self {
        EvalError::Type {
            op,
            lhs: t,
            rhs: None,
        }
    }

    pub(crate) fn binary(op: &'static str, l: Type, r: Type) -> Self {
        EvalError::Type {
            op,
            lhs: l,
            rhs: Some(r),
        }
    }
}
