//! [`BlockingClient`]: the client for programs without an async runtime.

use std::future::IntoFuture;
use std::time::Duration;

use tokio::net::ToSocketAddrs;
use zs_wire::DataFrame;

use crate::error::{CallError, ConnectError, SendError};
use crate::{Client, ClientBuilder};

/// A [`Client`] driven by a private runtime, with blocking methods (ZServer4D's
/// `WaitSendConsoleCmd` / `WaitSendStreamCmd`).
///
/// The runtime has one worker thread, so the connection keeps answering pings and server
/// calls between your calls. Do not use it from inside an async runtime (it would block a
/// worker); use [`Client`] there.
///
/// ```no_run
/// let client = zs::BlockingClient::connect("127.0.0.1:4920")?;
/// println!("{}", client.call_console("echo", "hello")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BlockingClient {
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
}

impl BlockingClient {
    /// Connects with the default configuration.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Self, ConnectError> {
        Self::connect_with(ClientBuilder::new(), addr)
    }

    /// Connects with a configured builder (client-side commands run on the private runtime).
    pub fn connect_with(
        builder: ClientBuilder,
        addr: impl ToSocketAddrs,
    ) -> Result<Self, ConnectError> {
        Self::start(|runtime| runtime.block_on(builder.connect(addr)))
    }

    /// Connects with StableIO ([`ClientBuilder::connect_stable`]): the connection survives
    /// dropped TCP connections, reconnecting on the private runtime.
    pub fn connect_stable_with(
        builder: ClientBuilder,
        addr: impl ToSocketAddrs,
    ) -> Result<Self, ConnectError> {
        Self::start(|runtime| runtime.block_on(builder.connect_stable(addr)))
    }

    fn start(
        connect: impl FnOnce(&tokio::runtime::Runtime) -> Result<Client, ConnectError>,
    ) -> Result<Self, ConnectError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zs-blocking-client")
            .enable_all()
            .build()?;
        let client = connect(&runtime)?;
        Ok(Self {
            client: Some(client),
            runtime,
        })
    }

    fn client(&self) -> &Client {
        // Only `Drop` takes it out.
        self.client.as_ref().expect("client present until drop")
    }

    /// Calls a console command and waits for the reply (default timeout).
    pub fn call_console(&self, name: &str, text: &str) -> Result<String, CallError> {
        self.runtime
            .block_on(self.client().call_console(name, text).into_future())
    }

    /// Calls a console command with an explicit timeout.
    pub fn call_console_timeout(
        &self,
        name: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<String, CallError> {
        self.runtime.block_on(
            self.client()
                .call_console(name, text)
                .timeout(timeout)
                .into_future(),
        )
    }

    /// Calls a stream command and waits for the reply (default timeout).
    pub fn call_stream(&self, name: &str, frame: &DataFrame) -> Result<DataFrame, CallError> {
        self.runtime
            .block_on(self.client().call_stream(name, frame).into_future())
    }

    /// Calls a stream command with an explicit timeout.
    pub fn call_stream_timeout(
        &self,
        name: &str,
        frame: &DataFrame,
        timeout: Duration,
    ) -> Result<DataFrame, CallError> {
        self.runtime.block_on(
            self.client()
                .call_stream(name, frame)
                .timeout(timeout)
                .into_future(),
        )
    }

    /// Sends a one-way console message.
    pub fn send_direct_console(&self, name: &str, text: &str) -> Result<(), SendError> {
        self.runtime
            .block_on(self.client().send_direct_console(name, text))
    }

    /// Sends a one-way stream message.
    pub fn send_direct_stream(&self, name: &str, frame: &DataFrame) -> Result<(), SendError> {
        self.runtime
            .block_on(self.client().send_direct_stream(name, frame))
    }
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        // Drop the client inside the runtime so its close reaches the driver task.
        if let Some(client) = self.client.take() {
            let _guard = self.runtime.enter();
            drop(client);
        }
    }
}
