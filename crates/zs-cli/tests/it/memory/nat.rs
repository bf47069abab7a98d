//! XNat's memory after rounds of forwarded connections (issue 12), the same check as the
//! `zs serve` rounds of the parent module for the other long-running processes: a `zs nat
//! server` and a `zs nat agent` (children) forward one mapping to a TCP echo service in the
//! test; each round opens [`CONNECTIONS`] forwarded connections (all open at once, the server
//! counting them all active), echoes a few bytes on each, closes them all and waits until the
//! server counts none active and both processes hold no more descriptors than before the
//! round; then both processes' VmRSS is read.
//!
//! The margin is the parent module's (last round within the first round's + 15 % + 4 MiB),
//! for the same reasons: the first round warms up the allocator's arenas, tokio's worker
//! threads, the agent link's buffers and the mapping's tables, so later rounds are compared
//! with it, not with the idle processes; 15 % + 4 MiB (about 6 MiB on processes of about
//! 10 MiB) absorbs allocator noise over the three later rounds. What it catches: anything
//! kept per forwarded connection ever opened of about 4 KiB or more (1,500 connections after
//! the first round), so a leaked connection task, its mux stream state, or relay buffers kept
//! or fragmenting the heap as `zs serve`'s did (2 × 8 KiB per connection would be ~8 MiB a
//! round, a 32 KiB relay buffer ~16 MiB). Smaller per-connection leaks need more rounds or
//! connections than the fast suite affords (`zs-bench churn --nat` runs thousands).
//!
//! `ZS_MEMORY_TEST_BIN` runs the pair from another `zs` binary, as for the `zs serve` rounds:
//!
//! ```sh
//! ZS_MEMORY_TEST_BIN=/path/to/zs cargo test -p zs-cli --test it nat_memory -- --nocapture
//! ```

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{ROUNDS, assert_flat, open_descriptors, status_field, zs_binary};

/// Forwarded connections per round, all open at once: a round takes about a second with
/// the debug build of `zs`.
const CONNECTIONS: usize = 500;
/// Connections opened at once (the public port's accept queue is 1,024).
const OPEN_BATCH: usize = 100;
/// Bytes echoed on each connection, once when it opens and once more with all open.
const PAYLOAD: &[u8] = b"through XNat and back";
const MAPPING: &str = "echo";
const TOKEN: &str = "memory-test-token";
/// Longest wait for one step (start-up, an echo, connections to close).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A child killed when the test ends, passed or not.
struct Running {
    child: Child,
    /// The server's stdout, held open for its lifetime (see the parent module's `Served`).
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn assert_alive(&mut self, name: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{name} exited: {status}");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server, the agent and the server's admin endpoint (for its `nat.stats` counters).
struct Pair {
    server: Running,
    agent: Running,
    admin: zs::Client,
    public: SocketAddr,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The mapping's counters from the server's admin endpoint.
struct MappingStats {
    bound: Option<SocketAddr>,
    agents: u64,
    active: u64,
}

impl Pair {
    async fn stats(&self) -> MappingStats {
        let text = self
            .admin
            .call_console(zs_nat::STATS_COMMAND, "")
            .await
            .unwrap();
        let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mapping = stats["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|mapping| mapping["name"] == MAPPING)
            .unwrap_or_else(|| panic!("no mapping {MAPPING} in {text}"));
        MappingStats {
            bound: mapping["bound"]
                .as_str()
                .map(|address| address.parse().unwrap()),
            agents: mapping["agents"].as_u64().unwrap(),
            active: mapping["connections_active"].as_u64().unwrap(),
        }
    }

    fn assert_alive(&mut self) {
        self.server.assert_alive("zs nat server");
        self.agent.assert_alive("zs nat agent");
    }

    fn descriptors(&self) -> [usize; 2] {
        [
            open_descriptors(self.server.pid()),
            open_descriptors(self.agent.pid()),
        ]
    }

    fn rss(&self) -> [u64; 2] {
        [
            status_field(self.server.pid(), "VmRSS:"),
            status_field(self.agent.pid(), "VmRSS:"),
        ]
    }
}

/// A TCP echo service in the test (the agent's `local`), with a long accept queue.
fn echo_service() -> SocketAddr {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    address
}

/// Reads the next line of the server's stdout, which must start with `prefix`; returns the
/// rest.
fn stdout_value(stdout: &mut BufReader<ChildStdout>, prefix: &str) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}, the server printed {line:?}"))
        .to_owned()
}

fn spawn(role: &str, config: &Path, key: Option<&Path>, stdout: Stdio) -> Child {
    let mut command = Command::new(zs_binary());
    command
        .env_remove("RUST_LOG")
        .args(["--log", "warn", "nat", role, "--config"])
        .arg(config);
    if let Some(key) = key {
        command.arg("--key").arg(key);
    }
    command
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("zs nat {role} starts: {error}"))
}

/// Starts the server (every port its own choice, read back from its stdout and counters)
/// and the agent forwarding to `echo`; returns once a payload comes back through the public
/// port.
async fn start(echo: SocketAddr) -> Pair {
    let dir = std::env::temp_dir().join(format!("zs-nat-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server_config = dir.join("server.toml");
    std::fs::write(
        &server_config,
        format!(
            "[nat.server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             stats_interval_secs = 0\n\
             [nat.server.mappings.{MAPPING}]\npublic = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             max_connections = {}\n",
            CONNECTIONS + 64
        ),
    )
    .unwrap();
    let mut child = spawn(
        "server",
        &server_config,
        Some(&dir.join("server.key")),
        Stdio::piped(),
    );
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Wrapped before reading, so that it is killed if the lines are not the expected ones.
    let mut server = Running {
        child,
        _stdout: None,
    };
    let link = stdout_value(&mut stdout, "zs nat: agents connect to ");
    let fingerprint = stdout_value(&mut stdout, "zs nat: fingerprint ");
    let admin_address = stdout_value(&mut stdout, "zs nat: admin endpoint ");
    server._stdout = Some(stdout);

    let agent_config = dir.join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "[nat.agent]\nserver = \"{link}\"\npin = \"{fingerprint}\"\n\
             [nat.agent.mappings.{MAPPING}]\nlocal = \"{echo}\"\ntoken = \"{TOKEN}\"\n"
        ),
    )
    .unwrap();
    let agent = Running {
        child: spawn("agent", &agent_config, None, Stdio::null()),
        _stdout: None,
    };

    let mut builder = zs::Client::builder();
    builder
        .config_mut()
        .security()
        .pin(fingerprint.parse().unwrap());
    let admin = builder.connect(admin_address.as_str()).await.unwrap();
    let mut pair = Pair {
        server,
        agent,
        admin,
        public: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        dir,
    };
    // The public port opens once the agent has registered the mapping.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        pair.assert_alive();
        let stats = pair.stats().await;
        if let (Some(bound), 1..) = (stats.bound, stats.agents) {
            pair.public = bound;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not register the mapping in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(echo_once(pair.public).await.unwrap());
    pair
}

/// Sends the payload on `stream` and reads it back.
async fn echo(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut reply = [0u8; PAYLOAD.len()];
    tokio::time::timeout(STEP_TIMEOUT, async {
        stream.write_all(PAYLOAD).await?;
        stream.read_exact(&mut reply).await
    })
    .await??;
    if reply != PAYLOAD {
        return Err(std::io::Error::other("the echo returned other bytes"));
    }
    Ok(())
}

/// Opens a forwarded connection and echoes the payload on it.
async fn echo_once(public: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(public)).await??;
    echo(&mut stream).await?;
    Ok(stream)
}

/// One round: opens `CONNECTIONS` forwarded connections, echoes on each twice (when opened,
/// and again with all open), closes them all; returns once the server counts none active and
/// both processes hold no more descriptors than before.
async fn round(pair: &mut Pair) {
    let baseline = pair.descriptors();
    let mut streams = Vec::with_capacity(CONNECTIONS);
    while streams.len() < CONNECTIONS {
        let batch = OPEN_BATCH.min(CONNECTIONS - streams.len());
        let opens = (0..batch).map(|_| echo_once(pair.public));
        for stream in futures_util::future::join_all(opens).await {
            let opened = streams.len();
            streams.push(stream.unwrap_or_else(|error| {
                panic!("forwarded connection {} failed: {error}", opened + 1)
            }));
        }
    }
    assert_eq!(
        pair.stats().await.active,
        CONNECTIONS as u64,
        "the server does not forward every connection at once"
    );
    for result in futures_util::future::join_all(streams.iter_mut().map(echo)).await {
        result.unwrap();
    }
    drop(streams);
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let active = pair.stats().await.active;
        let descriptors = pair.descriptors();
        let closed = active == 0 && descriptors[0] <= baseline[0] && descriptors[1] <= baseline[1];
        if closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections left after the round: {active} active at the server; descriptors \
             (server, agent) {descriptors:?}, {baseline:?} before the round"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pair.assert_alive();
    // Let both processes' tasks finish freeing what the connections held.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_memory_comes_back_after_rounds_of_forwarded_connections() {
    let started = Instant::now();
    let mut pair = start(echo_service()).await;
    let mut server = Vec::with_capacity(ROUNDS);
    let mut agent = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        round(&mut pair).await;
        let [server_rss, agent_rss] = pair.rss();
        server.push(server_rss);
        agent.push(agent_rss);
    }
    eprintln!("XNat: {ROUNDS} rounds in {:?}", started.elapsed());
    assert_flat(
        "XNat",
        CONNECTIONS,
        &[("zs nat server", &server), ("zs nat agent", &agent)],
    );
}
