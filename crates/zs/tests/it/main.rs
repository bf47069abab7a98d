//! Integration tests of the `zs` runtime over real loopback sockets.
//!
//! One test binary for the crate: linking a binary per file dominated a cold `cargo test`.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod bad_input;
mod batch;
mod common;
mod files;
mod handler_control;
mod large;
mod mux;
mod rpc;
mod security;
mod stable;
mod status;
