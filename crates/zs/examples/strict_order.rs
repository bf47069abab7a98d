//! Strict order: a client that asks for it (`Config::ordered_requests(true)`) sends console,
//! stream, one-way console, one-way stream and BigStream commands interleaved, many in
//! flight at once; the server records the order its handlers complete in, and it is the
//! send order. The same script from a default client (requests run concurrently) shows
//! what the option changes.
//!
//! ```sh
//! cargo run -p zs --example strict_order
//! ```
//!
//! ZServer4D: `26.StreamAndCommandSequence`. Transfers run beside the ordered queue (their
//! chunks arrive over time), so the script awaits each BigStream before sending on, as
//! `docs/ORDERING.md` advises; everything else is sent without waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use zs::{Client, DataFrame, Server, Status};

type Error = Box<dyn std::error::Error>;
type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + 'a>>;

/// Commands per batch, then one BigStream; `BATCHES` times.
const BATCH: usize = 60;
const BATCHES: usize = 4;

/// What the server's handlers did, in the order they finished.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    /// Waits a little (0..3 ms, by the command's number, so handlers would finish out of
    /// order if they ran at once), then records `label`.
    async fn record(&self, label: String) -> Result<(), Status> {
        let number: u64 = label
            .rsplit(' ')
            .next()
            .and_then(|number| number.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(number * 7 % 4)).await;
        self.0
            .lock()
            .map_err(|_| Status::internal("log poisoned"))?
            .push(label);
        Ok(())
    }

    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }
}

/// Sends the script: batches of every small kind in flight at once, each batch ending with
/// a call (whose reply, in strict order, means everything before it ran), then a BigStream.
/// Returns the labels in send order.
async fn run_script(client: &Client) -> Result<Vec<String>, Error> {
    let mut sent = Vec::new();
    let mut number = 0usize;
    for _ in 0..BATCHES {
        let mut batch: Vec<Sending<'_>> = Vec::new();
        for position in 0..BATCH {
            let kind = if position == BATCH - 1 { 0 } else { number % 4 };
            let label = match kind {
                0 => format!("console {number}"),
                1 => format!("stream {number}"),
                2 => format!("direct console {number}"),
                _ => format!("direct stream {number}"),
            };
            sent.push(label.clone());
            batch.push(match kind {
                0 => Box::pin(async move {
                    client.call_console("console", &label).await?;
                    Ok(())
                }),
                1 => Box::pin(async move {
                    client
                        .call_stream("stream", &DataFrame::new().with(label))
                        .await?;
                    Ok(())
                }),
                2 => Box::pin(async move {
                    client.send_direct_console("direct_console", &label).await?;
                    Ok(())
                }),
                _ => Box::pin(async move {
                    client
                        .send_direct_stream("direct_stream", &DataFrame::new().with(label))
                        .await?;
                    Ok(())
                }),
            });
            number += 1;
        }
        // `join_all` polls its futures first in list order: that is the send order.
        for result in join_all(batch).await {
            result?;
        }
        let label = format!("big stream {number}");
        sent.push(label.clone());
        let body = format!("{label}\n").repeat(20_000).into_bytes();
        let size = body.len() as u64;
        client
            .peer()
            .send_big_stream("big_stream", std::io::Cursor::new(body), Some(size))
            .await?;
        number += 1;
    }
    Ok(sent)
}

/// How many of the server's records are not where the send order puts them.
fn out_of_place(sent: &[String], seen: &[String]) -> usize {
    let moved = sent.iter().zip(seen).filter(|(a, b)| a != b).count();
    moved + sent.len().abs_diff(seen.len())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let log = Arc::new(Log::default());
    let mut server = Server::bind("127.0.0.1:0").await?;
    server.with_state(log.clone());
    server
        .register_console("console", |ctx, label: String| async move {
            ctx.app_state::<Arc<Log>>()?.record(label).await?;
            Ok(String::new())
        })
        .register_stream("stream", |ctx, input: DataFrame| async move {
            let label = input.reader().read_string()?;
            ctx.app_state::<Arc<Log>>()?.record(label).await?;
            Ok(DataFrame::new())
        })
        .register_direct_console("direct_console", |ctx, label: String| async move {
            ctx.app_state::<Arc<Log>>()?.record(label).await
        })
        .register_direct_stream("direct_stream", |ctx, input: DataFrame| async move {
            let label = input.reader().read_string()?;
            ctx.app_state::<Arc<Log>>()?.record(label).await
        })
        .register_big_stream("big_stream", |ctx, mut stream| async move {
            let mut first_line = None;
            while let Some(chunk) = stream.next_chunk().await? {
                if first_line.is_none() {
                    let text = String::from_utf8_lossy(&chunk);
                    first_line = text.lines().next().map(str::to_owned);
                }
            }
            let label = first_line.ok_or_else(|| Status::invalid_argument("empty stream"))?;
            ctx.app_state::<Arc<Log>>()?.record(label).await?;
            Ok(DataFrame::new().with(stream.completed()))
        });
    let addr = server.local_addr()?;
    let server = server.spawn();

    for ordered in [true, false] {
        let mut builder = Client::builder();
        builder.config_mut().ordered_requests(ordered);
        let client = builder.connect(addr).await?;
        let sent = run_script(&client).await?;
        // Closing waits for every request in flight; one-way messages may still be
        // finishing on a concurrent connection, so give them a moment.
        client.close().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let seen = log.take();
        let moved = out_of_place(&sent, &seen);
        if ordered {
            println!(
                "ordered client: {} commands ({BATCHES} BigStreams), server order == send order: {}",
                sent.len(),
                moved == 0
            );
            if moved != 0 {
                return Err(format!("{moved} commands ran out of order").into());
            }
            let first: Vec<_> = seen.iter().take(6).map(String::as_str).collect();
            println!("  first on the server: {}", first.join(", "));
        } else {
            println!(
                "default client: {} commands, {moved} finished out of send order (they ran concurrently)",
                sent.len()
            );
        }
    }
    server.shutdown().await;
    Ok(())
}
