//! [`DbClient`]: the typed client of a [`DbService`](super::DbService).

use bytes::Bytes;
use zs::{CallError, DataFrame, Peer};
use zs_wire::dataframe::Value as FrameValue;

use super::wire::{RemoteFragment, decode_fragment, decode_groups, record_value, value_record};
use crate::{Aggregate, Group, Query, QueryEnd, Record};

/// What a [`DbClient`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbClientError {
    /// The call failed, or the server answered with an error status (see
    /// [`CallError::status`]: `NOT_FOUND`, `INVALID_ARGUMENT` and so on).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The server's reply is not what the command returns.
    #[error("malformed reply: {0}")]
    Reply(String),
}

impl DbClientError {
    /// The status code the server answered with, if it answered with an error.
    pub fn code(&self) -> Option<zs::StatusCode> {
        match self {
            Self::Call(call) => call.status().map(zs::Status::code),
            Self::Reply(_) => None,
        }
    }
}

fn reply<T>(result: Result<T, impl ToString>) -> Result<T, DbClientError> {
    result.map_err(|error| DbClientError::Reply(error.to_string()))
}

/// The ZDB commands of the server at the other side of a connection.
///
/// ```no_run
/// # async fn demo(client: zs::Client) -> Result<(), zs_db::service::DbClientError> {
/// use serde_json::json;
/// use zs_db::{Query, Record, service::DbClient};
///
/// let db = DbClient::new(client.peer());
/// db.create("people").await?;
/// db.post("people", vec![Record::Json(json!({"name": "ann", "age": 41}))]).await?;
/// let mut query = db.query("people", &Query::filter("age > 40")).await?;
/// while let Some(records) = query.next().await? {
///     println!("{} records", records.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DbClient<'a, S = ()> {
    peer: &'a Peer<S>,
}

impl<S> Clone for DbClient<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for DbClient<'_, S> {}

/// The first values of `query` and `query_into`: database, filter, order, limit.
fn query_head(name: &str, query: &Query) -> DataFrame {
    DataFrame::new()
        .with(name)
        .with(query.filter.clone().unwrap_or_default())
        .with(query.reverse)
        .with(query.limit.unwrap_or(0))
}

fn command(name: &str) -> String {
    format!("{}.{name}", super::NAMESPACE)
}

impl<'a, S: Send + Sync + 'static> DbClient<'a, S> {
    /// The store at the other side of `peer`.
    pub fn new(peer: &'a Peer<S>) -> Self {
        Self { peer }
    }

    async fn call(&self, name: &str, input: DataFrame) -> Result<DataFrame, DbClientError> {
        Ok(self.peer.call_stream(&command(name), &input).await?)
    }

    /// The databases.
    pub async fn list(&self) -> Result<Vec<String>, DbClientError> {
        let frame = self.call("list", DataFrame::new()).await?;
        let mut reader = frame.reader();
        let mut names = Vec::with_capacity(frame.len());
        while reader.peek().is_some() {
            names.push(reply(reader.read_string())?);
        }
        Ok(names)
    }

    /// Creates database `name`.
    pub async fn create(&self, name: &str) -> Result<(), DbClientError> {
        self.call("create", DataFrame::new().with(name))
            .await
            .map(drop)
    }

    /// Deletes database `name`.
    pub async fn remove(&self, name: &str) -> Result<(), DbClientError> {
        self.call("remove", DataFrame::new().with(name))
            .await
            .map(drop)
    }

    /// Adds an index on `field` to database `name`.
    pub async fn create_index(&self, name: &str, field: &str) -> Result<(), DbClientError> {
        self.call("index", DataFrame::new().with(name).with(field))
            .await
            .map(drop)
    }

    /// Adds one record; returns its id.
    pub async fn insert(&self, name: &str, record: Record) -> Result<u64, DbClientError> {
        let frame = self
            .call(
                "insert",
                DataFrame::new().with(name).with(record_value(record)),
            )
            .await?;
        reply(frame.reader().read_u64())
    }

    /// The record with id `id`, if any.
    pub async fn get(&self, name: &str, id: u64) -> Result<Option<Record>, DbClientError> {
        let frame = self
            .call("get", DataFrame::new().with(name).with(id))
            .await?;
        match frame.values().first() {
            None => Ok(None),
            Some(value) => reply(value_record(value)).map(Some),
        }
    }

    /// Replaces the record with id `id`.
    pub async fn modify(&self, name: &str, id: u64, record: Record) -> Result<(), DbClientError> {
        self.call(
            "modify",
            DataFrame::new()
                .with(name)
                .with(id)
                .with(record_value(record)),
        )
        .await
        .map(drop)
    }

    /// Removes the record with id `id`; whether it existed.
    pub async fn delete(&self, name: &str, id: u64) -> Result<bool, DbClientError> {
        let frame = self
            .call("delete", DataFrame::new().with(name).with(id))
            .await?;
        reply(frame.reader().read_bool())
    }

    /// The fast batch post: `records` in one CompleteBuffer, stored in one transaction.
    /// Returns the ids given, consecutive from the first.
    pub async fn post(
        &self,
        name: &str,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<std::ops::Range<u64>, DbClientError> {
        let mut frame = DataFrame::new().with(name);
        for record in records {
            // The stored form: the server keeps it as it is.
            frame.push(FrameValue::Bytes(record.encode().map_err(|error| {
                DbClientError::Call(CallError::Remote(zs::Status::invalid_argument(
                    error.to_string(),
                )))
            })?));
        }
        let reply_frame = self
            .peer
            .send_complete_buffer(&command("post"), Bytes::from(frame.encode()))
            .await?;
        let mut reader = reply_frame.reader();
        let first = reply(reader.read_u64())?;
        let count = reply(reader.read_u64())?;
        Ok(first..first + count)
    }

    /// Starts `query` on database `name`; read its results with [`RemoteQuery::next`].
    pub async fn query(
        &self,
        name: &str,
        query: &Query,
    ) -> Result<RemoteQuery<'a, S>, DbClientError> {
        let budget_ms = query.time_budget.map_or(0, |budget| {
            u64::try_from(budget.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let fragment = query
            .fragment
            .map_or(0, |records| u32::try_from(records).unwrap_or(u32::MAX));
        let frame = self
            .call(
                "query",
                query_head(name, query).with(budget_ms).with(fragment),
            )
            .await?;
        Ok(RemoteQuery {
            client: *self,
            id: reply(frame.reader().read_u64())?,
            end: None,
            scanned: 0,
            matched: 0,
        })
    }

    /// Runs `query` (its filter, order and limit) on database `name` and writes the results
    /// into database `output` at the server (created if needed); returns how many.
    pub async fn query_into(
        &self,
        name: &str,
        query: &Query,
        output: &str,
    ) -> Result<u64, DbClientError> {
        let frame = self
            .call("query_into", query_head(name, query).with(output))
            .await?;
        reply(frame.reader().read_u64())
    }

    /// Aggregates over database `name`.
    pub async fn aggregate(
        &self,
        name: &str,
        aggregate: &Aggregate,
    ) -> Result<Vec<Group>, DbClientError> {
        let frame = self
            .call(
                "aggregate",
                DataFrame::new()
                    .with(name)
                    .with(aggregate.filter.clone().unwrap_or_default())
                    .with(aggregate.field.clone().unwrap_or_default())
                    .with(aggregate.group_by.clone().unwrap_or_default()),
            )
            .await?;
        reply(decode_groups(&frame))
    }

    /// Copies database `from` into a new database `to`; returns the records copied.
    pub async fn copy(&self, from: &str, to: &str) -> Result<u64, DbClientError> {
        let frame = self
            .call("copy", DataFrame::new().with(from).with(to))
            .await?;
        reply(frame.reader().read_u64())
    }

    /// Compacts database `name`.
    pub async fn compact(&self, name: &str) -> Result<bool, DbClientError> {
        let frame = self.call("compact", DataFrame::new().with(name)).await?;
        reply(frame.reader().read_bool())
    }

    /// The queries running at the server: `(id, database, filter, scanned, matched,
    /// paused)`.
    pub async fn queries(
        &self,
    ) -> Result<Vec<(u64, String, String, u64, u64, bool)>, DbClientError> {
        let frame = self.call("queries", DataFrame::new()).await?;
        let mut list = Vec::new();
        let mut reader = frame.reader();
        while reader.peek().is_some() {
            let entry = reply(reader.read_frame())?;
            let mut fields = entry.reader();
            list.push((
                reply(fields.read_u64())?,
                reply(fields.read_string())?,
                reply(fields.read_string())?,
                reply(fields.read_u64())?,
                reply(fields.read_u64())?,
                reply(fields.read_bool())?,
            ));
        }
        Ok(list)
    }

    async fn control(&self, id: u64, action: &str) -> Result<(), DbClientError> {
        self.call("control", DataFrame::new().with(id).with(action))
            .await
            .map(drop)
    }
}

/// A query running at the server, read fragment by fragment: each [`Self::next`] is one
/// call, so the server's scan goes no further ahead than a few fragments.
#[derive(Debug)]
pub struct RemoteQuery<'a, S = ()> {
    client: DbClient<'a, S>,
    id: u64,
    end: Option<QueryEnd>,
    scanned: u64,
    matched: u64,
}

impl<S: Send + Sync + 'static> RemoteQuery<'_, S> {
    /// The query's id at the server.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next fragment of results; `None` once the query is over (then see
    /// [`Self::end`]).
    pub async fn next(&mut self) -> Result<Option<Vec<(u64, Record)>>, DbClientError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let frame = self
            .client
            .call("next", DataFrame::new().with(self.id))
            .await?;
        match reply(decode_fragment(&frame))? {
            RemoteFragment::Records {
                records,
                scanned,
                matched,
            } => {
                (self.scanned, self.matched) = (scanned, matched);
                Ok(Some(records))
            }
            RemoteFragment::End {
                end,
                scanned,
                matched,
            } => {
                (self.scanned, self.matched) = (scanned, matched);
                self.end = Some(end);
                Ok(None)
            }
        }
    }

    /// Reads every remaining fragment.
    pub async fn collect_all(&mut self) -> Result<Vec<(u64, Record)>, DbClientError> {
        let mut all = Vec::new();
        while let Some(records) = self.next().await? {
            all.extend(records);
        }
        Ok(all)
    }

    /// How the query ended, once it has.
    pub fn end(&self) -> Option<QueryEnd> {
        self.end
    }

    /// Records the server had looked at and matched, as of the last fragment.
    pub fn progress(&self) -> (u64, u64) {
        (self.scanned, self.matched)
    }

    /// Pauses the server's scan.
    pub async fn pause(&self) -> Result<(), DbClientError> {
        self.client.control(self.id, "pause").await
    }

    /// Resumes it.
    pub async fn resume(&self) -> Result<(), DbClientError> {
        self.client.control(self.id, "resume").await
    }

    /// Stops it; [`Self::next`] then returns what was found, then `None`.
    pub async fn stop(&self) -> Result<(), DbClientError> {
        self.client.control(self.id, "stop").await
    }
}
