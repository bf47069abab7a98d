//! Integration tests of the `zs` runtime over real loopback sockets.
//!
//! One test binary for the crate: linking a binary per file dominated a cold `cargo test`.
//!
//! Tests whose subject is a timer (keep-alive, idle and call timeouts, give-up times, a grace
//! period) run on tokio's paused clock, `#[tokio::test(start_paused = true)]`: when every task
//! waits, the clock jumps to the next timer, so they take no real time and do not depend on
//! the machine's speed. I/O readiness is polled before each jump, and loopback data is there
//! at once, provided no socket waits for Nagle's algorithm (the kernel's delayed ACK is a
//! timer the paused clock cannot see). Tests that run blocking work, a runtime of their own
//! or a multi-thread runtime stay on the real clock, and so do tests that push megabytes
//! through one TCP connection (a full window can wait on a kernel timer too) or cut a
//! CPU-bound transfer with a timer (a busy runtime never lets the paused clock move).

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod bad_input;
mod batch;
mod coalesce;
mod common;
mod custom;
mod entry_pool;
mod files;
mod handler_control;
mod large;
mod mux;
mod rpc;
mod security;
mod stable;
mod status;
mod user_files;
