//! `zs keygen`: a new server key pair.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// Arguments of `zs keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key file (refuses to overwrite).
    #[arg(long, default_value = crate::config_file::DEFAULT_KEY_FILE)]
    pub out: PathBuf,
}

/// Writes a new key pair and prints its fingerprint.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.out.exists(),
        "{} exists; not overwriting a key",
        args.out.display()
    );
    let keypair = zs::StaticKeypair::generate()?;
    zs::key_file::write_new(&args.out, &keypair)?;
    let public = args.out.with_extension("pub");
    std::fs::write(&public, format!("{}\n", keypair.fingerprint()))
        .with_context(|| format!("cannot write {}", public.display()))?;
    println!("private key: {}", args.out.display());
    println!(
        "fingerprint: {} (also in {})",
        keypair.fingerprint(),
        public.display()
    );
    Ok(())
}
