//! [`Store`]: a directory of named databases, and the queries running on them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use zs_expr::Functions;

use crate::aggregate::{self, Aggregate, Group};
use crate::query::{QueryInfo, QueryRun, Registry};
use crate::scan::Control;
use crate::{Database, DbError, Query};

/// File extension of a database.
const EXTENSION: &str = "zdb";
/// Longest database name.
const MAX_NAME_LEN: usize = 64;

/// A directory of named databases (ZServer4D: the files a `TZDBLocalManager` manages). Each
/// database is one redb file, `<name>.zdb`.
pub struct Store {
    dir: PathBuf,
    open: Mutex<HashMap<String, Arc<Database>>>,
    queries: Arc<Registry>,
    functions: Functions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `dir`, creating the directory if needed. Filters may call the
    /// built-in functions.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, DbError> {
        Self::with_functions(dir, Functions::new())
    }

    /// Like [`Self::open`], with the functions filters may call (the built-ins plus the
    /// application's: the original's registered query functions).
    pub fn with_functions(dir: impl AsRef<Path>, functions: Functions) -> Result<Self, DbError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir)
            .map_err(DbError::io(format!("cannot create {}", dir.display())))?;
        Ok(Self {
            dir,
            open: Mutex::new(HashMap::new()),
            queries: Arc::new(Registry::default()),
            functions,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Database>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, DbError> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}.{EXTENSION}")))
    }

    /// Creates database `name`; [`DbError::Exists`] if it does.
    pub fn create(&self, name: &str) -> Result<Arc<Database>, DbError> {
        let path = self.path_of(name)?;
        let mut open = self.lock();
        if open.contains_key(name) || path.exists() {
            return Err(DbError::Exists(name.to_owned()));
        }
        let database = Arc::new(Database::open(name, &path)?);
        open.insert(name.to_owned(), database.clone());
        Ok(database)
    }

    /// Database `name`; [`DbError::NoSuchDatabase`] if it does not exist.
    pub fn database(&self, name: &str) -> Result<Arc<Database>, DbError> {
        let path = self.path_of(name)?;
        let mut open = self.lock();
        if let Some(database) = open.get(name) {
            return Ok(database.clone());
        }
        if !path.exists() {
            return Err(DbError::NoSuchDatabase(name.to_owned()));
        }
        let database = Arc::new(Database::open(name, &path)?);
        open.insert(name.to_owned(), database.clone());
        Ok(database)
    }

    /// Database `name`, created if it does not exist.
    pub fn open_or_create(&self, name: &str) -> Result<Arc<Database>, DbError> {
        match self.database(name) {
            Err(DbError::NoSuchDatabase(_)) => self.create(name),
            other => other,
        }
    }

    /// The databases in the store, sorted.
    pub fn list(&self) -> Result<Vec<String>, DbError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(DbError::io(format!("cannot list {}", self.dir.display())))?;
        let mut names = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(DbError::io(format!("cannot list {}", self.dir.display())))?
                .path();
            if path.extension().is_some_and(|ext| ext == EXTENSION)
                && let Some(name) = path.file_stem().and_then(|stem| stem.to_str())
                && check_name(name).is_ok()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes database `name` and its file. Queries still running on it finish on their
    /// view.
    pub fn remove(&self, name: &str) -> Result<(), DbError> {
        let path = self.path_of(name)?;
        let was_open = self.lock().remove(name).is_some();
        if !was_open && !path.exists() {
            return Err(DbError::NoSuchDatabase(name.to_owned()));
        }
        std::fs::remove_file(&path)
            .map_err(DbError::io(format!("cannot remove {}", path.display())))
    }

    /// Copies database `from` into a new database `to` while `from` is served; returns the
    /// records copied.
    pub fn copy(&self, from: &str, to: &str) -> Result<u64, DbError> {
        let source = self.database(from)?;
        let target = self.path_of(to)?;
        if self.lock().contains_key(to) || target.exists() {
            return Err(DbError::Exists(to.to_owned()));
        }
        source.backup_to(&target)
    }

    /// Writes a consistent copy of database `name` to the file `path` (which must not exist
    /// as a database yet); returns the records written.
    pub fn backup(&self, name: &str, path: &Path) -> Result<u64, DbError> {
        self.database(name)?.backup_to(path)
    }

    /// Compacts database `name`: its file shrinks to what it holds; ids stay. Fails with a
    /// storage error while the database is in use elsewhere (a running query, a handle
    /// held), since the engine needs it alone.
    pub fn compact(&self, name: &str) -> Result<bool, DbError> {
        let path = self.path_of(name)?;
        let mut open = self.lock();
        let Some(database) = open.remove(name) else {
            if !path.exists() {
                return Err(DbError::NoSuchDatabase(name.to_owned()));
            }
            drop(open);
            let mut database = Database::open(name, &path)?;
            return database.compact();
        };
        match Arc::try_unwrap(database) {
            Ok(mut database) => {
                let compacted = database.compact();
                open.insert(name.to_owned(), Arc::new(database));
                compacted
            }
            Err(database) => {
                open.insert(name.to_owned(), database);
                Err(DbError::Storage(format!(
                    "database {name:?} is in use; compact it when no query or handle holds it"
                )))
            }
        }
    }

    /// Starts `query` on database `name`; its results stream from the returned run,
    /// decoded by the scan (in parallel).
    pub fn query(&self, name: &str, query: Query) -> Result<QueryRun, DbError> {
        let database = self.database(name)?;
        QueryRun::start(self.queries.clone(), database, query, &self.functions, true)
    }

    /// As [`Store::query`], for results read in their stored form
    /// ([`QueryRun::next_stored`]), which then are never decoded: what a server forwarding
    /// them does.
    pub fn query_stored(&self, name: &str, query: Query) -> Result<QueryRun, DbError> {
        let database = self.database(name)?;
        QueryRun::start(
            self.queries.clone(),
            database,
            query,
            &self.functions,
            false,
        )
    }

    /// Aggregates over database `name` (in parallel, on the calling thread and rayon's).
    pub fn aggregate(&self, name: &str, aggregate: &Aggregate) -> Result<Vec<Group>, DbError> {
        let database = self.database(name)?;
        aggregate::run(&database, aggregate, &self.functions, &Control::default())
    }

    /// Runs `query` on database `name` and writes every result as a new record into database
    /// `output` (created if needed); returns how many were written.
    pub fn query_into(&self, name: &str, query: Query, output: &str) -> Result<u64, DbError> {
        let target = self.open_or_create(output)?;
        let mut written = 0;
        for fragment in self.query(name, query)? {
            match fragment? {
                crate::Fragment::Records(found) => {
                    written += found.len() as u64;
                    target.write_batch(
                        found
                            .into_iter()
                            .map(|(_, record)| crate::Op::Insert(record)),
                    )?;
                }
                crate::Fragment::End(_) => break,
            }
        }
        Ok(written)
    }

    /// The queries running now.
    pub fn queries(&self) -> Vec<QueryInfo> {
        self.queries.list()
    }

    /// Queries started and running, and records scanned, since the store opened (what the
    /// admin listener reports).
    pub fn query_metrics(&self) -> crate::query::QueryMetrics {
        self.queries.metrics()
    }

    /// Pauses running query `id`.
    pub fn pause_query(&self, id: u64) -> Result<(), DbError> {
        self.queries.control(id)?.set_paused(true);
        Ok(())
    }

    /// Resumes paused query `id`.
    pub fn resume_query(&self, id: u64) -> Result<(), DbError> {
        self.queries.control(id)?.set_paused(false);
        Ok(())
    }

    /// Stops running query `id`.
    pub fn stop_query(&self, id: u64) -> Result<(), DbError> {
        self.queries.control(id)?.stop();
        Ok(())
    }
}

/// Names are file names: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with a dot.
fn check_name(name: &str) -> Result<(), DbError> {
    let bad = |reason| DbError::BadName {
        name: name.chars().take(MAX_NAME_LEN + 8).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("longer than 64 bytes"));
    }
    if name.starts_with('.') {
        return Err(bad("starts with a dot"));
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
    {
        return Err(bad("only letters, digits, '_', '-' and '.' are allowed"));
    }
    Ok(())
}
