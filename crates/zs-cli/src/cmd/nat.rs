//! `zs nat server | agent | stats`: XNat, exposing TCP services behind NAT through a public
//! server (the library is `zs-nat`; its configuration keys are documented in
//! `crates/zs-nat/src/config.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use zs_nat::{ConfigFile, NatAgent, NatServer};

/// Key file of `zs nat server` when neither `--key` nor `key_file` says otherwise.
pub const DEFAULT_NAT_KEY_FILE: &str = "zs-nat-server.key";

/// Arguments of `zs nat`.
#[derive(Debug, Args)]
pub struct NatArgs {
    /// What to run.
    #[command(subcommand)]
    pub command: NatCommand,
}

/// The `zs nat` subcommands.
#[derive(Debug, Subcommand)]
pub enum NatCommand {
    /// Run the public side: accept agents, open each mapping's public port while an agent
    /// serves it.
    Server(ServerArgs),
    /// Run the side behind NAT: keep a link to the server and forward its connections to
    /// local services.
    Agent(AgentArgs),
    /// Print a running server's counters as JSON (needs `admin` in its configuration).
    Stats(StatsArgs),
}

/// Arguments of `zs nat server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML file with a `[nat.server]` table.
    #[arg(long)]
    pub config: PathBuf,
    /// The server's key file (default `key_file`, else `zs-nat-server.key`); created with a
    /// new key on first start.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The admin listener (dashboard, `/metrics`, JSON API).
    #[command(flatten)]
    pub admin: super::admin::AdminArgs,
}

/// Arguments of `zs nat agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// TOML file with a `[nat.agent]` table.
    #[arg(long)]
    pub config: PathBuf,
    /// The admin listener (dashboard, `/metrics`, JSON API).
    #[command(flatten)]
    pub admin: super::admin::AdminArgs,
}

/// Arguments of `zs nat stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The server's admin endpoint (`admin` in its configuration).
    #[arg(long)]
    pub admin: String,
    /// Refuse an endpoint whose key has another fingerprint.
    #[arg(long)]
    pub pin: Option<String>,
    /// The endpoint's `admin_token`.
    #[arg(long, env = "ZS_NAT_ADMIN_TOKEN")]
    pub token: Option<String>,
}

/// Runs a `zs nat` subcommand.
pub async fn run(args: NatArgs) -> anyhow::Result<()> {
    match args.command {
        NatCommand::Server(args) => server(args).await,
        NatCommand::Agent(args) => agent(args).await,
        NatCommand::Stats(args) => stats(args).await,
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<ConfigFile> {
    ConfigFile::load(path).with_context(|| format!("configuration {}", path.display()))
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let mut config = load(&args.config)?
        .nat
        .server
        .with_context(|| format!("{} has no [nat.server] table", args.config.display()))?;
    if let Some(key) = args.key {
        config.key_file = Some(key);
    }
    config
        .key_file
        .get_or_insert_with(|| DEFAULT_NAT_KEY_FILE.into());
    // Two descriptors per forwarded connection and no connection limit: take what the hard
    // limit allows.
    super::serve::raise_open_file_limit_to_hard();
    let handle = Arc::new(NatServer::new(config).start().await?);
    let admin_config = args.admin.merge(super::admin::section(&args.config)?);
    let admin = super::admin::start(
        admin_config.clone(),
        zs_admin::Admin::new(admin_config)
            .describe(
                "nat-server",
                handle
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            )
            .part(zs_admin::NatServerPart::new(handle.clone())),
    )
    .await?;
    if let Some(address) = handle.local_addr() {
        super::serve::say(&format!("zs nat: agents connect to {address}"));
    }
    super::serve::say(&format!("zs nat: fingerprint {}", handle.fingerprint()));
    if let Some(address) = handle.admin_addr() {
        super::serve::say(&format!("zs nat: admin endpoint {address}"));
    }
    crate::cmd::serve::shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(admin) = admin {
        admin.shutdown().await;
    }
    handle.shutdown().await;
    Ok(())
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let config = load(&args.config)?
        .nat
        .agent
        .with_context(|| format!("{} has no [nat.agent] table", args.config.display()))?;
    let virtual_mappings: Vec<String> = config
        .mappings
        .iter()
        .filter(|(_, mapping)| mapping.virtual_server)
        .map(|(name, _)| name.clone())
        .collect();
    super::serve::raise_open_file_limit_to_hard();
    let server_address = config.server.clone();
    let mut agent = NatAgent::new(config);
    let mut builtins = None;
    if !virtual_mappings.is_empty() {
        // One zs server with the built-in commands of `zs serve` behind every virtual
        // mapping; its own loopback port is never announced.
        let mut server = zs::Server::bind("127.0.0.1:0").await?;
        crate::cmd::serve::register_builtins(&mut server);
        let handle = Arc::new(server.spawn());
        for name in &virtual_mappings {
            agent.serve_virtual(name, handle.clone());
        }
        tracing::info!(mappings = ?virtual_mappings, "virtual server: echo, echo_df, time, stats");
        builtins = Some(handle);
    }
    let mut handle = agent.start().await?;
    let admin_config = args.admin.merge(super::admin::section(&args.config)?);
    let mut parts = zs_admin::Admin::new(admin_config.clone())
        .describe(
            "nat-agent",
            server_address.unwrap_or_else(|| "reverse mode".into()),
        )
        .part(zs_admin::NatAgentPart::new(handle.subscribe()));
    if let Some(builtins) = &builtins {
        parts = parts.part(zs_admin::ServerPart::new(builtins.server_ref()));
    }
    let admin = super::admin::start(admin_config, parts).await?;
    let finished = tokio::select! {
        () = crate::cmd::serve::shutdown_signal() => None,
        result = handle.finished() => Some(result),
    };
    let result = match finished {
        None => {
            tracing::info!("shutting down");
            handle.shutdown().await
        }
        Some(result) => result,
    };
    if let Some(builtins) = builtins {
        builtins.shutdown().await;
    }
    if let Some(admin) = admin {
        admin.shutdown().await;
    }
    Ok(result?)
}

async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let mut builder = zs::Client::builder();
    if let Some(pin) = &args.pin {
        let fingerprint: zs::Fingerprint = pin.parse().context("invalid --pin")?;
        builder.config_mut().security().pin(fingerprint);
    }
    if let Some(token) = &args.token {
        builder
            .config_mut()
            .security()
            .token(token.as_bytes().to_vec());
    }
    let client = builder
        .connect(args.admin.as_str())
        .await
        .with_context(|| format!("cannot reach the admin endpoint {}", args.admin))?;
    let text = client
        .call_console(zs_nat::STATS_COMMAND, "")
        .await
        .context("nat.stats failed")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the server answered invalid JSON")?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    client.close().await;
    Ok(())
}
