//! `zs put` / `zs get`: file transfer with a server run as `zs serve --files DIR`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zs::services::files::{FileClient, FileSink, TransferOptions, TransferReport};
use zs::{Client, ClientBuilder};

/// How to reach the server, and whether to resume (shared by `put` and `get`).
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Continue an interrupted transfer from its `.part` file (checked to be a prefix of
    /// the file; otherwise the transfer starts over).
    #[arg(long)]
    pub resume: bool,
}

impl ConnectArgs {
    fn builder(&self) -> ClientBuilder {
        self.server.builder()
    }

    async fn connect(&self, builder: ClientBuilder) -> anyhow::Result<Client> {
        self.server.connect(builder).await
    }
}

/// How to reach a server: its address, its pinned key, a token (`put`, `get`, `db`).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Server address.
    #[arg(long, default_value = crate::config_file::DEFAULT_LISTEN)]
    pub connect: String,
    /// Refuse the server unless its key has this fingerprint (`sha3-256:<hex>`).
    #[arg(long)]
    pub pin: Option<zs::Fingerprint>,
    /// Token to present to a server that requires one.
    #[arg(long, env = "ZS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Log in as this user first (a server with `--accounts`; with `--user-areas`, paths
    /// are in this user's area, `public/...` in the shared one); the password comes from
    /// `ZS_PASSWORD` or a prompt.
    #[arg(long)]
    pub user: Option<String>,
}

impl ServerArgs {
    /// A client builder with the pin and token set.
    pub fn builder(&self) -> ClientBuilder {
        let mut builder = Client::builder();
        let security = builder.config_mut().security();
        if let Some(pin) = self.pin {
            security.pin(pin);
        }
        if let Some(token) = &self.token {
            security.token(token.as_bytes().to_vec());
        }
        builder
    }

    /// Connects with `builder`, and logs in with `--user`.
    pub async fn connect(&self, builder: ClientBuilder) -> anyhow::Result<Client> {
        let client = builder
            .connect(&self.connect)
            .await
            .with_context(|| format!("cannot connect to {}", self.connect))?;
        if let Some(user) = &self.user {
            let password = crate::cmd::user::password(&format!("password for {user}: "))?;
            zs_accounts::AccountClient::new(client.peer())
                .login(user, &password)
                .await
                .with_context(|| format!("cannot log in as {user}"))?;
        }
        Ok(client)
    }
}

/// Arguments of `zs put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub server: ConnectArgs,
    /// The local file to upload.
    pub local: PathBuf,
    /// Where to store it, relative to the server's files directory (`/`-separated); ending
    /// in `/`, the local file's name is appended.
    pub remote: String,
}

/// Arguments of `zs get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub server: ConnectArgs,
    /// The file to download, relative to the server's files directory (`/`-separated).
    pub remote: String,
    /// Where to write it locally (into it, if it is a directory).
    pub local: PathBuf,
}

/// Uploads a file and prints one summary line.
pub async fn put(args: PutArgs) -> anyhow::Result<()> {
    // `REMOTE/` means "into that directory, under the local name".
    let mut remote = args.remote.clone();
    if remote.ends_with('/')
        && let Some(name) = args.local.file_name()
    {
        remote.push_str(&name.to_string_lossy());
    }
    let client = args.server.connect(args.server.builder()).await?;
    let bar = progress_bar();
    let started = Instant::now();
    let options = options(&args.server, &bar);
    let result = FileClient::new(&client)
        .put(&args.local, &remote, options)
        .await
        .with_context(|| format!("put {} as {remote} failed", args.local.display()));
    bar.finish_and_clear();
    summary("put", &result?, started.elapsed());
    Ok(())
}

/// Downloads a file and prints one summary line.
pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    // An existing directory receives the file under its remote name.
    let mut local = args.local.clone();
    if local.is_dir()
        && let Some(name) = args.remote.rsplit('/').find(|part| !part.is_empty())
    {
        local.push(name);
    }
    let mut builder = args.server.builder();
    builder.install(FileSink::new());
    let client = args.server.connect(builder).await?;
    let bar = progress_bar();
    let started = Instant::now();
    let options = options(&args.server, &bar);
    let result = FileClient::new(&client)
        .get(&args.remote, &local, options)
        .await
        .with_context(|| format!("get {} to {} failed", args.remote, local.display()));
    bar.finish_and_clear();
    summary("get", &result?, started.elapsed());
    Ok(())
}

/// A byte progress bar on standard error; hidden when that is not a terminal.
fn progress_bar() -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    if let Ok(style) = ProgressStyle::with_template(
        "{wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn options(server: &ConnectArgs, bar: &ProgressBar) -> TransferOptions {
    let bar = bar.clone();
    let mut started = false;
    TransferOptions::new()
        .resume(server.resume)
        .on_progress(move |done, total| {
            bar.set_position(done);
            if done == total {
                bar.set_message("verifying sha3-256");
            }
            if !started {
                // A resumed transfer starts past zero: measure the rate from here.
                started = true;
                bar.set_length(total);
                bar.reset_eta();
            }
        })
}

fn summary(verb: &str, report: &TransferReport, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(1e-6);
    let rate = report.bytes_sent as f64 / seconds / 1e6;
    if report.resumed_from > 0 {
        eprintln!(
            "zs: resumed at byte {}; {} bytes transferred",
            report.resumed_from, report.bytes_sent
        );
    }
    println!(
        "{verb}: {} bytes, sha3-256 {}, {rate:.1} MB/s",
        report.total, report.sha3_hex
    );
}
