//! `zs serve`: a server with the built-in commands.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use zs::{DataFrame, Server, Status};

use crate::config_file::ConfigFile;

/// Arguments of `zs serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:4920, or `server.listen` from the config).
    #[arg(long)]
    pub listen: Option<String>,
    /// TOML configuration file; every field is optional.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The server's key file (default `security.key_file`, else `zs-server.key`); created
    /// with a new key on first start.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Serve this directory to `zs put` / `zs get` (default `server.files`; off when
    /// neither is set).
    #[arg(long)]
    pub files: Option<PathBuf>,
    /// Serve the ZDB store in this directory to `zs db` and `DbClient` (default
    /// `server.db`; off when neither is set). Created if missing.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Let users log in, with the accounts in this directory (made with `zs user`; default
    /// `server.accounts`; off when neither is set). Not the `--db` directory.
    #[arg(long)]
    pub accounts: Option<PathBuf>,
    /// A command (or `prefix.*`) that needs a logged-in user; repeatable (added to
    /// `server.require_login`).
    #[arg(long = "require-login", value_name = "PATTERN")]
    pub require_login: Vec<String>,
    /// With `--files`: a `public/` area for everyone and a private area per logged-in user
    /// (default `server.user_areas`).
    #[arg(long)]
    pub user_areas: bool,
    /// Be a dispatcher: serve the registry of servers, kept in this directory (created if
    /// missing).
    #[arg(long, value_name = "DIR")]
    pub dispatch: Option<PathBuf>,
    /// Be a dispatcher on a registry kept in etcd, shared with every dispatcher on the same
    /// cluster: its members' client URLs, comma-separated (`http://10.0.0.1:2379,...`).
    #[cfg(feature = "etcd")]
    #[arg(
        long,
        value_name = "URLS",
        value_delimiter = ',',
        conflicts_with = "dispatch"
    )]
    pub dispatch_etcd: Vec<String>,
    /// Register this server with the dispatcher at `--dispatcher` as a server of this type
    /// (its load: the connections it holds; its capacity: `max_connections`).
    #[arg(long = "register", value_name = "TYPE", requires = "dispatcher")]
    pub register_as: Option<String>,
    /// The dispatcher to register with.
    #[arg(long, value_name = "ADDR")]
    pub dispatcher: Option<String>,
    /// This server's id in the registry (default `<type>-<port>`).
    #[arg(long)]
    pub id: Option<String>,
    /// The admin listener.
    #[command(flatten)]
    pub admin: super::admin::AdminArgs,
}

/// Registers `echo`, `echo_df`, `time` and `stats` (connections and per-command statistics
/// of the server the call arrives at).
pub fn register_builtins(server: &mut Server) {
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_stream("echo_df", |_ctx, frame: DataFrame| async move { Ok(frame) })
        // Lets `zs bench stream --connect` measure against this server.
        .register_big_stream(crate::bench::stream::SINK, |_ctx, stream| {
            crate::bench::stream::sink(stream)
        })
        .register_console("time", |_ctx, _text: String| async move {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
            Ok(format!("{}.{:03}", now.as_secs(), now.subsec_millis()))
        })
        .register_console("stats", |ctx, _text: String| async move {
            let server = ctx
                .server()
                .ok_or_else(|| Status::failed_precondition("stats are served by a server only"))?;
            let report = serde_json::json!({
                "connections": server.connection_count(),
                "commands": server.stats(),
            });
            Ok(report.to_string())
        });
}

/// Runs the server until Ctrl-C or SIGTERM, then shuts down gracefully.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| file.server.listen.to_string());
    raise_open_file_limit(file.server.max_connections);
    let mut server = Server::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    *server.config_mut() = file.server.to_config();
    file.security.apply(server.config_mut().security())?;
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| file.security.key_file.clone());
    let (keypair, created) = zs::key_file::load_or_create(&key_path)?;
    if created {
        tracing::info!(path = %key_path.display(), "created a new server key");
    }
    server.config_mut().security().keypair(keypair);
    register_builtins(&mut server);
    // What the admin listener reports on besides the server: each service installed.
    let mut parts: Vec<Box<dyn FnOnce(zs_admin::Admin) -> zs_admin::Admin>> = Vec::new();
    if let Some(dir) = args.files.as_ref().or(file.server.files.as_ref()) {
        let mut files = zs::services::files::FileService::new(dir)
            .with_context(|| format!("cannot serve files from {}", dir.display()))?;
        if args.user_areas || file.server.user_areas {
            let quota = (file.server.user_quota_mib > 0)
                .then(|| file.server.user_quota_mib.saturating_mul(1 << 20));
            files = files.with_user_areas(quota);
        }
        tracing::info!(root = %files.root().display(), "serving files");
        server.install(files);
    }
    if let Some(dir) = args.db.as_ref().or(file.server.db.as_ref()) {
        let store = zs_db::Store::open(dir)
            .with_context(|| format!("cannot open the ZDB store in {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "serving ZDB");
        let service = zs_db::service::DbService::new(store);
        let part = zs_admin::DbPart::new(service.clone());
        parts.push(Box::new(move |admin| admin.part(part)));
        server.install(service);
    }
    let db_dir = args.db.as_ref().or(file.server.db.as_ref());
    if let Some(dir) = args.accounts.as_ref().or(file.server.accounts.as_ref()) {
        // Served databases are readable over the network: never the accounts' store.
        if let Some(db_dir) = db_dir {
            anyhow::ensure!(
                std::path::absolute(dir)? != std::path::absolute(db_dir)?,
                "--accounts and --db must be different directories"
            );
        }
        let store = zs_db::Store::open(dir)
            .with_context(|| format!("cannot open the accounts in {}", dir.display()))?;
        let accounts = zs_accounts::Accounts::open(std::sync::Arc::new(store))?;
        let config = zs_accounts::AccountsConfig {
            open_registration: file.server.open_registration,
            ..zs_accounts::AccountsConfig::default()
        };
        tracing::info!(dir = %dir.display(), "accounts on");
        let service = zs_accounts::AccountService::<()>::new(accounts, config);
        let part = zs_admin::AccountsPart::new(service.clone());
        parts.push(Box::new(move |admin| admin.part(part)));
        server.install(service);
    }
    for pattern in file.server.require_login.iter().chain(&args.require_login) {
        server
            .commands_mut()
            .require(pattern, zs::Requirement::Login);
    }
    if let Some(dir) = &args.dispatch {
        let store = zs_db::Store::open(dir)
            .with_context(|| format!("cannot open the registry in {}", dir.display()))?;
        let registry = zs_cluster::Embedded::open(&store)?;
        registry.spawn_reaper(std::time::Duration::from_millis(250));
        tracing::info!(dir = %dir.display(), "dispatching");
        let service = zs_cluster::DispatchService::new(registry);
        let part = zs_admin::ClusterPart::new(service.clone());
        parts.push(Box::new(move |admin| admin.part(part)));
        server.install(service);
    }
    #[cfg(feature = "etcd")]
    if !args.dispatch_etcd.is_empty() {
        let registry = zs_cluster::Etcd::connect(&args.dispatch_etcd)
            .await
            .with_context(|| format!("cannot reach etcd at {:?}", args.dispatch_etcd))?;
        tracing::info!(etcd = ?args.dispatch_etcd, "dispatching from etcd");
        let service = zs_cluster::DispatchService::new(registry);
        let part = zs_admin::ClusterPart::new(service.clone());
        parts.push(Box::new(move |admin| admin.part(part)));
        server.install(service);
    }
    let capacity = file.server.max_connections;
    let addr = server.local_addr()?;
    let handle = server.spawn();
    say(&format!("zs: listening on {addr}"));
    say(&format!("zs: fingerprint {}", handle.fingerprint()));
    let admin_config = args.admin.merge(file.admin.clone());
    let admin = parts.into_iter().fold(
        zs_admin::Admin::new(admin_config.clone())
            .describe("zs", addr.to_string())
            .part(zs_admin::ServerPart::new(handle.server_ref())),
        |admin, add| add(admin),
    );
    let admin = super::admin::start(admin_config, admin).await?;
    let registrar = match (&args.register_as, &args.dispatcher) {
        (Some(service_type), Some(dispatcher)) => Some(
            register(
                &handle,
                addr,
                service_type,
                dispatcher,
                args.id.clone(),
                capacity,
            )
            .await?,
        ),
        _ => None,
    };
    tracing::info!(%addr, "serving: echo, echo_df, time, stats");
    shutdown_signal().await;
    tracing::info!("shutting down");
    // Leave the registry first, so no new clients are sent here.
    if let Some(registrar) = registrar
        && let Err(error) = registrar.stop().await
    {
        tracing::warn!(%error, "cannot unregister from the dispatcher");
    }
    handle.shutdown().await;
    if let Some(admin) = admin {
        admin.shutdown().await;
    }
    Ok(())
}

/// Registers the server with `dispatcher` and keeps its load (connections held) current.
async fn register(
    handle: &zs::ServerHandle,
    addr: std::net::SocketAddr,
    service_type: &str,
    dispatcher: &str,
    id: Option<String>,
    capacity: usize,
) -> anyhow::Result<zs_cluster::Registrar> {
    let link = std::sync::Arc::new(
        zs::Client::connect(dispatcher)
            .await
            .with_context(|| format!("cannot reach the dispatcher at {dispatcher}"))?,
    );
    let id = id.unwrap_or_else(|| format!("{service_type}-{}", addr.port()));
    let mut registration =
        zs_cluster::Registration::new(service_type, id.clone(), [addr], capacity as u64);
    registration.fingerprint = handle.fingerprint().to_string();
    let registrar =
        zs_cluster::Registrar::start(link, registration, std::time::Duration::from_secs(3))
            .await
            .context("the dispatcher refused the registration")?;
    say(&format!(
        "zs: registered as {id} ({service_type}) with {dispatcher}"
    ));
    let server = handle.server_ref();
    let load = registrar.load_handle();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            ticks.tick().await;
            load.set(server.connection_count() as u64);
        }
    });
    Ok(registrar)
}

/// Prints a line on stdout; a closed stdout (the starting shell went away, `| head`) must not
/// take a running server down, so a failed write is ignored.
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Raises the open-file soft limit to what `connections` need (one descriptor each, plus
/// room for listeners, logs and files), within the hard limit: from a shell's usual 1,024 a
/// server could otherwise hold only about a thousand connections.
pub fn raise_open_file_limit(connections: usize) {
    let wanted = u64::try_from(connections)
        .unwrap_or(u64::MAX)
        .saturating_add(256);
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "the open-file hard limit is below max_connections; raise it (ulimit -Hn) to serve them all"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

/// Raises the open-file soft limit to the hard limit (`zs nat`: two descriptors per
/// forwarded connection, and no connection limit to size it by).
pub fn raise_open_file_limit_to_hard() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
