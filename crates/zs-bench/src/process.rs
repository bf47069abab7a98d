//! Child processes of the benchmarks (started, watched, measured through `/proc`, killed on
//! drop), external tools, free ports and the open-file limit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/PID/stat` (100 on every
/// architecture Linux supports today).
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// How long a forwarder may take to start forwarding.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

/// `given` when set (it must exist), else the first of `candidates` that exists, else
/// `name` on PATH.
pub fn resolve(
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

pub fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// A child process, killed when dropped.
pub struct Process {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// Its process id.
    pub pid: u32,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with its output in `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
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
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{} exited ({status}): {}", self.name, tail.join(" | "));
        }
        Ok(())
    }

    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
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
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
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

    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Waits until `address` accepts connections (or `process` exits).
pub async fn wait_for_listener(process: &mut Process, address: SocketAddr) -> anyhow::Result<()> {
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

/// A free TCP port on 127.0.0.1 (free when this returns; the benchmark binds it soon after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a free port")?;
    Ok(listener.local_addr()?.port())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs a tool with a time limit; its stdout, or an error with its stderr.
pub async fn run_tool(program: &Path, args: &[String], limit: Duration) -> anyhow::Result<String> {
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

/// Raises the open-file limit (soft, and hard when allowed) for this process and the
/// children, which inherit it, and returns how many idle connections fit: the most loaded
/// process holds `fds_per_connection` descriptors per connection (rathole's server and
/// client hold two: the user's or service's socket and a data channel each).
pub fn raise_fd_limit(requested: usize, fds_per_connection: u64) -> anyhow::Result<usize> {
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
        "the open-file limit is {limit}: too low for these connections (raise it with \
         `ulimit -n`, or ask for fewer)"
    );
    println!(
        "note: the open-file limit is {limit} and cannot be raised here; with \
         {fds_per_connection} descriptors per connection in a process, {fitting} idle \
         connections fit (not {requested}) and the measurements hold that many"
    );
    Ok(fitting)
}

/// The `zs` binary: `given` (it must exist), else `zs` next to this executable (cargo puts
/// both in `target/release` or `target/debug`), else `zs` on PATH.
pub fn find_zs(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("zs")));
    resolve(given, beside.as_slice(), "zs")?
        .map(absolute)
        .context(
            "the zs binary was not found next to zs-bench nor on PATH: build it \
         (`cargo build --release -p zs-cli`) or pass --zs PATH",
        )
}

/// A TOML string literal (for the configuration files of children).
pub fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Runs `bench` with a fresh work directory (`zs-bench-NAME-PID` in the temp directory),
/// stopped by Ctrl-C or after `limit`. The directory is removed after a success and kept,
/// with a note saying where, after a failure. Children spawned with `kill_on_drop` (all of
/// [`Process`]) are gone when this returns.
pub async fn bounded<F, Fut>(name: &str, limit: Duration, bench: F) -> anyhow::Result<()>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let work = std::env::temp_dir().join(format!("zs-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let result = tokio::select! {
        result = tokio::time::timeout(limit, bench(work.clone())) => result
            .unwrap_or_else(|_| Err(anyhow::anyhow!("stopped after the time limit of {limit:?}"))),
        signal = tokio::signal::ctrl_c() => {
            signal.context("cannot wait for Ctrl-C")?;
            Err(anyhow::anyhow!("interrupted"))
        }
    };
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!(
            "zs-bench {name}: configurations and logs kept in {}",
            work.display()
        );
    }
    result
}
