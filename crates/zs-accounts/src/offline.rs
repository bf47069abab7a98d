//! [`Offline`]: messages for users who are not logged in, kept in ZDB until they are.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use zs::DataFrame;
use zs_db::{Database, Record, Store};

use crate::AccountError;

/// The ZDB database offline messages are kept in.
pub const OFFLINE_DATABASE: &str = "__offline";

/// A message waiting for its user.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Its id in the queue (increasing in the order messages were queued).
    pub id: u64,
    /// Who sent it.
    pub from: String,
    /// The command it is delivered as.
    pub command: String,
    /// The message.
    pub message: DataFrame,
    /// When it was queued, milliseconds since the Unix epoch.
    pub sent_ms: u64,
}

/// The offline queue (ZServer4D: the dual-tunnel server's offline messages): one ZDB
/// record per message, `[to, from, command, message, sent_ms]`, indexed by recipient, so
/// it survives restarts and comes back in the order it was queued.
#[derive(Clone)]
pub struct Offline {
    db: Arc<Database>,
    /// Serializes pushes, so the per-user bound holds.
    writes: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offline").finish_non_exhaustive()
    }
}

fn to_value(name: &str) -> zs_db::zs_expr::Value {
    zs_db::zs_expr::Value::Str(name.into())
}

impl Offline {
    /// The queue in `store` (database [`OFFLINE_DATABASE`], made on first use).
    pub fn open(store: &Store) -> Result<Self, AccountError> {
        let db = store.open_or_create(OFFLINE_DATABASE)?;
        db.create_index("_0")?;
        Ok(Self {
            db,
            writes: Arc::new(Mutex::new(())),
        })
    }

    /// Queues `message` for `to`, unless `to` already has `max` waiting.
    pub fn push(
        &self,
        to: &str,
        from: &str,
        command: &str,
        message: DataFrame,
        max: usize,
    ) -> Result<(), AccountError> {
        let _guard = self
            .writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let waiting = self
            .db
            .lookup("_0", &to_value(to))?
            .map_or(0, |ids| ids.len());
        if waiting >= max {
            return Err(AccountError::QueueFull {
                user: to.to_owned(),
                max,
            });
        }
        let sent_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let record = DataFrame::new()
            .with(to)
            .with(from)
            .with(command)
            .with(message)
            .with(sent_ms);
        self.db.insert(Record::Frame(record))?;
        Ok(())
    }

    /// The messages waiting for `to`, oldest first.
    pub fn pending(&self, to: &str) -> Result<Vec<Queued>, AccountError> {
        let ids = self.db.lookup("_0", &to_value(to))?.unwrap_or_default();
        let mut queued = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(Record::Frame(frame)) = self.db.get(id)? else {
                continue;
            };
            let bad = |error: zs_wire::dataframe::ReadError| {
                AccountError::Storage(format!("offline message {id}: {error}"))
            };
            let mut reader = frame.reader();
            let _to = reader.read_str().map_err(bad)?;
            queued.push(Queued {
                id,
                from: reader.read_string().map_err(bad)?,
                command: reader.read_string().map_err(bad)?,
                message: reader.read_frame().map_err(bad)?,
                sent_ms: reader.read_u64().map_err(bad)?,
            });
        }
        Ok(queued)
    }

    /// Removes a delivered message.
    pub fn remove(&self, id: u64) -> Result<(), AccountError> {
        self.db.delete(id)?;
        Ok(())
    }
}
