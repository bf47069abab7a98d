//! File transfer (ZServer4D's file transfer in the dual-tunnel servers): a [`FileService`]
//! serves one directory; a [`FileClient`] uploads and downloads whole files over a
//! connection, resumes interrupted transfers, and checks SHA3-256 of the whole file on both
//! sides. Downloads are pushed by the server to the client's [`FileSink`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use zs::services::files::{FileClient, FileService, FileSink, TransferOptions};
//! use zs::{Client, Server};
//!
//! let mut server = Server::bind("127.0.0.1:0").await?;
//! server.install(FileService::new("/srv/shared")?);
//! let addr = server.local_addr()?;
//! let _server = server.spawn();
//!
//! let mut builder = Client::builder();
//! builder.install(FileSink::new());
//! let client = builder.connect(addr).await?;
//! let files = FileClient::new(&client);
//! files.put(Path::new("a.bin"), "a.bin", TransferOptions::new()).await?;
//! files.get("a.bin", Path::new("a-copy.bin"), TransferOptions::new().resume(true)).await?;
//! # Ok(()) }
//! ```
//!
//! The pieces: `protocol` (command names, messages, the transfer header; its source
//! documents the wire format), `paths` (remote path checks, `.part` names, per-path locks),
//! `disk` (hashing, writing a received stream), `server` ([`FileService`]), `sink`
//! ([`FileSink`]), `client` ([`FileClient`]) and `error` ([`FileError`]).

mod areas;
mod browse;
mod client;
mod disk;
mod error;
mod paths;
mod protocol;
mod server;
mod sink;

pub use browse::{DirEntry, MAX_READ};
pub use client::{FileClient, TransferOptions, TransferReport};
pub use error::FileError;
pub use server::FileService;
pub use sink::FileSink;

#[cfg(test)]
mod tests {
    use crate::dispatch::context::AppState;
    use crate::dispatch::{Commands, Namespace};

    use super::{FileService, FileSink};

    /// The commands keep the names they had before they became a `Service`.
    #[test]
    fn wire_names_are_unchanged() {
        let dir = std::env::temp_dir();
        let mut commands = Commands::<()>::new();
        let mut app = AppState::default();
        Namespace::install(&mut commands, &mut app, FileService::new(dir).unwrap());
        Namespace::install(&mut commands, &mut app, FileSink::new());
        let names: Vec<_> = commands.stats().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                super::protocol::COMMIT,
                super::protocol::GET,
                super::protocol::LIST,
                super::protocol::PUT,
                super::protocol::READ,
                super::protocol::SINK,
                super::protocol::STAT,
            ]
        );
        assert!(app.get::<super::sink::SinkHandle>().is_some());
    }
}
