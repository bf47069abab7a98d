//! Tokenizer (winnow combinators over `&str`), the first half of ZServer4D's `ParseText`.

use winnow::ascii::{digit1, hex_digit1, multispace0};
use winnow::combinator::{alt, opt};
use winnow::error::ContextError;
use winnow::prelude::*;
use winnow::token::{any, one_of, take_till, take_while};

use crate::error::Error;

/// Punctuation and symbolic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    Le,
    Ge,
    LtGt,
    BangEq,
    EqEq,
    AmpAmp,
    PipePipe,
    Shl,
    Shr,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Caret,
    Tilde,
    Bang,
    Eq,
    Lt,
    Gt,
    LParen,
    RParen,
    Comma,
}

/// Word operators and literals (matched case-insensitively, like Pascal keywords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    True,
    False,
    Null,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Not,
    Shl,
    Shr,
}

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'a> {
    /// An integer literal's magnitude; `hex` literals are 64-bit patterns.
    Int {
        value: u64,
        hex: bool,
    },
    Float(f64),
    Str(String),
    Ident(&'a str),
    Kw(Kw),
    Sym(Sym),
    Eof,
}

/// A token and its byte offset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'a> {
    pub(crate) tok: Tok<'a>,
    pub(crate) pos: usize,
}

type PResult<O> = winnow::Result<O, ContextError>;

fn keyword(word: &str) -> Option<Kw> {
    const KWS: [(&str, Kw); 12] = [
        ("true", Kw::True),
        ("false", Kw::False),
        ("null", Kw::Null),
        ("nil", Kw::Null),
        ("div", Kw::Div),
        ("mod", Kw::Mod),
        ("and", Kw::And),
        ("or", Kw::Or),
        ("xor", Kw::Xor),
        ("not", Kw::Not),
        ("shl", Kw::Shl),
        ("shr", Kw::Shr),
    ];
    KWS.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|&(_, kw)| kw)
}

fn symbol(i: &mut &str) -> PResult<Sym> {
    alt((
        alt((
            "<=".value(Sym::Le),
            ">=".value(Sym::Ge),
            "<>".value(Sym::LtGt),
            "!=".value(Sym::BangEq),
            "==".value(Sym::EqEq),
            "&&".value(Sym::AmpAmp),
            "||".value(Sym::PipePipe),
            "<<".value(Sym::Shl),
            ">>".value(Sym::Shr),
        )),
        alt((
            '+'.value(Sym::Plus),
            '-'.value(Sym::Minus),
            '*'.value(Sym::Star),
            '/'.value(Sym::Slash),
            '%'.value(Sym::Percent),
            '&'.value(Sym::Amp),
            '|'.value(Sym::Pipe),
            '^'.value(Sym::Caret),
            '~'.value(Sym::Tilde),
            '!'.value(Sym::Bang),
            '='.value(Sym::Eq),
            '<'.value(Sym::Lt),
            '>'.value(Sym::Gt),
            '('.value(Sym::LParen),
            ')'.value(Sym::RParen),
            ','.value(Sym::Comma),
        )),
    ))
    .parse_next(i)
}

fn exponent<'a>(i: &mut &'a str) -> PResult<&'a str> {
    (one_of(['e', 'E']), opt(one_of(['+', '-'])), digit1)
        .take()
        .parse_next(i)
}

/// A decimal number's text: `12`, `1.5`, `1e3`, `1.0e-2`, `.5`.
fn decimal<'a>(i: &mut &'a str) -> PResult<&'a str> {
    alt((
        (digit1, opt(('.', digit1)), opt(exponent)).take(),
        ('.', digit1, opt(exponent)).take(),
    ))
    .parse_next(i)
}

/// The digits of `$FF` or `0xFF`.
fn hex<'a>(i: &mut &'a str) -> PResult<&'a str> {
    (alt(("$", "0x", "0X")), hex_digit1)
        .map(|(_, d)| d)
        .parse_next(i)
}

/// `'it''s'`: Pascal string, quote doubled to escape it.
fn pascal_string(i: &mut &str) -> PResult<String> {
    '\''.parse_next(i)?;
    let mut s = String::new();
    loop {
        let part: &str = take_till(0.., '\'').parse_next(i)?;
        s.push_str(part);
        '\''.parse_next(i)?;
        if opt('\'').parse_next(i)?.is_none() {
            return Ok(s);
        }
        s.push('\'');
    }
}

/// `"a\"b"`: C string with `\" \\ \n \t \r \0 \'` escapes. `Err(None)` for an unterminated
/// string, `Err(Some(offset))` for an unknown escape at that offset from the quote.
fn c_string(i: &mut &str) -> Result<String, Option<usize>> {
    let start = i.len();
    let r: PResult<char> = '"'.parse_next(i);
    r.map_err(|_| None)?;
    let mut s = String::new();
    loop {
        let part: PResult<&str> = take_till(0.., ['"', '\\']).parse_next(i);
        s.push_str(part.map_err(|_| None)?);
        let c: PResult<char> = any.parse_next(i);
        match c.map_err(|_| None)? {
            '"' => return Ok(s),
            _ => {
                let at = start - i.len() - 1;
                let e: PResult<char> = any.parse_next(i);
                s.push(match e.map_err(|_| None)? {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    '\\' => '\\',
                    '"' => '"',
                    '\'' => '\'',
                    _ => return Err(Some(at)),
                });
            }
        }
    }
}

fn ident<'a>(i: &mut &'a str) -> PResult<&'a str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., |c: char| {
            c.is_ascii_alphanumeric() || c == '_' || c == '.'
        }),
    )
        .take()
        .parse_next(i)
}

/// Splits `src` into tokens, ending with [`Tok::Eof`] at `src.len()`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token<'_>>, Error> {
    let mut input = src;
    let mut out = Vec::new();
    loop {
        let _: PResult<&str> = multispace0.parse_next(&mut input);
        let pos = src.len() - input.len();
        let Some(c) = input.chars().next() else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let lit = |message| Error::Literal { pos, message };
        let tok = match c {
            '$' | '0'..='9' | '.' => {
                if let Ok(digits) = hex.parse_next(&mut input) {
                    let value = u64::from_str_radix(digits, 16)
                        .map_err(|_| lit("hex literal wider than 64 bits"))?;
                    Tok::Int { value, hex: true }
                } else if let Ok(text) = decimal.parse_next(&mut input) {
                    if text.contains(['.', 'e', 'E']) {
                        Tok::Float(text.parse().map_err(|_| lit("malformed float literal"))?)
                    } else {
                        let value = text
                            .parse()
                            .map_err(|_| lit("integer literal out of range"))?;
                        Tok::Int { value, hex: false }
                    }
                } else {
                    return Err(syntax(pos, "a number", input));
                }
            }
            '\'' => Tok::Str(
                pascal_string
                    .parse_next(&mut input)
                    .map_err(|_| lit("unterminated string"))?,
            ),
            '"' => Tok::Str(c_string(&mut input).map_err(|e| match e {
                None => lit("unterminated string"),
                Some(at) => Error::Literal {
                    pos: pos + at,
                    message: "unknown escape sequence",
                },
            })?),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let name = ident.parse_next(&mut input).map_err(|_| lit("bad name"))?;
                if let Some(kw) = keyword(name) {
                    Tok::Kw(kw)
                } else {
                    if name
                        .split('.')
                        .any(|seg| !seg.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
                    {
                        return Err(lit("malformed dotted name"));
                    }
                    Tok::Ident(name)
                }
            }
            _ => match symbol.parse_next(&mut input) {
                Ok(s) => Tok::Sym(s),
                Err(_) => return Err(syntax(pos, "an operand or operator", input)),
            },
        };
        out.push(Token { tok, pos });
    }
}

/// A [`Error::Syntax`] quoting the start of `rest`.
pub(crate) fn syntax(pos: usize, expected: &'static str, rest: &str) -> Error {
    let found = match rest.chars().next() {
        None => "end of input".to_owned(),
        Some(c) => format!("`{c}`"),
    };
    Error::Syntax {
        pos,
        expected,
        found,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn toks(s: &str) -> Vec<Tok<'_>> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("42 $ff 0xFF 1.5 1.0e-2 .5 2E3"),
            vec![
                Tok::Int {
                    value: 42,
                    hex: false
                },
                Tok::Int {
                    value: 255,
                    hex: true
                },
                Tok::Int {
                    value: 255,
                    hex: true
                },
                Tok::Float(1.5),
                Tok::Float(0.01),
                Tok::Float(0.5),
                Tok::Float(2000.0),
                Tok::Eof
            ]
        );
        assert!(matches!(
            tokenize("99999999999999999999"),
            Err(Error::Literal { pos: 0, .. })
        ));
        assert!(matches!(
            tokenize("1 + $"),
            Err(Error::Syntax { pos: 4, .. })
        ));
    }

    #[test]
    fn strings() {
        assert_eq!(toks("'it''s'"), vec![Tok::Str("it's".into()), Tok::Eof]);
        assert_eq!(
            toks(r#""a\"b\\c\n""#),
            vec![Tok::Str("a\"b\\c\n".into()), Tok::Eof]
        );
        assert!(matches!(
            tokenize("x + 'abc"),
            Err(Error::Literal { pos: 4, .. })
        ));
        assert!(matches!(
            tokenize(r#"  "a\q""#),
            Err(Error::Literal { pos: 4, .. })
        ));
        assert!(matches!(
            tokenize(r#""abc"#),
            Err(Error::Literal { pos: 0, .. })
        ));
    }

    #[test]
    fn words_and_symbols() {
        assert_eq!(
            toks("user.age DIV Mod <> != == <= << && ||"),
            vec![
                Tok::Ident("user.age"),
                Tok::Kw(Kw::Div),
                Tok::Kw(Kw::Mod),
                Tok::Sym(Sym::LtGt),
                Tok::Sym(Sym::BangEq),
                Tok::Sym(Sym::EqEq),
                Tok::Sym(Sym::Le),
                Tok::Sym(Sym::Shl),
                Tok::Sym(Sym::AmpAmp),
                Tok::Sym(Sym::PipePipe),
                Tok::Eof
            ]
        );
        assert!(matches!(
            tokenize("a.1b"),
            Err(Error::Literal { pos: 0, .. })
        ));
        assert!(matches!(
            tokenize("a # b"),
            Err(Error::Syntax { pos: 2, .. })
        ));
        assert!(matches!(tokenize("é"), Err(Error::Syntax { pos: 0, .. })));
    }
}
