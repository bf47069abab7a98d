//! `zs dispatch`: ask a dispatcher (`zs serve --dispatch DIR`) about its servers.

use clap::{Args, Subcommand};
use zs_cluster::DispatchClient;

use crate::cmd::files::ServerArgs;

/// Arguments of `zs dispatch`.
#[derive(Debug, Args)]
pub struct DispatchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: DispatchAction,
}

/// What to ask.
#[derive(Debug, Subcommand)]
pub enum DispatchAction {
    /// The live servers of a type, one JSON line each.
    List {
        /// The service type.
        service_type: String,
    },
    /// The least-loaded online server of a type, as JSON; `--address` prints only its
    /// first address (for `zs call --connect "$(zs dispatch best logic --address)"`).
    Best {
        /// The service type.
        service_type: String,
        /// Print only the first address.
        #[arg(long)]
        address: bool,
    },
}

/// Runs `zs dispatch`.
pub async fn run(args: DispatchArgs) -> anyhow::Result<()> {
    let client = args.server.connect(args.server.builder()).await?;
    let dispatch = DispatchClient::new(client.peer());
    match args.action {
        DispatchAction::List { service_type } => {
            for server in dispatch.list(&service_type).await? {
                println!("{}", serde_json::to_string(&server)?);
            }
        }
        DispatchAction::Best {
            service_type,
            address,
        } => {
            let server = dispatch.best(&service_type).await?;
            if address {
                let first = server
                    .addresses
                    .first()
                    .ok_or_else(|| anyhow::anyhow!("{} has no address", server.id))?;
                println!("{first}");
            } else {
                println!("{}", serde_json::to_string(&server)?);
            }
        }
    }
    Ok(())
}
