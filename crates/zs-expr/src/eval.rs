//! The compiled tree and its evaluator (ZServer4D: `TOpCode.Execute`).
//!
//! Why a tree and not bytecode: filter expressions are small (tens of nodes), the tree's
//! height is bounded by [`Limits::max_depth`](crate::Limits::max_depth) so recursion is safe,
//! and short-circuit `and`/`or` and the lazy `if` are plain control flow here where a stack
//! machine needs jumps. Identifiers are already slot indices and functions already `Arc`s,
//! so the loop does no hashing or lookups; the cost is dominated by value clones (a reference
//! count for strings), which a stack machine would pay too.

use std::borrow::Cow;
use std::sync::Arc;

use crate::ast::{BinOp, UnOp};
use crate::error::EvalError;
use crate::functions::Function;
use crate::ops;
use crate::value::Value;

/// Where a [`Program`](crate::Program) reads its variables: slot `i` is
/// `program.variables()[i]`. ZDB binds a record's fields by slot, so evaluation does no name
/// lookups (ZServer4D resolves names through `OnDeclValueMethod` callbacks at parse time).
pub trait Bindings {
    /// The value in `slot`, or `None` when it is not bound ([`EvalError::Unbound`]).
    fn get(&self, slot: usize) -> Option<Value>;

    /// The value in `slot` by reference, when the bindings store [`Value`]s: operators then
    /// read it without cloning. The default returns `None`, and [`Bindings::get`] is used.
    fn get_ref(&self, slot: usize) -> Option<&Value> {
        let _ = slot;
        None
    }
}

impl Bindings for [Value] {
    fn get(&self, slot: usize) -> Option<Value> {
        <[Value]>::get(self, slot).cloned()
    }

    fn get_ref(&self, slot: usize) -> Option<&Value> {
        <[Value]>::get(self, slot)
    }
}

impl Bindings for Vec<Value> {
    fn get(&self, slot: usize) -> Option<Value> {
        self.as_slice().get(slot).cloned()
    }

    fn get_ref(&self, slot: usize) -> Option<&Value> {
        self.as_slice().get(slot)
    }
}

impl<const N: usize> Bindings for [Value; N] {
    fn get(&self, slot: usize) -> Option<Value> {
        self.as_slice().get(slot).cloned()
    }

    fn get_ref(&self, slot: usize) -> Option<&Value> {
        self.as_slice().get(slot)
    }
}

/// No variables at all: for constant expressions.
impl Bindings for () {
    fn get(&self, _slot: usize) -> Option<Value> {
        None
    }
}

impl<B: Bindings + ?Sized> Bindings for &B {
    fn get(&self, slot: usize) -> Option<Value> {
        (**self).get(slot)
    }

    fn get_ref(&self, slot: usize) -> Option<&Value> {
        (**self).get_ref(slot)
    }
}

/// A compiled node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(Value),
    Var(usize),
    Unary(UnOp, Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    /// `and`, `or`, `&&`, `||`: the right side is evaluated only when the left does not
    /// decide (a `false` / `true` bool).
    ShortCircuit(BinOp, Box<Node>, Box<Node>),
    /// `if(c, a, b)`: `Null` counts as false, like SQL `CASE`.
    If(Box<Node>, Box<Node>, Box<Node>),
    Call(Arc<Function>, Box<[Node]>),
}

/// Arguments up to this count are evaluated into a stack array instead of a `Vec`.
const INLINE_ARGS: usize = 4;

pub(crate) struct Evaluator<'p, B: ?Sized> {
    pub(crate) names: &'p [String],
    pub(crate) bindings: &'p B,
}

impl<B: Bindings + ?Sized> Evaluator<'_, B> {
    /// An operand: constants are borrowed from the tree and variables from the bindings
    /// when they can lend them, instead of cloned.
    fn operand<'x>(&'x self, node: &'x Node) -> Result<Cow<'x, Value>, EvalError> {
        match node {
            Node::Const(v) => Ok(Cow::Borrowed(v)),
            Node::Var(slot) => match self.bindings.get_ref(*slot) {
                Some(v) => Ok(Cow::Borrowed(v)),
                None => self.eval(node).map(Cow::Owned),
            },
            n => self.eval(n).map(Cow::Owned),
        }
    }

    pub(crate) fn eval(&self, node: &Node) -> Result<Value, EvalError> {
        match node {
            Node::Const(v) => Ok(v.clone()),
            Node::Var(slot) => self.bindings.get(*slot).ok_or_else(|| {
                EvalError::Unbound(self.names.get(*slot).cloned().unwrap_or_default())
            }),
            Node::Unary(op, e) => ops::unary(*op, self.eval(e)?),
            Node::Binary(op, l, r) => ops::binary(*op, &*self.operand(l)?, &*self.operand(r)?),
            Node::ShortCircuit(op, l, r) => {
                let lv = self.eval(l)?;
                let decided = matches!(
                    (op, &lv),
                    (BinOp::And | BinOp::LogAnd, Value::Bool(false))
                        | (BinOp::Or | BinOp::LogOr, Value::Bool(true))
                );
                if decided {
                    Ok(lv)
                } else {
                    ops::binary(*op, &lv, &*self.operand(r)?)
                }
            }
            Node::If(c, a, b) => match self.eval(c)? {
                Value::Bool(true) => self.eval(a),
                Value::Bool(false) | Value::Null => self.eval(b),
                v => Err(EvalError::unary("if", v.ty())),
            },
            Node::Call(f, args) => {
                if args.len() <= INLINE_ARGS {
                    let mut buf: [Value; INLINE_ARGS] = Default::default();
                    for (slot, a) in buf.iter_mut().zip(args.iter()) {
                        *slot = self.eval(a)?;
                    }
                    f.call(<[Value]>::get(&buf, ..args.len()).unwrap_or(&[]))
                } else {
                    let vals = args
                        .iter()
                        .map(|a| self.eval(a))
                        .collect::<Result<Vec<_>, _>>()?;
                    f.call(&vals)
                }
            }
        }
    }
}
