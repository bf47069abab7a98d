//! `zs call`: one call, reply on stdout.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use zs::{Client, DataFrame};

/// Arguments of `zs call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Server address.
    #[arg(long, default_value = crate::config_file::DEFAULT_LISTEN)]
    pub connect: String,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Refuse the server unless its key has this fingerprint (`sha3-256:<hex>`, as printed
    /// by `zs serve` and `zs keygen`).
    #[arg(long)]
    pub pin: Option<zs::Fingerprint>,
    /// Token to present to a server that requires one.
    #[arg(long, env = "ZS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Cipher suites to offer, comma-separated, in preference order.
    #[arg(long, value_delimiter = ',')]
    pub suite: Vec<String>,
    /// Allow the unencrypted `plain` suite (only if also offered with --suite plain).
    #[arg(long)]
    pub allow_plain: bool,
    #[command(subcommand)]
    pub kind: CallKind,
}

/// The kind of command to call.
#[derive(Debug, Subcommand)]
pub enum CallKind {
    /// A console command: TEXT in, text out.
    Console {
        /// Command name.
        name: String,
        /// Text argument.
        #[arg(default_value = "")]
        text: String,
    },
    /// A stream command: a DataFrame as JSON in (e.g. '["alice", 42]' or
    /// '[{"u8": 7}]'), its reply as typed JSON out.
    Stream {
        /// Command name.
        name: String,
        /// The DataFrame's JSON form.
        #[arg(default_value = "[]")]
        json: String,
    },
}

/// Makes the call and prints the reply.
pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.timeout.is_finite() && args.timeout > 0.0,
        "--timeout must be a positive number of seconds"
    );
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut builder = Client::builder();
    let security = builder.config_mut().security();
    if let Some(pin) = args.pin {
        security.pin(pin);
    }
    if let Some(token) = &args.token {
        security.token(token.as_bytes().to_vec());
    }
    if !args.suite.is_empty() {
        security.suites(crate::config_file::parse_suites(&args.suite)?);
    }
    security.allow_plain(args.allow_plain);
    let client = builder
        .connect(&args.connect)
        .await
        .with_context(|| format!("cannot connect to {}", args.connect))?;
    match args.kind {
        CallKind::Console { name, text } => {
            let reply = client
                .call_console(&name, &text)
                .timeout(timeout)
                .await
                .with_context(|| format!("console call {name:?} failed"))?;
            println!("{reply}");
        }
        CallKind::Stream { name, json } => {
            let frame = DataFrame::from_json_str(&json)
                .context("argument is not a DataFrame in JSON form")?;
            let reply = client
                .call_stream(&name, &frame)
                .timeout(timeout)
                .await
                .with_context(|| format!("stream call {name:?} failed"))?;
            println!("{}", reply.to_json_string());
        }
    }
    Ok(())
}
