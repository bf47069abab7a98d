//! `zs-bench crypto`: record-layer throughput of every cipher suite, sealing and opening on
//! one thread; for the suites OpenSSL has (AES-GCM, ChaCha20-Poly1305), `openssl speed -evp`
//! on the same record size right after, and the ratio (issue 18: ≥ 0.9 of OpenSSL).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

/// Arguments of `zs-bench crypto`.
#[derive(Debug, Args)]
pub struct CryptoArgs {
    /// Plaintext bytes per record.
    #[arg(long, default_value_t = 16 * 1024)]
    pub record: usize,
    /// Seconds per suite and direction.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Only these suites (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub suite: Vec<String>,
    /// Skip the `openssl speed` comparison (run when `openssl` is on the PATH).
    #[arg(long)]
    pub no_openssl: bool,
}

/// `openssl speed -evp` for `cipher` on `record`-byte buffers: bytes per second sealed
/// (`-mr` prints `+F:<n>:<name>:<bytes per second>`).
fn openssl_speed(cipher: &str, record: usize, seconds: f64) -> anyhow::Result<f64> {
    let output = std::process::Command::new("openssl")
        .args(["speed", "-mr", "-evp", cipher, "-bytes"])
        .arg(record.to_string())
        .arg("-seconds")
        .arg(seconds.ceil().max(1.0).to_string())
        .output()
        .context("cannot run openssl speed")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("+F:")?.rsplit(':').next()?.parse().ok())
        .with_context(|| format!("no +F line from openssl speed -evp {cipher}: {text}"))
}

/// Seals and opens records of every suite for a fixed time on this thread; prints MB/s.
pub fn run(args: &CryptoArgs) -> anyhow::Result<()> {
    use zs_wire::crypto::record::{Opener, Sealer, Suite};
    anyhow::ensure!(args.record > 0, "--record must be at least 1");
    let suites = if args.suite.is_empty() {
        Suite::ALL.to_vec()
    } else {
        args.suite
            .iter()
            .map(|name| crate::load::parse_suite(Some(name))?.context("no suite"))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let duration = Duration::from_secs_f64(args.seconds.max(0.05));
    println!(
        "zs-bench crypto: {} byte records, {:.1} s per suite and direction, one thread",
        args.record,
        duration.as_secs_f64()
    );
    let openssl = !args.no_openssl && crate::process::find_in_path("openssl").is_some();
    let plaintext = vec![0x5au8; args.record];
    let secret = [7u8; 32];
    for suite in suites {
        // Seal for the measured time, keeping one batch of records to open afterwards.
        let mut sealer = Sealer::new(suite, secret, u64::MAX)?;
        let mut records = bytes::BytesMut::new();
        let mut sealed = 0u64;
        let started = Instant::now();
        while started.elapsed() < duration {
            records.clear();
            for _ in 0..16 {
                sealer.seal(&plaintext, &mut records)?;
            }
            sealed += 16 * plaintext.len() as u64;
        }
        let seal_rate = sealed as f64 / started.elapsed().as_secs_f64() / 1e6;
        // Open: a fresh opener per batch, fed the first batch sealed under the same secret.
        let mut batch_sealer = Sealer::new(suite, secret, u64::MAX)?;
        let mut batch = bytes::BytesMut::new();
        for _ in 0..16 {
            batch_sealer.seal(&plaintext, &mut batch)?;
        }
        let mut opened = 0u64;
        let mut output = bytes::BytesMut::with_capacity(17 * plaintext.len());
        let started = Instant::now();
        while started.elapsed() < duration {
            let mut opener = Opener::new(suite, secret)?;
            let mut input = batch.clone();
            output.clear();
            opener.open(&mut input, &mut output)?;
            anyhow::ensure!(
                output.len() == 16 * plaintext.len(),
                "{suite}: opened {} bytes",
                output.len()
            );
            opened += output.len() as u64;
        }
        let open_rate = opened as f64 / started.elapsed().as_secs_f64() / 1e6;
        let peer = match suite {
            Suite::Aes128Gcm | Suite::Aes256Gcm | Suite::ChaCha20Poly1305 if openssl => {
                Some(openssl_speed(suite.name(), args.record, args.seconds)? / 1e6)
            }
            _ => None,
        };
        match peer {
            Some(peer) => println!(
                "crypto: {:<18} seal {:>8.0} MB/s, open {:>8.0} MB/s; openssl seal {:>8.0} MB/s, seal/openssl {:.2}",
                suite.name(),
                seal_rate,
                open_rate,
                peer,
                seal_rate / peer
            ),
            None => println!(
                "crypto: {:<18} seal {:>8.0} MB/s, open {:>8.0} MB/s",
                suite.name(),
                seal_rate,
                open_rate
            ),
        }
    }
    Ok(())
}
