//! [`Etcd`]: the registry kept in an etcd cluster, shared by several dispatchers.
//!
//! Each registration is one key, `<prefix><type>/<id>`, holding its JSON and attached to a
//! lease of the registration's time to live: a put refreshes the lease (the keep-alive), and
//! a server that stops refreshing vanishes when etcd expires the lease, whichever dispatcher
//! it talked to. Every dispatcher mirrors the prefix in memory (one range read, then a watch
//! from the revision after it), so lookups never wait for etcd and every dispatcher sees
//! every change within a watch round trip.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use crate::backend::{Change, hosts_matching, lock, of_type};
use crate::{Backend, ClusterError, Registration};

/// The key prefix [`Etcd`] uses unless told otherwise.
pub const DEFAULT_PREFIX: &str = "/zs/registry/";

/// How long one request to etcd may take before it is tried again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times a write is tried: a write that reached a member whose leader just died
/// waits for nothing, and the retry goes to the new leader (an election takes 1–2 s).
const ATTEMPTS: u32 = 4;

/// Between attempts to read the registry again after the watch broke.
const RESYNC_BACKOFF: Duration = Duration::from_millis(200);

fn storage(error: impl std::fmt::Display) -> ClusterError {
    ClusterError::Storage(format!("etcd: {error}"))
}

/// Runs `request` until it succeeds, [`ATTEMPTS`] times at most.
async fn retrying<T, F>(
    mut request: impl FnMut(Client) -> F,
    client: &Client,
) -> Result<T, etcd_client::Error>
where
    F: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut attempt = 1;
    loop {
        match request(client.clone()).await {
            Ok(answer) => return Ok(answer),
            Err(error) if attempt >= ATTEMPTS => return Err(error),
            Err(error) => {
                tracing::debug!(%error, attempt, "etcd request failed; trying again");
                attempt += 1;
                tokio::time::sleep(RESYNC_BACKOFF).await;
            }
        }
    }
}

/// A registration in the mirror, with the etcd revision that wrote it, so a late event
/// never overwrites a newer state.
struct Mirrored {
    registration: Registration,
    revision: i64,
}

/// A lease this dispatcher granted for a registration it was asked to keep.
#[derive(Clone)]
struct Held {
    lease: i64,
    ttl_seconds: i64,
    registration: Registration,
}

struct Inner {
    client: Client,
    prefix: String,
    mirror: Mutex<BTreeMap<(String, String), Mirrored>>,
    leases: Mutex<HashMap<(String, String), Held>>,
    changes: broadcast::Sender<Change>,
    sync: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.sync).take() {
            task.abort();
        }
    }
}

/// The registry in etcd (v3 API): registrations as keys under leases, liveness as lease
/// keep-alives, watches for changes. Several dispatchers on one etcd cluster and one
/// prefix share one registry; a dispatcher keeps answering from its mirror while etcd
/// elects a new leader, and catches up when the watch comes back. Clones share the
/// connection and the mirror.
///
/// etcd's times to live are whole seconds (a registration's is rounded up) and no shorter
/// than the cluster's minimum lease (about 2 s with etcd's default timing).
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn map_key(registration: &Registration) -> (String, String) {
    (registration.service_type.clone(), registration.id.clone())
}

impl Etcd {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port`, one per member)
    /// under [`DEFAULT_PREFIX`], and reads the registry.
    pub async fn connect<E: AsRef<str>>(endpoints: &[E]) -> Result<Self, ClusterError> {
        Self::connect_with_prefix(endpoints, DEFAULT_PREFIX).await
    }

    /// As [`connect`](Self::connect), with registrations under `prefix` (several
    /// registries can share one etcd cluster).
    pub async fn connect_with_prefix<E: AsRef<str>>(
        endpoints: &[E],
        prefix: &str,
    ) -> Result<Self, ClusterError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(REQUEST_TIMEOUT)
            // Notices a member that vanished without closing its connections. etcd refuses
            // pings more often than every 5 s.
            .with_keep_alive(Duration::from_secs(6), Duration::from_secs(3));
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(storage)?;
        let registry = Self {
            inner: Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                mirror: Mutex::new(BTreeMap::new()),
                leases: Mutex::new(HashMap::new()),
                changes: broadcast::channel(1024).0,
                sync: Mutex::new(None),
            }),
        };
        let revision = registry.resync().await?;
        let task = tokio::spawn(follow(Arc::downgrade(&registry.inner), revision));
        *lock(&registry.inner.sync) = Some(task.abort_handle());
        Ok(registry)
    }

    fn key(&self, service_type: &str, id: &str) -> String {
        format!("{}{service_type}/{id}", self.inner.prefix)
    }

    /// Reads the whole registry and makes the mirror equal to it; the revision read at.
    async fn resync(&self) -> Result<i64, ClusterError> {
        let mut client = self.inner.client.clone();
        let response = client
            .get(
                self.inner.prefix.as_str(),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(storage)?;
        let revision = response.header().map_or(0, |header| header.revision());
        let mut seen = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            if let Some(registration) = self.decode(kv.key(), kv.value()) {
                seen.push(map_key(&registration));
                self.apply_up(registration, kv.mod_revision());
            }
        }
        seen.sort_unstable();
        let gone: Vec<(String, String)> = lock(&self.inner.mirror)
            .iter()
            .filter(|(key, entry)| entry.revision <= revision && seen.binary_search(key).is_err())
            .map(|(key, _)| key.clone())
            .collect();
        for (service_type, id) in gone {
            self.apply_down(service_type, id, revision);
        }
        Ok(revision)
    }

    /// A registration from its key and value; `None` (and a warning) for anything else
    /// found under the prefix.
    fn decode(&self, key: &[u8], value: &[u8]) -> Option<Registration> {
        let parsed = serde_json::from_slice::<Registration>(value)
            .map_err(|error| error.to_string())
            .and_then(|registration| {
                registration.check()?;
                let expected = self.key(&registration.service_type, &registration.id);
                if key == expected.as_bytes() {
                    Ok(registration)
                } else {
                    Err("stored under another key".to_owned())
                }
            });
        match parsed {
            Ok(registration) => Some(registration),
            Err(error) => {
                tracing::warn!(key = %String::from_utf8_lossy(key), %error, "ignoring a registry entry");
                None
            }
        }
    }

    fn parse_key(&self, key: &[u8]) -> Option<(String, String)> {
        let key = std::str::from_utf8(key).ok()?;
        let (service_type, id) = key.strip_prefix(&self.inner.prefix)?.split_once('/')?;
        Some((service_type.to_owned(), id.to_owned()))
    }

    fn apply_up(&self, registration: Registration, revision: i64) {
        let key = map_key(&registration);
        let mut mirror = lock(&self.inner.mirror);
        if let Some(entry) = mirror.get(&key) {
            if entry.revision >= revision {
                return;
            }
            if entry.registration == registration {
                mirror.insert(
                    key,
                    Mirrored {
                        registration,
                        revision,
                    },
                );
                return;
            }
        }
        mirror.insert(
            key,
            Mirrored {
                registration: registration.clone(),
                revision,
            },
        );
        drop(mirror);
        let _ = self.inner.changes.send(Change::Up(registration));
    }

    fn apply_down(&self, service_type: String, id: String, revision: i64) {
        let key = (service_type, id);
        let mut mirror = lock(&self.inner.mirror);
        if mirror
            .get(&key)
            .is_none_or(|entry| entry.revision >= revision)
        {
            return;
        }
        mirror.remove(&key);
        drop(mirror);
        let (service_type, id) = key;
        let _ = self.inner.changes.send(Change::Down { service_type, id });
    }

    /// Writes `registration` under `lease`; the revision written at.
    async fn write(&self, registration: &Registration, lease: i64) -> Result<i64, ClusterError> {
        let json = serde_json::to_vec(registration).map_err(storage)?;
        let key = self.key(&registration.service_type, &registration.id);
        let response = retrying(
            |mut client| {
                let (key, json) = (key.clone(), json.clone());
                async move {
                    client
                        .put(key, json, Some(PutOptions::new().with_lease(lease)))
                        .await
                }
            },
            &self.inner.client,
        )
        .await
        .map_err(storage)?;
        Ok(response.header().map_or(0, |header| header.revision()))
    }

    async fn put_now(&self, registration: Registration, ttl: Duration) -> Result<(), ClusterError> {
        registration.check().map_err(ClusterError::Invalid)?;
        let ttl_seconds = i64::try_from(ttl.as_millis().div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let key = map_key(&registration);
        let held = lock(&self.inner.leases).get(&key).cloned();
        let mut client = self.inner.client.clone();
        if let Some(held) = &held
            && held.ttl_seconds == ttl_seconds
            // Fails once etcd expired the lease; then a new one is granted below.
            && client.lease_keep_alive(held.lease).await.is_ok()
        {
            if held.registration != registration {
                let revision = self.write(&registration, held.lease).await?;
                lock(&self.inner.leases).insert(
                    key,
                    Held {
                        registration: registration.clone(),
                        ..held.clone()
                    },
                );
                self.apply_up(registration, revision);
            }
            return Ok(());
        }
        let lease = retrying(
            |mut client| async move { client.lease_grant(ttl_seconds, None).await },
            &self.inner.client,
        )
        .await
        .map_err(storage)?
        .id();
        let revision = self.write(&registration, lease).await?;
        lock(&self.inner.leases).insert(
            key,
            Held {
                lease,
                ttl_seconds,
                registration: registration.clone(),
            },
        );
        if let Some(old) = held {
            // The key moved to the new lease; the old one holds nothing any more.
            let _ = client.lease_revoke(old.lease).await;
        }
        self.apply_up(registration, revision);
        Ok(())
    }
}

/// Follows the registry's changes from `revision` on until the registry is dropped; when
/// the watch breaks (a member died, the history was compacted), reads the registry again
/// and watches from there.
async fn follow(registry: Weak<Inner>, mut revision: i64) {
    loop {
        let Some(inner) = registry.upgrade() else {
            return;
        };
        let etcd = Etcd { inner };
        if let Err(error) = watch_from(&etcd, &mut revision).await {
            tracing::warn!(%error, "the etcd watch broke; reading the registry again");
        }
        drop(etcd);
        loop {
            tokio::time::sleep(RESYNC_BACKOFF).await;
            let Some(inner) = registry.upgrade() else {
                return;
            };
            match (Etcd { inner }).resync().await {
                Ok(read_at) => {
                    revision = read_at;
                    break;
                }
                Err(error) => tracing::warn!(%error, "cannot read the registry from etcd"),
            }
        }
    }
}

/// Applies the watch's events after `revision` to the mirror until the watch ends.
async fn watch_from(etcd: &Etcd, revision: &mut i64) -> Result<(), ClusterError> {
    let mut client = etcd.inner.client.clone();
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(*revision + 1);
    let mut stream = client
        .watch(etcd.inner.prefix.as_str(), Some(options))
        .await
        .map_err(storage)?;
    while let Some(response) = stream.message().await.map_err(storage)? {
        if response.canceled() {
            return Err(storage(format!(
                "watch canceled ({}; compacted at {})",
                response.cancel_reason(),
                response.compact_revision()
            )));
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => {
                    if let Some(registration) = etcd.decode(kv.key(), kv.value()) {
                        etcd.apply_up(registration, kv.mod_revision());
                    }
                }
                EventType::Delete => {
                    if let Some((service_type, id)) = etcd.parse_key(kv.key()) {
                        lock(&etcd.inner.leases).remove(&(service_type.clone(), id.clone()));
                        etcd.apply_down(service_type, id, kv.mod_revision());
                    }
                }
            }
            *revision = (*revision).max(kv.mod_revision());
        }
    }
    Err(storage("the watch stream ended"))
}

impl Backend for Etcd {
    fn put(
        &self,
        registration: Registration,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(self.put_now(registration, ttl))
    }

    fn remove<'a>(
        &'a self,
        service_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, ClusterError>> {
        Box::pin(async move {
            let key = self.key(service_type, id);
            let response = retrying(
                |mut client| {
                    let key = key.clone();
                    async move { client.delete(key, None).await }
                },
                &self.inner.client,
            )
            .await
            .map_err(storage)?;
            let mut client = self.inner.client.clone();
            let held = lock(&self.inner.leases).remove(&(service_type.to_owned(), id.to_owned()));
            if let Some(held) = held {
                let _ = client.lease_revoke(held.lease).await;
            }
            let revision = response.header().map_or(0, |header| header.revision());
            self.apply_down(service_type.to_owned(), id.to_owned(), revision);
            Ok(response.deleted() > 0)
        })
    }

    fn list<'a>(
        &'a self,
        service_type: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Registration>, ClusterError>> {
        Box::pin(async move {
            let mirror = lock(&self.inner.mirror);
            Ok(of_type(&mirror, service_type)
                .map(|entry| entry.registration.clone())
                .collect())
        })
    }

    fn watch(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn snapshot(&self) -> Vec<Registration> {
        lock(&self.inner.mirror)
            .values()
            .map(|entry| entry.registration.clone())
            .collect()
    }

    fn best<'a>(
        &'a self,
        service_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<Registration>, ClusterError>> {
        Box::pin(async move {
            let mirror = lock(&self.inner.mirror);
            Ok(
                crate::best(of_type(&mirror, service_type).map(|entry| &entry.registration))
                    .cloned(),
            )
        })
    }

    fn hosts<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        Box::pin(async move {
            let mirror = lock(&self.inner.mirror);
            Ok(hosts_matching(
                mirror.values().map(|entry| &entry.registration),
                pattern,
            ))
        })
    }
}
