//! Pratt parser over the token stream (ZServer4D: `ParseTextExpressionAsSymbol`).
//!
//! Both the recursion depth and the height of the tree are bounded by
//! [`Limits::max_depth`], checked before recursing, so hostile input cannot overflow the
//! stack here or in the compiler and evaluator, which recurse over the tree.

use crate::ast::{BinOp, Expr, ExprKind, UnOp};
use crate::error::Error;
use crate::lexer::{Kw, Sym, Tok, Token, tokenize};
use crate::value::Value;

/// Bounds on untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted source, in bytes (default 64 KiB).
    pub max_len: usize,
    /// Deepest accepted nesting: parentheses, unary chains and operator trees all count
    /// (default 256).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 64 * 1024,
            max_depth: 256,
        }
    }
}

/// Binding strength of the operand of a tight unary operator (`-`, `+`, `!`, `~`): above all
/// binary operators.
const UNARY_PREC: u8 = 8;
/// `not` takes a comparison as its operand (`not a = b` is `not (a = b)`).
const NOT_OPERAND_PREC: u8 = 5;

/// Parses `src` with the default [`Limits`] (ZServer4D: `ParseTextExpressionAsSymbol`).
pub fn parse(src: &str) -> Result<Expr, Error> {
    parse_with(src, &Limits::default())
}

/// Parses `src` within `limits`.
pub fn parse_with(src: &str, limits: &Limits) -> Result<Expr, Error> {
    if src.len() > limits.max_len {
        return Err(Error::TooLong {
            len: src.len(),
            max: limits.max_len,
        });
    }
    let toks = tokenize(src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        max_depth: limits.max_depth,
    };
    let (e, _) = p.expr(1, 1)?;
    match p.peek() {
        Tok::Eof => Ok(e),
        _ => Err(p.unexpected("an operator or end of input")),
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token<'a>>,
    i: usize,
    max_depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok<'a> {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.src.len(), |t| t.pos)
    }

    fn bump(&mut self) -> Tok<'a> {
        let t = self
            .toks
            .get_mut(self.i)
            .map_or(Tok::Eof, |t| std::mem::replace(&mut t.tok, Tok::Eof));
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn unexpected(&self, expected: &'static str) -> Error {
        let pos = self.pos();
        let found = if matches!(self.peek(), Tok::Eof) {
            "end of input".to_owned()
        } else {
            let end = self.toks.get(self.i + 1).map_or(self.src.len(), |t| t.pos);
            let text = self.src.get(pos..end).unwrap_or("").trim_end();
            let short: String = text.chars().take(16).collect();
            format!("`{short}`")
        };
        Error::Syntax {
            pos,
            expected,
            found,
        }
    }

    fn too_deep(&self, depth: usize) -> Result<(), Error> {
        if depth > self.max_depth {
            Err(Error::TooDeep {
                pos: self.pos(),
                max: self.max_depth,
            })
        } else {
            Ok(())
        }
    }

    fn binop(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Sym(s) => match s {
                Sym::Plus => BinOp::Add,
                Sym::Minus => BinOp::Sub,
                Sym::Star => BinOp::Mul,
                Sym::Slash => BinOp::Div,
                Sym::Percent => BinOp::Mod,
                Sym::Amp => BinOp::BitAnd,
                Sym::Pipe => BinOp::BitOr,
                Sym::Caret => BinOp::BitXor,
                Sym::Shl => BinOp::Shl,
                Sym::Shr => BinOp::Shr,
                Sym::AmpAmp => BinOp::LogAnd,
                Sym::PipePipe => BinOp::LogOr,
                Sym::Eq | Sym::EqEq => BinOp::Eq,
                Sym::LtGt | Sym::BangEq => BinOp::Ne,
                Sym::Lt => BinOp::Lt,
                Sym::Le => BinOp::Le,
                Sym::Gt => BinOp::Gt,
                Sym::Ge => BinOp::Ge,
                Sym::Tilde | Sym::Bang | Sym::LParen | Sym::RParen | Sym::Comma => return None,
            },
            Tok::Kw(k) => match k {
                Kw::Div => BinOp::IntDiv,
                Kw::Mod => BinOp::Mod,
                Kw::And => BinOp::And,
                Kw::Or => BinOp::Or,
                Kw::Xor => BinOp::Xor,
                Kw::Shl => BinOp::Shl,
                Kw::Shr => BinOp::Shr,
                Kw::True | Kw::False | Kw::Null | Kw::Not => return None,
            },
            _ => return None,
        })
    }

    /// Parses operators binding at least `min_prec`; returns the tree and its height.
    fn expr(&mut self, min_prec: u8, depth: usize) -> Result<(Expr, usize), Error> {
        self.too_deep(depth)?;
        let (mut lhs, mut height) = self.prefix(min_prec, depth)?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let pos = self.pos();
            self.bump();
            let (rhs, rh) = self.expr(prec + 1, depth + 1)?;
            height = height.max(rh) + 1;
            if height > self.max_depth {
                return Err(Error::TooDeep {
                    pos,
                    max: self.max_depth,
                });
            }
            lhs = Expr {
                pos,
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
            };
        }
        Ok((lhs, height))
    }

    fn prefix(&mut self, min_prec: u8, depth: usize) -> Result<(Expr, usize), Error> {
        let pos = self.pos();
        let lit = |v: Value| {
            Ok((
                Expr {
                    pos,
                    kind: ExprKind::Literal(v),
                },
                1,
            ))
        };
        let unary = match self.peek() {
            Tok::Sym(Sym::Minus) => Some(UnOp::Neg),
            Tok::Sym(Sym::Plus) => Some(UnOp::Plus),
            Tok::Sym(Sym::Bang) => Some(UnOp::LogNot),
            Tok::Sym(Sym::Tilde) => Some(UnOp::BitNot),
            Tok::Kw(Kw::Not) => Some(UnOp::Not),
            _ => None,
        };
        if let Some(op) = unary {
            self.bump();
            if op == UnOp::Neg {
                // A negative number literal is a literal (and the only way to write i64::MIN).
                match *self.peek() {
                    Tok::Int { value, hex } => {
                        let lit_pos = self.pos();
                        self.bump();
                        let v = if !hex && value == 1 << 63 {
                            Some(i64::MIN)
                        } else {
                            i64::try_from(value)
                                .ok()
                                .or_else(|| hex.then_some(value as i64))
                                .and_then(i64::checked_neg)
                        };
                        return match v {
                            Some(v) => lit(Value::Int(v)),
                            None => Err(Error::Literal {
                                pos: lit_pos,
                                message: "integer literal out of range",
                            }),
                        };
                    }
                    Tok::Float(x) => {
                        self.bump();
                        return lit(Value::Float(-x));
                    }
                    _ => {}
                }
            }
            let operand_prec = if op == UnOp::Not {
                min_prec.max(NOT_OPERAND_PREC)
            } else {
                UNARY_PREC
            };
            let (e, h) = self.expr(operand_prec, depth + 1)?;
            return Ok((
                Expr {
                    pos,
                    kind: ExprKind::Unary(op, Box::new(e)),
                },
                h + 1,
            ));
        }
        match self.peek() {
            Tok::Int { .. }
            | Tok::Float(_)
            | Tok::Str(_)
            | Tok::Kw(Kw::True | Kw::False | Kw::Null) => match self.bump() {
                Tok::Int { value, hex } => match i64::try_from(value) {
                    Ok(v) => lit(Value::Int(v)),
                    Err(_) if hex => lit(Value::Int(value as i64)),
                    Err(_) => Err(Error::Literal {
                        pos,
                        message: "integer literal out of range",
                    }),
                },
                Tok::Float(x) => lit(Value::Float(x)),
                Tok::Str(s) => lit(Value::from(s)),
                Tok::Kw(Kw::True) => lit(Value::Bool(true)),
                Tok::Kw(Kw::False) => lit(Value::Bool(false)),
                _ => lit(Value::Null),
            },
            Tok::Ident(name) => {
                let name = (*name).to_owned();
                self.bump();
                if *self.peek() != Tok::Sym(Sym::LParen) {
                    return Ok((
                        Expr {
                            pos,
                            kind: ExprKind::Var(name),
                        },
                        1,
                    ));
                }
                self.bump();
                let mut args = Vec::new();
                let mut height = 1;
                if *self.peek() == Tok::Sym(Sym::RParen) {
                    self.bump();
                } else {
                    loop {
                        let (a, h) = self.expr(1, depth + 1)?;
                        height = height.max(h + 1);
                        if height > self.max_depth {
                            return Err(Error::TooDeep {
                                pos,
                                max: self.max_depth,
                            });
                        }
                        args.push(a);
                        match self.peek() {
                            Tok::Sym(Sym::Comma) => {
                                self.bump();
                            }
                            Tok::Sym(Sym::RParen) => {
                                self.bump();
                                break;
                            }
                            _ => return Err(self.unexpected("`,` or `)`")),
                        }
                    }
                }
                Ok((
                    Expr {
                        pos,
                        kind: ExprKind::Call(name, args),
                    },
                    height,
                ))
            }
            Tok::Sym(Sym::LParen) => {
                self.bump();
                let inner = self.expr(1, depth + 1)?;
                if *self.peek() != Tok::Sym(Sym::RParen) {
                    return Err(self.unexpected("`)`"));
                }
                self.bump();
                Ok(inner)
            }
            _ => Err(self.unexpected("an operand")),
        }
    }
}
