//! The handler contract end to end: a handler's `Status` (code, message, details) reaches
//! `Client` and `BlockingClient` unchanged, errors convert with `?` by meaning, application
//! state and the server are reachable from `Context`, and a `Service` answers under its
//! namespace.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use zs::{
    BlockingClient, CallError, Client, DataFrame, Namespace, Server, ServerHandle, Service, Status,
    StatusCode,
};

/// Application state of the tests: a hit counter.
struct Hits(AtomicU64);

/// A type no one registers as application state.
struct Missing;

/// The status `lookup` fails with: a code, a message and details.
fn lookup_failure() -> Status {
    Status::not_found("no user named alice").with_details(
        DataFrame::new()
            .with("alice")
            .with(7i64)
            .with(vec![1.5f64, -2.0])
            .with(DataFrame::new().with(true)),
    )
}

/// A service with two commands, installed under `greeter`.
struct Greeter {
    greeting: &'static str,
}

impl<S: Send + Sync + 'static> Service<S> for Greeter {
    fn namespace(&self) -> &str {
        "greeter"
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let greeting = self.greeting;
        commands
            .register_console("hello", move |_ctx, name: String| async move {
                if name.is_empty() {
                    return Err(Status::invalid_argument("a name, please"));
                }
                Ok(format!("{greeting}, {name}"))
            })
            .register_stream("command", |ctx, _frame: DataFrame| async move {
                Ok(DataFrame::new().with(ctx.command()))
            });
    }
}

async fn server() -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server
        .with_state(Hits(AtomicU64::new(0)))
        .register_stream("lookup", |_ctx, frame: DataFrame| async move {
            let name = frame.reader().read_string()?;
            if name == "alice" {
                return Err(lookup_failure());
            }
            // No turbofish: the closure's return type fixes the error type.
            Ok(frame)
        })
        .register_console("lookup_text", |_ctx, name: String| async move {
            if name == "alice" {
                return Err(lookup_failure());
            }
            Ok(name)
        })
        .register_console("plain_failure", |_ctx, _text: String| async move {
            Err(Status::permission_denied("not you"))
        })
        .register_console("open", |_ctx, path: String| async move {
            // An io::Error converts with `?` by its kind.
            let text = tokio::fs::read_to_string(path).await?;
            Ok(text)
        })
        .register_stream("read_i64", |_ctx, frame: DataFrame| async move {
            Ok(DataFrame::new().with(frame.reader().read_i64()?))
        })
        .register_console("hit", |ctx, _text: String| async move {
            let hits = ctx.app_state::<Hits>()?;
            Ok((hits.0.fetch_add(1, Ordering::SeqCst) + 1).to_string())
        })
        .register_console("missing_state", |ctx, _text: String| async move {
            ctx.app_state::<Missing>()?;
            Ok(String::new())
        })
        .register_stream("peers", |ctx, _frame: DataFrame| async move {
            let server = ctx
                .server()
                .ok_or_else(|| Status::internal("no server in the context"))?;
            let mut ids: Vec<u64> = server.peers().iter().map(zs::Peer::id).collect();
            ids.sort_unstable();
            Ok(DataFrame::new()
                .with(server.connection_count() as u64)
                .with(ids.contains(&ctx.peer().id()))
                .with(ids)
                .with(server.local_addr().to_string()))
        })
        .register_console("ask_client", |ctx, text: String| async move {
            // A failed call to the client passes the client's status through `?`.
            let answer = ctx.peer().call_console("client_side", &text).await?;
            Ok(answer)
        })
        .install(Greeter { greeting: "hello" });
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

fn remote(error: CallError) -> Status {
    match error {
        CallError::Remote(status) => status,
        other => panic!("expected a remote status, got {other:?}"),
    }
}

#[tokio::test]
async fn a_handler_status_reaches_a_client_with_code_message_and_details() {
    let (server, addr) = server().await;
    let client = Client::connect(addr).await.unwrap();

    let error = client
        .call_stream("lookup", &DataFrame::new().with("alice"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(&lookup_failure()));
    let status = remote(error);
    assert_eq!(status.code(), StatusCode::NOT_FOUND);
    assert_eq!(status.message(), "no user named alice");
    assert_eq!(status.details(), lookup_failure().details());
    let mut details = status.details().unwrap().reader();
    assert_eq!(details.read_string().unwrap(), "alice");
    assert_eq!(details.read_i64().unwrap(), 7);

    // The same status from a console command.
    let error = client
        .call_console("lookup_text", "alice")
        .await
        .unwrap_err();
    assert_eq!(error, CallError::Remote(lookup_failure()));

    // Without details, none arrive.
    let status = remote(client.call_console("plain_failure", "").await.unwrap_err());
    assert_eq!(status, Status::permission_denied("not you"));
    assert!(status.details().is_none());

    // Success is unaffected.
    let frame = DataFrame::new().with("bob");
    assert_eq!(client.call_stream("lookup", &frame).await.unwrap(), frame);
    assert_eq!(
        client.call_console("lookup_text", "bob").await.unwrap(),
        "bob"
    );
    server.shutdown().await;
}

#[test]
fn a_handler_status_reaches_a_blocking_client_with_code_message_and_details() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, addr) = runtime.block_on(server());
    let client = BlockingClient::connect(addr).unwrap();

    let error = client
        .call_stream("lookup", &DataFrame::new().with("alice"))
        .unwrap_err();
    let status = remote(error);
    assert_eq!(status.code(), StatusCode::NOT_FOUND);
    assert_eq!(status.message(), "no user named alice");
    assert_eq!(status.details(), lookup_failure().details());
    assert_eq!(status, lookup_failure());

    let error = client.call_console("lookup_text", "alice").unwrap_err();
    assert_eq!(error, CallError::Remote(lookup_failure()));

    let error = client
        .call_console_timeout("plain_failure", "", Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(
        error,
        CallError::Remote(Status::permission_denied("not you"))
    );
    assert_eq!(client.call_console("lookup_text", "bob").unwrap(), "bob");
    drop(client);
    runtime.block_on(server.shutdown());
}

#[tokio::test]
async fn errors_convert_with_question_mark_by_meaning() {
    let (server, addr) = server().await;
    let client = Client::connect(addr).await.unwrap();

    // io::ErrorKind::NotFound -> NOT_FOUND.
    let missing = std::env::temp_dir().join(format!("zs-status-missing-{}", std::process::id()));
    let status = remote(
        client
            .call_console("open", missing.to_str().unwrap())
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code(), StatusCode::NOT_FOUND, "{status}");

    // A DataFrame read error -> INVALID_ARGUMENT.
    let status = remote(
        client
            .call_stream("read_i64", &DataFrame::new().with("seven"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code(), StatusCode::INVALID_ARGUMENT, "{status}");
    assert_eq!(status.message(), "value 0 is string, not i64");

    // A failed call to another peer passes its status (details included) through.
    let mut builder = Client::builder();
    builder.register_console("client_side", |_ctx, text: String| async move {
        Err(Status::permission_denied(format!("client refuses {text}"))
            .with_details(DataFrame::new().with(text)))
    });
    let client = builder.connect(addr).await.unwrap();
    let error = client.call_console("ask_client", "x").await.unwrap_err();
    assert_eq!(
        error,
        CallError::Remote(
            Status::permission_denied("client refuses x").with_details(DataFrame::new().with("x"))
        )
    );
    server.shutdown().await;
}

#[tokio::test]
async fn app_state_is_shared_and_a_missing_type_is_internal() {
    let (server, addr) = server().await;
    let first = Client::connect(addr).await.unwrap();
    let second = Client::connect(addr).await.unwrap();
    // One value for every connection.
    assert_eq!(first.call_console("hit", "").await.unwrap(), "1");
    assert_eq!(second.call_console("hit", "").await.unwrap(), "2");
    assert_eq!(first.call_console("hit", "").await.unwrap(), "3");

    let status = remote(first.call_console("missing_state", "").await.unwrap_err());
    assert_eq!(status.code(), StatusCode::INTERNAL);
    assert!(status.message().contains("Missing"), "{status}");
    // The connection still serves.
    assert_eq!(first.call_console("hit", "").await.unwrap(), "4");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_has_app_state_but_no_server() {
    let (server, addr) = server().await;
    let mut builder = Client::builder();
    builder
        .with_state(Hits(AtomicU64::new(41)))
        .register_console("client_probe", |ctx, _text: String| async move {
            let hits = ctx.app_state::<Hits>()?;
            let hits = hits.0.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(format!("{hits} {}", ctx.server().is_none()))
        });
    let _client = builder.connect(addr).await.unwrap();
    for _ in 0..100 {
        if server.connection_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let peers = server.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].call_console("client_probe", "").await.unwrap(),
        "42 true"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ctx_server_lists_the_peers() {
    let (server, addr) = server().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connect(addr).await.unwrap());
    }
    for _ in 0..100 {
        if server.connection_count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut expected: Vec<u64> = server.peers().iter().map(zs::Peer::id).collect();
    expected.sort_unstable();
    assert_eq!(expected.len(), 3);
    for client in &clients {
        let reply = client
            .call_stream("peers", &DataFrame::new())
            .await
            .unwrap();
        let mut reader = reply.reader();
        assert_eq!(reader.read_u64().unwrap(), 3);
        assert!(reader.read_bool().unwrap(), "the caller is among the peers");
        assert_eq!(reader.read::<Vec<u64>>().unwrap(), expected);
        assert_eq!(reader.read_string().unwrap(), addr.to_string());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_installed_service_answers_under_its_namespace() {
    let (server, addr) = server().await;
    let client = Client::connect(addr).await.unwrap();
    assert_eq!(
        client.call_console("greeter.hello", "alice").await.unwrap(),
        "hello, alice"
    );
    let reply = client
        .call_stream("greeter.command", &DataFrame::new())
        .await
        .unwrap();
    assert_eq!(reply.reader().read_string().unwrap(), "greeter.command");
    assert_eq!(
        client.call_console("greeter.hello", "").await.unwrap_err(),
        CallError::Remote(Status::invalid_argument("a name, please"))
    );
    // Only under the namespace.
    let error = client.call_console("hello", "alice").await.unwrap_err();
    assert!(error.is_unknown_command(), "{error:?}");
    assert_eq!(error.status().unwrap().code(), StatusCode::UNIMPLEMENTED);
    server.shutdown().await;
}

#[tokio::test]
async fn a_service_installed_on_a_client_answers_the_server() {
    let (server, addr) = server().await;
    let mut builder = Client::builder();
    builder.install(Greeter { greeting: "hi" });
    let _client = builder.connect(addr).await.unwrap();
    for _ in 0..100 {
        if server.connection_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let peer = server.peers().pop().unwrap();
    assert_eq!(
        peer.call_console("greeter.hello", "server").await.unwrap(),
        "hi, server"
    );
    server.shutdown().await;
}
