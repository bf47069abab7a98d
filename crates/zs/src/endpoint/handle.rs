//! [`ServerHandle`] controls a running server; [`ServerRef`] is the non-owning view handlers
//! get.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;
use tracing::Instrument;
use zs_wire::DataFrame;
use zs_wire::handshake::Fingerprint;

use crate::dispatch::stats::CommandStats;
use crate::endpoint::peer::Peer;
use crate::endpoint::server::Shared;
use crate::error::SendError;

/// Controls a running server: everything a [`ServerRef`] offers (peers, broadcast,
/// statistics; reached through `Deref`), plus [`shutdown`](Self::shutdown). Dropping the
/// handle stops the server.
pub struct ServerHandle<S = ()> {
    server: ServerRef<S>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

/// A running server as its handlers see it ([`Context::server`](crate::Context::server)):
/// peers, broadcast, statistics. Cheap to clone; unlike [`ServerHandle`], dropping it does
/// not stop the server.
pub struct ServerRef<S = ()> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S> std::fmt::Debug for ServerHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.server.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRef")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl<S> std::ops::Deref for ServerHandle<S> {
    type Target = ServerRef<S>;

    fn deref(&self) -> &ServerRef<S> {
        &self.server
    }
}

impl<S> ServerRef<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>) -> Self {
        Self { shared }
    }
}

impl<S: Send + Sync + 'static> ServerRef<S> {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Every connected peer.
    pub fn peers(&self) -> Vec<Peer<S>> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The peer with id `id`, if connected.
    pub fn peer(&self, id: u64) -> Option<Peer<S>> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }

    /// The fingerprint of the server's static key, which clients may pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.shared.keypair.fingerprint()
    }

    /// Serves one more connection over an already connected byte stream — any `AsyncRead +
    /// AsyncWrite` (an in-memory pipe, a virtual stream of a multiplexed link) — exactly as
    /// an accepted TCP connection: handshake, limits, hooks, shutdown. `remote_addr` and
    /// `local_addr` are what its [`Peer`] reports.
    pub fn serve_stream<IO>(&self, stream: IO, remote_addr: SocketAddr, local_addr: SocketAddr)
    where
        IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if self.shared.stop_accepting.is_cancelled() {
            return;
        }
        let shared = self.shared.clone();
        let permit = self.shared.permits.clone().try_acquire_owned().ok();
        let span = tracing::info_span!("connection", peer = %remote_addr);
        self.shared.tasks.spawn(
            async move {
                super::serve::serve_stream(stream, remote_addr, local_addr, shared, permit).await;
            }
            .instrument(span),
        );
    }

    /// Number of connected peers.
    pub fn connection_count(&self) -> usize {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Number of StableIO sessions held: connected ones and ones waiting for their client
    /// to resume (each is also one connection while its client has not given up).
    pub fn stable_session_count(&self) -> usize {
        self.shared.stable_sessions.len()
    }

    /// Bytes the StableIO sessions hold in their buffers, counted against
    /// [`Config::stable_memory`](crate::Config::stable_memory).
    pub fn stable_memory_used(&self) -> usize {
        self.shared.stable_sessions.budget().used()
    }

    /// Sends a one-way console message to every peer; returns how many it was queued for.
    pub async fn broadcast_direct_console(
        &self,
        name: &str,
        text: &str,
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        for peer in self.peers() {
            match peer.send_direct_console(name, text).await {
                Ok(()) => sent += 1,
                Err(SendError::ConnectionClosed(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(sent)
    }

    /// Sends a one-way stream message to every peer; returns how many it was queued for.
    pub async fn broadcast_direct_stream(
        &self,
        name: &str,
        frame: &DataFrame,
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        for peer in self.peers() {
            match peer.send_direct_stream(name, frame).await {
                Ok(()) => sent += 1,
                Err(SendError::ConnectionClosed(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(sent)
    }

    /// Per-command statistics, sorted by command name.
    pub fn stats(&self) -> Vec<CommandStats> {
        self.shared.registry.stats()
    }

    /// The connections of the custom protocol ([`Server::serve_custom`](crate::Server::serve_custom))
    /// whose messages are `Out`.
    pub fn custom_peers<Out: Send + 'static>(&self) -> Vec<crate::custom::CustomPeer<Out>> {
        self.shared
            .custom_peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .filter_map(|peer| {
                peer.downcast_ref::<crate::custom::CustomPeer<Out>>()
                    .cloned()
            })
            .collect()
    }

    /// Queues `message` to every custom-protocol connection (ZServer4D's broadcast to all
    /// `cpCustom` IOs); a connection whose queue is full misses it. Returns how many got it.
    pub fn broadcast_custom<Out: Clone + Send + 'static>(&self, message: &Out) -> usize {
        self.custom_peers::<Out>()
            .iter()
            .filter(|peer| peer.try_send(message.clone()).is_ok())
            .count()
    }

    /// The server's counters: connections, refusals, handshakes, bytes, calls, StableIO,
    /// transfers (what the admin API and `/metrics` report).
    pub fn metrics(&self) -> crate::metrics::ServerMetrics {
        let peers = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.shared.counters.snapshot(
            peers.values().map(Peer::traffic),
            self.shared.stable_sessions.len(),
        )
    }
}

impl<S: Send + Sync + 'static> ServerHandle<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>, accept: JoinHandle<()>) -> Self {
        Self {
            server: ServerRef::new(shared),
            accept: Mutex::new(Some(accept)),
        }
    }

    /// A handle that does not stop the server when dropped.
    pub fn server_ref(&self) -> ServerRef<S> {
        self.server.clone()
    }

    /// Graceful shutdown: stop accepting, let every connection finish the requests in flight
    /// (new ones are refused with `ShuttingDown`), close them, and wait for all handlers —
    /// at most the configured `shutdown_grace`, after which remaining connections are
    /// closed hard.
    pub async fn shutdown(&self) {
        self.server.shared.stop_accepting.cancel();
        let accept = self
            .accept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(accept) = accept {
            let _ = accept.await;
        }
        self.server.shared.drain.cancel();
        self.server.shared.tasks.close();
        let grace = self.server.shared.config.shutdown_grace;
        if tokio::time::timeout(grace, self.server.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "shutdown grace elapsed; closing remaining connections"
            );
            self.server.shared.abort.cancel();
            // Connections end at once; a handler that never returns is left behind.
            if tokio::time::timeout(Duration::from_secs(1), self.server.shared.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("handlers still running after shutdown; leaving them");
            }
        }
        // StableIO drivers end once nothing can resume their sessions.
        self.server.shared.stable_sessions.clear();
    }
}

impl<S> Drop for ServerHandle<S> {
    fn drop(&mut self) {
        // A dropped handle stops the server rather than leaving it orphaned.
        self.server.shared.stop_accepting.cancel();
        self.server.shared.abort.cancel();
    }
}
