//! One module per subcommand.

pub mod admin;
pub mod bench;
pub mod call;
pub mod crypto;
pub mod db;
pub mod dispatch;
pub mod files;
pub mod keygen;
pub mod nat;
pub mod serve;
pub mod user;
