//! # zs-cluster: the dispatch registry and the cluster
//!
//! ZServer4D's cloud dispatch server (`ManagerServer`): servers of each type register with
//! their addresses, capacity and load and keep the registration alive; clients ask for the
//! servers of a type, or the least-loaded one.
//!
//! - [`Registration`] and [`best`]: what a server says about itself, and the choice (lowest
//!   load relative to capacity among online servers, ties by id);
//! - [`Backend`]: where registrations live, with times to live and watches; [`Embedded`]
//!   is the default, one dispatcher, kept in its ZDB store across restarts; `Etcd`
//!   (feature `etcd`) keeps it in an etcd cluster shared by several dispatchers;
//! - [`DispatchService`]: the registry over zserver (`zs serve --dispatch DIR`);
//!   [`DispatchClient`] asks it; [`Registrar`] keeps a server registered;
//! - [`RegistryEntries`]: an entry pool for `zs::ClientBuilder::connect_pool` from HostQuery;
//! - [`ClusterNode`]: the decentralized cluster (ZServer4D's "one-click docking"): nodes
//!   that share a registry link to each other, and a user push or a room broadcast reaches
//!   the node where the user is;
//! - [`DistributedDb`]: one ZDB database split across nodes by record id, queries and
//!   aggregations merged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use zs_cluster::{DispatchClient, DispatchService, Embedded, Registrar, Registration};
//!
//! // The dispatcher.
//! let registry = Embedded::in_memory();
//! registry.spawn_reaper(Duration::from_millis(250));
//! let mut server = zs::Server::bind("127.0.0.1:4930").await?;
//! server.install(DispatchService::new(registry));
//! let dispatcher = server.spawn();
//!
//! // A server of type "logic" registers and stays registered.
//! let link = Arc::new(zs::Client::connect(dispatcher.local_addr()).await?);
//! let me = Registration::new("logic", "logic-1", ["10.0.0.5:4920".parse()?], 1000);
//! let registrar = Registrar::start(link.clone(), me, Duration::from_secs(3)).await?;
//! registrar.set_load(120);
//!
//! // A client asks where to go.
//! let best = DispatchClient::new(link.peer()).best("logic").await?;
//! println!("connect to {:?}", best.addresses);
//! # Ok(()) }
//! ```

mod backend;
mod client;
mod distributed;
mod entries;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "etcd")]
pub mod local_etcd;
mod node;
mod registration;
mod service;
mod watcher;

pub use backend::{Backend, Change, Embedded, REGISTRY_DATABASE};
pub use client::{DispatchClient, DispatchClientError, LoadHandle, Registrar};
pub use distributed::{DistributedDb, DistributedError, DistributedQuery};
pub use entries::RegistryEntries;
pub use error::ClusterError;
#[cfg(feature = "etcd")]
pub use etcd::{DEFAULT_PREFIX, Etcd};
pub use node::{CLUSTER_NAMESPACE, ClusterNode, MAX_ROOMS, NodeConfig};
pub use registration::{MAX_ADDRESSES, MAX_NAME_LEN, Registration, ServerState, best};
pub use service::{
    CHANGED, DispatchService, MAX_PATTERN_LEN, MAX_TTL, MAX_WATCHES_PER_CONNECTION, MIN_TTL,
    NAMESPACE,
};
pub use watcher::{DispatchWatcher, WATCH_QUEUE};
