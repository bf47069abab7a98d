//! [`ClusterNode`]: application servers that share a registry and find each other
//! (ZServer4D's "decentralized cluster, one-click docking"): a message to a user, or to a
//! room, reaches every node where that user or a room member is connected.
//!
//! Each node registers itself under the cluster's type with its addresses and its key's
//! fingerprint, follows the registry's changes, and keeps one encrypted connection to every
//! other node, pinned to the fingerprint the registry gives and made with its own static key
//! so the other side knows which node is calling: `__zs.cluster.*` commands are refused to
//! any key that is not a registered node's. A node that stops is dropped when its
//! registration expires (its time to live), and its links close.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use zs::{Context, DataFrame, Fingerprint, Namespace, Peer, Service, StaticKeypair, Status};
use zs_accounts::AccountService;

use crate::backend::lock;
use crate::{Backend, Change, ClusterError, Registration};

/// The namespace of the node-to-node commands.
pub const CLUSTER_NAMESPACE: &str = "__zs.cluster";

/// The node-to-node push to a user, and the room broadcast.
const USER: &str = "__zs.cluster.user";
const ROOM: &str = "__zs.cluster.room";

/// Most rooms a node keeps, and members per room on one node.
pub const MAX_ROOMS: usize = 100_000;

/// What a node is called and where it is reached.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The registry type the cluster's nodes register under (default `"node"`); nodes of
    /// one type form one cluster.
    pub cluster: String,
    /// This node's id, unique in the cluster.
    pub id: String,
    /// Where the other nodes reach this one (its server's addresses).
    pub addresses: Vec<SocketAddr>,
    /// The registration's time to live: how soon the others notice this node gone
    /// (default 3 s; refreshed every third of it).
    pub ttl: Duration,
}

impl NodeConfig {
    /// A node `id` reached at `addresses`, in cluster `"node"`, time to live 3 s.
    pub fn new(id: impl Into<String>, addresses: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            cluster: "node".to_owned(),
            id: id.into(),
            addresses: addresses.into_iter().collect(),
            ttl: Duration::from_secs(3),
        }
    }
}

struct Link {
    fingerprint: Fingerprint,
    client: Arc<zs::Client>,
}

struct Inner<S> {
    config: NodeConfig,
    keypair: StaticKeypair,
    backend: Arc<dyn Backend>,
    accounts: AccountService<S>,
    links: Mutex<HashMap<String, Link>>,
    rooms: Mutex<HashMap<String, Vec<Peer<S>>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl<S> Drop for Inner<S> {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// One node of a decentralized cluster. Install it on the node's server (its
/// `__zs.cluster` commands) beside the [`AccountService`] it was given, then
/// [`start`](Self::start) it. Clones share the node.
pub struct ClusterNode<S = ()> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for ClusterNode<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for ClusterNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("id", &self.inner.config.id)
            .finish_non_exhaustive()
    }
}

fn invalid(error: impl ToString) -> Status {
    Status::invalid_argument(error.to_string())
}

impl<S: Send + Sync + 'static> ClusterNode<S> {
    /// A node of the cluster kept in `backend`, serving the users of `accounts`, known to
    /// the others by `keypair` (its server's key: set the same one on the server).
    pub fn new(
        backend: impl Backend,
        accounts: AccountService<S>,
        keypair: StaticKeypair,
        config: NodeConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                keypair,
                backend: Arc::new(backend),
                accounts,
                links: Mutex::new(HashMap::new()),
                rooms: Mutex::new(HashMap::new()),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.inner.config.id
    }

    /// Registers this node, keeps the registration alive, and links to every other node
    /// as they come and go.
    pub async fn start(&self) -> Result<(), ClusterError> {
        let config = &self.inner.config;
        let mut me = Registration::new(
            config.cluster.clone(),
            config.id.clone(),
            config.addresses.iter().copied(),
            1,
        );
        me.fingerprint = Fingerprint::of_public_key(&self.inner.keypair.public()).to_string();
        // Follow first, so no node registered meanwhile is missed.
        let changes = self.inner.backend.watch();
        self.inner.backend.put(me.clone(), config.ttl).await?;
        let keep_alive = {
            let (backend, ttl) = (self.inner.backend.clone(), config.ttl);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(ttl / 3);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    if let Err(error) = backend.put(me.clone(), ttl).await {
                        tracing::warn!(%error, "cluster node keep-alive failed");
                    }
                }
            })
        };
        let follow = tokio::spawn(follow(Arc::downgrade(&self.inner), changes));
        lock(&self.inner.tasks).extend([keep_alive.abort_handle(), follow.abort_handle()]);
        for node in self.inner.backend.list(&config.cluster).await? {
            link(&self.inner, node).await;
        }
        Ok(())
    }

    /// The other nodes this one is linked to, by id.
    pub fn nodes(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.inner.links).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Sends `message` from `from` to user `to` on every node where `to` is logged in (a
    /// stream call of `command` with `[from, message]`, as [`AccountService::send_to_user`]);
    /// how many connections took it. When none did, it waits in this node's offline queue.
    pub async fn send_to_user(
        &self,
        from: &str,
        to: &str,
        command: &str,
        message: DataFrame,
    ) -> Result<zs_accounts::Delivery, zs_accounts::AccountError> {
        let frame = DataFrame::new()
            .with(to)
            .with(from)
            .with(command)
            .with(message.clone());
        // Every other node is asked (nodes keep no directory of each other's users), at
        // the same time as this node's own connections are reached.
        let remote = join_all(self.links().into_iter().map(|client| {
            let frame = frame.clone();
            async move {
                let answer = client.call_stream(USER, &frame).await.ok()?;
                let count = answer.reader().read_u64().ok()?;
                usize::try_from(count).ok()
            }
        }));
        let local = self
            .inner
            .accounts
            .deliver_online(from, to, command, &message);
        let (remote, local) = tokio::join!(remote, local);
        let remote: usize = remote.into_iter().flatten().sum();
        if local + remote > 0 {
            return Ok(zs_accounts::Delivery::Delivered(local + remote));
        }
        self.inner
            .accounts
            .send_to_user(from, to, command, message)
            .await
    }

    /// Adds `peer` (a connection to this node) to `room` until it leaves or disconnects.
    pub fn join(&self, room: &str, peer: &Peer<S>) -> Result<(), Status> {
        let mut rooms = lock(&self.inner.rooms);
        if !rooms.contains_key(room) && rooms.len() >= MAX_ROOMS {
            return Err(Status::resource_exhausted("too many rooms"));
        }
        let members = rooms.entry(room.to_owned()).or_default();
        members.retain(|member| !member.is_closed());
        if !members.iter().any(|member| member.id() == peer.id()) {
            members.push(peer.clone());
        }
        Ok(())
    }

    /// Takes `peer` out of `room`.
    pub fn leave(&self, room: &str, peer: &Peer<S>) {
        let mut rooms = lock(&self.inner.rooms);
        if let Some(members) = rooms.get_mut(room) {
            members.retain(|member| member.id() != peer.id() && !member.is_closed());
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Sends `frame` as a one-way `command` to every member of `room` on every node; how
    /// many members on this node it went to (the others are not waited for).
    pub async fn broadcast(&self, room: &str, command: &str, frame: &DataFrame) -> usize {
        let relay = DataFrame::new()
            .with(room)
            .with(command)
            .with(frame.clone());
        for client in self.links() {
            let _ = client.send_direct_stream(ROOM, &relay).await;
        }
        broadcast_locally(&self.inner, room, command, frame).await
    }

    fn links(&self) -> Vec<Arc<zs::Client>> {
        lock(&self.inner.links)
            .values()
            .map(|link| link.client.clone())
            .collect()
    }
}

async fn broadcast_locally<S: Send + Sync + 'static>(
    inner: &Inner<S>,
    room: &str,
    command: &str,
    frame: &DataFrame,
) -> usize {
    let members: Vec<Peer<S>> = lock(&inner.rooms)
        .get(room)
        .map(|members| members.iter().filter(|m| !m.is_closed()).cloned().collect())
        .unwrap_or_default();
    let mut sent = 0;
    for member in members {
        if member.send_direct_stream(command, frame).await.is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Links to `node` unless it is this one or already linked with the same key.
async fn link<S: Send + Sync + 'static>(inner: &Arc<Inner<S>>, node: Registration) {
    if node.id == inner.config.id {
        return;
    }
    let Ok(fingerprint) = node.fingerprint.parse::<Fingerprint>() else {
        tracing::warn!(node = %node.id, "a cluster node without a valid key fingerprint; not linked");
        return;
    };
    if lock(&inner.links)
        .get(&node.id)
        .is_some_and(|link| link.fingerprint == fingerprint && !link.client.peer().is_closed())
    {
        return;
    }
    let mut builder = zs::Client::builder();
    builder
        .config_mut()
        .connect_timeout(Duration::from_secs(3))
        .security()
        .keypair(inner.keypair.clone())
        .pin(fingerprint);
    match builder.connect(&node.addresses[..]).await {
        Ok(client) => {
            tracing::info!(node = %node.id, "linked to cluster node");
            lock(&inner.links).insert(
                node.id,
                Link {
                    fingerprint,
                    client: Arc::new(client),
                },
            );
        }
        Err(error) => tracing::warn!(node = %node.id, %error, "cannot link to cluster node"),
    }
}

/// Links to nodes as they register and drops the links of nodes that leave.
async fn follow<S: Send + Sync + 'static>(
    node: Weak<Inner<S>>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
) {
    loop {
        let change = changes.recv().await;
        let Some(inner) = node.upgrade() else { return };
        match change {
            Ok(Change::Up(registration)) if registration.service_type == inner.config.cluster => {
                link(&inner, registration).await;
            }
            Ok(Change::Down { service_type, id }) if service_type == inner.config.cluster => {
                if lock(&inner.links).remove(&id).is_some() {
                    tracing::info!(node = %id, "cluster node left");
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Missed changes: take the registry as it is now.
                if let Ok(nodes) = inner.backend.list(&inner.config.cluster).await {
                    lock(&inner.links).retain(|id, _| nodes.iter().any(|node| &node.id == id));
                    for registration in nodes {
                        link(&inner, registration).await;
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Refuses callers whose key is not a registered node's: the nodes this one is linked to
/// answer at once; the registry is asked only for a node not linked yet.
async fn check_caller<S: Send + Sync + 'static>(
    inner: &Inner<S>,
    ctx: &Context<S>,
) -> Result<(), Status> {
    let caller = ctx.peer().peer_fingerprint();
    if lock(&inner.links)
        .values()
        .any(|link| link.fingerprint == caller)
    {
        return Ok(());
    }
    let caller = caller.to_string();
    let nodes = inner
        .backend
        .list(&inner.config.cluster)
        .await
        .map_err(ClusterError::into_status)?;
    if nodes.iter().any(|node| node.fingerprint == caller) {
        Ok(())
    } else {
        Err(Status::permission_denied("not a node of this cluster"))
    }
}

impl<S: Send + Sync + 'static> Service<S> for ClusterNode<S> {
    fn namespace(&self) -> &str {
        CLUSTER_NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let node = self.clone();
        commands.register_stream("user", move |ctx: Context<S>, input: DataFrame| {
            let node = node.clone();
            async move {
                check_caller(&node.inner, &ctx).await?;
                let mut reader = input.reader();
                let to = reader.read_string().map_err(invalid)?;
                let from = reader.read_string().map_err(invalid)?;
                let command = reader.read_string().map_err(invalid)?;
                let message = reader.read_frame().map_err(invalid)?;
                let delivered = node
                    .inner
                    .accounts
                    .deliver_online(&from, &to, &command, &message)
                    .await;
                Ok(DataFrame::new().with(delivered as u64))
            }
        });
        commands.register_direct_stream("room", move |ctx: Context<S>, input: DataFrame| {
            let node = self.clone();
            async move {
                check_caller(&node.inner, &ctx).await?;
                let mut reader = input.reader();
                let room = reader.read_string().map_err(invalid)?;
                let command = reader.read_string().map_err(invalid)?;
                let frame = reader.read_frame().map_err(invalid)?;
                broadcast_locally(&node.inner, &room, &command, &frame).await;
                Ok(())
            }
        });
    }
}
