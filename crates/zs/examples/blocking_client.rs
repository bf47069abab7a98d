//! `BlockingClient` from plain `fn main()`: no async runtime in the client code, calls that
//! block until their reply. The server runs on a background thread with a tokio runtime of
//! its own (as it would in another process). Then several std threads call at once, through
//! one shared client and through a client each.
//!
//! ```sh
//! cargo run -p zs --example blocking_client
//! ```
//!
//! ZServer4D: `WaitSendConsoleCmd` / `WaitSendStreamCmd`, and `43.asyncClient` (a client
//! used from worker threads).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zs::{BlockingClient, DataFrame, Server};

/// Threads calling at once, and calls each makes.
const THREADS: usize = 4;
const CALLS: usize = 250;

/// Calls counted by the server, shared with its handlers.
struct Hits(AtomicU64);

/// The server's thread: its address, a sender that stops it, and the thread to join.
struct ServerThread {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Starts the server on a thread and runtime of its own.
fn start_server() -> Result<ServerThread, Box<dyn std::error::Error>> {
    let (ready, address) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = ready.send(Err(error.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            let mut server = match Server::bind("127.0.0.1:0").await {
                Ok(server) => server,
                Err(error) => {
                    let _ = ready.send(Err(error.to_string()));
                    return;
                }
            };
            server.with_state(Hits(AtomicU64::new(0)));
            server
                .register_console("echo", |ctx, text: String| async move {
                    ctx.app_state::<Hits>()?.0.fetch_add(1, Ordering::Relaxed);
                    Ok(text)
                })
                .register_stream("add", |ctx, input: DataFrame| async move {
                    ctx.app_state::<Hits>()?.0.fetch_add(1, Ordering::Relaxed);
                    let mut args = input.reader();
                    let (a, b) = (args.read_i64()?, args.read_i64()?);
                    Ok(DataFrame::new().with(a + b))
                })
                .register_direct_console("note", |_ctx, text: String| async move {
                    println!("  server: one-way note {text:?}");
                    Ok(())
                })
                .register_console("hits", |ctx, _text: String| async move {
                    Ok(ctx
                        .app_state::<Hits>()?
                        .0
                        .load(Ordering::Relaxed)
                        .to_string())
                });
            let Ok(addr) = server.local_addr() else {
                let _ = ready.send(Err("no local address".to_owned()));
                return;
            };
            let handle = server.spawn();
            let _ = ready.send(Ok(addr));
            let _ = stopped.await;
            handle.shutdown().await;
        });
    });
    let addr = address.recv()??;
    Ok(ServerThread { addr, stop, thread })
}

/// `CALLS` echo calls on `client`; returns how many came back right.
fn hammer(client: &BlockingClient, thread: usize) -> Result<usize, zs::CallError> {
    let mut right = 0;
    for call in 0..CALLS {
        let text = format!("thread {thread} call {call}");
        if client.call_console("echo", &text)? == text {
            right += 1;
        }
    }
    Ok(right)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = start_server()?;
    let addr = server.addr;
    println!("server on {addr} (its own thread and runtime)");

    // Plain blocking calls.
    let client = BlockingClient::connect(addr)?;
    println!("console: {}", client.call_console("echo", "hello")?);
    let sum = client.call_stream("add", &DataFrame::new().with(40i64).with(2i64))?;
    println!("stream: 40 + 2 = {}", sum.reader().read_i64()?);
    client.send_direct_console("note", "sent without waiting for a reply")?;
    let answer = client.call_console_timeout("echo", "with a timeout", Duration::from_secs(1))?;
    println!("console with a 1 s timeout: {answer}");

    // One client shared by several threads: their calls are in flight together on one
    // connection, each reply reaching its own caller.
    let shared = Arc::new(client);
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let client = shared.clone();
            std::thread::spawn(move || hammer(&client, thread))
        })
        .collect();
    let mut right = 0;
    for thread in threads {
        right += thread.join().map_err(|_| "a calling thread panicked")??;
    }
    println!(
        "{THREADS} threads, one shared client: {right} of {} replies right, {:.0} calls/s",
        THREADS * CALLS,
        right as f64 / started.elapsed().as_secs_f64()
    );

    // A client per thread: one connection each.
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            std::thread::spawn(move || -> Result<usize, String> {
                let client = BlockingClient::connect(addr).map_err(|error| error.to_string())?;
                hammer(&client, thread).map_err(|error| error.to_string())
            })
        })
        .collect();
    let mut right = 0;
    for thread in threads {
        right += thread.join().map_err(|_| "a calling thread panicked")??;
    }
    println!(
        "{THREADS} threads, a client each:  {right} of {} replies right, {:.0} calls/s",
        THREADS * CALLS,
        right as f64 / started.elapsed().as_secs_f64()
    );
    println!("server counted {} calls", shared.call_console("hits", "")?);

    drop(shared);
    // Stop the server gracefully and wait for its thread.
    let _ = server.stop.send(());
    server
        .thread
        .join()
        .map_err(|_| "the server thread panicked")?;
    Ok(())
}
