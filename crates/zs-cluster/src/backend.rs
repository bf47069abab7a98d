//! [`Backend`]: where registrations live, and [`Embedded`], the default one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use zs_db::{Database, Record, Store};

use crate::{ClusterError, Registration};

/// A change to the registry, as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A server registered, or its registration changed.
    Up(Registration),
    /// A server unregistered, or its registration expired.
    Down {
        /// Its type.
        service_type: String,
        /// Its id.
        id: String,
    },
}

/// Where registrations live: [`Embedded`] (one dispatcher, kept in its store) or a
/// coordination service shared by several dispatchers. A registration lasts `ttl` unless
/// put again (the keep-alive); an expired one is removed and watchers see it go.
pub trait Backend: Send + Sync + 'static {
    /// Adds or refreshes `registration` for `ttl`.
    fn put(
        &self,
        registration: Registration,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;
    /// Removes a registration; whether it was there.
    fn remove<'a>(
        &'a self,
        service_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, ClusterError>>;
    /// The live registrations of `service_type`, by id.
    fn list<'a>(
        &'a self,
        service_type: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Registration>, ClusterError>>;
    /// Changes from now on.
    fn watch(&self) -> broadcast::Receiver<Change>;

    /// Every live registration, by type then id, as this dispatcher knows it now (no
    /// round trip: what the admin listener shows).
    fn snapshot(&self) -> Vec<Registration>;

    /// The least-loaded online server of `service_type` ([`best`](crate::best)).
    fn best<'a>(
        &'a self,
        service_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<Registration>, ClusterError>> {
        Box::pin(async move {
            let servers = self.list(service_type).await?;
            Ok(crate::best(&servers).cloned())
        })
    }

    /// HostQuery: the addresses (`ip:port`) of every live server whose `type/id` matches
    /// `pattern` (`*` any run of characters, `?` one), each once, in registry order.
    fn hosts<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, ClusterError>>;
}

/// What [`Embedded`] stores per registration.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    key: String,
    registration: Registration,
    ttl_ms: u64,
}

struct Live {
    registration: Registration,
    ttl: Duration,
    expires: SystemTime,
    /// Its record in the store, if kept there.
    record: Option<u64>,
}

struct Inner {
    live: Mutex<BTreeMap<(String, String), Live>>,
    db: Option<Arc<Database>>,
    changes: broadcast::Sender<Change>,
}

/// The embedded registry of one dispatcher (`zs serve --dispatch DIR`): registrations in
/// memory, kept in a ZDB database (`__registry`) whenever they change, so a restarted
/// dispatcher knows every server again and gives each its time to-live afresh.
/// Keep-alives that change nothing do not write. Clones share the registry.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded").finish_non_exhaustive()
    }
}

/// The ZDB database [`Embedded`] keeps registrations in.
pub const REGISTRY_DATABASE: &str = "__registry";

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key(service_type: &str, id: &str) -> String {
    format!("{service_type}/{id}")
}

impl Embedded {
    /// A registry in memory only.
    pub fn in_memory() -> Self {
        Self::with_db(None)
    }

    fn with_db(db: Option<Arc<Database>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                live: Mutex::new(BTreeMap::new()),
                db,
                changes: broadcast::channel(1024).0,
            }),
        }
    }

    /// The registry kept in `store`, with what it held before.
    pub fn open(store: &Store) -> Result<Self, ClusterError> {
        let db = store.open_or_create(REGISTRY_DATABASE)?;
        db.create_index("key")?;
        let registry = Self::with_db(Some(db));
        let (records, _) = store
            .query(REGISTRY_DATABASE, zs_db::Query::all())?
            .collect_all()?;
        let now = SystemTime::now();
        let mut live = lock(&registry.inner.live);
        for (id, record) in records {
            let Record::Json(json) = record else { continue };
            let stored: Stored = serde_json::from_value(json)
                .map_err(|error| ClusterError::Storage(format!("registration {id}: {error}")))?;
            let ttl = Duration::from_millis(stored.ttl_ms);
            let registration = stored.registration;
            live.insert(
                (registration.service_type.clone(), registration.id.clone()),
                Live {
                    registration,
                    ttl,
                    expires: now + ttl,
                    record: Some(id),
                },
            );
        }
        drop(live);
        Ok(registry)
    }

    /// Removes what expired by `now`; returns how many.
    pub fn expire(&self, now: SystemTime) -> usize {
        let gone: Vec<Live> = {
            let mut live = lock(&self.inner.live);
            let keys: Vec<(String, String)> = live
                .iter()
                .filter(|(_, entry)| entry.expires <= now)
                .map(|(key, _)| key.clone())
                .collect();
            keys.iter().filter_map(|key| live.remove(key)).collect()
        };
        for entry in &gone {
            self.forget(entry);
        }
        gone.len()
    }

    fn forget(&self, entry: &Live) {
        if let (Some(db), Some(record)) = (&self.inner.db, entry.record)
            && let Err(error) = db.delete(record)
        {
            tracing::warn!(%error, "cannot delete a registration from the store");
        }
        let _ = self.inner.changes.send(Change::Down {
            service_type: entry.registration.service_type.clone(),
            id: entry.registration.id.clone(),
        });
    }

    /// Expires registrations every `period` until the registry is dropped.
    pub fn spawn_reaper(&self, period: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Embedded { inner }.expire(SystemTime::now());
            }
        });
    }

    fn put_now(&self, registration: Registration, ttl: Duration) -> Result<(), ClusterError> {
        registration.check().map_err(ClusterError::Invalid)?;
        let map_key = (registration.service_type.clone(), registration.id.clone());
        let expires = SystemTime::now() + ttl;
        let mut live = lock(&self.inner.live);
        let (changed, record) = match live.get(&map_key) {
            Some(entry) => (
                entry.registration != registration || entry.ttl != ttl,
                entry.record,
            ),
            None => (true, None),
        };
        let mut record = record;
        if changed && let Some(db) = &self.inner.db {
            let stored = Stored {
                key: key(&registration.service_type, &registration.id),
                registration: registration.clone(),
                ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            };
            let json = serde_json::to_value(&stored)
                .map_err(|error| ClusterError::Storage(error.to_string()))?;
            match record {
                Some(id) => db.modify(id, Record::Json(json))?,
                None => record = Some(db.insert(Record::Json(json))?),
            }
        }
        live.insert(
            map_key,
            Live {
                registration: registration.clone(),
                ttl,
                expires,
                record,
            },
        );
        drop(live);
        if changed {
            let _ = self.inner.changes.send(Change::Up(registration));
        }
        Ok(())
    }
}

/// The entries of `service_type` in a registry keyed by `(type, id)`, by id.
pub(crate) fn of_type<'m, V>(
    registry: &'m BTreeMap<(String, String), V>,
    service_type: &'m str,
) -> impl Iterator<Item = &'m V> {
    registry
        .range((service_type.to_owned(), String::new())..)
        .take_while(move |((kind, _), _)| kind == service_type)
        .map(|(_, entry)| entry)
}

/// The registrations of `service_type` in `live` that have not expired by `now`, by id.
fn live_of_type<'m>(
    live: &'m BTreeMap<(String, String), Live>,
    service_type: &'m str,
    now: SystemTime,
) -> impl Iterator<Item = &'m Registration> {
    of_type(live, service_type)
        .filter(move |entry| entry.expires > now)
        .map(|entry| &entry.registration)
}

impl Backend for Embedded {
    fn put(
        &self,
        registration: Registration,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            let registry = self.clone();
            tokio::task::spawn_blocking(move || registry.put_now(registration, ttl))
                .await
                .map_err(|error| ClusterError::Storage(error.to_string()))?
        })
    }

    fn remove<'a>(
        &'a self,
        service_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, ClusterError>> {
        Box::pin(async move {
            let entry = lock(&self.inner.live).remove(&(service_type.to_owned(), id.to_owned()));
            let Some(entry) = entry else {
                return Ok(false);
            };
            let registry = self.clone();
            tokio::task::spawn_blocking(move || registry.forget(&entry))
                .await
                .map_err(|error| ClusterError::Storage(error.to_string()))?;
            Ok(true)
        })
    }

    fn list<'a>(
        &'a self,
        service_type: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Registration>, ClusterError>> {
        Box::pin(async move {
            let live = lock(&self.inner.live);
            Ok(live_of_type(&live, service_type, SystemTime::now())
                .cloned()
                .collect())
        })
    }

    fn watch(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn snapshot(&self) -> Vec<Registration> {
        let now = SystemTime::now();
        lock(&self.inner.live)
            .values()
            .filter(|entry| entry.expires > now)
            .map(|entry| entry.registration.clone())
            .collect()
    }

    fn best<'a>(
        &'a self,
        service_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<Registration>, ClusterError>> {
        // One pass over the type's entries, one clone: lookups stay cheap as a type grows.
        Box::pin(async move {
            let live = lock(&self.inner.live);
            Ok(crate::best(live_of_type(&live, service_type, SystemTime::now())).cloned())
        })
    }

    fn hosts<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        Box::pin(async move {
            let now = SystemTime::now();
            let live = lock(&self.inner.live);
            Ok(hosts_matching(
                live.values()
                    .filter(|entry| entry.expires > now)
                    .map(|entry| &entry.registration),
                pattern,
            ))
        })
    }
}

/// HostQuery over `servers`: the addresses of those whose `type/id` matches `pattern`,
/// each once, in order.
pub(crate) fn hosts_matching<'a>(
    servers: impl Iterator<Item = &'a Registration>,
    pattern: &str,
) -> Vec<String> {
    let matcher = wildmatch::WildMatch::new(pattern);
    let mut hosts: Vec<String> = Vec::new();
    let mut name = String::new();
    for server in servers {
        name.clear();
        name.push_str(&server.service_type);
        name.push('/');
        name.push_str(&server.id);
        if !matcher.matches(&name) {
            continue;
        }
        for address in &server.addresses {
            let host = address.to_string();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn server(id: &str, load: u64) -> Registration {
        let mut server = Registration::new("logic", id, ["127.0.0.1:1".parse().unwrap()], 100);
        server.load = load;
        server
    }

    #[tokio::test]
    async fn registrations_expire_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(10);
        {
            let store = Store::open(dir.path()).unwrap();
            let registry = Embedded::open(&store).unwrap();
            let mut changes = registry.watch();
            registry.put(server("a", 1), ttl).await.unwrap();
            registry.put(server("b", 2), ttl).await.unwrap();
            registry.put(server("b", 2), ttl).await.unwrap(); // a keep-alive: no change
            assert!(matches!(changes.recv().await.unwrap(), Change::Up(r) if r.id == "a"));
            assert!(matches!(changes.recv().await.unwrap(), Change::Up(r) if r.id == "b"));
            assert!(
                changes.try_recv().is_err(),
                "the keep-alive changed nothing"
            );
            assert_eq!(registry.list("logic").await.unwrap().len(), 2);
            assert!(registry.list("db").await.unwrap().is_empty());
            // Expiry: nothing before the time, both after.
            assert_eq!(registry.expire(SystemTime::now()), 0);
            assert!(registry.remove("logic", "a").await.unwrap());
            assert!(!registry.remove("logic", "a").await.unwrap());
        }
        // Restarted: b is back, with its time to live afresh.
        let store = Store::open(dir.path()).unwrap();
        let registry = Embedded::open(&store).unwrap();
        let listed = registry.list("logic").await.unwrap();
        assert_eq!(listed, vec![server("b", 2)]);
        let mut changes = registry.watch();
        assert_eq!(
            registry.expire(SystemTime::now() + ttl + Duration::from_secs(1)),
            1
        );
        assert!(matches!(changes.recv().await.unwrap(), Change::Down { id, .. } if id == "b"));
        assert!(registry.list("logic").await.unwrap().is_empty());
        drop((registry, store));
        let store = Store::open(dir.path()).unwrap();
        assert!(
            Embedded::open(&store)
                .unwrap()
                .list("logic")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn host_queries_match_type_and_id_with_wildcards() {
        let registry = Embedded::in_memory();
        let ttl = Duration::from_secs(10);
        let mut sensor = Registration::new(
            "sensor",
            "berlin-07",
            [
                "10.0.0.7:1".parse().unwrap(),
                "[fd00::7]:1".parse().unwrap(),
            ],
            1,
        );
        registry.put(sensor.clone(), ttl).await.unwrap();
        sensor.id = "berlin-08".into();
        sensor.addresses = vec!["10.0.0.8:1".parse().unwrap()];
        registry.put(sensor.clone(), ttl).await.unwrap();
        sensor.id = "paris-01".into();
        sensor.addresses = vec!["10.0.1.1:1".parse().unwrap()];
        registry.put(sensor, ttl).await.unwrap();
        registry.put(server("berlin-x", 0), ttl).await.unwrap();
        let hosts = |pattern: &'static str| {
            let registry = registry.clone();
            async move { registry.hosts(pattern).await.unwrap() }
        };
        assert_eq!(
            hosts("sensor/berlin-*").await,
            ["10.0.0.7:1", "[fd00::7]:1", "10.0.0.8:1"]
        );
        assert_eq!(hosts("sensor/*-0?").await.len(), 4);
        assert_eq!(hosts("*/berlin-*").await.len(), 4, "the logic server too");
        assert!(hosts("sensor/rome-*").await.is_empty());
        assert_eq!(hosts("sensor/paris-01").await, ["10.0.1.1:1"]);
        // The best of a type, without listing it.
        assert_eq!(
            registry.best("logic").await.unwrap().unwrap().id,
            "berlin-x"
        );
        assert!(registry.best("nothing").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bad_registrations_are_refused() {
        let registry = Embedded::in_memory();
        let mut bad = server("a", 0);
        bad.capacity = 0;
        assert!(matches!(
            registry.put(bad, Duration::from_secs(1)).await,
            Err(ClusterError::Invalid(_))
        ));
    }
}
