//! [`AccountError`].

use std::time::Duration;

use zs::Status;

use crate::password::PasswordError;

/// What an account operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The name is unknown or the password wrong: deliberately one error for both.
    #[error("wrong user name or password")]
    WrongLogin,
    /// Too many failed logins for this user or from this address.
    #[error("too many failed logins; try again in {} s", .0.as_secs().max(1))]
    TryLater(Duration),
    /// The account exists but logins are refused.
    #[error("account {0:?} is disabled")]
    Disabled(String),
    /// A user of that name exists.
    #[error("user {0:?} exists")]
    Exists(String),
    /// No user of that name.
    #[error("no user {0:?}")]
    NoSuchUser(String),
    /// The name is not a valid user name.
    #[error("bad user name: {0}")]
    BadName(String),
    /// The password is too short or too long.
    #[error("bad password: {0}")]
    BadPassword(String),
    /// Registration is closed, or this address registered too often.
    #[error("registration refused: {0}")]
    RegistrationRefused(String),
    /// The user has as many offline messages waiting as allowed.
    #[error("{max} messages are already waiting for {user:?}")]
    QueueFull {
        /// The recipient.
        user: String,
        /// The bound.
        max: usize,
    },
    /// Hashing or checking a password failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The store failed.
    #[error("account storage: {0}")]
    Storage(String),
}

impl From<zs_db::DbError> for AccountError {
    fn from(error: zs_db::DbError) -> Self {
        Self::Storage(error.to_string())
    }
}

impl AccountError {
    /// The status a caller over the network gets for this error (storage and hashing
    /// failures are logged here and reach the caller as a bare `INTERNAL`).
    pub fn into_status(self) -> Status {
        let message = self.to_string();
        match self {
            AccountError::WrongLogin | AccountError::Disabled(_) => {
                Status::unauthenticated(message)
            }
            AccountError::TryLater(_)
            | AccountError::RegistrationRefused(_)
            | AccountError::QueueFull { .. } => Status::resource_exhausted(message),
            AccountError::Exists(_) => Status::already_exists(message),
            AccountError::NoSuchUser(_) => Status::not_found(message),
            AccountError::BadName(_) | AccountError::BadPassword(_) => {
                Status::invalid_argument(message)
            }
            AccountError::Password(_) | AccountError::Storage(_) => {
                tracing::error!(%message, "account service");
                Status::internal("account storage failed")
            }
        }
    }
}
