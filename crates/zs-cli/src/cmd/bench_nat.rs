//! `zs bench nat`: XNat against a direct connection and against rathole, side by side in one
//! run on loopback with the same local services: the throughput of one bulk connection
//! (iperf3, or a built-in sender and sink), requests/s and p99 latency of small HTTP requests
//! with and without keep-alive (wrk or ab against an HTTP server in this process), and the
//! memory of the forwarder processes holding many idle forwarded connections.
//!
//! The forwarders are separate processes: `zs nat server` and `zs nat agent` started from
//! this executable, and rathole's server and client started from `--rathole`. The local
//! services (HTTP, echo, sink) run in this process; iperf3's server is a child process.
//! Every child is killed when the benchmark ends, also on an error or Ctrl-C.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Args, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Body of every HTTP response of the local HTTP server.
const HTTP_BODY: &[u8] = b"Hello, world!\n";
/// Longest request head the local HTTP server buffers before it gives up on a connection.
const MAX_HTTP_HEAD: usize = 16 * 1024;
/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/PID/stat` (100 on every
/// architecture Linux supports today).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// Idle connections opened at once while filling up the idle-connection measurement.
const IDLE_BATCH: usize = 256;
/// How long a forwarder may take to start forwarding.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `zs bench nat`.
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

/// Runs `zs bench nat`.
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
            "zs bench nat: configurations and logs kept in {}",
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
    let mut echo_command = Command::new(&tools.zs);
    echo_command
        .env_remove("RUST_LOG")
        .args(["--log", "warn", "bench", "nat", "--serve-echo"])
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

// ---------------------------------------------------------------------------------------
// Tools

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

/// `given` when set (it must exist), else the first of `candidates` that exists, else
/// `name` on PATH.
fn resolve(
    given: Option<&PathBuf>,
    candidates: &[PathBuf],
    name: &str,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = given {
        ensure!(path.is_file(), "{} does not exist", path.display());
        return Ok(Some(path.clone()));
    }
    Ok(candidates
        .iter()
        .find(|candidate| candidate.is_file())
        .cloned()
        .or_else(|| find_in_path(name)))
}

fn resolve_tools(args: &NatBenchArgs) -> anyhow::Result<Tools> {
    let zs = std::env::current_exe().context("cannot find this executable")?;
    let rathole = resolve(
        args.rathole.as_ref(),
        &[PathBuf::from("target/peers/bin/rathole")],
        "rathole",
    )?;
    let iperf3 = resolve(args.iperf3.as_ref(), &[], "iperf3")?;
    let wrk = resolve(args.wrk.as_ref(), &[], "wrk")?;
    let ab = resolve(args.ab.as_ref(), &[], "ab")?;
    let http = match (args.http_tool, wrk, ab) {
        (Some(HttpTool::Wrk), None, _) => bail!("--http-tool wrk: wrk not found"),
        (Some(HttpTool::Ab), _, None) => bail!("--http-tool ab: ab not found"),
        (Some(HttpTool::Ab), _, Some(ab)) | (None, None, Some(ab)) => Some((HttpTool::Ab, ab)),
        (_, Some(wrk), _) => Some((HttpTool::Wrk, wrk)),
        (None, None, None) => None,
    };
    Ok(Tools {
        zs,
        rathole: rathole.map(absolute),
        iperf3,
        http,
    })
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// The first line of `program args` output containing `pattern` (or the first line).
async fn tool_version(program: &Path, args: &[&str], pattern: &str) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(5),
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let Ok(Ok(output)) = output else {
        return "version unknown".into();
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.clone().next().unwrap_or("version unknown").to_owned();
    lines
        .find(|line| line.contains(pattern))
        .map_or(first, str::to_owned)
}

async fn print_header(
    args: &NatBenchArgs,
    tools: &Tools,
    routes: &[Route],
    idle_connections: usize,
) {
    println!(
        "zs bench nat: {} s per measurement, {} HTTP connections, {} idle connections; routes: {}",
        args.seconds,
        args.connections,
        idle_connections,
        routes
            .iter()
            .map(Route::label)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  zs {} ({}): `zs nat server` + `zs nat agent`; default suites {}; stream_window {} bytes{}",
        env!("CARGO_PKG_VERSION"),
        tools.zs.display(),
        zs::Suite::DEFAULT_SUITES
            .iter()
            .map(|suite| suite.name())
            .collect::<Vec<_>>()
            .join(", "),
        args.zs_stream_window
            .unwrap_or(zs_nat::DEFAULT_STREAM_WINDOW),
        if args.zs_stream_window.is_some() {
            ""
        } else {
            " (default)"
        },
    );
    if let Some(rathole) = &tools.rathole {
        println!(
            "  rathole ({}): {}",
            rathole.display(),
            tool_version(rathole, &["--version"], "Build Version").await
        );
    }
    match &tools.iperf3 {
        Some(iperf3) => println!(
            "  iperf3 ({}): {}",
            iperf3.display(),
            tool_version(iperf3, &["--version"], "iperf").await
        ),
        None => println!("  iperf3 not found: built-in sender and sink for the bulk test"),
    }
    match &tools.http {
        Some((HttpTool::Wrk, wrk)) => println!(
            "  wrk ({}): {}",
            wrk.display(),
            tool_version(wrk, &["-v"], "wrk").await
        ),
        Some((HttpTool::Ab, ab)) => println!(
            "  ab ({}): {}",
            ab.display(),
            tool_version(ab, &["-V"], "ApacheBench").await
        ),
        None => println!("  neither wrk nor ab found: no HTTP measurement"),
    }
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("  {cores} CPU cores, shared by the load generator, the forwarders and the services");
}

/// Raises the open-file limit (soft, and hard when allowed) for this process and the
/// children, which inherit it, and returns how many idle connections fit: the most loaded
/// process holds `fds_per_connection` descriptors per connection (rathole's server and
/// client hold two: the user's or service's socket and a data channel each).
fn raise_fd_limit(requested: usize, fds_per_connection: u64) -> anyhow::Result<usize> {
    const SPARE: u64 = 256;
    let wanted = (requested as u64)
        .saturating_mul(fds_per_connection)
        .saturating_add(SPARE);
    let (_, hard) = rlimit::Resource::NOFILE
        .get()
        .context("cannot read the open-file limit")?;
    if hard < wanted {
        // Works with CAP_SYS_RESOURCE only; otherwise the hard limit stays.
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted);
    }
    let limit =
        rlimit::increase_nofile_limit(wanted).context("cannot raise the open-file limit")?;
    if limit >= wanted {
        return Ok(requested);
    }
    let fitting = usize::try_from(limit.saturating_sub(SPARE) / fds_per_connection)
        .unwrap_or(usize::MAX)
        / 100
        * 100;
    ensure!(
        fitting >= 100,
        "the open-file limit is {limit}: too low for idle connections (raise it with \
         `ulimit -n`, or pass --idle-connections 0)"
    );
    println!(
        "note: the open-file limit is {limit} and cannot be raised here; with \
         {fds_per_connection} descriptors per connection in a process, {fitting} idle \
         connections fit (not {requested}) and every route holds that many"
    );
    Ok(fitting)
}

// ---------------------------------------------------------------------------------------
// Processes

/// A child process, killed when dropped.
struct Process {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with its output in `log`.
    fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let error_file = file.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(error_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited at once"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            log: log.to_owned(),
        })
    }

    /// An error when the process has exited, with the end of its log.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{} exited ({status}): {}", self.name, tail.join(" | "));
        }
        Ok(())
    }

    /// VmRSS in KiB.
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .with_context(|| format!("no VmRSS in {path}"))?;
        let value = line
            .trim_start_matches("VmRSS:")
            .trim()
            .trim_end_matches("kB")
            .trim();
        value
            .parse()
            .with_context(|| format!("bad VmRSS line {line:?} in {path}"))
    }

    /// User + system CPU time in clock ticks.
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        // Fields after the command name (which may hold spaces) in parentheses: state is
        // the first, utime the 12th, stime the 13th.
        let after = stat
            .rsplit_once(')')
            .with_context(|| format!("bad {path}"))?
            .1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |index: usize| -> anyhow::Result<u64> {
            fields
                .get(index)
                .with_context(|| format!("short {path}"))?
                .parse()
                .with_context(|| format!("bad CPU time in {path}"))
        };
        Ok(field(11)? + field(12)?)
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Waits until `address` accepts connections (or `process` exits).
async fn wait_for_listener(process: &mut Process, address: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        process.check_alive()?;
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address)).await
        {
            drop(stream);
            // iperf3 logs and survives a connection that sends no cookie.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} does not listen on {address}",
            process.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kernel's count of SYNs dropped because an accept queue was full (`ListenOverflows`
/// in `/proc/net/netstat`, for the whole network namespace); `None` when unreadable.
fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let index = names
        .split_whitespace()
        .position(|name| name == "ListenOverflows")?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// A free TCP port on 127.0.0.1 (free when this returns; the benchmark binds it soon after).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a free port")?;
    Ok(listener.local_addr()?.port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `rathole --genkey`: (private, public) base64 keys for the noise transport.
async fn rathole_keypair(rathole: &Path) -> anyhow::Result<(String, String)> {
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(rathole)
            .arg("--genkey")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("rathole --genkey timed out")??;
    ensure!(
        output.status.success(),
        "rathole --genkey failed: {}",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let key_after = |label: &str| -> anyhow::Result<String> {
        let mut lines = text.lines().skip_while(|line| !line.starts_with(label));
        lines
            .next()
            .with_context(|| format!("rathole --genkey printed no {label:?}"))?;
        let key = lines
            .map(str::trim)
            .find(|line| !line.is_empty())
            .with_context(|| format!("rathole --genkey printed no key after {label:?}"))?;
        Ok(key.to_owned())
    };
    Ok((key_after("Private Key")?, key_after("Public Key")?))
}

/// What a route needs to start its forwarders.
struct RouteContext<'a> {
    route: &'a Route,
    /// `stream_window` for XNat, when not the default.
    stream_window: Option<u32>,
    local: &'a Services,
    tools: &'a Tools,
    work: &'a Path,
    /// Unique name of this start (configuration and log files).
    name: String,
    rathole_keys: Option<&'a (String, String)>,
}

/// A route's running forwarder processes and the addresses clients use.
struct Forwarder {
    processes: Vec<Process>,
    public: Services,
}

/// The mappings every route has: (name, local address).
fn mappings(local: &Services) -> [(&'static str, SocketAddr); 3] {
    [
        ("http", local.http),
        ("echo", local.echo),
        ("bulk", local.bulk),
    ]
}

impl RouteContext<'_> {
    async fn start(&self) -> anyhow::Result<Forwarder> {
        let mut forwarder = match self.route {
            Route::Direct => {
                return Ok(Forwarder {
                    processes: Vec::new(),
                    public: *self.local,
                });
            }
            Route::Zs(suite) => self.start_zs(suite.as_deref())?,
            Route::Rathole(transport) => self.start_rathole(*transport)?,
        };
        forwarder.wait_ready().await?;
        Ok(forwarder)
    }

    fn file(&self, what: &str) -> PathBuf {
        self.work.join(format!("{}-{what}", self.name))
    }

    fn write(&self, what: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.file(what);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    fn public_ports(&self) -> anyhow::Result<Services> {
        Ok(Services {
            http: loopback(free_port()?),
            echo: loopback(free_port()?),
            bulk: loopback(free_port()?),
        })
    }

    fn public_of(public: &Services, name: &str) -> SocketAddr {
        match name {
            "http" => public.http,
            "echo" => public.echo,
            _ => public.bulk,
        }
    }

    fn start_zs(&self, suite: Option<&str>) -> anyhow::Result<Forwarder> {
        let link = loopback(free_port()?);
        let public = self.public_ports()?;
        let mut suites = match suite {
            None => String::new(),
            Some(suite) => format!(
                "suites = [{}]\nallow_plain = {}\n",
                quoted(suite),
                suite == "plain"
            ),
        };
        if let Some(window) = self.stream_window {
            let _ = writeln!(suites, "stream_window = {window}");
        }
        let key = self.file("zs-server.key");
        let mut server = format!(
            "[nat.server]\nlisten = {}\nkey_file = {}\nstats_interval_secs = 0\n{suites}",
            quoted(&link.to_string()),
            quoted(&key.to_string_lossy()),
        );
        let mut agent = format!(
            "[nat.agent]\nserver = {}\n{suites}",
            quoted(&link.to_string())
        );
        for (name, local) in mappings(self.local) {
            let token = quoted(&format!("bench-{name}-token"));
            let _ = write!(
                server,
                "\n[nat.server.mappings.{name}]\npublic = {}\ntoken = {token}\n",
                quoted(&Self::public_of(&public, name).to_string())
            );
            let _ = write!(
                agent,
                "\n[nat.agent.mappings.{name}]\nlocal = {}\ntoken = {token}\n",
                quoted(&local.to_string())
            );
        }
        let server_config = self.write("zs-server.toml", &server)?;
        let agent_config = self.write("zs-agent.toml", &agent)?;
        let zs_command = |config: &Path, role: &str| {
            let mut command = Command::new(&self.tools.zs);
            command
                .env_remove("RUST_LOG")
                .args(["--log", "warn", "nat", role, "--config"])
                .arg(config);
            command
        };
        let server = Process::spawn(
            "zs nat server",
            zs_command(&server_config, "server"),
            &self.file("zs-server.log"),
        )?;
        let agent = Process::spawn(
            "zs nat agent",
            zs_command(&agent_config, "agent"),
            &self.file("zs-agent.log"),
        )?;
        Ok(Forwarder {
            processes: vec![server, agent],
            public,
        })
    }

    fn start_rathole(&self, transport: RatholeTransport) -> anyhow::Result<Forwarder> {
        let rathole = self.tools.rathole.as_ref().context("rathole not found")?;
        let link = loopback(free_port()?);
        let public = self.public_ports()?;
        let (server_transport, client_transport) = match transport {
            RatholeTransport::Tcp => (
                "[server.transport]\ntype = \"tcp\"\n".to_owned(),
                "[client.transport]\ntype = \"tcp\"\n".to_owned(),
            ),
            RatholeTransport::Noise => {
                let (private, public) = self
                    .rathole_keys
                    .context("no rathole noise keys generated")?;
                (
                    format!(
                        "[server.transport]\ntype = \"noise\"\n[server.transport.noise]\nlocal_private_key = {}\n",
                        quoted(private)
                    ),
                    format!(
                        "[client.transport]\ntype = \"noise\"\n[client.transport.noise]\nremote_public_key = {}\n",
                        quoted(public)
                    ),
                )
            }
        };
        let mut server = format!(
            "[server]\nbind_addr = {}\n{server_transport}",
            quoted(&link.to_string())
        );
        let mut client = format!(
            "[client]\nremote_addr = {}\n{client_transport}",
            quoted(&link.to_string())
        );
        for (name, local) in mappings(self.local) {
            let token = quoted(&format!("bench-{name}-token"));
            let _ = write!(
                server,
                "\n[server.services.{name}]\nbind_addr = {}\ntoken = {token}\n",
                quoted(&Self::public_of(&public, name).to_string())
            );
            let _ = write!(
                client,
                "\n[client.services.{name}]\nlocal_addr = {}\ntoken = {token}\n",
                quoted(&local.to_string())
            );
        }
        let server_config = self.write("rathole-server.toml", &server)?;
        let client_config = self.write("rathole-client.toml", &client)?;
        let rathole_command = |flag: &str, config: &Path| {
            let mut command = Command::new(rathole);
            command.env("RUST_LOG", "warn").arg(flag).arg(config);
            command
        };
        let server = Process::spawn(
            "rathole server",
            rathole_command("--server", &server_config),
            &self.file("rathole-server.log"),
        )?;
        let client = Process::spawn(
            "rathole client",
            rathole_command("--client", &client_config),
            &self.file("rathole-client.log"),
        )?;
        Ok(Forwarder {
            processes: vec![server, client],
            public,
        })
    }
}

impl Forwarder {
    /// Waits until a byte comes back through the echo mapping and a page through the HTTP
    /// mapping.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for process in &mut self.processes {
                process.check_alive()?;
            }
            let echo = echo_round_trip(self.public.echo, Duration::from_secs(2)).await;
            let http = match echo {
                Ok(_) => http_get(self.public.http).await,
                Err(error) => Err(error),
            };
            match http {
                Ok(()) => break,
                Err(error) if Instant::now() >= deadline => {
                    return Err(error.context("the forwarders did not start forwarding in time"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        // rathole registers each service on a control channel of its own: give the bulk
        // mapping a moment too.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    }

    fn cpu_ticks(&self) -> Option<u64> {
        self.processes
            .iter()
            .map(Process::cpu_ticks)
            .sum::<anyhow::Result<u64>>()
            .ok()
    }

    /// CPU the forwarders used since `before`, in % of one core.
    fn cpu_percent(&self, before: Option<u64>, since: Instant) -> Option<f64> {
        if self.processes.is_empty() {
            return None;
        }
        let used = self.cpu_ticks()?.checked_sub(before?)?;
        Some(used as f64 / CLOCK_TICKS_PER_SECOND / since.elapsed().as_secs_f64() * 100.0)
    }

    fn rss(&self) -> anyhow::Result<Vec<(String, u64)>> {
        self.processes
            .iter()
            .map(|process| Ok((process.name.clone(), process.rss_kib()?)))
            .collect()
    }

    async fn stop(&mut self) {
        for process in &mut self.processes {
            process.kill().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Local services

/// A listener on a free loopback port with a long accept queue (4,096, the kernel's
/// `somaxconn` here; tokio's `bind` asks for 128, which overflows under 256 connections
/// without keep-alive and turns into 1 s SYN retransmits).
fn local_listener() -> anyhow::Result<TcpListener> {
    bind_listener(loopback(0))
}

/// A listener on `address` with an accept queue of 4,096.
fn bind_listener(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(address)
        .with_context(|| format!("cannot bind {address}"))?;
    Ok(socket.listen(4096)?)
}

/// Starts the HTTP/1.1 server: `GET` of anything answers a fixed small body; keep-alive
/// unless the request says `Connection: close` (HTTP/1.0: unless it says keep-alive).
async fn spawn_http_server() -> anyhow::Result<SocketAddr> {
    let listener = local_listener()?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(serve_http(stream));
        }
    });
    Ok(address)
}

/// Whether a request head (without the blank line) asks to close the connection after the
/// response.
fn wants_close(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let http10 = lines
        .next()
        .is_some_and(|line| line.trim_end().ends_with("HTTP/1.0"));
    let connection = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        .map(|(_, value)| value.trim().to_ascii_lowercase());
    match connection.as_deref() {
        Some(value) if value.contains("close") => true,
        Some(value) if value.contains("keep-alive") => false,
        _ => http10,
    }
}

fn http_response(close: bool) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        HTTP_BODY.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes();
    response.extend_from_slice(HTTP_BODY);
    response
}

async fn serve_http(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let keep_alive = http_response(false);
    let close_response = http_response(true);
    let mut input = Vec::with_capacity(1024);
    let mut output = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    loop {
        // Answer every complete request received (pipelining included).
        let mut close = false;
        while let Some(end) = input.windows(4).position(|window| window == b"\r\n\r\n") {
            close = wants_close(&input[..end]);
            input.drain(..end + 4);
            if close {
                output.extend_from_slice(&close_response);
                break;
            }
            output.extend_from_slice(&keep_alive);
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => input.extend_from_slice(&buffer[..read]),
        }
        if input.len() > MAX_HTTP_HEAD {
            return;
        }
    }
}

/// Starts the echo service in this process (tests); the benchmark runs it as a child.
#[cfg(test)]
async fn spawn_echo_server() -> anyhow::Result<SocketAddr> {
    let listener = local_listener()?;
    let address = listener.local_addr()?;
    tokio::spawn(serve_echo(listener));
    Ok(address)
}

/// The echo service: every byte read is written back.
async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            // Small: thousands of these sit idle at once.
            let mut buffer = [0u8; 256];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => {
                        if stream.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Bytes a sink connection received and the time from its first byte to the end.
type SinkReport = (u64, Duration);

/// Starts the built-in sink for the bulk test without iperf3: each connection is read to
/// the end and reported.
async fn spawn_sink() -> anyhow::Result<(SocketAddr, mpsc::UnboundedReceiver<SinkReport>)> {
    let listener = local_listener()?;
    let address = listener.local_addr()?;
    let (reports, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let reports = reports.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 256 * 1024];
                let mut received = 0u64;
                let mut first = None;
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            first.get_or_insert_with(Instant::now);
                            received += read as u64;
                        }
                    }
                }
                if let Some(first) = first {
                    let _ = reports.send((received, first.elapsed()));
                }
            });
        }
    });
    Ok((address, receiver))
}

// ---------------------------------------------------------------------------------------
// Probes and load

/// Connects, sends one byte and reads it back; returns the open connection.
async fn echo_round_trip(address: SocketAddr, limit: Duration) -> anyhow::Result<TcpStream> {
    tokio::time::timeout(limit, async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        ensure!(&byte == b"x", "the echo returned {byte:?}");
        Ok(stream)
    })
    .await
    .with_context(|| format!("no echo from {address} within {limit:?}"))?
}

/// One `GET /` with `Connection: close`; an error unless the answer is a 200 with the body.
async fn http_get(address: SocketAddr) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(2), async {
        let mut stream = TcpStream::connect(address).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        ensure!(
            response.starts_with(b"HTTP/1.1 200") && response.ends_with(HTTP_BODY),
            "unexpected HTTP response from {address}"
        );
        Ok(())
    })
    .await
    .with_context(|| format!("no HTTP response from {address}"))?
}

/// Runs a tool with a time limit; its stdout, or an error with its stderr.
async fn run_tool(program: &Path, args: &[String], limit: Duration) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        limit,
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("{} did not finish within {limit:?}", program.display()))?
    .with_context(|| format!("cannot run {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{} failed ({}): {} {}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            stdout.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(stdout)
}

fn whole_seconds(seconds: f64) -> u64 {
    (seconds.ceil() as u64).max(1)
}

/// `iperf3 -c` through `address` for `seconds`: received bits/s (retried twice: the
/// server may still be finishing the previous test).
async fn iperf_client(iperf3: &Path, address: SocketAddr, seconds: f64) -> anyhow::Result<f64> {
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
fn parse_iperf3(json: &str) -> anyhow::Result<f64> {
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
async fn builtin_bulk(
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

/// One HTTP load run against `address`.
async fn http_load(
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
fn parse_wrk_time(text: &str) -> anyhow::Result<f64> {
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
fn parse_wrk(output: &str) -> anyhow::Result<HttpResult> {
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
fn parse_ab(output: &str) -> anyhow::Result<HttpResult> {
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

/// Opens `count` forwarded connections, each checked with an echoed byte, samples the
/// forwarders' memory, closes them.
async fn idle(forwarder: &mut Forwarder, count: usize) -> anyhow::Result<IdleResult> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = forwarder.rss()?;
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        for process in &mut forwarder.processes {
            process.check_alive()?;
        }
        let batch = IDLE_BATCH.min(count - streams.len());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            tasks.spawn(echo_round_trip(
                forwarder.public.echo,
                Duration::from_secs(20),
            ));
        }
        while let Some(joined) = tasks.join_next().await {
            let stream = joined?.with_context(|| {
                format!("idle connection {} of {count} failed", streams.len() + 1)
            })?;
            streams.push(stream);
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = forwarder.rss()?;
    // Still all open and forwarded: one more byte on a sample of them.
    for stream in streams.iter_mut().step_by((count / 16).max(1)) {
        tokio::time::timeout(Duration::from_secs(10), async {
            stream.write_all(b"y").await?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            anyhow::Ok(())
        })
        .await
        .context("an idle connection stopped forwarding")??;
    }
    drop(streams);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_close = forwarder.rss()?;
    Ok(IdleResult {
        connections: count,
        open_seconds,
        baseline,
        loaded,
        after_close,
    })
}

// ---------------------------------------------------------------------------------------
// Report

fn describe_rss(rss: &[(String, u64)]) -> String {
    let parts: Vec<String> = rss
        .iter()
        .map(|(name, kib)| format!("{name} {kib}"))
        .collect();
    format!("{} (total {})", parts.join(" + "), total(rss))
}

/// One row of the tables: a name and how to read it from a result.
struct Metric {
    name: String,
    value: fn(&RouteResult) -> Option<f64>,
    decimals: usize,
}

fn metric(
    name: impl Into<String>,
    decimals: usize,
    value: fn(&RouteResult) -> Option<f64>,
) -> Metric {
    Metric {
        name: name.into(),
        value,
        decimals,
    }
}

fn print_tables(idle: usize, results: &[(Route, RouteResult)]) {
    let metrics = [
        metric("bulk throughput, Gbit/s", 2, |r| {
            r.bulk_bits_per_second.map(|bits| bits / 1e9)
        }),
        metric("  forwarders' CPU, % of a core", 0, |r| r.bulk_cpu),
        metric("HTTP keep-alive, req/s", 0, |r| {
            r.keep_alive.as_ref().map(|h| h.requests_per_second)
        }),
        metric("  p99 latency, ms", 2, |r| {
            r.keep_alive.as_ref().map(|h| h.p99_ms)
        }),
        metric("  forwarders' CPU, % of a core", 0, |r| r.keep_alive_cpu),
        metric("HTTP no keep-alive, req/s", 0, |r| {
            r.close.as_ref().map(|h| h.requests_per_second)
        }),
        metric("  p99 latency, ms", 2, |r| {
            r.close.as_ref().map(|h| h.p99_ms)
        }),
        metric("  forwarders' CPU, % of a core", 0, |r| r.close_cpu),
        metric("RSS idle, no connections, MiB", 1, |r| {
            r.idle.as_ref().map(|i| total(&i.baseline) as f64 / 1024.0)
        }),
        metric(format!("RSS with {idle} idle connections, MiB"), 1, |r| {
            r.idle.as_ref().map(|i| total(&i.loaded) as f64 / 1024.0)
        }),
        metric("RSS per idle connection, KiB", 2, |r| {
            r.idle.as_ref().map(IdleResult::per_connection_kib)
        }),
    ];
    let format_value = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "–".to_owned(), |value| format!("{value:.decimals$}"))
    };

    println!();
    println!("Results (RSS: server + agent / rathole server + client, VmRSS):");
    println!();
    let header: Vec<String> = results.iter().map(|(route, _)| route.label()).collect();
    println!("| metric | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    // Only the rows some route measured.
    let metrics: Vec<Metric> = metrics
        .into_iter()
        .filter(|metric| {
            results
                .iter()
                .any(|(_, result)| (metric.value)(result).is_some())
        })
        .collect();
    for metric in &metrics {
        let cells: Vec<String> = results
            .iter()
            .map(|(_, result)| format_value((metric.value)(result), metric.decimals))
            .collect();
        println!("| {} | {} |", metric.name, cells.join(" | "));
    }

    // Ratios: every zserver route against every rathole route and against direct.
    let direct = results.iter().find(|(route, _)| *route == Route::Direct);
    let mut pairs = Vec::new();
    for (zs_route, zs_result) in results.iter().filter(|(r, _)| matches!(r, Route::Zs(_))) {
        for (other_route, other_result) in results
            .iter()
            .filter(|(r, _)| matches!(r, Route::Rathole(_)))
        {
            let note = if zs_route.encrypted() == other_route.encrypted() {
                if zs_route.encrypted() {
                    " (both encrypted)"
                } else {
                    " (both unencrypted)"
                }
            } else {
                ""
            };
            pairs.push((
                format!("{} / {}{note}", zs_route.label(), other_route.label()),
                zs_result,
                other_result,
            ));
        }
        if let Some((_, direct_result)) = direct {
            pairs.push((
                format!("{} / direct", zs_route.label()),
                zs_result,
                direct_result,
            ));
        }
    }
    if pairs.is_empty() {
        return;
    }
    println!();
    println!(
        "Ratios (req/s and Gbit/s: higher is better for zserver; latency, CPU, RSS: lower is better):"
    );
    println!();
    let names: Vec<&str> = pairs.iter().map(|(name, _, _)| name.as_str()).collect();
    println!("| metric | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    for metric in &metrics {
        let cells: Vec<String> = pairs
            .iter()
            .map(|(_, zs_result, other)| {
                let ratio = match ((metric.value)(zs_result), (metric.value)(other)) {
                    (Some(zs), Some(other)) if other > 0.0 => Some(zs / other),
                    _ => None,
                };
                format_value(ratio, 2)
            })
            .collect();
        println!("| {} | {} |", metric.name.trim(), cells.join(" | "));
    }
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

    #[test]
    fn iperf3_json_is_parsed() {
        let json = r#"{"end": {"sum_received": {"bits_per_second": 1.5e10}}}"#;
        assert!((parse_iperf3(json).unwrap() - 1.5e10).abs() < 1.0);
        let error = parse_iperf3(r#"{"error": "unable to connect"}"#).unwrap_err();
        assert!(error.to_string().contains("unable to connect"));
        assert!(parse_iperf3("{}").is_err());
        assert!(parse_iperf3("not json").is_err());
    }

    #[test]
    fn connection_close_is_detected() {
        assert!(wants_close(b"GET / HTTP/1.1\r\nConnection: close"));
        assert!(wants_close(b"GET / HTTP/1.1\r\nconnection:Close"));
        assert!(!wants_close(b"GET / HTTP/1.1\r\nHost: x"));
        assert!(wants_close(b"GET / HTTP/1.0\r\nHost: x"));
        assert!(!wants_close(b"GET / HTTP/1.0\r\nConnection: Keep-Alive"));
    }

    #[tokio::test]
    async fn the_http_server_honors_keep_alive_and_close() {
        let address = spawn_http_server().await.unwrap();
        http_get(address).await.unwrap();
        // Two pipelined keep-alive requests, then a close.
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8(response).unwrap();
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3);
        assert_eq!(text.matches("Connection: close").count(), 1);
    }

    #[tokio::test]
    async fn the_echo_server_echoes() {
        let address = spawn_echo_server().await.unwrap();
        let stream = echo_round_trip(address, Duration::from_secs(5))
            .await
            .unwrap();
        drop(stream);
    }
}
