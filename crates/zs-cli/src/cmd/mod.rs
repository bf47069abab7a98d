//! One module per subcommand.

pub mod bench;
pub mod bench_mux;
pub mod bench_nat;
pub mod bench_stream;
pub mod call;
pub mod crypto;
pub mod files;
pub mod keygen;
pub mod nat;
pub mod serve;
