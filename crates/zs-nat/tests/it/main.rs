//! Integration tests of XNat: agents, forwarding and faults over real loopback sockets.
//!
//! One test binary for the crate: linking a binary per file dominated a cold `cargo test`.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod agents;
mod common;
mod faults;
mod forwarding;
