//! # zs-wire — zserver's wire protocol, without I/O
//!
//! This crate is the **sans-IO** core of zserver: pure codecs and state machines. It has no
//! sockets, no async runtime and no clock of its own — time is passed in as an argument — so
//! every rule of the protocol can be tested, simulated and fuzzed without a network. The tokio
//! runtime crate `zs` moves bytes and timers for it.
//!
//! ## Layout
//! Each protocol layer is a folder split by concept; its `mod.rs` holds the state machine
//! (or the types) and the module docs with the byte layout.
//! - [`dataframe`]: the [`DataFrame`], an ordered list of typed values,
//!   with its binary codec, JSON form and serde bridge — the payload of stream commands.
//! - [`frame`]: the frames on a connection (requests, replies, pings, close, transfers):
//!   kinds and types in `mod.rs`, the length-bounded decoder in `decode.rs`, the encoders in
//!   `encode.rs`.
//! - [`session`]: one connection's protocol state: `preamble.rs`, request ids in flight in
//!   both directions (`input.rs`, `commands.rs`), events and errors (`events.rs`),
//!   keep-alive and idle timers, orderly close.
//! - [`handshake`]: the Noise XX handshake: `client.rs` and `server.rs` behind one
//!   [`Handshake`](handshake::Handshake) trait, message framing (`message.rs`), suite
//!   negotiation (`negotiation.rs`), keys and fingerprints (`identity.rs`), the outcome.
//! - [`crypto`]: block ciphers, the AEAD record layer, SHA-3, and the
//!   HMAC proofs ([`crypto::mac`]).
//! - [`mux`]: p2pVM's core: many virtual streams over one connection; per-stream state and
//!   windows (`stream.rs`), input, commands and fair output in their own files.
//! - [`stable`]: StableIO's core: sessions that survive dropped links (sequence offsets,
//!   acknowledgements, resend window, authenticated resume): the endpoint, the server's
//!   pending links and registry, key material (`secret.rs`), frames.
//! - [`compress`]: LZ4 / Zstandard for CompleteBuffer transfers, decompression bounded by
//!   the announced size and the receiver's limit.
//! - [`keepalive`]: the keep-alive and idle timers shared by [`session`] and [`mux`].
//! - [`codec`]: the one bounds-checked little-endian [`Reader`](codec::Reader) every decoder
//!   reads through.
//! - [`status`]: the status codes of error replies.
//!
//! All multi-byte integers on the wire are little-endian; `docs/PROTOCOL.md` documents every
//! byte.

/// By-value setters for a `#[non_exhaustive]` config struct, one per public field, so other
/// crates can build it from `Default` (or `new`) without a struct literal:
/// `MuxConfig::default().with_max_streams(16)`.
macro_rules! config_setters {
    ($config:ty { $($field:ident: $ty:ty => $setter:ident),* $(,)? }) => {
        impl $config {
            $(
                #[doc = concat!("Sets [`Self::", stringify!($field), "`].")]
                #[must_use]
                pub fn $setter(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

pub mod codec;
pub mod compress;
pub mod crypto;
pub mod dataframe;
pub mod frame;
pub mod handshake;
pub mod ids;
pub mod keepalive;
pub mod mux;
pub mod session;
pub mod stable;
pub mod status;

pub use dataframe::{DataFrame, Value, ValueKind};
