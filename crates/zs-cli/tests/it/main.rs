//! Tests of the `zs` binary, run as a child process.
//!
//! One test binary for the crate: linking a binary per file dominated a cold `cargo test`.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod accounts_cli;
mod cli;
mod dashboard;
mod db_cli;
mod dispatch_cli;
mod entry_pool;
mod files_cli;
mod memory;
mod nat_cli;
mod netns;
