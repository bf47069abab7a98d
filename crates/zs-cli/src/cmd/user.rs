//! `zs user`: the accounts of a `zs serve --accounts DIR`, changed in the store directly
//! (with the server stopped: the store is one process's at a time).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use zs_accounts::Accounts;

/// Arguments of `zs user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The accounts store (the directory given to `zs serve --accounts`).
    #[arg(long, default_value = "zs-accounts")]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub action: UserAction,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user; the password comes from `ZS_PASSWORD` or a prompt.
    Add {
        /// The user name.
        name: String,
        /// A role to give (repeatable), e.g. `--role admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Set a user's password (from `ZS_PASSWORD` or a prompt).
    Passwd {
        /// The user name.
        name: String,
    },
    /// List the users.
    List,
    /// Refuse a user's logins.
    Disable {
        /// The user name.
        name: String,
    },
    /// Allow a disabled user's logins again.
    Enable {
        /// The user name.
        name: String,
    },
    /// Remove a user.
    Remove {
        /// The user name.
        name: String,
    },
}

/// A password from `ZS_PASSWORD`, else asked for on the terminal without echo (never a
/// command-line argument: those show in the process list).
pub fn password(prompt: &str) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("ZS_PASSWORD") {
        return Ok(password);
    }
    rpassword::prompt_password(prompt)
        .context("cannot read a password (set ZS_PASSWORD or run in a terminal)")
}

/// Runs `zs user`.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let store = zs_db::Store::open(&args.dir)
        .with_context(|| format!("cannot open the accounts store in {}", args.dir.display()))?;
    let accounts = Accounts::open(Arc::new(store))?;
    match args.action {
        UserAction::Add { name, roles } => {
            let password = password(&format!("password for {name}: "))?;
            accounts.add(&name, &password, &roles)?;
            println!("added {name}");
        }
        UserAction::Passwd { name } => {
            let password = password(&format!("new password for {name}: "))?;
            accounts.set_password(&name, &password)?;
            println!("password of {name} changed");
        }
        UserAction::List => {
            for account in accounts.list()? {
                let json = serde_json::json!({
                    "name": account.name,
                    "roles": account.roles,
                    "disabled": account.disabled,
                    "created": account.created,
                });
                println!("{json}");
            }
        }
        UserAction::Disable { name } => {
            accounts.set_disabled(&name, true)?;
            println!("{name} disabled");
        }
        UserAction::Enable { name } => {
            accounts.set_disabled(&name, false)?;
            println!("{name} enabled");
        }
        UserAction::Remove { name } => {
            anyhow::ensure!(accounts.remove(&name)?, "no user {name:?}");
            println!("removed {name}");
        }
    }
    Ok(())
}
