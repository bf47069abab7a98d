//! Three-party authentication (ZServer4D's `VirtualAuth`): a client logs in to an
//! application server, which asks an external auth service before it answers.
//!
//! ```sh
//! cargo run -p zs-accounts --example virtual_auth
//! ```
//!
//! The auth service here is another zserver server with one command, `auth.verify`, that
//! takes a name and a token and answers (after a deliberate delay, as a remote directory
//! would) with the user's roles or a refusal. The application server installs
//! [`VirtualAuth`] with a hook that calls it; the client uses the ordinary
//! `AccountClient::login`.

use std::sync::Arc;
use std::time::Duration;

use zs::{DataFrame, Requirement, Status, User};
use zs_accounts::{AccountClient, LimitConfig, VirtualAuth};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The external auth service.
    let mut auth = zs::Server::bind("127.0.0.1:0").await?;
    auth.register_stream("auth.verify", |_ctx, input: DataFrame| async move {
        let mut reader = input.reader();
        let name = reader.read_string()?;
        let token = reader.read_string()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if token == format!("token-of-{name}") {
            Ok(DataFrame::new().with(true).with("editor"))
        } else {
            Ok(DataFrame::new().with(false))
        }
    });
    let auth = auth.spawn();

    // 2. The application server: its logins are the auth service's answers.
    let directory = Arc::new(zs::Client::connect(auth.local_addr()).await?);
    let mut app = zs::Server::bind("127.0.0.1:0").await?;
    app.install(VirtualAuth::new(LimitConfig::default(), move |login| {
        let directory = directory.clone();
        async move {
            let answer = directory
                .call_stream(
                    "auth.verify",
                    &DataFrame::new()
                        .with(login.name.as_str())
                        .with(login.password.as_str()),
                )
                .await
                .map_err(|error| Status::unavailable(format!("auth service: {error}")))?;
            let mut reader = answer.reader();
            if !reader.read_bool()? {
                return Err(Status::unauthenticated("the auth service refused"));
            }
            let mut roles = Vec::new();
            while reader.peek().is_some() {
                roles.push(reader.read_string()?);
            }
            Ok(User::new(login.name, roles))
        }
    }));
    app.register_console("docs.edit", |ctx, text: String| async move {
        let user = ctx.require_user()?;
        Ok(format!("{} edited: {text}", user.name()))
    });
    app.commands_mut()
        .require("docs.*", Requirement::Role("editor".into()));
    let app = app.spawn();

    // 3. The client.
    let client = zs::Client::connect(app.local_addr()).await?;
    let accounts = AccountClient::new(client.peer());
    match accounts.login("ann", "a guess").await {
        Err(error) => println!("wrong token: {error}"),
        Ok(user) => println!("unexpected: logged in as {}", user.name()),
    }
    let started = std::time::Instant::now();
    let me = accounts.login("ann", "token-of-ann").await?;
    println!(
        "logged in as {} with roles {:?} after {:?} (the auth service's delay)",
        me.name(),
        me.roles(),
        started.elapsed()
    );
    println!(
        "{}",
        client.peer().call_console("docs.edit", "chapter 1").await?
    );
    client.close().await;
    app.shutdown().await;
    auth.shutdown().await;
    Ok(())
}
