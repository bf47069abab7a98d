//! One module per subcommand.

pub mod bench;
pub mod call;
pub mod crypto;
pub mod keygen;
pub mod serve;
