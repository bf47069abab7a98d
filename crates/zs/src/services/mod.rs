//! Services built on the public API, each under its own command namespace and installed
//! with [`Service`](crate::Service): the connection driver knows none of them.
//!
//! - [`files`]: the file service behind `zs put` / `zs get` (ZServer4D's file transfer in
//!   the dual-tunnel servers), with [`files::FileClient`] (and [`files::FileSink`] on the client).
//! - [`batch`]: BatchStream (ZServer4D's `BatchStream`), with [`batch::BatchClient`].

pub mod batch;
pub mod files;
