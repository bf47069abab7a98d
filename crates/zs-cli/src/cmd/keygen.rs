//! `zs keygen`: a new server key pair.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    write_private(&args.out, &keypair)?;
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

/// Creates `path` with the key pair in text form, readable by its owner only.
pub fn write_private(path: &Path, keypair: &zs::StaticKeypair) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    file.write_all(keypair.to_text().as_bytes())
        .with_context(|| format!("cannot write key file {}", path.display()))?;
    Ok(())
}
