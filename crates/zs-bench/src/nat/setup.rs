//! Starting the forwarders of a route (XNat's `zs nat server` + `zs nat agent`, or rathole's
//! server + client) with generated configurations, and the tools and header of a run.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tokio::process::Command;

use super::services::{echo_round_trip, http_get};
use super::{HttpTool, NatBenchArgs, RatholeTransport, Route, Services, Tools};
use crate::process::{
    CLOCK_TICKS_PER_SECOND, Process, READY_TIMEOUT, absolute, free_port, loopback, quoted, resolve,
};

pub fn resolve_tools(args: &NatBenchArgs) -> anyhow::Result<Tools> {
    let bench = std::env::current_exe().context("cannot find this executable")?;
    let zs = crate::process::find_zs(args.zs.as_ref())?;
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
        bench,
        zs,
        rathole: rathole.map(absolute),
        iperf3,
        http,
    })
}

/// The first line of `program args` output containing `pattern` (or the first line).
pub async fn tool_version(program: &Path, args: &[&str], pattern: &str) -> String {
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

pub async fn print_header(
    args: &NatBenchArgs,
    tools: &Tools,
    routes: &[Route],
    idle_connections: usize,
) {
    println!(
        "zs-bench nat: {} s per measurement, {} HTTP connections, {} idle connections; routes: {}",
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

/// `rathole --genkey`: (private, public) base64 keys for the noise transport.
pub async fn rathole_keypair(rathole: &Path) -> anyhow::Result<(String, String)> {
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
pub struct RouteContext<'a> {
    pub route: &'a Route,
    /// `stream_window` for XNat, when not the default.
    pub stream_window: Option<u32>,
    pub local: &'a Services,
    pub tools: &'a Tools,
    pub work: &'a Path,
    /// Unique name of this start (configuration and log files).
    pub name: String,
    pub rathole_keys: Option<&'a (String, String)>,
}

/// A route's running forwarder processes and the addresses clients use.
pub struct Forwarder {
    pub processes: Vec<Process>,
    pub public: Services,
}

/// The mappings every route has: (name, local address).
pub fn mappings(local: &Services) -> [(&'static str, SocketAddr); 3] {
    [
        ("http", local.http),
        ("echo", local.echo),
        ("bulk", local.bulk),
    ]
}

impl RouteContext<'_> {
    pub async fn start(&self) -> anyhow::Result<Forwarder> {
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
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
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

    pub fn cpu_ticks(&self) -> Option<u64> {
        self.processes
            .iter()
            .map(Process::cpu_ticks)
            .sum::<anyhow::Result<u64>>()
            .ok()
    }

    /// CPU the forwarders used since `before`, in % of one core.
    pub fn cpu_percent(&self, before: Option<u64>, since: Instant) -> Option<f64> {
        if self.processes.is_empty() {
            return None;
        }
        let used = self.cpu_ticks()?.checked_sub(before?)?;
        Some(used as f64 / CLOCK_TICKS_PER_SECOND / since.elapsed().as_secs_f64() * 100.0)
    }

    pub fn rss(&self) -> anyhow::Result<Vec<(String, u64)>> {
        self.processes
            .iter()
            .map(|process| Ok((process.name.clone(), process.rss_kib()?)))
            .collect()
    }

    pub async fn stop(&mut self) {
        for process in &mut self.processes {
            process.kill().await;
        }
    }
}
