//! Delayed response and an event bridge across three tiers: a client calls server A (the
//! "internet service"); A's handler parks its reply with a [`zs::Responder`], asks server B
//! (the "database service") over a server-to-server link, and answers when B does. A keeps
//! serving other calls meanwhile. Then an event goes the other way: a price changed in B
//! reaches A over the link and A forwards it to its own clients.
//!
//! ```sh
//! cargo run -p zs --example delayed_response
//! ```
//!
//! ZServer4D: `2.DelayModel` (`PauseResultSend` / `ContinueResultSend`) and
//! `49.AdvanceEventBridge` (DB service → internet service → client).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use zs::{Client, Peer, Server, ServerRef, Status};

/// A's link to B, shared with A's handlers.
struct Database(Peer);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // B, the database tier: a slow lookup, and price changes pushed to every connection.
    let prices: Arc<Mutex<HashMap<String, u64>>> = Arc::new(Mutex::new(HashMap::from([
        ("apple".to_owned(), 3),
        ("pear".to_owned(), 4),
    ])));
    let mut database = Server::bind("127.0.0.1:0").await?;
    let table = prices.clone();
    database.register_console("lookup", move |_ctx, item: String| {
        let table = table.clone();
        async move {
            // A slow query: the caller's connection keeps working while it waits.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let price = table
                .lock()
                .map_err(|_| Status::internal("price table poisoned"))?
                .get(&item)
                .copied()
                .ok_or_else(|| Status::not_found(format!("no price for {item}")))?;
            Ok(price.to_string())
        }
    });
    database.register_console("set_price", move |ctx, line: String| {
        let table = prices.clone();
        async move {
            let (item, price) = line
                .split_once('=')
                .ok_or_else(|| Status::invalid_argument("expected item=price"))?;
            table
                .lock()
                .map_err(|_| Status::internal("price table poisoned"))?
                .insert(item.to_owned(), price.parse()?);
            // The event: every connection of B (A's link among them) hears of it.
            let server = ctx
                .server()
                .ok_or_else(|| Status::internal("not a server"))?;
            let told = server
                .broadcast_direct_console("price_changed", &line)
                .await?;
            Ok(format!("set {line}, told {told} connection(s)"))
        }
    });
    let database = database.spawn();

    // A's link to B. Its client-side handler bridges B's events to A's clients; A's server
    // does not exist yet, so the handler finds it in a cell filled once A runs.
    let internet_ref: Arc<OnceLock<ServerRef>> = Arc::default();
    let bridge = internet_ref.clone();
    let mut link = Client::builder();
    link.register_direct_console("price_changed", move |_ctx, change: String| {
        let bridge = bridge.clone();
        async move {
            if let Some(internet) = bridge.get() {
                internet
                    .broadcast_direct_console("price_changed", &change)
                    .await?;
            }
            Ok(())
        }
    });
    let link = link.connect(database.local_addr()).await?;

    // A, the internet tier.
    let mut internet = Server::bind("127.0.0.1:0").await?;
    internet.with_state(Database(link.peer().clone()));
    internet.register_console("price", |ctx, item: String| {
        // Park the reply: the handler returns at once, the responder answers later.
        let (responder, reply) = zs::deferred::<String>();
        let database = ctx.app_state::<Database>().map(|db| db.0.clone());
        tokio::spawn(async move {
            let answer = match database {
                Ok(database) => database.call_console("lookup", &item).await,
                Err(status) => {
                    let _ = responder.fail(status);
                    return;
                }
            };
            // The caller may have gone meanwhile; then there is nobody to answer.
            let _ = match answer {
                Ok(price) => responder
                    .send(format!("{item} costs {price}"))
                    .map_err(|_| ()),
                Err(error) => responder.fail(error).map_err(|_| ()),
            };
        });
        reply
    });
    internet.register_console(
        "ping",
        |_ctx, _text: String| async move { Ok("pong".into()) },
    );
    let internet = internet.spawn();
    let _ = internet_ref.set(internet.server_ref());

    // The client talks to A only, and hears A's events.
    let (heard, mut hearing) = mpsc::unbounded_channel();
    let mut client = Client::builder();
    client.register_direct_console("price_changed", move |_ctx, change: String| {
        let heard = heard.clone();
        async move {
            heard.send(change)?;
            Ok(())
        }
    });
    let client = client.connect(internet.local_addr()).await?;

    // A parked call and a quick one, at the same time on one connection.
    let started = Instant::now();
    let (price, ping) = tokio::join!(
        async {
            let answer = client.call_console("price", "apple").await;
            (answer, started.elapsed())
        },
        async {
            let answer = client.call_console("ping", "").await;
            (answer, started.elapsed())
        },
    );
    println!("ping  -> {:?} after {:.0?} (not held up)", ping.0?, ping.1);
    println!(
        "price -> {:?} after {:.0?} (answered once B did)",
        price.0?, price.1
    );
    match client.call_console("price", "plum").await {
        Err(error) => println!("price of plum -> B's error, passed on by A: {error}"),
        Ok(answer) => println!("unexpected: {answer}"),
    }

    // The event bridge: an administrator changes a price at B; the client of A hears it.
    let admin = Client::connect(database.local_addr()).await?;
    println!(
        "admin at B -> {}",
        admin.call_console("set_price", "apple=5").await?
    );
    let change = tokio::time::timeout(Duration::from_secs(5), hearing.recv())
        .await?
        .ok_or("the client's handler is gone")?;
    println!("client of A heard: price_changed {change}");
    println!("price -> {}", client.call_console("price", "apple").await?);

    client.close().await;
    admin.close().await;
    internet.shutdown().await;
    link.close().await;
    database.shutdown().await;
    Ok(())
}
