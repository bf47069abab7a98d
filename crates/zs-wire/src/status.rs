//! Status codes: why a request failed, as carried by an `ErrorReply` frame.
//!
//! The table follows gRPC's canonical codes where they mean the same thing, so a reader who
//! knows one knows the other; codes from [`StatusCode::APPLICATION_MIN`] up are the
//! application's own. `docs/PROTOCOL.md` §4.3 lists every value.

use std::fmt;

/// Why a request failed (ZServer4D has no code, only a text; this is our addition).
///
/// A newtype rather than an enum, so an application code or a code from a newer peer is an
/// ordinary value: compare with the constants (`code == StatusCode::NOT_FOUND`), or match on
/// them — constants work as patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// The caller cancelled the request (its timeout ran out).
    pub const CANCELLED: Self = Self(1);
    /// The handler failed with an error that carries no code of its own.
    pub const UNKNOWN: Self = Self(2);
    /// The request is malformed: bad UTF-8, bad DataFrame, a missing or wrong argument.
    pub const INVALID_ARGUMENT: Self = Self(3);
    /// The work did not finish in the time it was given.
    pub const DEADLINE_EXCEEDED: Self = Self(4);
    /// What the request names does not exist.
    pub const NOT_FOUND: Self = Self(5);
    /// What the request wants to create exists already.
    pub const ALREADY_EXISTS: Self = Self(6);
    /// The caller is known but may not do this.
    pub const PERMISSION_DENIED: Self = Self(7);
    /// A limit was reached: memory, a quota, requests in flight, a rate.
    pub const RESOURCE_EXHAUSTED: Self = Self(8);
    /// The system is not in the state the request needs (e.g. a hash that does not match).
    pub const FAILED_PRECONDITION: Self = Self(9);
    /// The operation was aborted, typically by a conflict; it may be retried.
    pub const ABORTED: Self = Self(10);
    /// An offset or range outside what exists.
    pub const OUT_OF_RANGE: Self = Self(11);
    /// No command of that name (or kind) is registered.
    pub const UNIMPLEMENTED: Self = Self(12);
    /// A bug on the answering side, e.g. a handler that panicked; only this request failed.
    pub const INTERNAL: Self = Self(13);
    /// The receiver cannot take the request now (shutting down); another time or another
    /// server may.
    pub const UNAVAILABLE: Self = Self(14);
    /// Data was lost or corrupted.
    pub const DATA_LOSS: Self = Self(15);
    /// The request needs a logged-in caller and there is none.
    pub const UNAUTHENTICATED: Self = Self(16);
    /// The first application code: values from here to `u16::MAX` are the application's.
    pub const APPLICATION_MIN: u16 = 1000;

    /// The code with wire value `value`; any value is accepted (unknown ones are kept as they
    /// are, so a newer peer's codes pass through).
    pub const fn from_u16(value: u16) -> Self {
        Self(value)
    }

    /// An application code: `APPLICATION_MIN + offset`, saturating at `u16::MAX`.
    pub const fn application(offset: u16) -> Self {
        Self(Self::APPLICATION_MIN.saturating_add(offset))
    }

    /// The wire value.
    pub const fn to_u16(self) -> u16 {
        self.0
    }

    /// True for codes the application defined (`>= APPLICATION_MIN`).
    pub const fn is_application(self) -> bool {
        self.0 >= Self::APPLICATION_MIN
    }

    /// The table's name for the code, or `None` for application and unknown codes.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "cancelled",
            2 => "unknown",
            3 => "invalid argument",
            4 => "deadline exceeded",
            5 => "not found",
            6 => "already exists",
            7 => "permission denied",
            8 => "resource exhausted",
            9 => "failed precondition",
            10 => "aborted",
            11 => "out of range",
            12 => "unimplemented",
            13 => "internal",
            14 => "unavailable",
            15 => "data loss",
            16 => "unauthenticated",
            _ => return None,
        })
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None if self.is_application() => write!(f, "application code {}", self.0),
            None => write!(f, "code {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_and_unknown_ones_are_kept() {
        for value in [0, 1, 12, 16, 17, 999, 1000, 4711, u16::MAX] {
            assert_eq!(StatusCode::from_u16(value).to_u16(), value);
        }
        assert_eq!(StatusCode::from_u16(5), StatusCode::NOT_FOUND);
        assert_eq!(StatusCode::application(7).to_u16(), 1007);
        assert_eq!(StatusCode::application(u16::MAX).to_u16(), u16::MAX);
        assert!(StatusCode::application(0).is_application());
        assert!(!StatusCode::UNAUTHENTICATED.is_application());
    }

    #[test]
    fn display_names_the_code() {
        assert_eq!(StatusCode::NOT_FOUND.to_string(), "not found");
        assert_eq!(
            StatusCode::application(1).to_string(),
            "application code 1001"
        );
        assert_eq!(StatusCode::from_u16(99).to_string(), "code 99");
    }

    #[test]
    fn constants_work_as_patterns() {
        let described = match StatusCode::from_u16(16) {
            StatusCode::UNAUTHENTICATED => "log in first",
            _ => "other",
        };
        assert_eq!(described, "log in first");
    }
}
