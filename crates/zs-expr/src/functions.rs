//! The function registry and the built-in functions (ZServer4D: `TOpCustomRunTime` with
//! `RegOpM` / `RegOpC` / `RegObjectOpM`, and the default `SystemOpRunTime` functions).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::EvalError;
use crate::ops::compare;
use crate::value::Value;

/// A native function body: takes the evaluated arguments, returns a value or an error.
pub type NativeFn = dyn Fn(&[Value]) -> Result<Value, EvalError> + Send + Sync;

/// How many arguments a function takes; checked at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Exact(usize),
    /// From `.0` to `.1` inclusive.
    Range(usize, usize),
    /// At least this many (variadic).
    AtLeast(usize),
}

impl Arity {
    /// Whether `n` arguments are accepted.
    #[must_use]
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exact(k) => n == k,
            Arity::Range(lo, hi) => (lo..=hi).contains(&n),
            Arity::AtLeast(lo) => n >= lo,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arity::Exact(k) => write!(f, "{k}"),
            Arity::Range(lo, hi) => write!(f, "{lo} to {hi}"),
            Arity::AtLeast(lo) => write!(f, "{lo} or more"),
        }
    }
}

/// A registered function (ZServer4D: `TOpCustomRunTime`'s `opRTData` entry).
#[derive(Clone)]
pub struct Function {
    name: Arc<str>,
    arity: Arity,
    pure: bool,
    strict: bool,
    body: Arc<NativeFn>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("arity", &self.arity)
            .field("pure", &self.pure)
            .finish_non_exhaustive()
    }
}

impl Function {
    /// The name as registered.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The accepted argument counts.
    #[must_use]
    pub fn arity(&self) -> Arity {
        self.arity
    }

    /// Whether the result depends on the arguments only (then calls with constant arguments
    /// are folded at compile time, and argument types are checked by probing).
    #[must_use]
    pub fn is_pure(&self) -> bool {
        self.pure
    }

    /// Calls the function. Built-ins other than `isnull`, `coalesce` and `if` return `Null`
    /// when any argument is `Null`; registered functions see the `Null`s.
    pub fn call(&self, args: &[Value]) -> Result<Value, EvalError> {
        if self.strict && args.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        (self.body)(args)
    }
}

/// A case-insensitive registry of functions (ZServer4D: `TOpCustomRunTime`). [`Functions::new`]
/// starts with the built-ins; registering a name again replaces the earlier function.
#[derive(Clone, Debug)]
pub struct Functions {
    map: HashMap<String, Function>,
}

impl Default for Functions {
    fn default() -> Self {
        Self::new()
    }
}

impl Functions {
    /// A registry holding the built-in functions (see the crate docs).
    #[must_use]
    pub fn new() -> Self {
        let mut f = Self::empty();
        crate::builtins::install(&mut f);
        f
    }

    /// A registry with no functions at all.
    #[must_use]
    pub fn empty() -> Self {
        Functions {
            map: HashMap::new(),
        }
    }

    /// Registers an impure function: never folded at compile time, its argument types are not
    /// checked before evaluation (ZServer4D: `RegOpM` / `RegOpC`).
    pub fn register<F>(&mut self, name: &str, arity: Arity, body: F) -> &mut Self
    where
        F: Fn(&[Value]) -> Result<Value, EvalError> + Send + Sync + 'static,
    {
        self.insert(name, arity, false, false, Arc::new(body))
    }

    /// Registers a pure function: its result depends on its arguments only, so calls with
    /// constant arguments are folded at compile time and a call whose argument types it
    /// rejects with [`EvalError::Type`] is a compile error. To check that, the compiler calls
    /// it with sample values (`true`, `1`, `1.0`, `'a'`) for arguments whose type is not
    /// known yet, so it must be cheap and free of side effects.
    pub fn register_pure<F>(&mut self, name: &str, arity: Arity, body: F) -> &mut Self
    where
        F: Fn(&[Value]) -> Result<Value, EvalError> + Send + Sync + 'static,
    {
        self.insert(name, arity, true, false, Arc::new(body))
    }

    pub(crate) fn insert(
        &mut self,
        name: &str,
        arity: Arity,
        pure: bool,
        strict: bool,
        body: Arc<NativeFn>,
    ) -> &mut Self {
        self.map.insert(
            name.to_ascii_lowercase(),
            Function {
                name: Arc::from(name),
                arity,
                pure,
                strict,
                body,
            },
        );
        self
    }

    /// Looks a function up by name, ignoring ASCII case.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Function> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.map.get(&name.to_ascii_lowercase())
        } else {
            self.map.get(name)
        }
    }

    /// Removes a function; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.map.remove(&name.to_ascii_lowercase()).is_some()
    }

    /// The registered names (lower-case), in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

/// `min`/`max` over comparable values.
pub(crate) fn extreme(
    name: &'static str,
    args: &[Value],
    want: std::cmp::Ordering,
) -> Result<Value, EvalError> {
    let mut best: Option<&Value> = None;
    for a in args {
        best = Some(match best {
            None => a,
            Some(b) if compare(name, a, b)? == Some(want) => a,
            Some(b) => b,
        });
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}
