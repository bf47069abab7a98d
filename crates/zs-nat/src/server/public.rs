//! Public ports: each mapping's live state (its agents, its balancer, its port), the
//! listener opened while an agent serves the mapping, and the forwarding of each public
//! connection to an agent on a virtual stream of its own.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zs::mux::MuxLink;

use super::{AgentId, Shared, lock};
use crate::Secret;
use crate::balance::Balancer;
use crate::codec::{ControlMessage, RefuseReason, mapping_service};
use crate::link::Metered;
use crate::stats::{MappingCounters, MappingStats};

/// One configured mapping and its live state.
pub(super) struct Mapping {
    pub(super) name: String,
    pub(super) public: String,
    pub(super) token: Secret,
    pub(super) counters: Arc<MappingCounters>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) state: Mutex<MappingState>,
    /// Off: public connections are closed at once (counted refused); set by the operator.
    pub(super) enabled: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
pub(super) struct MappingState {
    balancer: Balancer<AgentId>,
    routes: HashMap<AgentId, MuxLink>,
    pub(super) port: Option<PublicPort>,
}

pub(super) struct PublicPort {
    pub(super) address: SocketAddr,
    stop: CancellationToken,
}

enum AttachError {
    AlreadyRegistered,
    Bind(io::Error),
}

impl Mapping {
    pub(super) fn lock(&self) -> MutexGuard<'_, MappingState> {
        lock(&self.state)
    }

    pub(super) fn stats(&self) -> MappingStats {
        let state = self.lock();
        let [total, active, bytes_in, bytes_out, refused] = self.counters.load();
        MappingStats {
            name: self.name.clone(),
            public: self.public.clone(),
            bound: state.port.as_ref().map(|port| port.address.to_string()),
            agents: state.routes.len(),
            connections_total: total,
            connections_active: active,
            bytes_in,
            bytes_out,
            refused,
            enabled: self.enabled.load(Ordering::Relaxed),
        }
    }

    /// Adds an agent; opens the public port if it is the first. Retries briefly when the
    /// port is still held by the accept loop that just closed it.
    pub(super) async fn attach(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        agent: AgentId,
        link: &MuxLink,
        weight: u16,
    ) -> Result<(SocketAddr, usize), (RefuseReason, String)> {
        let mut attempts = 0;
        loop {
            match self.try_attach(shared, agent, link, weight) {
                Ok(attached) => return Ok(attached),
                Err(AttachError::AlreadyRegistered) => {
                    return Err((
                        RefuseReason::AlreadyRegistered,
                        format!("mapping {:?} is already registered on this link", self.name),
                    ));
                }
                Err(AttachError::Bind(error))
                    if error.kind() == io::ErrorKind::AddrInUse && attempts < 20 =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(AttachError::Bind(error)) => {
                    return Err((
                        RefuseReason::PublicPortUnavailable,
                        format!("the server cannot open {}: {error}", self.public),
                    ));
                }
            }
        }
    }

    fn try_attach(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        agent: AgentId,
        link: &MuxLink,
        weight: u16,
    ) -> Result<(SocketAddr, usize), AttachError> {
        let mut state = self.lock();
        if state.routes.contains_key(&agent) {
            return Err(AttachError::AlreadyRegistered);
        }
        let address = match &state.port {
            Some(port) => port.address,
            None => {
                let listener = bind_public(&self.public).map_err(AttachError::Bind)?;
                let address = listener.local_addr().map_err(AttachError::Bind)?;
                let stop = shared.accepting.child_token();
                shared.tasks.spawn(accept_public(
                    self.clone(),
                    shared.clone(),
                    listener,
                    stop.clone(),
                ));
                info!(mapping = %self.name, %address, "public port opened");
                state.port = Some(PublicPort { address, stop });
                address
            }
        };
        state.balancer.insert(agent, u32::from(weight));
        state.routes.insert(agent, link.clone());
        Ok((address, state.routes.len()))
    }

    /// Removes an agent; closes the public port if it was the last. Connections forwarded
    /// to other agents are not touched.
    pub(super) fn detach(&self, agent: AgentId) {
        let mut state = self.lock();
        if state.routes.remove(&agent).is_none() {
            return;
        }
        state.balancer.remove(agent);
        if state.routes.is_empty()
            && let Some(port) = state.port.take()
        {
            port.stop.cancel();
            info!(mapping = %self.name, address = %port.address, "public port closed: no agent left");
        }
    }

    /// The agent for a new connection (counted active there), skipping `tried`.
    fn pick(&self, tried: &[AgentId]) -> Option<(AgentId, MuxLink)> {
        let mut state = self.lock();
        let agent = state.balancer.pick_excluding(tried)?;
        match state.routes.get(&agent) {
            Some(link) => Some((agent, link.clone())),
            None => {
                state.balancer.release(agent);
                None
            }
        }
    }
}

/// Counts a forwarded connection on its agent until dropped.
struct AgentLoad {
    mapping: Arc<Mapping>,
    agent: AgentId,
}

impl Drop for AgentLoad {
    fn drop(&mut self) {
        self.mapping.lock().balancer.release(self.agent);
    }
}

/// Counts a connection as active in its mapping until dropped.
struct ActiveConnection(Arc<MappingCounters>);

impl ActiveConnection {
    fn new(counters: &Arc<MappingCounters>) -> Self {
        counters.connections_total.fetch_add(1, Ordering::Relaxed);
        counters.connections_active.fetch_add(1, Ordering::Relaxed);
        Self(counters.clone())
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Binds a public port now (synchronously, so a failure is reported to the registering
/// agent).
fn bind_public(address: &str) -> io::Result<TcpListener> {
    let address = std::net::ToSocketAddrs::to_socket_addrs(address)?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolves to nothing",
            )
        })?;
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

async fn accept_public(
    mapping: Arc<Mapping>,
    shared: Arc<Shared>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let what = format!("the public port of mapping {:?}", mapping.name);
    while let Some((socket, peer)) = zs::transport::accept(&listener, &stop, &what).await {
        if !mapping.enabled.load(Ordering::Relaxed) {
            mapping.counters.refused.fetch_add(1, Ordering::Relaxed);
            debug!(mapping = %mapping.name, %peer, "mapping disabled; public connection closed");
            continue;
        }
        let Ok(permit) = mapping.permits.clone().try_acquire_owned() else {
            mapping.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(mapping = %mapping.name, %peer, "max_connections reached; public connection closed");
            continue;
        };
        shared.connections.spawn(forward_public(
            mapping.clone(),
            shared.open_timeout,
            socket,
            peer,
            permit,
        ));
    }
}

/// Forwards one public connection through an agent.
async fn forward_public(
    mapping: Arc<Mapping>,
    open_timeout: Duration,
    socket: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    let service = mapping_service(&mapping.name);
    let mut tried = Vec::new();
    let (_load, mut stream) = loop {
        let Some((agent, link)) = mapping.pick(&tried) else {
            mapping.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(mapping = %mapping.name, %peer, "no agent accepted the connection; closed");
            return;
        };
        let load = AgentLoad {
            mapping: mapping.clone(),
            agent,
        };
        match tokio::time::timeout(open_timeout, link.connect(&service)).await {
            Ok(Ok(stream)) => break (load, stream),
            Ok(Err(error)) => {
                debug!(mapping = %mapping.name, agent, %error, "agent did not take a connection");
            }
            Err(_) => {
                warn!(mapping = %mapping.name, agent, "agent did not take a connection in time");
            }
        }
        tried.push(agent);
    };
    let _active = ActiveConnection::new(&mapping.counters);
    let header = match (ControlMessage::Open { peer }).to_bytes() {
        Ok(header) => header,
        Err(error) => {
            warn!(%error, "cannot encode a stream header");
            return;
        }
    };
    if stream.write_all(&header).await.is_err() {
        return;
    }
    let mut public = Metered::new(socket, mapping.counters.clone());
    match crate::relay::relay(&mut public, &mut stream).await {
        Ok((to_service, to_user)) => {
            debug!(mapping = %mapping.name, %peer, to_service, to_user, "connection finished");
        }
        Err(error) => {
            debug!(mapping = %mapping.name, %peer, %error, "connection ended by an error");
        }
    }
}
