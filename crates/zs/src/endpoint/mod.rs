//! The endpoints an application holds: [`Server`] and its [`ServerHandle`], [`Client`] and
//! [`ClientBuilder`], [`BlockingClient`], and [`Peer`], the handle to one connection that
//! both sides use to call the other.

mod blocking;
pub(crate) mod client;
pub(crate) mod handle;
pub(crate) mod peer;
mod serve;
pub(crate) mod server;

pub use blocking::BlockingClient;
pub use client::{Client, ClientBuilder};
pub use handle::{ServerHandle, ServerRef};
pub use peer::{Call, Peer, Reply};
pub use server::Server;
