//! # zs-wire — zserver's wire protocol, without I/O
//!
//! This crate is the **sans-IO** core of zserver: pure codecs and state machines. It has no
//! sockets, no async runtime and no clock of its own — time is passed in as an argument — so
//! every rule of the protocol can be tested, simulated and fuzzed without a network. The tokio
//! runtime crate `zs` moves bytes and timers for it.
//!
//! ## Layout
//! - [`dataframe`]: the [`DataFrame`], an ordered list of typed values,
//!   with its binary codec, JSON form and serde bridge — the payload of stream commands.
//! - [`frame`]: the frames on a connection (requests, replies, pings, close) and their
//!   length-bounded decoder.
//! - [`session`]: one connection's protocol state: preamble, request ids in flight in both
//!   directions, keep-alive and idle timers, orderly close.
//! - [`handshake`]: the Noise XX handshake: suite negotiation, server pinning, client token.
//! - [`crypto`]: block ciphers, the AEAD record layer, SHA-3, Argon2id passwords.
//! - [`mux`]: p2pVM's core: many virtual streams over one connection, per-stream windows.
//! - [`stable`]: StableIO's core: sessions that survive dropped links (sequence offsets,
//!   acknowledgements, resend window, authenticated resume).
//! - [`codec`]: little-endian primitives shared by the decoders.
//! - [`status`]: the status codes of error replies.
//!
//! All multi-byte integers on the wire are little-endian; `docs/PROTOCOL.md` documents every
//! byte.

pub mod codec;
pub mod crypto;
pub mod dataframe;
pub mod frame;
pub mod handshake;
pub mod keepalive;
pub mod mux;
pub mod session;
pub mod stable;
pub mod status;

pub use dataframe::{DataFrame, Value, ValueKind};
