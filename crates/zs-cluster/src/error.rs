//! [`ClusterError`].

use zs::Status;

/// What a registry operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A registration out of bounds (names, addresses, capacity).
    #[error("bad registration: {0}")]
    Invalid(String),
    /// No server of the type takes clients.
    #[error("no online server of type {0:?}")]
    NoServer(String),
    /// The backend's storage failed.
    #[error("registry storage: {0}")]
    Storage(String),
}

impl From<zs_db::DbError> for ClusterError {
    fn from(error: zs_db::DbError) -> Self {
        Self::Storage(error.to_string())
    }
}

impl ClusterError {
    /// The status a caller over the network gets.
    pub fn into_status(self) -> Status {
        let message = self.to_string();
        match self {
            Self::Invalid(_) => Status::invalid_argument(message),
            Self::NoServer(_) => Status::not_found(message),
            Self::Storage(_) => Status::internal(message),
        }
    }
}
