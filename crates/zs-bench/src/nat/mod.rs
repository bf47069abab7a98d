//! `zs-bench nat`: XNat against a direct connection and against rathole, side by side in one
//! run on loopback with the same local services: the throughput of one bulk connection
//! (iperf3, or a built-in sender and sink), requests/s and p99 latency of small HTTP requests
//! with and without keep-alive (wrk or ab against an HTTP server in this process), and the
//! memory of the forwarder processes holding many idle forwarded connections.
//!
//! The forwarders are separate processes: `zs nat server` and `zs nat agent` started from
//! the `zs` binary (`--zs`, else the one next to this executable), and rathole's server and client started from `--rathole`. The local
//! services (HTTP, echo, sink) run in this process; iperf3's server is a child process.
//! Every child is killed when the benchmark ends, also on an error or Ctrl-C.
//!
//! Modules: [`setup`] starts the forwarders, [`services`] runs the local services,
//! [`throughput`] (iperf3), [`http`] (wrk/ab) and [`memory`] measure, [`report`] prints the
//! tables.

mod http;
mod memory;
mod report;
pub(crate) mod services;
mod setup;
mod throughput;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use clap::{Args, ValueEnum};
use tokio::process::Command;
use tokio::sync::mpsc;

use self::http::{http_load, listen_overflows};
use self::memory::idle;
use self::report::{describe_rss, print_tables};
use self::services::{SinkReport, bind_listener, serve_echo, spawn_http_server, spawn_sink};
use self::setup::{Forwarder, RouteContext, print_header, rathole_keypair, resolve_tools};
use self::throughput::{builtin_bulk, iperf_client};
use crate::process::{Process, free_port, loopback, raise_fd_limit, wait_for_listener};

/// Arguments of `zs-bench nat`.
#[derive(Debug, Args)]
pub struct NatBenchArgs {
    /// Seconds of each throughput and HTTP measurement (iperf3 and wrk take whole seconds).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Idle forwarded connections held open for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,
    /// Measurements to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "throughput,http,idle")]
    pub tests: Vec<NatTest>,
    /// XNat cipher suites to run (comma-separated): `default` (the normal negotiation),
    /// `plain` (no encryption), or a suite name such as `chacha20-poly1305`.
    #[arg(long, value_delimiter = ',', default_value = "default,plain")]
    pub zs_suites: Vec<String>,
    /// `stream_window` of the XNat server and agent, bytes (default: XNat's default).
    #[arg(long)]
    pub zs_stream_window: Option<u32>,
    /// rathole transports to run (comma-separated): `tcp` (unencrypted), `noise`
    /// (Noise_NK_25519_ChaChaPoly_BLAKE2s).
    #[arg(long, value_delimiter = ',', default_value = "tcp,noise")]
    pub rathole_transports: Vec<RatholeTransport>,
    /// The `zs` binary whose `zs nat server` and `zs nat agent` are measured (default: the
    /// one next to this executable, else `zs` on PATH).
    #[arg(long)]
    pub zs: Option<PathBuf>,
    /// Do not run rathole.
    #[arg(long)]
    pub skip_rathole: bool,
    /// rathole binary (default: `target/peers/bin/rathole`, else `rathole` on PATH).
    #[arg(long)]
    pub rathole: Option<PathBuf>,
    /// iperf3 binary (default: on PATH; without one a built-in sender and sink are used).
    #[arg(long)]
    pub iperf3: Option<PathBuf>,
    /// wrk binary (default: on PATH).
    #[arg(long)]
    pub wrk: Option<PathBuf>,
    /// ab (ApacheBench) binary (default: on PATH); used when wrk is missing or chosen by
    /// `--http-tool ab`.
    #[arg(long)]
    pub ab: Option<PathBuf>,
    /// HTTP load generator (default: wrk when found, else ab).
    #[arg(long)]
    pub http_tool: Option<HttpTool>,
    /// Internal: only run the echo service on this address until killed (the benchmark
    /// starts itself so for the idle connections, whose two ends would not fit in one
    /// process's descriptor limit).
    #[arg(long, hide = true)]
    pub serve_echo: Option<SocketAddr>,
}

/// One kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NatTest {
    /// One bulk connection's throughput.
    Throughput,
    /// Small HTTP requests with and without keep-alive.
    Http,
    /// Forwarder memory with many idle forwarded connections.
    Idle,
}

/// A rathole transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RatholeTransport {
    /// Plain TCP, no encryption (rathole's default).
    Tcp,
    /// The Noise protocol (encrypted, ChaCha20-Poly1305).
    Noise,
}

/// An HTTP load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HttpTool {
    /// `wrk` (keep-alive; `-H "Connection: close"` for no keep-alive).
    Wrk,
    /// `ab` (`-k` for keep-alive).
    Ab,
}

/// The external programs used, resolved to paths.
struct Tools {
    /// This executable (it runs the echo service as a child).
    bench: PathBuf,
    /// The `zs` binary measured.
    zs: PathBuf,
    rathole: Option<PathBuf>,
    iperf3: Option<PathBuf>,
    http: Option<(HttpTool, PathBuf)>,
}

/// The way from the client to the local services.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// Straight to the local service.
    Direct,
    /// Through `zs nat server` + `zs nat agent`; `None` = the default suite negotiation.
    Zs(Option<String>),
    /// Through rathole's server + client.
    Rathole(RatholeTransport),
}

impl Route {
    fn label(&self) -> String {
        match self {
            Self::Direct => "direct".into(),
            Self::Zs(None) => "zserver".into(),
            Self::Zs(Some(suite)) => format!("zserver {suite}"),
            Self::Rathole(RatholeTransport::Tcp) => "rathole tcp".into(),
            Self::Rathole(RatholeTransport::Noise) => "rathole noise".into(),
        }
    }

    /// Whether the link between the forwarders is encrypted.
    fn encrypted(&self) -> bool {
        match self {
            Self::Direct => false,
            Self::Zs(suite) => suite.as_deref() != Some("plain"),
            Self::Rathole(transport) => *transport == RatholeTransport::Noise,
        }
    }
}

/// Addresses of the three services a route reaches.
#[derive(Debug, Clone, Copy)]
struct Services {
    http: SocketAddr,
    echo: SocketAddr,
    bulk: SocketAddr,
}

/// One HTTP load run.
#[derive(Debug, Clone)]
struct HttpResult {
    requests_per_second: f64,
    p99_ms: f64,
    requests: u64,
    /// Socket errors and bad responses, as the tool reported them ("" when none).
    errors: String,
}

/// Memory of the forwarder processes (KiB per role), before, with and after idle
/// connections.
#[derive(Debug, Clone)]
struct IdleResult {
    connections: usize,
    open_seconds: f64,
    baseline: Vec<(String, u64)>,
    loaded: Vec<(String, u64)>,
    after_close: Vec<(String, u64)>,
}

fn total(rss: &[(String, u64)]) -> u64 {
    rss.iter().map(|(_, kib)| kib).sum()
}

impl IdleResult {
    fn per_connection_kib(&self) -> f64 {
        (total(&self.loaded) as f64 - total(&self.baseline) as f64) / self.connections as f64
    }
}

/// Everything measured on one route; `None` = not run or failed.
#[derive(Debug, Default)]
struct RouteResult {
    bulk_bits_per_second: Option<f64>,
    bulk_cpu: Option<f64>,
    keep_alive: Option<HttpResult>,
    keep_alive_cpu: Option<f64>,
    close: Option<HttpResult>,
    close_cpu: Option<f64>,
    idle: Option<IdleResult>,
}

/// Runs `zs-bench nat`.
pub async fn run(args: NatBenchArgs) -> anyhow::Result<()> {
    if let Some(address) = args.serve_echo {
        let listener = bind_listener(address)?;
        serve_echo(listener).await;
        return Ok(());
    }
    ensure!(
        args.seconds > 0.0 && args.seconds.is_finite(),
        "--seconds must be positive"
    );
    ensure!(args.connections > 0, "--connections must be at least 1");
    let work = std::env::temp_dir().join(format!("zs-bench-nat-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let result = tokio::select! {
        result = bench(&args, &work) => result,
        signal = tokio::signal::ctrl_c() => {
            signal.context("cannot wait for Ctrl-C")?;
            Err(anyhow::anyhow!("interrupted"))
        }
    };
    // Every child was spawned with `kill_on_drop`, so none outlives this point.
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!(
            "zs-bench nat: configurations and logs kept in {}",
            work.display()
        );
    }
    result
}

async fn bench(args: &NatBenchArgs, work: &Path) -> anyhow::Result<()> {
    let tools = resolve_tools(args)?;
    let runs = |test| args.tests.contains(&test);
    let mut routes = vec![Route::Direct];
    for suite in &args.zs_suites {
        let suite = suite.trim();
        if suite == "default" {
            routes.push(Route::Zs(None));
        } else {
            zs::Suite::from_name(suite)
                .with_context(|| format!("unknown cipher suite {suite:?} in --zs-suites"))?;
            routes.push(Route::Zs(Some(suite.to_owned())));
        }
    }
    if !args.skip_rathole {
        ensure!(
            tools.rathole.is_some(),
            "rathole not found: install it (`cargo install --root target/peers rathole`), \
             give --rathole PATH, or pass --skip-rathole"
        );
        for transport in &args.rathole_transports {
            routes.push(Route::Rathole(*transport));
        }
    }

    let idle_connections = if runs(NatTest::Idle) && args.idle_connections > 0 {
        let fds_per_connection = if routes.iter().any(|r| matches!(r, Route::Rathole(_))) {
            2
        } else {
            1
        };
        raise_fd_limit(args.idle_connections, fds_per_connection)?
    } else {
        0
    };
    print_header(args, &tools, &routes, idle_connections).await;

    // The local services, shared by every route.
    let http = spawn_http_server().await?;
    // The echo service holds the far end of every idle connection: a process of its own.
    let echo = loopback(free_port()?);
    let mut echo_command = Command::new(&tools.bench);
    echo_command
        .env_remove("RUST_LOG")
        .args(["--log", "warn", "nat", "--serve-echo"])
        .arg(echo.to_string());
    let mut echo_server = Process::spawn("echo service", echo_command, &work.join("echo.log"))?;
    wait_for_listener(&mut echo_server, echo).await?;
    let (sink, sink_reports) = spawn_sink().await?;
    let mut iperf_server = None;
    let bulk = match &tools.iperf3 {
        Some(iperf3) => {
            let port = free_port()?;
            let log = work.join("iperf3-server.log");
            let mut command = Command::new(iperf3);
            command.args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()]);
            let mut process = Process::spawn("iperf3 -s", command, &log)?;
            wait_for_listener(&mut process, loopback(port)).await?;
            iperf_server = Some(process);
            loopback(port)
        }
        None => sink,
    };
    let local = Services { http, echo, bulk };

    let rathole_keys = match (&tools.rathole, args.rathole_transports.is_empty()) {
        (Some(rathole), false) if !args.skip_rathole => Some(rathole_keypair(rathole).await?),
        _ => None,
    };

    let mut session = Session {
        args,
        tools: &tools,
        local,
        work,
        rathole_keys,
        sink_reports,
        failures: Vec::new(),
    };
    let mut results = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        let mut result = RouteResult::default();
        if runs(NatTest::Throughput) || runs(NatTest::Http) {
            session.load(route, index, &mut result).await;
        }
        if idle_connections > 0 && *route != Route::Direct {
            session
                .idle(route, index, idle_connections, &mut result)
                .await;
        }
        results.push((route.clone(), result));
    }
    let failures = session.failures;
    if let Some(mut process) = iperf_server {
        process.kill().await;
    }
    echo_server.kill().await;
    print_tables(idle_connections, &results);
    if !failures.is_empty() {
        bail!(
            "{} measurement(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

/// What the measurements of every route share.
struct Session<'a> {
    args: &'a NatBenchArgs,
    tools: &'a Tools,
    local: Services,
    work: &'a Path,
    rathole_keys: Option<(String, String)>,
    sink_reports: mpsc::UnboundedReceiver<SinkReport>,
    /// Failed measurements, one line each; the run goes on without them.
    failures: Vec<String>,
}

impl Session<'_> {
    fn fail(&mut self, route: &Route, what: &str, error: &anyhow::Error) {
        let label = route.label();
        println!("  {label}: {what} FAILED: {error:#}");
        self.failures.push(format!("{label} {what}: {error:#}"));
    }

    /// Starts `route`'s forwarders, fresh, under a unique `name`.
    async fn start(&self, route: &Route, name: String) -> anyhow::Result<Forwarder> {
        RouteContext {
            route,
            stream_window: self.args.zs_stream_window,
            local: &self.local,
            tools: self.tools,
            work: self.work,
            name,
            rathole_keys: self.rathole_keys.as_ref(),
        }
        .start()
        .await
    }

    /// The throughput and HTTP measurements of one route, on one set of forwarders.
    async fn load(&mut self, route: &Route, index: usize, result: &mut RouteResult) {
        let mut forwarder = match self.start(route, format!("{index}-load")).await {
            Ok(forwarder) => forwarder,
            Err(error) => return self.fail(route, "start", &error),
        };
        let label = route.label();
        if self.args.tests.contains(&NatTest::Throughput) {
            let cpu = forwarder.cpu_ticks();
            let started = Instant::now();
            let measured = match &self.tools.iperf3 {
                Some(iperf3) => {
                    iperf_client(iperf3, forwarder.public.bulk, self.args.seconds).await
                }
                None => {
                    builtin_bulk(
                        forwarder.public.bulk,
                        self.args.seconds,
                        &mut self.sink_reports,
                    )
                    .await
                }
            };
            match measured {
                Ok(bits) => {
                    println!("  {label}: bulk {:.2} Gbit/s", bits / 1e9);
                    result.bulk_bits_per_second = Some(bits);
                    result.bulk_cpu = forwarder.cpu_percent(cpu, started);
                }
                Err(error) => self.fail(route, "throughput", &error),
            }
        }
        if self.args.tests.contains(&NatTest::Http) {
            for close in [false, true] {
                let name = if close { "no keep-alive" } else { "keep-alive" };
                let cpu = forwarder.cpu_ticks();
                let started = Instant::now();
                match self.http(&forwarder, close).await {
                    Ok(http) => {
                        println!(
                            "  {label}: HTTP {name}: {:.0} req/s, p99 {:.2} ms, {} requests{}{}",
                            http.requests_per_second,
                            http.p99_ms,
                            http.requests,
                            if http.errors.is_empty() { "" } else { ", " },
                            http.errors,
                        );
                        let cpu = forwarder.cpu_percent(cpu, started);
                        if close {
                            result.close = Some(http);
                            result.close_cpu = cpu;
                        } else {
                            result.keep_alive = Some(http);
                            result.keep_alive_cpu = cpu;
                        }
                    }
                    Err(error) => self.fail(route, &format!("HTTP {name}"), &error),
                }
            }
        }
        forwarder.stop().await;
    }

    /// One HTTP load run through `forwarder`, with the SYNs the kernel dropped meanwhile.
    async fn http(&self, forwarder: &Forwarder, close: bool) -> anyhow::Result<HttpResult> {
        let (tool, path) = self
            .tools
            .http
            .as_ref()
            .context("neither wrk nor ab found")?;
        let overflows = listen_overflows();
        let mut http = http_load(
            *tool,
            path,
            forwarder.public.http,
            self.args.connections,
            self.args.seconds,
            close,
        )
        .await?;
        let overflowed = listen_overflows()
            .zip(overflows)
            .map_or(0, |(after, before)| after.saturating_sub(before));
        if overflowed > 0 {
            if !http.errors.is_empty() {
                http.errors.push_str(", ");
            }
            let _ = write!(
                http.errors,
                "{overflowed} SYNs dropped on full accept queues"
            );
        }
        Ok(http)
    }

    /// The memory measurement of one route, on fresh forwarders (so the baseline is not
    /// inflated by the load runs).
    async fn idle(
        &mut self,
        route: &Route,
        index: usize,
        connections: usize,
        result: &mut RouteResult,
    ) {
        let mut forwarder = match self.start(route, format!("{index}-idle")).await {
            Ok(forwarder) => forwarder,
            Err(error) => return self.fail(route, "start (idle)", &error),
        };
        match idle(&mut forwarder, connections).await {
            Ok(idle) => {
                println!(
                    "  {}: RSS {} -> {} KiB with {} idle connections ({:.2} KiB each, opened in {:.1} s); {} KiB after closing them",
                    route.label(),
                    describe_rss(&idle.baseline),
                    describe_rss(&idle.loaded),
                    idle.connections,
                    idle.per_connection_kib(),
                    idle.open_seconds,
                    describe_rss(&idle.after_close),
                );
                result.idle = Some(idle);
            }
            Err(error) => self.fail(route, "idle", &error),
        }
        forwarder.stop().await;
    }
}
