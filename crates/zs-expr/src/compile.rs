//! The compiler from [`Expr`] to [`Program`] (ZServer4D: `BuildAsOpCode`, which turns the
//! symbol list into a `TOpCode` tree).
//!
//! In one pass it resolves variables to slots, functions to their bodies, folds constant
//! subexpressions and checks types where they are known. Types are checked by *probing*: the
//! operator (or pure function) is applied to a sample value of every type an operand may
//! have; if every combination fails with [`EvalError::Type`], no binding can make it work and
//! the expression is rejected with the operator's position. Evaluation uses the same operator
//! code, so the check and the evaluation cannot disagree.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ast::{BinOp, Expr, ExprKind};
use crate::error::{Error, EvalError};
use crate::eval::{Bindings, Evaluator, Node};
use crate::functions::Functions;
use crate::ops;
use crate::parser::{Limits, parse_with};
use crate::value::{Type, Value};

/// A compiled expression: parse once, evaluate many times, from many threads (it is
/// `Send + Sync`). ZServer4D: the `TOpCode` tree `BuildAsOpCode` returns, with its variables
/// resolved.
#[derive(Debug, Clone)]
pub struct Program {
    root: Node,
    variables: Vec<String>,
    result_type: Type,
}

/// Candidate types of an operand whose type is only known at evaluation time (`Null` is left
/// out: it makes every operator yield `Null`).
const ANY: [Type; 4] = [Type::Bool, Type::Int, Type::Float, Type::Str];

/// Probes can multiply; calls with more unknown-typed arguments than this are not probed.
const MAX_PROBED_ANY: usize = 2;

fn candidates(t: Type) -> &'static [Type] {
    match t {
        Type::Any => &ANY,
        Type::Null => &[Type::Null],
        Type::Bool => &[Type::Bool],
        Type::Int => &[Type::Int],
        Type::Float => &[Type::Float],
        Type::Str => &[Type::Str],
    }
}

/// Runs `f` on samples of every combination of `types`: `Err` with the first type error when
/// all fail that way, otherwise the common result type (`Any` when results differ or a
/// non-type error hides it).
fn probe(
    types: &[Type],
    pos: usize,
    f: &dyn Fn(&[Value]) -> Result<Value, EvalError>,
) -> Result<Type, Error> {
    if types.iter().filter(|t| **t == Type::Any).count() > MAX_PROBED_ANY {
        return Ok(Type::Any);
    }
    let mut combos: Vec<Vec<Value>> = vec![Vec::new()];
    for t in types {
        let mut next = Vec::new();
        for c in &combos {
            for ct in candidates(*t) {
                let mut c = c.clone();
                c.push(ct.sample().unwrap_or_default());
                next.push(c);
            }
        }
        combos = next;
    }
    let mut first_err = None;
    let mut result: Option<Type> = None;
    for c in &combos {
        let t = match f(c) {
            Ok(v) => v.ty(),
            Err(e @ EvalError::Type { .. }) => {
                first_err.get_or_insert(e);
                continue;
            }
            Err(_) => Type::Any,
        };
        result = Some(match result {
            None => t,
            Some(r) if r == t => r,
            Some(_) => Type::Any,
        });
    }
    match (result, first_err) {
        (Some(t), _) => Ok(t),
        (None, Some(source)) => Err(Error::Eval { pos, source }),
        (None, None) => Ok(Type::Any),
    }
}

struct Compiler<'f> {
    functions: &'f Functions,
    variables: Vec<String>,
    slots: HashMap<String, usize>,
}

impl Compiler<'_> {
    fn fold(pos: usize, r: Result<Value, EvalError>) -> Result<(Node, Type), Error> {
        match r {
            Ok(v) => {
                let t = v.ty();
                Ok((Node::Const(v), t))
            }
            Err(source) => Err(Error::Eval { pos, source }),
        }
    }

    fn compile(&mut self, e: &Expr) -> Result<(Node, Type), Error> {
        let pos = e.pos;
        match &e.kind {
            ExprKind::Literal(v) => Ok((Node::Const(v.clone()), v.ty())),
            ExprKind::Var(name) => {
                let next = self.variables.len();
                let slot = *self.slots.entry(name.clone()).or_insert(next);
                if slot == next {
                    self.variables.push(name.clone());
                }
                Ok((Node::Var(slot), Type::Any))
            }
            ExprKind::Unary(op, inner) => {
                let (n, t) = self.compile(inner)?;
                if let Node::Const(v) = n {
                    return Self::fold(pos, ops::unary(*op, v));
                }
                let op = *op;
                let rt = probe(&[t], pos, &|a| {
                    ops::unary(op, a.first().cloned().unwrap_or_default())
                })?;
                Ok((Node::Unary(op, Box::new(n)), rt))
            }
            ExprKind::Binary(op, l, r) => {
                let op = *op;
                let (ln, lt) = self.compile(l)?;
                let (rn, rt) = self.compile(r)?;
                if let (Node::Const(a), Node::Const(b)) = (&ln, &rn) {
                    return Self::fold(pos, ops::binary(op, a, b));
                }
                let t = probe(&[lt, rt], pos, &|a| {
                    let null = Value::Null;
                    ops::binary(op, a.first().unwrap_or(&null), a.get(1).unwrap_or(&null))
                })?;
                let (l, r) = (Box::new(ln), Box::new(rn));
                let node = match op {
                    BinOp::And | BinOp::Or | BinOp::LogAnd | BinOp::LogOr => {
                        Node::ShortCircuit(op, l, r)
                    }
                    _ => Node::Binary(op, l, r),
                };
                Ok((node, t))
            }
            ExprKind::Call(name, args) => self.call(pos, name, args),
        }
    }

    fn call(&mut self, pos: usize, name: &str, args: &[Expr]) -> Result<(Node, Type), Error> {
        if name.eq_ignore_ascii_case("if") || name.eq_ignore_ascii_case("iif") {
            return self.if_call(pos, name, args);
        }
        let Some(f) = self.functions.get(name) else {
            return Err(Error::UnknownFunction {
                pos,
                name: name.to_owned(),
            });
        };
        if !f.arity().accepts(args.len()) {
            return Err(Error::Arity {
                pos,
                name: name.to_owned(),
                expected: f.arity().to_string(),
                got: args.len(),
            });
        }
        let f = Arc::new(f.clone());
        let mut nodes = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for a in args {
            let (n, t) = self.compile(a)?;
            nodes.push(n);
            types.push(t);
        }
        if !f.is_pure() {
            return Ok((Node::Call(f, nodes.into_boxed_slice()), Type::Any));
        }
        let consts: Option<Vec<Value>> = nodes
            .iter()
            .map(|n| match n {
                Node::Const(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        if let Some(values) = consts {
            return Self::fold(pos, f.call(&values));
        }
        let t = probe(&types, pos, &|a| f.call(a))?;
        Ok((Node::Call(f, nodes.into_boxed_slice()), t))
    }

    fn if_call(&mut self, pos: usize, name: &str, args: &[Expr]) -> Result<(Node, Type), Error> {
        let [c, a, b] = args else {
            return Err(Error::Arity {
                pos,
                name: name.to_owned(),
                expected: "3".to_owned(),
                got: args.len(),
            });
        };
        let (cn, ct) = self.compile(c)?;
        if !matches!(ct, Type::Bool | Type::Null | Type::Any) {
            return Err(Error::Eval {
                pos,
                source: EvalError::unary("if", ct),
            });
        }
        let (an, at) = self.compile(a)?;
        let (bn, bt) = self.compile(b)?;
        match cn {
            Node::Const(Value::Bool(true)) => Ok((an, at)),
            Node::Const(_) => Ok((bn, bt)),
            cn => {
                let t = if at == bt { at } else { Type::Any };
                Ok((Node::If(Box::new(cn), Box::new(an), Box::new(bn)), t))
            }
        }
    }
}

impl Program {
    /// Parses and compiles `src` with the default [`Limits`] (ZServer4D:
    /// `ParseTextExpressionAsSymbol` + `BuildAsOpCode`).
    pub fn compile(src: &str, functions: &Functions) -> Result<Self, Error> {
        Self::compile_with(src, functions, &Limits::default())
    }

    /// Parses and compiles `src` within `limits`.
    pub fn compile_with(src: &str, functions: &Functions, limits: &Limits) -> Result<Self, Error> {
        Self::from_expr(&parse_with(src, limits)?, functions)
    }

    /// Compiles a syntax tree. Trees from [`parse`](crate::parse) are within the depth
    /// limit; a hand-built tree must be too, or compiling it may overflow the stack.
    pub fn from_expr(expr: &Expr, functions: &Functions) -> Result<Self, Error> {
        let mut c = Compiler {
            functions,
            variables: Vec::new(),
            slots: HashMap::new(),
        };
        let (root, result_type) = c.compile(expr)?;
        Ok(Program {
            root,
            variables: c.variables,
            result_type,
        })
    }

    /// The compiled tree.
    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// The variables the program reads, in slot order: bind `variables()[i]` at slot `i`.
    /// Names are case-sensitive, as written (`user.age` is one name).
    #[must_use]
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The slot of variable `name`, if the program reads it.
    #[must_use]
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.variables.iter().position(|v| v == name)
    }

    /// The result type when known at compile time ([`Type::Any`] otherwise). Any result may
    /// also be `Null` when a variable is.
    #[must_use]
    pub fn result_type(&self) -> Type {
        self.result_type
    }

    /// The value, when the whole expression folded to a constant.
    #[must_use]
    pub fn constant(&self) -> Option<&Value> {
        match &self.root {
            Node::Const(v) => Some(v),
            _ => None,
        }
    }

    /// Evaluates against `bindings` (ZServer4D: `TOpCode.Execute`, or `EvaluateExpressionValue`
    /// on an already-built tree).
    pub fn evaluate<B: Bindings + ?Sized>(&self, bindings: &B) -> Result<Value, EvalError> {
        Evaluator {
            names: &self.variables,
            bindings,
        }
        .eval(&self.root)
    }

    /// Evaluates as a filter: `true` passes; `false` and `Null` do not (SQL `WHERE`); any
    /// other type is an [`EvalError::Type`].
    pub fn matches<B: Bindings + ?Sized>(&self, bindings: &B) -> Result<bool, EvalError> {
        match self.evaluate(bindings)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            v => Err(EvalError::unary("filter", v.ty())),
        }
    }
}

/// Parses, compiles and evaluates `src` with the built-in functions and no variables
/// (ZServer4D: `EvaluateExpressionValue`). To evaluate many times, compile a [`Program`].
pub fn evaluate(src: &str) -> Result<Value, Error> {
    Ok(Program::compile(src, &Functions::new())?.evaluate(&())?)
}
