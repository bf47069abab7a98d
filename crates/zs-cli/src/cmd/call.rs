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
    /// Connect with StableIO: the connection survives dropped TCP connections (the client
    /// reconnects and resumes; nothing is lost or duplicated).
    #[arg(long)]
    pub stable: bool,
    /// Make N sequential console calls whose text ends with `#<index>`, check that every
    /// reply carries its own index (use an echoing command such as `echo`), and print
    /// `N ok, L lost, D duplicated`. Fails unless every call was answered exactly once.
    #[arg(long, value_name = "N")]
    pub repeat: Option<u64>,
    /// Log in as this user first (a server with `--accounts`); the password comes from
    /// `ZS_PASSWORD` or a prompt, never the command line.
    #[arg(long)]
    pub user: Option<String>,
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
    let client = if args.stable {
        builder.connect_stable(&args.connect).await
    } else {
        builder.connect(&args.connect).await
    }
    .with_context(|| format!("cannot connect to {}", args.connect))?;
    if let Some(user) = &args.user {
        let password = crate::cmd::user::password(&format!("password for {user}: "))?;
        zs_accounts::AccountClient::new(client.peer())
            .login(user, &password)
            .await
            .with_context(|| format!("cannot log in as {user}"))?;
    }
    if let Some(count) = args.repeat {
        let CallKind::Console { name, text } = &args.kind else {
            anyhow::bail!("--repeat works with console calls");
        };
        return repeat(&client, name, text, count, timeout).await;
    }
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

/// What `--repeat` saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    ok: u64,
    lost: u64,
    duplicated: u64,
}

impl Tally {
    /// Counts one reply to call `index`, given the indexes answered so far.
    fn record(
        &mut self,
        index: u64,
        reply: Option<&str>,
        seen: &mut std::collections::HashSet<u64>,
    ) {
        let Some(reply) = reply else {
            self.lost += 1;
            return;
        };
        let answered = reply
            .rsplit_once('#')
            .and_then(|(_, tag)| tag.parse::<u64>().ok());
        match answered {
            Some(answered) if !seen.insert(answered) => self.duplicated += 1,
            Some(answered) if answered == index => self.ok += 1,
            _ => self.lost += 1,
        }
    }
}

/// `--repeat N`: N sequential calls, each reply checked against its index.
async fn repeat(
    client: &Client,
    name: &str,
    text: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let mut seen = std::collections::HashSet::new();
    for index in 0..count {
        let payload = format!("{text}#{index}");
        let reply = client.call_console(name, &payload).timeout(timeout).await;
        if let Err(error) = &reply {
            tracing::warn!(index, %error, "call failed");
        }
        tally.record(index, reply.as_deref().ok(), &mut seen);
    }
    println!(
        "{} ok, {} lost, {} duplicated",
        tally.ok, tally.lost, tally.duplicated
    );
    eprintln!("{count} calls in {:.2?}", started.elapsed());
    anyhow::ensure!(
        tally.ok == count,
        "{} of {count} calls were not answered exactly once",
        count - tally.ok
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_ok_lost_and_duplicated() {
        let mut tally = Tally::default();
        let mut seen = std::collections::HashSet::new();
        tally.record(0, Some("x#0"), &mut seen);
        tally.record(1, None, &mut seen);
        tally.record(2, Some("x#0"), &mut seen);
        tally.record(3, Some("no tag"), &mut seen);
        tally.record(4, Some("x#4"), &mut seen);
        assert_eq!(
            tally,
            Tally {
                ok: 2,
                lost: 2,
                duplicated: 1
            }
        );
    }
}
