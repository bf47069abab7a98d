//! [`FileError`]: why a transfer failed, decoded from the service's status codes and details.

use std::io;
use std::path::{Path, PathBuf};

use zs_wire::DataFrame;

use super::paths::parse_remote;
use super::protocol::{DETAIL_MISMATCH, DETAIL_NO_SINK, DETAIL_NOT_FOUND};
use crate::dispatch::{Status, StatusCode};
use crate::error::CallError;

/// A file transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A local file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The local file.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// A call to the server failed (connection, timeout, protocol).
    #[error(transparent)]
    Call(CallError),
    /// The server refused or failed the operation.
    #[error("server: {0}")]
    Remote(Status),
    /// The file's SHA3-256 differs between the two sides (the `.part` is kept; a resume
    /// checks its prefix again and starts over if that differs).
    #[error("sha3-256 mismatch: local {local}, remote {remote}")]
    HashMismatch {
        /// This side's hash (hex).
        local: String,
        /// The server's hash (hex).
        remote: String,
    },
    /// The remote path is refused before anything is sent.
    #[error("bad remote path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: String,
    },
    /// The remote file does not exist.
    #[error("not found on the server: {0}")]
    NotFound(String),
    /// Fewer (or more) bytes arrived than the file has.
    #[error("transfer incomplete: expected {expected} bytes, got {got}")]
    Incomplete {
        /// The file's size.
        expected: u64,
        /// What the receiver holds.
        got: u64,
    },
    /// The server does not serve files (no [`FileService`](super::FileService) installed
    /// there).
    #[error("the server does not serve files (start it with a FileService)")]
    NotServed,
    /// The client cannot receive files: it was built without a [`FileSink`](super::FileSink).
    #[error(
        "this client cannot receive files: build it with .install(zs::services::files::FileSink::new())"
    )]
    NoSink,
    /// The server's reply is not what the command promises.
    #[error("malformed reply: {0}")]
    BadReply(String),
}

impl From<CallError> for FileError {
    fn from(error: CallError) -> Self {
        let CallError::Remote(status) = error else {
            return Self::Call(error);
        };
        if status.code() == StatusCode::UNIMPLEMENTED {
            return Self::NotServed;
        }
        let mut details = status.details().map(DataFrame::reader);
        let tag = details
            .as_mut()
            .and_then(|details| details.read_string().ok());
        match (tag.as_deref(), details) {
            (Some(DETAIL_NOT_FOUND), Some(mut details)) => {
                Self::NotFound(details.read_string().unwrap_or_default())
            }
            (Some(DETAIL_MISMATCH), Some(mut details)) => Self::HashMismatch {
                local: details.read_string().unwrap_or_default(),
                remote: details.read_string().unwrap_or_default(),
            },
            (Some(DETAIL_NO_SINK), _) => Self::NoSink,
            _ => Self::Remote(status),
        }
    }
}

pub(super) fn check_remote(remote: &str) -> Result<(), FileError> {
    parse_remote(remote)
        .map(drop)
        .map_err(|reason| FileError::BadPath {
            path: remote.to_owned(),
            reason: reason.to_owned(),
        })
}

pub(super) fn local_error(path: &Path) -> impl Fn(io::Error) -> FileError + Copy + '_ {
    move |error| FileError::Io {
        path: path.to_owned(),
        error,
    }
}
