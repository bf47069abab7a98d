//! Small HTTP requests through a route with `wrk` or `ab`, with and without keep-alive.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::throughput::whole_seconds;
use super::{HttpResult, HttpTool};
use crate::process::run_tool;

/// The kernel's count of SYNs dropped because an accept queue was full (`ListenOverflows`
/// in `/proc/net/netstat`, for the whole network namespace); `None` when unreadable.
pub fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let index = names
        .split_whitespace()
        .position(|name| name == "ListenOverflows")?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// One HTTP load run against `address`.
pub async fn http_load(
    tool: HttpTool,
    path: &Path,
    address: SocketAddr,
    connections: usize,
    seconds: f64,
    close: bool,
) -> anyhow::Result<HttpResult> {
    let seconds = whole_seconds(seconds);
    let url = format!("http://{address}/");
    let limit = Duration::from_secs(seconds + 60);
    match tool {
        HttpTool::Wrk => {
            let mut args = vec![
                format!("-c{connections}"),
                format!("-t{}", connections.min(2)),
                format!("-d{seconds}s"),
                "--latency".to_owned(),
                "--timeout".to_owned(),
                "10s".to_owned(),
            ];
            if close {
                args.extend(["-H".to_owned(), "Connection: close".to_owned()]);
            }
            args.push(url);
            parse_wrk(&run_tool(path, &args, limit).await?)
        }
        HttpTool::Ab => {
            let mut args = vec![
                "-q".to_owned(),
                "-r".to_owned(),
                "-s".to_owned(),
                "10".to_owned(),
                "-c".to_owned(),
                connections.to_string(),
                "-t".to_owned(),
                seconds.to_string(),
                // After -t, which would cap the run at 50,000 requests.
                "-n".to_owned(),
                "2000000".to_owned(),
            ];
            if !close {
                args.push("-k".to_owned());
            }
            args.push(url);
            parse_ab(&run_tool(path, &args, limit).await?)
        }
    }
}

/// A wrk duration such as `812.00us`, `1.23ms`, `2.00s`, `1.00m`, in milliseconds.
pub fn parse_wrk_time(text: &str) -> anyhow::Result<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(|| format!("wrk time {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("bad wrk time {text:?}"))?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("unknown unit in wrk time {text:?}"),
    };
    Ok(number * scale)
}

/// Requests/s, p99 and errors from `wrk --latency` output.
pub fn parse_wrk(output: &str) -> anyhow::Result<HttpResult> {
    let mut requests_per_second = None;
    let mut p99_ms = None;
    let mut requests = None;
    let mut errors = Vec::new();
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_second = Some(
                rest.trim()
                    .parse::<f64>()
                    .with_context(|| format!("bad wrk line {line:?}"))?,
            );
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99_ms = Some(parse_wrk_time(rest.trim())?);
        } else if line.contains(" requests in ") {
            let count = line.split_whitespace().next().unwrap_or_default();
            requests = Some(
                count
                    .parse::<u64>()
                    .with_context(|| format!("bad wrk line {line:?}"))?,
            );
        } else if line.starts_with("Socket errors:") || line.starts_with("Non-2xx") {
            errors.push(line.to_owned());
        }
    }
    Ok(HttpResult {
        requests_per_second: requests_per_second.context("wrk printed no Requests/sec")?,
        p99_ms: p99_ms.context("wrk printed no 99% latency (is --latency supported?)")?,
        requests: requests.context("wrk printed no request count")?,
        errors: errors.join(", "),
    })
}

/// Requests/s, p99 and failures from `ab` output.
pub fn parse_ab(output: &str) -> anyhow::Result<HttpResult> {
    let mut requests_per_second = None;
    let mut p99_ms = None;
    let mut requests = None;
    let mut errors = Vec::new();
    for line in output.lines().map(str::trim) {
        // The first number after `prefix`.
        let number_after = |prefix: &str| -> anyhow::Result<f64> {
            line.get(prefix.len()..)
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .with_context(|| format!("bad ab line {line:?}"))?
                .parse::<f64>()
                .with_context(|| format!("bad ab line {line:?}"))
        };
        if line.starts_with("Requests per second:") {
            requests_per_second = Some(number_after("Requests per second:")?);
        } else if line.starts_with("99%") {
            p99_ms = Some(number_after("99%")?);
        } else if line.starts_with("Complete requests:") {
            requests = Some(number_after("Complete requests:")? as u64);
        } else {
            for prefix in ["Failed requests:", "Non-2xx responses:"] {
                if line.starts_with(prefix) && number_after(prefix)? > 0.0 {
                    errors.push(line.to_owned());
                }
            }
        }
    }
    Ok(HttpResult {
        requests_per_second: requests_per_second.context("ab printed no Requests per second")?,
        p99_ms: p99_ms.context("ab printed no 99% latency")?,
        requests: requests.context("ab printed no Complete requests")?,
        errors: errors.join(", "),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const WRK: &str = "Running 2s test @ http://127.0.0.1:8080/
  2 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.13ms  512.00us  12.00ms   90.00%
    Req/Sec    60.00k     3.00k   70.00k    80.00%
  Latency Distribution
     50%    2.00ms
     75%    2.30ms
     90%    2.70ms
     99%  812.00us
  240000 requests in 2.00s, 20.00MB read
  Socket errors: connect 0, read 12, write 0, timeout 0
Requests/sec: 120000.50
Transfer/sec:     10.00MB
";

    #[test]
    fn wrk_output_is_parsed() {
        let result = parse_wrk(WRK).unwrap();
        assert!((result.requests_per_second - 120_000.5).abs() < 1e-6);
        assert!((result.p99_ms - 0.812).abs() < 1e-9);
        assert_eq!(result.requests, 240_000);
        assert!(result.errors.contains("read 12"));
        assert!(parse_wrk("garbage").is_err());
        assert!(parse_wrk(&WRK.replace("812.00us", "812.00xs")).is_err());
        assert!((parse_wrk_time("1.50s").unwrap() - 1500.0).abs() < 1e-9);
    }

    #[test]
    fn ab_output_is_parsed() {
        let output = "Complete requests:      50000
Failed requests:        0
Requests per second:    12345.67 [#/sec] (mean)
Percentage of the requests served within a certain time (ms)
  50%      9
  99%     31
 100%     40 (longest request)
";
        let result = parse_ab(output).unwrap();
        assert!((result.requests_per_second - 12_345.67).abs() < 1e-6);
        assert!((result.p99_ms - 31.0).abs() < 1e-9);
        assert_eq!(result.requests, 50_000);
        assert!(result.errors.is_empty());
        let failed = output.replace("Failed requests:        0", "Failed requests:        3");
        assert!(parse_ab(&failed).unwrap().errors.contains('3'));
        assert!(parse_ab("Requests per second: lots").is_err());
    }
}
