//! Load generation shared by `zs bench` (measuring a user's own server) and the `zs-bench`
//! binary (which also runs embedded servers and raw TCP baselines around the same code).
//!
//! Both binaries compile this directory: `zs-bench` includes it with `#[path]`, so nothing
//! here may use any other module of zs-cli.

pub mod rpc;
pub mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;

/// The `--suite` of a benchmark: `None` for the normal negotiation.
pub fn parse_suite(name: Option<&str>) -> anyhow::Result<Option<zs::Suite>> {
    name.map(|name| {
        zs::Suite::from_name(name).ok_or_else(|| {
            let known: Vec<_> = zs::Suite::ALL.iter().map(|suite| suite.name()).collect();
            anyhow::anyhow!(
                "unknown cipher suite {name:?} (known: {})",
                known.join(", ")
            )
        })
    })
    .transpose()
}

/// Offers only `suite` (allowing it even when it is `plain`); `None` leaves the defaults.
pub fn apply_suite(security: &mut zs::Security, suite: Option<zs::Suite>) {
    if let Some(suite) = suite {
        security.suites(vec![suite]).allow_plain(suite.is_plain());
    }
}

/// A latency histogram in microseconds, 1 us to 60 s.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

/// Whole microseconds, saturating.
pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// What one timed run of requests measured.
#[derive(Debug)]
pub struct Measurement {
    /// Requests completed inside the measured window.
    pub requests: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Latency of those requests, microseconds.
    pub latency: Histogram<u64>,
}

impl Measurement {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// One line: count, rate and latency percentiles.
    pub fn print(&self, label: &str) {
        println!(
            "{label}: {} requests in {:.2} s = {:.0} req/s; latency p50 {} us, p99 {} us, max {} us",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.latency.value_at_quantile(0.50),
            self.latency.value_at_quantile(0.99),
            self.latency.max(),
        );
    }
}

/// Shared clock of one run: requests that complete during the warm-up are not counted.
#[derive(Debug)]
pub struct Window {
    measuring: AtomicBool,
    stopping: AtomicBool,
}

impl Window {
    /// Whether a request completing now counts.
    pub fn counts(&self) -> bool {
        self.measuring.load(Ordering::Relaxed) && !self.stopping.load(Ordering::Relaxed)
    }

    /// Whether workers should stop.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// Runs `workers` copies of `worker` through a 1 s warm-up and `seconds` measured; each
/// returns its counted requests and latencies, which are summed.
pub async fn run_window<F, Fut>(
    seconds: f64,
    workers: usize,
    worker: F,
) -> anyhow::Result<Measurement>
where
    F: Fn(usize, Arc<Window>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u64, Histogram<u64>)>> + Send + 'static,
{
    let window = Arc::new(Window {
        measuring: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..workers {
        tasks.spawn(worker(index, window.clone()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    window.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    window.stopping.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut measurement = Measurement {
        requests: 0,
        elapsed,
        latency: new_histogram()?,
    };
    while let Some(result) = tasks.join_next().await {
        let (requests, latency) = result??;
        measurement.requests += requests;
        measurement.latency.add(latency)?;
    }
    Ok(measurement)
}
