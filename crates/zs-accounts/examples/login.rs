//! Accounts end to end on one machine: a server with the accounts service and a command
//! that needs a login; a client that is refused, registers, logs in, is served, reads the
//! server's clock, changes its password and logs out.
//!
//! ```sh
//! cargo run -p zs-accounts --example login
//! ```

use std::sync::Arc;

use zs_accounts::{AccountClient, AccountService, Accounts, AccountsConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: accounts kept in a ZDB store (a temporary one here).
    let dir = tempfile::tempdir()?;
    let store = Arc::new(zs_db::Store::open(dir.path())?);
    let accounts = Accounts::open(store)?;
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    server.install(AccountService::<()>::new(
        accounts,
        AccountsConfig::default(),
    ));
    server.register_console("notes.add", |ctx, note: String| async move {
        let user = ctx.require_user()?;
        Ok(format!("noted for {}: {note}", user.name()))
    });
    // Everything under "notes." needs a logged-in user.
    server
        .commands_mut()
        .require("notes.*", zs::Requirement::Login);
    let server = server.spawn();

    // The client.
    let client = zs::Client::connect(server.local_addr()).await?;
    let accounts = AccountClient::new(client.peer());
    match client.peer().call_console("notes.add", "milk").await {
        Err(error) => println!("before logging in: {error}"),
        Ok(reply) => println!("unexpected: {reply}"),
    }
    accounts.register("ann", "correct horse battery").await?;
    let me = accounts.login("ann", "correct horse battery").await?;
    println!("logged in as {}", me.name());
    println!("{}", client.peer().call_console("notes.add", "milk").await?);
    let time = accounts.server_time().await?;
    println!(
        "server clock {} by {:?} (round trip {:?})",
        if time.behind { "behind" } else { "ahead" },
        time.offset,
        time.round_trip
    );
    match accounts.login("ann", "wrong password").await {
        Err(error) => println!("a wrong password: {error}"),
        Ok(_) => println!("unexpected: a wrong password was taken"),
    }
    accounts
        .change_password("correct horse battery", "a new passphrase")
        .await?;
    accounts.logout().await?;
    println!("logged out; whoami: {:?}", accounts.whoami().await?);
    client.close().await;
    server.shutdown().await;
    Ok(())
}
