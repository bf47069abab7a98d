//! One bulk connection's throughput: `iperf3 -c`, or a built-in sender into the sink.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::services::SinkReport;
use crate::process::run_tool;

pub fn whole_seconds(seconds: f64) -> u64 {
    (seconds.ceil() as u64).max(1)
}

/// `iperf3 -c` through `address` for `seconds`: received bits/s (retried twice: the
/// server may still be finishing the previous test).
pub async fn iperf_client(iperf3: &Path, address: SocketAddr, seconds: f64) -> anyhow::Result<f64> {
    let seconds = whole_seconds(seconds);
    let args: Vec<String> = [
        "-c",
        &address.ip().to_string(),
        "-p",
        &address.port().to_string(),
        "-t",
        &seconds.to_string(),
        "-J",
        "--connect-timeout",
        "5000",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = run_tool(iperf3, &args, Duration::from_secs(seconds + 30))
            .await
            .and_then(|json| parse_iperf3(&json));
        match result {
            Ok(bits) => return Ok(bits),
            Err(error) if attempt >= 3 => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Received bits/s from `iperf3 -J` output.
pub fn parse_iperf3(json: &str) -> anyhow::Result<f64> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("iperf3 printed invalid JSON")?;
    if let Some(error) = value.get("error").and_then(serde_json::Value::as_str) {
        bail!("iperf3: {error}");
    }
    value
        .pointer("/end/sum_received/bits_per_second")
        .and_then(serde_json::Value::as_f64)
        .context("iperf3 JSON has no end.sum_received.bits_per_second")
}

/// Without iperf3: sends as fast as possible for `seconds` over one connection; the sink's
/// received bits/s.
pub async fn builtin_bulk(
    address: SocketAddr,
    seconds: f64,
    reports: &mut mpsc::UnboundedReceiver<SinkReport>,
) -> anyhow::Result<f64> {
    while reports.try_recv().is_ok() {}
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(address))
        .await
        .context("connect timed out")??;
    let chunk = vec![0x5au8; 128 * 1024];
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        tokio::time::timeout(Duration::from_secs(10), stream.write_all(&chunk))
            .await
            .context("the bulk sender stalled")??;
    }
    stream.shutdown().await?;
    let (bytes, elapsed) = tokio::time::timeout(Duration::from_secs(30), reports.recv())
        .await
        .context("the sink did not report")?
        .context("the sink stopped")?;
    ensure!(elapsed > Duration::ZERO, "the sink measured no time");
    Ok(bytes as f64 * 8.0 / elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn iperf3_json_is_parsed() {
        let json = r#"{"end": {"sum_received": {"bits_per_second": 1.5e10}}}"#;
        assert!((parse_iperf3(json).unwrap() - 1.5e10).abs() < 1.0);
        let error = parse_iperf3(r#"{"error": "unable to connect"}"#).unwrap_err();
        assert!(error.to_string().contains("unable to connect"));
        assert!(parse_iperf3("{}").is_err());
        assert!(parse_iperf3("not json").is_err());
    }
}
