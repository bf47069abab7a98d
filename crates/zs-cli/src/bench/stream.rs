//! BigStream load: one transfer of a given size to the `bench.sink` handler, with small
//! `echo` calls on the same connection while it runs (what a small call waits behind a bulk
//! transfer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use zs::{BigStream, Client, DataFrame, Status};

use super::{apply_suite, micros, new_histogram};

/// The BigStream handler the load sends to (`zs serve` registers it; it replies with the
/// byte and chunk counts).
pub const SINK: &str = "bench.sink";
/// Payload of each `echo` call made during the transfer.
pub const ECHO_PAYLOAD: usize = 64;
/// Length of the repeating pattern both senders send.
const PATTERN_LEN: usize = 1024 * 1024;

/// The load of a stream run (the flags both `zs bench stream` and `zs-bench stream` take).
#[derive(Debug, Clone, Args)]
pub struct StreamLoad {
    /// Bytes to transfer, e.g. `2GiB`, `512MiB`, `100MB` (10^6), `1000000`.
    #[arg(long, default_value = "2GiB")]
    pub size: String,
    /// Cipher suite for the zserver connection (`plain` allowed here); default: the normal
    /// negotiation (aes-128-gcm).
    #[arg(long)]
    pub suite: Option<String>,
}

/// Parses a byte count: a number (decimals allowed with a unit) and an optional unit, `B`,
/// `KB`/`MB`/`GB`/`TB` (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024); `K`,
/// `M`, `G`, `T` alone are binary. Case is ignored.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => anyhow::bail!(
            "invalid size {text:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
        ),
    };
    anyhow::ensure!(!number.is_empty(), "invalid size {text:?}: no number");
    let bytes = if let Ok(whole) = number.parse::<u64>() {
        whole.checked_mul(multiplier)
    } else {
        let value: f64 = number
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid size {text:?}: bad number {number:?}"))?;
        let bytes = (value * multiplier as f64).round();
        (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
    };
    let bytes = bytes.with_context(|| format!("invalid size {text:?}: too large"))?;
    anyhow::ensure!(bytes > 0, "invalid size {text:?}: must be at least 1 byte");
    Ok(bytes)
}

/// `1.00 GiB`-style rendering for the header.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// A repeating pseudo-random pattern (xorshift64), generated once.
pub fn make_pattern() -> Bytes {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut pattern = vec![0u8; PATTERN_LEN];
    for word in pattern.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
    }
    Bytes::from(pattern)
}

/// `size` bytes cycling through the pattern, as slices of it: the transfer sends them
/// without a copy, as a raw TCP sender writes straight from its buffer.
fn pattern_pieces(pattern: Bytes, size: u64) -> impl Iterator<Item = std::io::Result<Bytes>> {
    let mut position = 0usize;
    let mut remaining = size;
    std::iter::from_fn(move || {
        if remaining == 0 {
            return None;
        }
        let len = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(pattern.len() - position);
        let piece = pattern.slice(position..position + len);
        position = (position + len) % pattern.len();
        remaining -= len as u64;
        Some(Ok(piece))
    })
}

/// `bench.sink`: reads and discards every chunk; replies with [bytes, chunks].
pub async fn sink(mut stream: BigStream) -> Result<DataFrame, Status> {
    let mut bytes = 0u64;
    let mut chunks = 0u64;
    while let Some(chunk) = stream.next_chunk().await? {
        bytes += chunk.len() as u64;
        chunks += 1;
    }
    Ok(DataFrame::new().with(bytes).with(chunks))
}

/// What one transfer measured.
#[derive(Debug)]
pub struct StreamMeasurement {
    /// Bytes sent (and confirmed by the sink).
    pub size: u64,
    /// From the first byte sent to the sink's reply.
    pub elapsed: Duration,
    /// Chunks the sink received.
    pub chunks: u64,
    /// The negotiated suite.
    pub suite: &'static str,
    /// `echo` calls made during the transfer.
    pub echo_calls: u64,
    /// Their latency, microseconds.
    pub echo_latency: Histogram<u64>,
}

impl StreamMeasurement {
    /// MB/s (10^6 bytes).
    pub fn rate(&self) -> f64 {
        rate(self.size, self.elapsed)
    }

    /// The transfer's line.
    pub fn print_transfer(&self) {
        println!(
            "stream (BigStream, one connection): {} bytes in {:.2} s = {:.0} MB/s \
             ({} chunks received)",
            self.size,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.chunks,
        );
    }

    /// The echo probes' line.
    pub fn print_echo(&self) {
        println!(
            "echo during stream: {} calls, p50 {} us, p99 {} us, max {} us",
            self.echo_calls,
            self.echo_latency.value_at_quantile(0.50),
            self.echo_latency.value_at_quantile(0.99),
            self.echo_latency.max(),
        );
    }
}

/// MB/s (10^6 bytes) of `bytes` in `elapsed`.
pub fn rate(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// The header line's description of a transfer to `addr`.
pub fn describe(size: u64, addr: &str) -> String {
    format!(
        "{size} bytes ({}), server {addr}; one BigStream to {SINK} with {ECHO_PAYLOAD}-byte \
         echo probes (one at a time, 1 ms apart) on the same connection",
        human(size)
    )
}

/// Connects one client to `addr` and sends `size` bytes of the pattern to [`SINK`] while
/// probing `echo`; checks the sink's count.
pub async fn measure(
    addr: &str,
    size: u64,
    suite: Option<zs::Suite>,
    pattern: &Bytes,
) -> anyhow::Result<StreamMeasurement> {
    let mut builder = Client::builder();
    apply_suite(builder.config_mut().security(), suite);
    let client = Arc::new(
        builder
            .connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?,
    );
    let transferring = Arc::new(AtomicBool::new(true));
    let echo = tokio::spawn(echo_loop(client.clone(), transferring.clone()));
    let pieces = futures_util::stream::iter(pattern_pieces(pattern.clone(), size));
    let started = Instant::now();
    let transfer = client
        .peer()
        .send_big_stream_chunks(SINK, pieces, Some(size))
        .await;
    let elapsed = started.elapsed();
    transferring.store(false, Ordering::Relaxed);
    let echo = echo.await.context("echo task failed")?;
    let reply = transfer.with_context(|| format!("BigStream to {SINK} failed"))?;
    let (echo_calls, echo_latency) = echo.context("echo during the stream failed")?;
    let mut reader = reply.reader();
    let received = reader.read_u64().context("bad reply from the sink")?;
    let chunks = reader.read_u64().context("bad reply from the sink")?;
    anyhow::ensure!(
        received == size,
        "{SINK} received {received} of {size} bytes"
    );
    Ok(StreamMeasurement {
        size,
        elapsed,
        chunks,
        suite: client.peer().suite().name(),
        echo_calls,
        echo_latency,
    })
}

/// Pause between latency probes: a probe every millisecond measures what a small call waits
/// behind the transfer without the probes themselves eating the CPU the transfer needs (a
/// tight loop of calls halves a 2-core machine's transfer rate).
const PROBE_INTERVAL: Duration = Duration::from_millis(1);

/// Calls `echo` one at a time, paced by `PROBE_INTERVAL`, until the transfer is over;
/// returns the count and latencies.
async fn echo_loop(
    client: Arc<Client>,
    transferring: Arc<AtomicBool>,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let payload = "x".repeat(ECHO_PAYLOAD);
    let mut latency = new_histogram()?;
    let mut calls = 0u64;
    while transferring.load(Ordering::Relaxed) {
        let started = Instant::now();
        let reply = client.call_console("echo", &payload).await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            reply.len() == payload.len(),
            "echo returned {} bytes",
            reply.len()
        );
        calls += 1;
        latency.saturating_record(micros(elapsed));
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    Ok((calls, latency))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GiB").ok(), Some(2 << 30));
        assert_eq!(parse_size("512MiB").ok(), Some(512 << 20));
        assert_eq!(parse_size("100MB").ok(), Some(100_000_000));
        assert_eq!(parse_size("12345").ok(), Some(12345));
        assert_eq!(parse_size("1.5 gib").ok(), Some(3 << 29));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("1.2.3MB").is_err());
    }
}
