//! The tarpc peer of `zs-bench rpc`: the same echo (a `String` in, the same out) over tarpc
//! 0.38 — bincode over length-delimited TCP, unencrypted — with the same connections,
//! requests in flight and payload as the zserver run. A user who would pick tarpc instead
//! compares against this (issue 18).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tarpc::server::Channel;
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio::net::{TcpListener, TcpStream};

use crate::load::rpc::RpcLoad;
use crate::load::{Measurement, Window, micros, new_histogram, run_window};

/// The service: one call.
#[tarpc::service]
pub trait Echo {
    /// Returns `text`.
    async fn echo(text: String) -> String;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: tarpc::context::Context, text: String) -> String {
        text
    }
}

/// A length-delimited bincode transport over `stream`, Nagle off (as zserver's).
fn transport<Item, SinkItem>(
    stream: TcpStream,
) -> tarpc::serde_transport::Transport<TcpStream, Item, SinkItem, Bincode<Item, SinkItem>>
where
    Item: for<'de> serde::Deserialize<'de>,
    SinkItem: serde::Serialize,
{
    let _ = stream.set_nodelay(true);
    tarpc::serde_transport::new(
        Framed::new(stream, LengthDelimitedCodec::new()),
        Bincode::default(),
    )
}

/// Runs a tarpc echo server in this process and measures `load` against it.
pub async fn measure(load: &RpcLoad) -> anyhow::Result<Measurement> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let channel = tarpc::server::BaseChannel::with_defaults(transport(stream));
            tokio::spawn(
                channel
                    .execute(EchoServer.serve())
                    .for_each(|response| async move {
                        // Every request concurrently, as zserver's handlers run.
                        tokio::spawn(response);
                    }),
            );
        }
    });
    let mut clients = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let stream = TcpStream::connect(addr).await?;
        let client = EchoClient::new(tarpc::client::Config::default(), transport(stream)).spawn();
        clients.push(client);
    }
    let clients = Arc::new(clients);
    let text = "x".repeat(load.payload.max(1));
    let in_flight = load.in_flight;
    let measurement = run_window(load.seconds, load.connections, |index, window| {
        let clients = clients.clone();
        let text = text.clone();
        async move {
            let client = clients.get(index).context("no client")?.clone();
            let loops = (0..in_flight).map(|_| calls(client.clone(), text.clone(), window.clone()));
            let mut requests = 0;
            let mut latency = new_histogram()?;
            for result in futures_util::future::join_all(loops).await {
                let (count, histogram) = result?;
                requests += count;
                latency.add(&histogram).context("histogram")?;
            }
            Ok((requests, latency))
        }
    })
    .await?;
    server.abort();
    Ok(measurement)
}

/// One of a connection's in-flight loops: a call, its answer, the next.
async fn calls(
    client: EchoClient,
    text: String,
    window: Arc<Window>,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut latency = new_histogram()?;
    let mut requests = 0u64;
    while !window.stopping() {
        let started = Instant::now();
        let reply = client
            .echo(tarpc::context::current(), text.clone())
            .await
            .context("tarpc echo")?;
        anyhow::ensure!(
            reply.len() == text.len(),
            "tarpc echoed {} bytes",
            reply.len()
        );
        if window.counts() {
            requests += 1;
            latency.saturating_record(micros(started.elapsed()));
        }
    }
    Ok((requests, latency))
}
