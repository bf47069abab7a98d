//! A chat room (ZServer4D's ChatHome demo) on one machine, scripted: users register and log
//! in, talk in a room, send a private message to a user who is offline (it reaches her at
//! her next login), and one user's connection is cut and resumed with StableIO without
//! losing the room's messages.
//!
//! ```sh
//! cargo run -p zs-accounts --example chat_home
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use zs::{Client, DataFrame, Requirement, Status};
use zs_accounts::{AccountClient, AccountService, Accounts, AccountsConfig, Delivery};

/// Who is in which room.
type Rooms = Arc<Mutex<HashMap<String, HashSet<String>>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The chat server: accounts, and `chat.join`, `chat.say`, `chat.private` for logged-in
/// users.
async fn chat_server(
    store: Arc<zs_db::Store>,
) -> Result<zs::ServerHandle, Box<dyn std::error::Error>> {
    let service: AccountService =
        AccountService::new(Accounts::open(store)?, AccountsConfig::default());
    let rooms: Rooms = Arc::default();
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    server.install(service.clone());
    let joined = rooms.clone();
    server.register_console("chat.join", move |ctx, room: String| {
        let rooms = joined.clone();
        async move {
            let user = ctx.require_user()?;
            lock(&rooms)
                .entry(room.clone())
                .or_default()
                .insert(user.name().to_owned());
            Ok(format!("{} joined {room}", user.name()))
        }
    });
    let (said, accounts) = (rooms.clone(), service.clone());
    server.register_stream("chat.say", move |ctx, input: DataFrame| {
        let (rooms, accounts) = (said.clone(), accounts.clone());
        async move {
            let user = ctx.require_user()?;
            let mut reader = input.reader();
            let room = reader.read_string()?;
            let text = reader.read_string()?;
            let members: Vec<String> = lock(&rooms)
                .get(&room)
                .ok_or_else(|| Status::not_found(format!("no room {room:?}")))?
                .iter()
                .filter(|member| *member != user.name())
                .cloned()
                .collect();
            let line = DataFrame::new()
                .with(room.as_str())
                .with(user.name())
                .with(text);
            let mut reached = 0u64;
            for member in members {
                // Room messages go to whoever is there now; they are not kept.
                for peer in accounts.connections_of(&member) {
                    if peer.call_stream("chat.room", &line).await.is_ok() {
                        reached += 1;
                    }
                }
            }
            Ok(DataFrame::new().with(reached))
        }
    });
    server.register_stream("chat.private", move |ctx, input: DataFrame| {
        let accounts = service.clone();
        async move {
            let user = ctx.require_user()?;
            let mut reader = input.reader();
            let to = reader.read_string()?;
            let text = reader.read_string()?;
            let delivery = accounts
                .send_to_user(
                    user.name(),
                    &to,
                    "chat.private",
                    DataFrame::new().with(text),
                )
                .await
                .map_err(zs_accounts::AccountError::into_status)?;
            Ok(DataFrame::new().with(delivery == Delivery::Queued))
        }
    });
    server.commands_mut().require("chat.*", Requirement::Login);
    Ok(server.spawn())
}

/// A chat client that prints what reaches it and hands it on to `seen`.
async fn chat_client(
    name: &'static str,
    addr: SocketAddr,
    stable: bool,
    seen: mpsc::UnboundedSender<String>,
) -> Result<Client, Box<dyn std::error::Error>> {
    let mut builder = Client::builder();
    let room_seen = seen.clone();
    builder.register_stream("chat.room", move |_ctx, line: DataFrame| {
        let seen = room_seen.clone();
        async move {
            let mut reader = line.reader();
            let (room, from, text) = (
                reader.read_string()?,
                reader.read_string()?,
                reader.read_string()?,
            );
            let line = format!("[{name}] #{room} {from}: {text}");
            println!("{line}");
            let _ = seen.send(line);
            Ok(DataFrame::new())
        }
    });
    builder.register_stream("chat.private", move |_ctx, message: DataFrame| {
        let seen = seen.clone();
        async move {
            let mut reader = message.reader();
            let from = reader.read_string()?;
            let text = reader.read_frame()?.reader().read_string()?;
            let line = format!("[{name}] private from {from}: {text}");
            println!("{line}");
            let _ = seen.send(line);
            Ok(DataFrame::new())
        }
    });
    if stable {
        builder.config_mut().stable_config(
            zs_wire::stable::StableConfig::default()
                .with_reconnect_initial(Duration::from_millis(20))
                .with_reconnect_max(Duration::from_millis(200)),
        );
        Ok(builder.connect_stable(addr).await?)
    } else {
        Ok(builder.connect(addr).await?)
    }
}

/// A TCP relay whose connections can be cut, standing in for a network that drops.
struct Relay {
    addr: SocketAddr,
    pipes: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(to: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let pipes: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let held = pipes.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                lock(&held).push(pipe.abort_handle());
            }
        });
        Ok(Self { addr, pipes })
    }

    /// Drops every connection through the relay.
    fn cut(&self) {
        for pipe in lock(&self.pipes).drain(..) {
            pipe.abort();
        }
    }
}

async fn expect(seen: &mut mpsc::UnboundedReceiver<String>, wanted: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(10), seen.recv()).await {
        Ok(Some(line)) if line.contains(wanted) => Ok(()),
        Ok(Some(line)) => Err(format!("expected {wanted:?}, got {line:?}")),
        _ => Err(format!("{wanted:?} did not arrive")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(zs_db::Store::open(dir.path())?);
    let server = chat_server(store).await?;
    let relay = Relay::start(server.local_addr()).await?;

    let (ann_seen, mut ann_lines) = mpsc::unbounded_channel();
    let (bob_seen, _bob_lines) = mpsc::unbounded_channel();
    let (cat_seen, mut cat_lines) = mpsc::unbounded_channel();
    // Ann's connection goes through the relay, with StableIO.
    let ann = chat_client("ann", relay.addr, true, ann_seen).await?;
    let bob = chat_client("bob", server.local_addr(), false, bob_seen).await?;
    for (client, name) in [(&ann, "ann"), (&bob, "bob")] {
        let accounts = AccountClient::new(client.peer());
        accounts
            .register(name, &format!("{name}'s password"))
            .await?;
        accounts.login(name, &format!("{name}'s password")).await?;
        println!(
            "{}",
            client.peer().call_console("chat.join", "lobby").await?
        );
    }
    // Cat has an account but is not here.
    {
        let cat = chat_client(
            "cat",
            server.local_addr(),
            false,
            mpsc::unbounded_channel().0,
        )
        .await?;
        AccountClient::new(cat.peer())
            .register("cat", "cat's password")
            .await?;
        cat.close().await;
    }

    let say = |client: &Client, text: &str| {
        let frame = DataFrame::new().with("lobby").with(text);
        let peer = client.peer().clone();
        async move { peer.call_stream("chat.say", &frame).await }
    };
    say(&bob, "hello, lobby").await?;
    expect(&mut ann_lines, "bob: hello, lobby").await?;

    // The network drops Ann's connection; StableIO reconnects and resumes the session,
    // still logged in, and the room's next message reaches her.
    relay.cut();
    println!("(ann's connection cut)");
    say(&bob, "still there, ann?").await?;
    expect(&mut ann_lines, "bob: still there, ann?").await?;
    say(&ann, "yes, the cut went unnoticed").await?;

    // A private message to Cat, who is offline: it waits for her.
    let queued = ann
        .peer()
        .call_stream(
            "chat.private",
            &DataFrame::new().with("cat").with("see you at noon"),
        )
        .await?;
    println!(
        "private message to cat queued: {}",
        queued.reader().read_bool()?
    );
    let cat = chat_client("cat", server.local_addr(), false, cat_seen).await?;
    AccountClient::new(cat.peer())
        .login("cat", "cat's password")
        .await?;
    expect(&mut cat_lines, "private from ann: see you at noon").await?;

    println!("done");
    for client in [ann, bob, cat] {
        client.close().await;
    }
    server.shutdown().await;
    Ok(())
}
