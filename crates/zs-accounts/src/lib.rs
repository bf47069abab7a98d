//! # zs-accounts: users on zserver
//!
//! ZServer4D applications are mostly built on its dual-tunnel services: a client registers
//! or logs in, and from then on the server knows which user each connection belongs to.
//! This crate is that user side, as a zserver [`Service`](zs::Service):
//!
//! - [`Accounts`]: users and their Argon2id password hashes ([`password`]), kept in a ZDB
//!   database (`zs-db`), with roles and a disabled flag;
//! - [`AccountService`]: register, log in and out, change the password, read the server's
//!   clock, and (role `admin`) add, list, disable and delete users. A login sets the
//!   connection's [`zs::User`]: handlers read it with [`zs::Context::user`], and commands
//!   marked with [`zs::Commands::require`] refuse callers without one before they run.
//!   Failed logins are rate-limited per user and per address ("try again in N s"), and a
//!   wrong password cannot be told from an unknown user. The service knows each user's
//!   connections ([`AccountService::connections_of`]) and what a second login does
//!   ([`SecondLogin`]); a message to a user by name reaches every connection of theirs, or
//!   waits in an offline queue kept in ZDB ([`Offline`], bounded per user) and is delivered
//!   in order at their next login, across server restarts;
//! - [`VirtualAuth`]: logins the application decides itself, possibly later (after asking
//!   another server), behind the same wire commands;
//! - [`AccountClient`]: the typed client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use zs_accounts::{AccountService, Accounts, AccountsConfig};
//!
//! let store = Arc::new(zs_db::Store::open("data")?);
//! let accounts = Accounts::open(store)?;
//! let mut server = zs::Server::bind("127.0.0.1:4920").await?;
//! server.install(AccountService::new(accounts, AccountsConfig::default()));
//! // Every "chat.*" command now needs a logged-in user.
//! server.commands_mut().require("chat.*", zs::Requirement::Login);
//! server.register_console("chat.say", |ctx, text: String| async move {
//!     let user = ctx.require_user()?;
//!     Ok(format!("{}: {text}", user.name()))
//! });
//! let handle = server.spawn();
//! # handle.shutdown().await;
//! # Ok(()) }
//! ```

mod client;
mod error;
mod limit;
mod offline;
pub mod password;
mod service;
mod store;
mod virtual_auth;

pub use client::{AccountClient, AccountClientError, ListedAccount, ServerTime};
pub use error::AccountError;
pub use limit::LimitConfig;
pub use offline::{OFFLINE_DATABASE, Offline, Queued};
pub use service::{
    ADMIN_ROLE, AccountMetrics, AccountService, AccountsConfig, Delivery, NAMESPACE, SecondLogin,
};
pub use store::{
    AccountInfo, Accounts, DATABASE, MAX_NAME_LEN, MAX_PASSWORD_LEN, MIN_PASSWORD_CHARS,
    check_name, check_password,
};
pub use virtual_auth::{LoginRequest, VirtualAuth};
