//! [`DbError`]: everything the store can refuse or fail with.

/// An error from the store. Bad input (a name, a record, an expression) gets its own variant;
/// storage failures carry the engine's message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A database name that is empty, too long or has characters other than letters, digits,
    /// `_`, `-` and `.` (names are file names).
    #[error("invalid database name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No database of that name.
    #[error("no database named {0:?}")]
    NoSuchDatabase(String),
    /// A database of that name exists already.
    #[error("a database named {0:?} exists already")]
    Exists(String),
    /// No record with that id.
    #[error("no record {id} in database {database:?}")]
    NoSuchRecord {
        /// The database.
        database: String,
        /// The id asked for.
        id: u64,
    },
    /// Stored or received bytes that are not a record.
    #[error("malformed record: {0}")]
    BadRecord(String),
    /// A record over [`MAX_RECORD_LEN`](crate::MAX_RECORD_LEN).
    #[error("a record of {len} bytes is over the limit of {max}")]
    RecordTooLarge {
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field name that cannot be indexed (empty or too long).
    #[error("invalid field name {0:?}")]
    BadField(String),
    /// A filter that does not parse or type-check; the error carries the position.
    #[error("filter: {0}")]
    Expression(#[from] zs_expr::Error),
    /// A filter that fails on a record (a function's error, a type mismatch at run time).
    #[error("filter failed on record {id}: {error}")]
    Eval {
        /// The record.
        id: u64,
        /// What went wrong.
        error: zs_expr::EvalError,
    },
    /// No query with that id is running.
    #[error("no running query {0}")]
    NoSuchQuery(u64),
    /// The storage engine failed (I/O, corruption, a full disk).
    #[error("storage: {0}")]
    Storage(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl DbError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// redb reports each operation's failure with its own type; all are storage errors here.
macro_rules! storage_errors {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for DbError {
            fn from(error: $error) -> Self {
                Self::Storage(error.to_string())
            }
        }
    )*};
}

storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
);
