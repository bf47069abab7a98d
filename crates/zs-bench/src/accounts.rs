//! `zs-bench accounts`: logins per second with the Argon2id parameters accounts use, and
//! what a login-gated command costs against the same command without a gate, in
//! interleaved rounds on one embedded server.
//!
//! - **logins**: `--connections` clients log in again and again for `--seconds`; each login
//!   is one Argon2id check (m = 19 MiB, t = 2, p = 1) on the server's blocking pool.
//! - **gate**: the same console echo handler registered twice, `bench.open` and
//!   `bench.gated` (`Commands::require(.., Requirement::Login)`), called by logged-in
//!   clients with `--in-flight` calls each; rounds alternate which goes first. The ratio is
//!   gated calls/s over open calls/s, the median of the rounds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use zs::{Client, Requirement, Server};
use zs_accounts::{AccountClient, AccountService, Accounts, AccountsConfig};

/// Arguments of `zs-bench accounts`.
#[derive(Debug, Args)]
pub struct AccountsArgs {
    /// Client connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Calls in flight per connection in the gate measurement.
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Rounds of the gate measurement (open and gated each); medians are reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

const PASSWORD: &str = "bench password";

/// Runs `zs-bench accounts`.
pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.connections > 0 && args.in_flight > 0 && args.rounds > 0 && args.seconds > 0.0,
        "counts and seconds must be positive"
    );
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let store = Arc::new(zs_db::Store::open(dir.path())?);
    let accounts = Accounts::open(store)?;
    for i in 0..args.connections {
        accounts.add(&format!("user{i}"), PASSWORD, &[])?;
    }
    let config = AccountsConfig {
        // Every client logs in from 127.0.0.1; nobody fails here.
        registrations_per_window: u32::MAX,
        ..AccountsConfig::default()
    };
    let mut server = Server::bind("127.0.0.1:0").await?;
    server.install(AccountService::<()>::new(accounts, config));
    server.register_console("bench.open", |_ctx, text: String| async move { Ok(text) });
    server.register_console("bench.gated", |_ctx, text: String| async move { Ok(text) });
    server
        .commands_mut()
        .require("bench.gated", Requirement::Login);
    server.config_mut().max_connections(args.connections + 16);
    let addr = server.local_addr()?;
    let server = server.spawn();
    let seconds = Duration::from_secs_f64(args.seconds);
    println!(
        "zs-bench accounts: {} connections, {} in flight each, {} s per measurement, {} rounds; Argon2id m=19456 KiB t=2 p=1",
        args.connections, args.in_flight, args.seconds, args.rounds
    );

    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        clients.push(Arc::new(Client::connect(addr).await?));
    }

    // Logins.
    let login_rate = crate::calls_per_second(
        seconds,
        clients.iter().enumerate().map(|(i, client)| {
            let (client, name) = (client.clone(), format!("user{i}"));
            move || {
                let (client, name) = (client.clone(), name.clone());
                async move {
                    AccountClient::new(client.peer())
                        .login(&name, PASSWORD)
                        .await?;
                    anyhow::Ok(())
                }
            }
        }),
    )
    .await?;
    println!("logins: {login_rate:.1}/s");

    // The gate.
    let mut open_rates = Vec::new();
    let mut gated_rates = Vec::new();
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            ["bench.open", "bench.gated"]
        } else {
            ["bench.gated", "bench.open"]
        };
        let mut rates = [0.0; 2];
        for command in order {
            let rate = calls(&clients, command, args.in_flight, seconds).await?;
            rates[usize::from(command == "bench.gated")] = rate;
        }
        let [open, gated] = rates;
        println!(
            "round {round}: open {open:.0} calls/s, gated {gated:.0} calls/s, ratio {:.3}",
            gated / open
        );
        open_rates.push(open);
        gated_rates.push(gated);
        ratios.push(gated / open);
    }
    println!(
        "accounts: {login_rate:.1} logins/s; login-gated calls at {:.3} of open ones (median of {} rounds: open {:.0}, gated {:.0} calls/s)",
        crate::median(&ratios),
        args.rounds,
        crate::median(&open_rates),
        crate::median(&gated_rates)
    );
    for client in clients {
        if let Ok(client) = Arc::try_unwrap(client) {
            client.close().await;
        }
    }
    server.shutdown().await;
    Ok(())
}

/// Calls/s of `command` from every client, `in_flight` at a time each, for `seconds`.
async fn calls(
    clients: &[Arc<Client>],
    command: &'static str,
    in_flight: usize,
    seconds: Duration,
) -> anyhow::Result<f64> {
    let workers = clients
        .iter()
        .flat_map(|client| std::iter::repeat_n(client, in_flight))
        .map(|client| {
            let client = client.clone();
            move || {
                let client = client.clone();
                async move {
                    client.peer().call_console(command, "ping").await?;
                    anyhow::Ok(())
                }
            }
        });
    crate::calls_per_second(seconds, workers).await
}
