//! `zs cipher` and `zs hash`: the primitives, by name, for checking against published vectors.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use zs_wire::crypto::hash::{HashAlgorithm, Hasher, hex};

/// Arguments of `zs cipher`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("direction").required(true).args(["encrypt", "decrypt"])))]
pub struct CipherArgs {
    /// Block cipher: aes, rc6, twofish, serpent or mars.
    #[arg(long)]
    pub algo: String,
    /// Key in hex: 16, 24 or 32 bytes.
    #[arg(long)]
    pub key: String,
    /// Encrypt this 16-byte block (hex).
    #[arg(long, value_name = "HEX")]
    pub encrypt: Option<String>,
    /// Decrypt this 16-byte block (hex).
    #[arg(long, value_name = "HEX")]
    pub decrypt: Option<String>,
}

/// Arguments of `zs hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// sha3-224, sha3-256, sha3-384, sha3-512, shake128 or shake256.
    #[arg(long, default_value = "sha3-256")]
    pub algo: String,
    /// Output bytes for shake128/shake256 (default 32 and 64).
    #[arg(long)]
    pub length: Option<usize>,
    /// File to hash; `-` reads standard input.
    pub file: PathBuf,
}

fn parse_hex(what: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    anyhow::ensure!(
        text.len().is_multiple_of(2),
        "{what}: odd number of hex digits"
    );
    (0..text.len())
        .step_by(2)
        .map(|at| {
            u8::from_str_radix(&text[at..at + 2], 16)
                .with_context(|| format!("{what}: {:?} is not hex", &text[at..at + 2]))
        })
        .collect()
}

/// Raw single-block ECB: prints the 16-byte result in hex.
pub fn cipher(args: CipherArgs) -> anyhow::Result<()> {
    let key = parse_hex("--key", &args.key)?;
    let cipher = zs_wire::crypto::block_cipher(&args.algo, &key)?;
    let (input, encrypt) = match (&args.encrypt, &args.decrypt) {
        (Some(block), None) => (block, true),
        (None, Some(block)) => (block, false),
        _ => anyhow::bail!("give exactly one of --encrypt or --decrypt"),
    };
    let bytes = parse_hex("block", input)?;
    let mut block: [u8; 16] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("block must be 16 bytes, got {}", bytes.len()))?;
    if encrypt {
        cipher.encrypt_block(&mut block);
    } else {
        cipher.decrypt_block(&mut block);
    }
    println!("{}", hex(&block));
    Ok(())
}

/// Prints the hex digest of a file or standard input, streaming.
pub fn hash(args: HashArgs) -> anyhow::Result<()> {
    let algorithm = HashAlgorithm::from_name(&args.algo)?;
    let mut hasher = match args.length {
        Some(length) => Hasher::with_output_len(algorithm, length)?,
        None => Hasher::new(algorithm),
    };
    let mut input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = input.read(&mut buffer).context("read failed")?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    println!("{}", hex(&hasher.finalize()));
    Ok(())
}
