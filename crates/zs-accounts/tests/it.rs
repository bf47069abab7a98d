//! The accounts service over real loopback connections: logins, login-gated commands,
//! rate limits, bad input, admin commands and the second-login policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use zs::{Client, Requirement, ServerHandle, StatusCode};
use zs_accounts::{
    AccountClient, AccountClientError, AccountService, Accounts, AccountsConfig, SecondLogin,
};

const ADMIN_PASSWORD: &str = "admin password 1";

struct Setup {
    _dir: tempfile::TempDir,
    server: ServerHandle,
    service: AccountService,
}

/// A server with the accounts service, an admin `root`, and `app.echo` needing a login.
async fn serve(config: AccountsConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(zs_db::Store::open(dir.path()).unwrap());
    let accounts = Accounts::open(store).unwrap();
    accounts
        .add("root", ADMIN_PASSWORD, &["admin".to_owned()])
        .unwrap();
    let service = AccountService::new(accounts, config);
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server.install(service.clone());
    server.register_console("app.echo", |ctx, text: String| async move {
        Ok(format!("{}: {text}", ctx.require_user()?.name()))
    });
    server.register_console("app.open", |_ctx, text: String| async move { Ok(text) });
    server
        .commands_mut()
        .require("app.echo", Requirement::Login);
    Setup {
        _dir: dir,
        server: server.spawn(),
        service,
    }
}

async fn connect(setup: &Setup) -> Client {
    Client::connect(setup.server.local_addr()).await.unwrap()
}

fn code<T: std::fmt::Debug>(result: Result<T, AccountClientError>) -> StatusCode {
    result.unwrap_err().code().expect("an error status")
}

async fn echo(client: &Client) -> Result<String, zs::CallError> {
    client.peer().call_console("app.echo", "hi").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_commands_that_need_a_login() {
    let setup = serve(AccountsConfig::default()).await;
    let client = connect(&setup).await;
    let accounts = AccountClient::new(client.peer());

    // Before a login: refused before the handler runs; other commands answer.
    let refused = echo(&client).await.unwrap_err();
    assert_eq!(
        refused.status().unwrap().code(),
        StatusCode::UNAUTHENTICATED
    );
    assert_eq!(
        client.peer().call_console("app.open", "x").await.unwrap(),
        "x"
    );
    assert_eq!(accounts.whoami().await.unwrap(), None);

    accounts.register("ann", "ann's password").await.unwrap();
    assert_eq!(
        code(accounts.register("ann", "another password").await),
        StatusCode::ALREADY_EXISTS
    );
    let ann = accounts.login("ann", "ann's password").await.unwrap();
    assert_eq!(ann.name(), "ann");
    assert!(ann.roles().is_empty());
    assert_eq!(echo(&client).await.unwrap(), "ann: hi");
    assert_eq!(accounts.whoami().await.unwrap().unwrap().name(), "ann");
    assert_eq!(setup.service.connections_of("ann").len(), 1);

    // Changing the password needs the old one.
    assert_eq!(
        code(accounts.change_password("wrong one!", "new password").await),
        StatusCode::UNAUTHENTICATED
    );
    accounts
        .change_password("ann's password", "new password")
        .await
        .unwrap();

    accounts.logout().await.unwrap();
    let refused = echo(&client).await.unwrap_err();
    assert_eq!(
        refused.status().unwrap().code(),
        StatusCode::UNAUTHENTICATED
    );
    assert_eq!(
        code(
            accounts
                .change_password("new password", "newer password")
                .await
        ),
        StatusCode::UNAUTHENTICATED
    );
    assert!(setup.service.connections_of("ann").is_empty());
    assert_eq!(
        code(accounts.login("ann", "ann's password").await),
        StatusCode::UNAUTHENTICATED,
        "the old password no longer works"
    );
    accounts.login("ann", "new password").await.unwrap();

    // A second connection of the same user (several devices) is allowed by default.
    let other = connect(&setup).await;
    AccountClient::new(other.peer())
        .login("ann", "new password")
        .await
        .unwrap();
    assert_eq!(setup.service.connections_of("ann").len(), 2);
    drop(other);
    for _ in 0..100 {
        if setup.service.connections_of("ann").len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        setup.service.connections_of("ann").len(),
        1,
        "a closed one is forgotten"
    );

    let time = accounts.server_time().await.unwrap();
    assert!(time.offset < Duration::from_secs(1), "{time:?}");
    setup.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unknown_users_look_alike_and_loops_are_locked_out() {
    let setup = serve(AccountsConfig::default()).await;
    let client = connect(&setup).await;
    let accounts = AccountClient::new(client.peer());
    accounts.register("bob", "bob's password").await.unwrap();

    let wrong = accounts.login("bob", "not it at all").await.unwrap_err();
    let unknown = accounts.login("nobody", "not it at all").await.unwrap_err();
    let status = |error: &AccountClientError| match error {
        AccountClientError::Call(call) => call.status().cloned().unwrap(),
        other => panic!("{other}"),
    };
    assert_eq!(status(&wrong), status(&unknown), "one answer for both");
    assert_eq!(status(&wrong).code(), StatusCode::UNAUTHENTICATED);

    // Five failures are free (two so far from this address), then lockouts.
    for _ in 0..3 {
        assert_eq!(
            code(accounts.login("bob", "still wrong!").await),
            StatusCode::UNAUTHENTICATED
        );
    }
    assert_eq!(
        code(accounts.login("bob", "still wrong!").await),
        StatusCode::UNAUTHENTICATED,
        "the sixth failure is counted and locks"
    );
    let locked = accounts.login("bob", "bob's password").await.unwrap_err();
    assert_eq!(locked.code(), Some(StatusCode::RESOURCE_EXHAUSTED));
    assert!(locked.to_string().contains("try again in 1 s"), "{locked}");
    // The address is locked too, for every name.
    assert_eq!(
        code(accounts.login("root", ADMIN_PASSWORD).await),
        StatusCode::RESOURCE_EXHAUSTED
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    accounts.login("bob", "bob's password").await.unwrap();
    setup.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_passwords_and_registration_floods_are_typed_errors() {
    let config = AccountsConfig {
        registrations_per_window: 3,
        ..AccountsConfig::default()
    };
    let setup = serve(config).await;
    let client = connect(&setup).await;
    let accounts = AccountClient::new(client.peer());
    let long_name = "n".repeat(65);
    let long_password = "p".repeat(100_000);
    for (name, password) in [
        (long_name.as_str(), "a fine password"),
        ("../etc", "a fine password"),
        ("", "a fine password"),
        ("carl", "short"),
        ("carl", long_password.as_str()),
    ] {
        assert_eq!(
            code(accounts.register(name, password).await),
            StatusCode::INVALID_ARGUMENT,
            "{name:.10} / {password:.10}"
        );
    }
    // Logging in with them is just a wrong login.
    assert_eq!(
        code(accounts.login(&long_name, &long_password).await),
        StatusCode::UNAUTHENTICATED
    );
    // Registrations per address: three, then refused.
    for i in 0..3 {
        accounts
            .register(&format!("user{i}"), "a fine password")
            .await
            .unwrap();
    }
    let flood = accounts
        .register("user3", "a fine password")
        .await
        .unwrap_err();
    assert_eq!(flood.code(), Some(StatusCode::RESOURCE_EXHAUSTED));
    assert!(flood.to_string().contains("try again in"), "{flood}");
    setup.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_add_list_disable_and_delete_users() {
    let setup = serve(AccountsConfig::default()).await;
    let admin_client = connect(&setup).await;
    let admin = AccountClient::new(admin_client.peer());
    let user_client = connect(&setup).await;
    let user = AccountClient::new(user_client.peer());

    assert_eq!(
        code(admin.list_users().await),
        StatusCode::UNAUTHENTICATED,
        "no login"
    );
    user.register("dana", "dana's password").await.unwrap();
    user.login("dana", "dana's password").await.unwrap();
    assert_eq!(
        code(user.add_user("eve", "eve's password", &[]).await),
        StatusCode::PERMISSION_DENIED,
        "not an admin"
    );

    admin.login("root", ADMIN_PASSWORD).await.unwrap();
    admin
        .add_user("eve", "eve's password", &["editor"])
        .await
        .unwrap();
    let listed = admin.list_users().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|account| account.name.as_str()).collect();
    assert_eq!(names, ["dana", "eve", "root"]);
    assert_eq!(listed[1].roles, ["editor"]);

    // Disabling logs dana out and refuses her logins.
    admin.disable_user("dana", true).await.unwrap();
    let refused = echo(&user_client).await.unwrap_err();
    assert_eq!(
        refused.status().unwrap().code(),
        StatusCode::UNAUTHENTICATED
    );
    let disabled = user.login("dana", "dana's password").await.unwrap_err();
    assert!(disabled.to_string().contains("disabled"), "{disabled}");
    admin.disable_user("dana", false).await.unwrap();
    user.login("dana", "dana's password").await.unwrap();

    assert!(admin.delete_user("dana").await.unwrap());
    assert!(!admin.delete_user("dana").await.unwrap());
    assert_eq!(
        code(user.login("dana", "dana's password").await),
        StatusCode::UNAUTHENTICATED
    );
    setup.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_can_close_the_older_connection() {
    let setup = serve(AccountsConfig {
        second_login: SecondLogin::CloseOlder,
        ..AccountsConfig::default()
    })
    .await;
    let first = connect(&setup).await;
    AccountClient::new(first.peer())
        .register("fay", "fay's password")
        .await
        .unwrap();
    AccountClient::new(first.peer())
        .login("fay", "fay's password")
        .await
        .unwrap();
    let second = connect(&setup).await;
    AccountClient::new(second.peer())
        .login("fay", "fay's password")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), first.peer().closed())
        .await
        .expect("the older connection is closed");
    assert_eq!(echo(&second).await.unwrap(), "fay: hi");
    assert_eq!(setup.service.connections_of("fay").len(), 1);
    setup.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_auth_decides_logins_later_and_counts_refusals() {
    use zs::{Status, User};
    use zs_accounts::{LimitConfig, VirtualAuth};

    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server.install(VirtualAuth::new(LimitConfig::default(), move |login| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            // Decided later, as after asking another server.
            tokio::time::sleep(Duration::from_millis(50)).await;
            match login.password.as_str() {
                "token" => Ok(User::new(login.name, ["editor".to_owned()])),
                _ => Err(Status::unauthenticated("refused")),
            }
        }
    }));
    server.register_console("docs.edit", |ctx, text: String| async move {
        Ok(format!("{}: {text}", ctx.require_user()?.name()))
    });
    server
        .commands_mut()
        .require("docs.*", Requirement::Role("editor".into()));
    let server = server.spawn();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let accounts = AccountClient::new(client.peer());

    let edit = || client.peer().call_console("docs.edit", "x");
    assert_eq!(
        edit().await.unwrap_err().status().unwrap().code(),
        StatusCode::UNAUTHENTICATED
    );
    let user = accounts.login("gus", "token").await.unwrap();
    assert_eq!(user.roles(), ["editor"]);
    assert_eq!(edit().await.unwrap(), "gus: x");
    assert_eq!(accounts.whoami().await.unwrap().unwrap().name(), "gus");
    accounts.logout().await.unwrap();
    assert_eq!(accounts.whoami().await.unwrap(), None);

    // Refusals count: after six, the hook is not even asked.
    for _ in 0..6 {
        assert_eq!(
            code(accounts.login("gus", "guess").await),
            StatusCode::UNAUTHENTICATED
        );
    }
    let before = asked.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        code(accounts.login("gus", "token").await),
        StatusCode::RESOURCE_EXHAUSTED
    );
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), before);
    server.shutdown().await;
}

/// A client that collects `chat.msg` calls as `(from, text)`.
async fn listener(
    addr: std::net::SocketAddr,
) -> (
    Client,
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) {
    let (sender, received) = tokio::sync::mpsc::unbounded_channel();
    let mut builder = Client::builder();
    builder.register_stream("chat.msg", move |_ctx, frame: zs::DataFrame| {
        let sender = sender.clone();
        async move {
            let mut reader = frame.reader();
            let from = reader.read_string()?;
            let text = reader.read_frame()?.reader().read_string()?;
            let _ = sender.send((from, text));
            Ok(zs::DataFrame::new())
        }
    });
    (builder.connect(addr).await.unwrap(), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_offline_users_wait_in_order_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = |config: AccountsConfig| {
        let path = dir.path().to_owned();
        async move {
            let store = Arc::new(zs_db::Store::open(&path).unwrap());
            let service: AccountService =
                AccountService::new(Accounts::open(store).unwrap(), config);
            let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
            server.install(service.clone());
            (server.spawn(), service)
        }
    };
    let config = AccountsConfig {
        offline_per_user: 3,
        ..AccountsConfig::default()
    };
    let (server, first) = start(config.clone()).await;
    let sender = connect_to(&server).await;
    let accounts = AccountClient::new(sender.peer());
    accounts.register("hal", "hal's password").await.unwrap();
    accounts.register("ida", "ida's password").await.unwrap();
    accounts.login("hal", "hal's password").await.unwrap();
    let text = |t: &str| zs::DataFrame::new().with(t);
    for t in ["one", "two", "three"] {
        assert_eq!(
            accounts.send("ida", "chat.msg", text(t)).await.unwrap(),
            zs_accounts::Delivery::Queued
        );
    }
    assert_eq!(
        code(accounts.send("ida", "chat.msg", text("four")).await),
        StatusCode::RESOURCE_EXHAUSTED,
        "bounded per user"
    );
    assert_eq!(
        code(accounts.send("nobody", "chat.msg", text("x")).await),
        StatusCode::NOT_FOUND
    );
    sender.close().await;
    server.shutdown().await;
    // The server's handlers hold the service, and the service the store.
    drop((server, first));

    // After a restart, ida logs in and gets them in order; then live ones.
    let (server, service) = start(config).await;
    let (ida, mut received) = listener(server.local_addr()).await;
    AccountClient::new(ida.peer())
        .login("ida", "ida's password")
        .await
        .unwrap();
    for expected in ["one", "two", "three"] {
        let got = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, ("hal".to_owned(), expected.to_owned()));
    }
    let sender = connect_to(&server).await;
    let accounts = AccountClient::new(sender.peer());
    accounts.login("hal", "hal's password").await.unwrap();
    assert_eq!(
        accounts
            .send("ida", "chat.msg", text("live"))
            .await
            .unwrap(),
        zs_accounts::Delivery::Delivered(1)
    );
    assert_eq!(received.recv().await.unwrap().1, "live");
    // Nothing is left queued.
    assert!(
        service
            .accounts()
            .offline()
            .pending("ida")
            .unwrap()
            .is_empty()
    );
    server.shutdown().await;
}

async fn connect_to(server: &ServerHandle) -> Client {
    Client::connect(server.local_addr()).await.unwrap()
}
