//! [`Status`]: what a handler returns when it fails, and what the caller receives.

use std::fmt;

use zs_wire::DataFrame;
use zs_wire::status::StatusCode;

/// A failed request: a [`StatusCode`] from the documented table (`docs/PROTOCOL.md` §4.3),
/// a message for humans and optional structured details as a [`DataFrame`].
///
/// Handlers return `Result<T, Status>`; the caller receives the same value as
/// [`CallError::Remote`](crate::CallError::Remote). Any `std::error::Error` converts into
/// it with `?`: a DataFrame read error becomes `INVALID_ARGUMENT`, an I/O error by its kind
/// (`NOT_FOUND`, `PERMISSION_DENIED`, `ALREADY_EXISTS`, ...), a failed call to another peer
/// passes its status through, anything else is `UNKNOWN` with the error's text.
///
/// ZServer4D answers a failed command with a bare text; the code and details are ours.
///
/// ```
/// use zs::{DataFrame, Status, StatusCode};
///
/// let status = Status::not_found("no user named alice")
///     .with_details(DataFrame::new().with("alice"));
/// assert_eq!(status.code(), StatusCode::NOT_FOUND);
/// assert_eq!(status.to_string(), "not found: no user named alice");
/// ```
///
/// `Status` deliberately does not implement `std::error::Error`, so that every error type
/// can convert into it (as `anyhow::Error` does); it implements `Display` and `Debug`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    code: StatusCode,
    message: String,
    details: Option<DataFrame>,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Self {
                Self::new(StatusCode::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message`, without details.
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    constructors! {
        /// `INVALID_ARGUMENT`: the request is malformed or an argument is wrong.
        invalid_argument => INVALID_ARGUMENT;
        /// `NOT_FOUND`: what the request names does not exist.
        not_found => NOT_FOUND;
        /// `ALREADY_EXISTS`: what the request would create exists.
        already_exists => ALREADY_EXISTS;
        /// `PERMISSION_DENIED`: the caller may not do this.
        permission_denied => PERMISSION_DENIED;
        /// `UNAUTHENTICATED`: the request needs a logged-in caller.
        unauthenticated => UNAUTHENTICATED;
        /// `RESOURCE_EXHAUSTED`: a limit, quota or rate was reached.
        resource_exhausted => RESOURCE_EXHAUSTED;
        /// `FAILED_PRECONDITION`: the system is not in the state the request needs.
        failed_precondition => FAILED_PRECONDITION;
        /// `OUT_OF_RANGE`: an offset or range outside what exists.
        out_of_range => OUT_OF_RANGE;
        /// `UNIMPLEMENTED`: no such command, or not of that kind.
        unimplemented => UNIMPLEMENTED;
        /// `UNAVAILABLE`: not now (shutting down); another time or server may answer.
        unavailable => UNAVAILABLE;
        /// `INTERNAL`: a bug on the answering side.
        internal => INTERNAL;
        /// `UNKNOWN`: an error without a code of its own.
        unknown => UNKNOWN;
        /// `DATA_LOSS`: data was lost or corrupted.
        data_loss => DATA_LOSS;
        /// `CANCELLED`: the caller gave up.
        cancelled => CANCELLED;
        /// `DEADLINE_EXCEEDED`: the work did not finish in its time.
        deadline_exceeded => DEADLINE_EXCEEDED;
        /// `ABORTED`: stopped by a conflict; may be retried.
        aborted => ABORTED;
    }

    /// Attaches structured details for the caller (replacing earlier ones). Details that
    /// would take the reply over the peer's frame limit are dropped on the wire; the code
    /// and message still arrive.
    #[must_use]
    pub fn with_details(mut self, details: DataFrame) -> Self {
        self.details = Some(details);
        self
    }

    /// The code.
    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The details, if any were attached.
    pub fn details(&self) -> Option<&DataFrame> {
        self.details.as_ref()
    }

    /// Rebuilds a status received on the wire. Details that do not decode as a DataFrame
    /// are dropped (noted in the message) rather than failing the call.
    pub(crate) fn from_wire(code: StatusCode, message: String, details: &[u8]) -> Self {
        let mut status = Self::new(code, message);
        if !details.is_empty() {
            match DataFrame::decode(details) {
                Ok(frame) => status.details = Some(frame),
                Err(error) => {
                    status.message = format!("{} (undecodable details: {error})", status.message)
                }
            }
        }
        status
    }

    /// Classifies a boxed error: known error types keep their meaning, others are UNKNOWN.
    fn from_boxed(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        if let Some(call) = error.downcast_ref::<crate::CallError>() {
            return match call {
                // A failed call to another peer passes its status through unchanged.
                crate::CallError::Remote(status) => status.clone(),
                crate::CallError::Timeout(_) => Self::deadline_exceeded(call.to_string()),
                other => Self::unavailable(other.to_string()),
            };
        }
        if error.is::<zs_wire::dataframe::ReadError>()
            || error.is::<zs_wire::dataframe::DecodeError>()
        {
            return Self::invalid_argument(error.to_string());
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            let code = match io.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::PermissionDenied => StatusCode::PERMISSION_DENIED,
                ErrorKind::AlreadyExists => StatusCode::ALREADY_EXISTS,
                ErrorKind::InvalidInput | ErrorKind::InvalidData => StatusCode::INVALID_ARGUMENT,
                ErrorKind::TimedOut => StatusCode::DEADLINE_EXCEEDED,
                ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::OutOfMemory => {
                    StatusCode::RESOURCE_EXHAUSTED
                }
                _ => StatusCode::UNKNOWN,
            };
            return Self::new(code, io.to_string());
        }
        Self::unknown(error.to_string())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Status {
    fn from(error: E) -> Self {
        Self::from_boxed(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails_with<E: std::error::Error + Send + Sync + 'static>(error: E) -> Status {
        let result: Result<(), E> = Err(error);
        let run = || -> Result<(), Status> {
            result?;
            Ok(())
        };
        run().unwrap_err()
    }

    #[test]
    fn known_errors_keep_their_meaning() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(fails_with(missing).code(), StatusCode::NOT_FOUND);
        let bad = DataFrame::new().reader().read_i64().unwrap_err();
        assert_eq!(fails_with(bad).code(), StatusCode::INVALID_ARGUMENT);
        let remote = crate::CallError::Remote(Status::permission_denied("no"));
        assert_eq!(fails_with(remote), Status::permission_denied("no"));
        let other = std::fmt::Error;
        let status = fails_with(other);
        assert_eq!(status.code(), StatusCode::UNKNOWN);
        assert_eq!(status.message(), std::fmt::Error.to_string());
    }

    #[test]
    fn wire_form_round_trips_details() {
        let details = DataFrame::new().with("alice").with(7i64);
        let status = Status::from_wire(StatusCode::NOT_FOUND, "x".into(), &details.encode());
        assert_eq!(status.details(), Some(&details));
        let broken = Status::from_wire(StatusCode::NOT_FOUND, "x".into(), &[0xff, 0xff]);
        assert!(broken.details().is_none());
        assert!(broken.message().starts_with("x (undecodable details"));
    }
}
