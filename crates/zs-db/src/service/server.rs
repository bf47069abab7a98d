//! [`DbService`]: the handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use zs::dispatch::{Namespace, Service, Status};
use zs::{Context, DataFrame};
use zs_wire::dataframe::Value as FrameValue;

use super::wire::{
    FRAGMENT_END, FRAGMENT_RECORDS, encode_groups, end_code, record_value, value_record,
};
use super::{MAX_QUERIES_PER_CONNECTION, NAMESPACE};
use crate::{Aggregate, DbError, Query, QueryRun, Store, StoredFragment};

/// A query started over the network: its run, and the connection that owns it.
struct Owned {
    peer: u64,
    run: Arc<Mutex<QueryRun>>,
}

struct Inner {
    store: Store,
    queries: Mutex<HashMap<u64, Owned>>,
    /// Connections whose end is watched (to stop their queries).
    watched: Mutex<std::collections::HashSet<u64>>,
}

impl Inner {
    fn queries(&self) -> MutexGuard<'_, HashMap<u64, Owned>> {
        self.queries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves a [`Store`] under the `__zs.db` namespace (see the module docs for the commands).
/// Clones share the store.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut server = zs::Server::bind("127.0.0.1:4920").await?;
/// server.install(zs_db::service::DbService::new(zs_db::Store::open("data")?));
/// let handle = server.spawn();
/// # handle.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DbService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DbService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbService")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl DbService {
    /// A service for `store`.
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                queries: Mutex::new(HashMap::new()),
                watched: Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }

    /// The store served.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs `job` with the store on the blocking pool.
    async fn blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Inner) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, Status> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || job(&inner))
            .await
            .map_err(|error| Status::internal(format!("store task failed: {error}")))?
            .map_err(status)
    }

    /// Stops and forgets `peer`'s queries once its connection ends (one watcher per peer).
    fn watch<S: Send + Sync + 'static>(&self, ctx: &Context<S>) {
        let peer = ctx.peer().clone();
        let id = peer.id();
        let first = self
            .inner
            .watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id);
        if !first {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            peer.closed().await;
            if let Some(inner) = inner.upgrade() {
                inner
                    .watched
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(&id);
                let gone: Vec<Owned> = {
                    let mut queries = inner.queries();
                    let ids: Vec<u64> = queries
                        .iter()
                        .filter(|(_, owned)| owned.peer == id)
                        .map(|(&query, _)| query)
                        .collect();
                    ids.iter()
                        .filter_map(|query| queries.remove(query))
                        .collect()
                };
                // Dropping the runs stops their scans.
                drop(gone);
            }
        });
    }
}

impl<S: Send + Sync + 'static> Service<S> for DbService {
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        macro_rules! stream {
            ($name:literal, $handler:ident) => {{
                let service = self.clone();
                commands.register_stream($name, move |ctx: Context<S>, input: DataFrame| {
                    let service = service.clone();
                    async move { service.$handler(&ctx, input).await }
                });
            }};
        }
        stream!("list", list);
        stream!("create", create);
        stream!("remove", remove);
        stream!("index", index);
        stream!("insert", insert);
        stream!("get", get);
        stream!("modify", modify);
        stream!("delete", delete);
        stream!("query", query);
        stream!("next", next);
        stream!("control", control);
        stream!("queries", queries);
        stream!("aggregate", aggregate);
        stream!("copy", copy);
        stream!("query_into", query_into);
        stream!("compact", compact);
        let service = self;
        commands.register_complete_buffer("post", move |_ctx: Context<S>, input: Bytes| {
            let service = service.clone();
            async move { service.post(input).await }
        });
    }
}

fn bad_input(error: zs_wire::dataframe::ReadError) -> Status {
    Status::invalid_argument(format!("bad request: {error}"))
}

fn record_at(value: Option<&FrameValue>) -> Result<crate::Record, Status> {
    let value = value.ok_or_else(|| Status::invalid_argument("a record is missing"))?;
    value_record(value).map_err(Status::invalid_argument)
}

/// The first values of `query` and `query_into`: `[db, filter ("" = all), reverse, limit
/// (0 = none)]`.
fn read_query_head(
    reader: &mut zs_wire::dataframe::DataFrameReader<'_>,
) -> Result<(String, Query), Status> {
    let name = reader.read_string().map_err(bad_input)?;
    let filter = reader.read_string().map_err(bad_input)?;
    let mut query = Query::all();
    query.filter = (!filter.trim().is_empty()).then_some(filter);
    query.reverse = reader.read_bool().map_err(bad_input)?;
    let limit = reader.read_u64().map_err(bad_input)?;
    query.limit = (limit > 0).then_some(limit);
    Ok((name, query))
}

/// The status a store error answers with.
fn status(error: DbError) -> Status {
    let message = error.to_string();
    match error {
        DbError::NoSuchDatabase(_) | DbError::NoSuchRecord { .. } | DbError::NoSuchQuery(_) => {
            Status::not_found(message)
        }
        DbError::Exists(_) => Status::already_exists(message),
        DbError::BadName { .. }
        | DbError::BadRecord(_)
        | DbError::RecordTooLarge { .. }
        | DbError::BadField(_)
        | DbError::Expression(_)
        | DbError::Eval { .. } => Status::invalid_argument(message),
        _ => Status::internal(message),
    }
}

impl DbService {
    async fn list<S>(&self, _ctx: &Context<S>, _input: DataFrame) -> Result<DataFrame, Status> {
        let names = self.blocking(|inner| inner.store.list()).await?;
        Ok(names.into_iter().fold(DataFrame::new(), DataFrame::with))
    }

    async fn create<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let name = input.reader().read_string().map_err(bad_input)?;
        self.blocking(move |inner| inner.store.create(&name).map(drop))
            .await?;
        Ok(DataFrame::new())
    }

    async fn remove<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let name = input.reader().read_string().map_err(bad_input)?;
        self.blocking(move |inner| inner.store.remove(&name))
            .await?;
        Ok(DataFrame::new())
    }

    async fn index<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let name = reader.read_string().map_err(bad_input)?;
        let field = reader.read_string().map_err(bad_input)?;
        self.blocking(move |inner| inner.store.database(&name)?.create_index(&field))
            .await?;
        Ok(DataFrame::new())
    }

    async fn insert<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let name = input.reader().read_string().map_err(bad_input)?;
        let record = record_at(input.values().get(1))?;
        let id = self
            .blocking(move |inner| inner.store.database(&name)?.insert(record))
            .await?;
        Ok(DataFrame::new().with(id))
    }

    async fn get<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let name = reader.read_string().map_err(bad_input)?;
        let id = reader.read_u64().map_err(bad_input)?;
        let found = self
            .blocking(move |inner| inner.store.database(&name)?.get(id))
            .await?;
        Ok(match found {
            Some(record) => DataFrame::new().with(record_value(record)),
            None => DataFrame::new(),
        })
    }

    async fn modify<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let name = reader.read_string().map_err(bad_input)?;
        let id = reader.read_u64().map_err(bad_input)?;
        let record = record_at(input.values().get(2))?;
        self.blocking(move |inner| inner.store.database(&name)?.modify(id, record))
            .await?;
        Ok(DataFrame::new())
    }

    async fn delete<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let name = reader.read_string().map_err(bad_input)?;
        let id = reader.read_u64().map_err(bad_input)?;
        let existed = self
            .blocking(move |inner| inner.store.database(&name)?.delete(id))
            .await?;
        Ok(DataFrame::new().with(existed))
    }

    /// The fast batch post: one CompleteBuffer holding `[db, stored record (bytes)*]`,
    /// validated and stored in one transaction without re-encoding.
    async fn post(&self, input: Bytes) -> Result<DataFrame, Status> {
        let ids = self
            .blocking(move |inner| {
                let frame = DataFrame::decode(&input)
                    .map_err(|error| DbError::BadRecord(format!("post: {error}")))?;
                let mut values = frame.into_values().into_iter();
                let Some(FrameValue::String(name)) = values.next() else {
                    return Err(DbError::BadRecord(
                        "post: the first value is the database name".to_owned(),
                    ));
                };
                let stored = values
                    .map(|value| match value {
                        FrameValue::Bytes(stored) => Ok(stored),
                        other => Err(DbError::BadRecord(format!(
                            "post: a record's stored form is bytes, not {:?}",
                            other.kind()
                        ))),
                    })
                    .collect::<Result<Vec<Vec<u8>>, DbError>>()?;
                inner.store.database(&name)?.insert_encoded(stored)
            })
            .await?;
        Ok(DataFrame::new().with(ids.start).with(ids.end - ids.start))
    }

    async fn query<S: Send + Sync + 'static>(
        &self,
        ctx: &Context<S>,
        input: DataFrame,
    ) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let (name, mut query) = read_query_head(&mut reader)?;
        let budget_ms = reader.read_u64().map_err(bad_input)?;
        let fragment = reader.read_u32().map_err(bad_input)?;
        let peer = ctx.peer().id();
        let owned = self
            .inner
            .queries()
            .values()
            .filter(|owned| owned.peer == peer)
            .count();
        if owned >= MAX_QUERIES_PER_CONNECTION {
            return Err(Status::resource_exhausted(format!(
                "{MAX_QUERIES_PER_CONNECTION} queries are running on this connection"
            )));
        }
        query.time_budget = (budget_ms > 0).then(|| Duration::from_millis(budget_ms));
        query.fragment = (fragment > 0).then_some(fragment as usize);
        let run = self
            .blocking(move |inner| inner.store.query_stored(&name, query))
            .await?;
        let id = run.id();
        self.inner.queries().insert(
            id,
            Owned {
                peer,
                run: Arc::new(Mutex::new(run)),
            },
        );
        self.watch(ctx);
        Ok(DataFrame::new().with(id))
    }

    fn owned_run<S>(&self, ctx: &Context<S>, id: u64) -> Result<Arc<Mutex<QueryRun>>, Status> {
        match self.inner.queries().get(&id) {
            Some(owned) if owned.peer == ctx.peer().id() => Ok(owned.run.clone()),
            _ => Err(Status::not_found(format!(
                "no query {id} on this connection"
            ))),
        }
    }

    async fn next<S>(&self, ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let id = input.reader().read_u64().map_err(bad_input)?;
        let run = self.owned_run(ctx, id)?;
        let (fragment, scanned, matched) = self
            .blocking(move |_| {
                let mut run = run.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let fragment = run.next_stored();
                let (scanned, matched) = run.progress();
                Ok((fragment, scanned, matched))
            })
            .await?;
        let header = |state: u8, end: u8| {
            DataFrame::new()
                .with(state)
                .with(end)
                .with(scanned)
                .with(matched)
        };
        match fragment {
            Some(Ok(StoredFragment::Records(records))) => {
                let mut frame = header(FRAGMENT_RECORDS, 0);
                for (id, stored) in records {
                    frame.push(id);
                    frame.push(FrameValue::Bytes(stored));
                }
                Ok(frame)
            }
            Some(Ok(StoredFragment::End(end))) => {
                self.inner.queries().remove(&id);
                Ok(header(FRAGMENT_END, end_code(end)))
            }
            Some(Err(error)) => {
                self.inner.queries().remove(&id);
                Err(status(error))
            }
            None => {
                self.inner.queries().remove(&id);
                Err(Status::not_found(format!("query {id} is over")))
            }
        }
    }

    async fn control<S>(&self, ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let id = reader.read_u64().map_err(bad_input)?;
        let action = reader.read_string().map_err(bad_input)?;
        self.owned_run(ctx, id)?;
        let store = &self.inner.store;
        match action.as_str() {
            "pause" => store.pause_query(id),
            "resume" => store.resume_query(id),
            "stop" => store.stop_query(id),
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown action {other:?} (pause, resume, stop)"
                )));
            }
        }
        .map_err(status)?;
        Ok(DataFrame::new())
    }

    async fn queries<S>(&self, _ctx: &Context<S>, _input: DataFrame) -> Result<DataFrame, Status> {
        let mut frame = DataFrame::new();
        for info in self.inner.store.queries() {
            frame.push(
                DataFrame::new()
                    .with(info.id)
                    .with(info.database)
                    .with(info.filter.unwrap_or_default())
                    .with(info.scanned)
                    .with(info.matched)
                    .with(info.state == crate::QueryState::Paused)
                    .with(u64::try_from(info.elapsed.as_millis()).unwrap_or(u64::MAX)),
            );
        }
        Ok(frame)
    }

    async fn aggregate<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let name = reader.read_string().map_err(bad_input)?;
        let filter = reader.read_string().map_err(bad_input)?;
        let field = reader.read_string().map_err(bad_input)?;
        let group_by = reader.read_string().map_err(bad_input)?;
        let mut aggregate = Aggregate::count();
        aggregate.filter = (!filter.trim().is_empty()).then_some(filter);
        aggregate.field = (!field.is_empty()).then_some(field);
        aggregate.group_by = (!group_by.is_empty()).then_some(group_by);
        let groups = self
            .blocking(move |inner| inner.store.aggregate(&name, &aggregate))
            .await?;
        Ok(encode_groups(groups))
    }

    async fn copy<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let from = reader.read_string().map_err(bad_input)?;
        let to = reader.read_string().map_err(bad_input)?;
        let copied = self
            .blocking(move |inner| inner.store.copy(&from, &to))
            .await?;
        Ok(DataFrame::new().with(copied))
    }

    /// A query whose results go into another database at the server (created if needed).
    async fn query_into<S>(
        &self,
        _ctx: &Context<S>,
        input: DataFrame,
    ) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let (name, query) = read_query_head(&mut reader)?;
        let output = reader.read_string().map_err(bad_input)?;
        let written = self
            .blocking(move |inner| inner.store.query_into(&name, query, &output))
            .await?;
        Ok(DataFrame::new().with(written))
    }

    async fn compact<S>(&self, _ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let name = input.reader().read_string().map_err(bad_input)?;
        let compacted = self
            .blocking(move |inner| inner.store.compact(&name))
            .await?;
        Ok(DataFrame::new().with(compacted))
    }
}
