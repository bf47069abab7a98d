//! From a command name to a handler: the handler contract ([`Status`] errors, [`Context`]),
//! the command table ([`Commands`]), services ([`Service`]) and per-command statistics.

pub(crate) mod auth;
pub(crate) mod context;
pub(crate) mod registry;
pub(crate) mod service;
pub(crate) mod stats;
pub(crate) mod status;

pub use auth::{Requirement, User};
pub use context::{Context, OffloadError};
pub use registry::Commands;
pub use service::{Namespace, Service};
pub use stats::CommandStats;
pub use status::Status;
pub use zs_wire::status::StatusCode;
