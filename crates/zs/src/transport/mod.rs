//! Transports: what carries a connection's bytes under the driver.
//!
//! Every connection runs the Noise XX handshake (`security`, configured by [`Security`]) and
//! then AEAD records (`secure`); [`EncryptedStream`] offers that pair without RPC. [`mux`]
//! (p2pVM) turns one stream into many virtual ones, and `stable` (StableIO) gives the driver a
//! stream that outlives dropped links. The driver takes any `AsyncRead + AsyncWrite`, so these stack.

mod accept;
pub(crate) mod encrypted;
pub mod entries;
pub mod key_file;
pub mod mux;
pub(crate) mod read_buf;
pub(crate) mod secure;
pub(crate) mod security;
mod signal;
pub(crate) mod stable;

pub use accept::accept;
pub use encrypted::EncryptedStream;
pub use entries::{Entries, EntrySource};
pub use security::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_REKEY_AFTER, DEFAULT_REKEY_AFTER_BYTES, Security,
    SecurityError,
};
pub use stable::StableStream;
pub use zs_wire::stable::StableConfig;
