//! Remote path checks, `.part` names and per-path locks, used by both sides.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::protocol::PART_SUFFIX;

/// Splits a remote path into its normal components, or says why it is refused.
pub(super) fn parse_remote(remote: &str) -> Result<Vec<&str>, &'static str> {
    if remote.is_empty() {
        return Err("the path is empty");
    }
    if remote.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if remote.contains('\\') {
        return Err("backslashes are not allowed; separate with /");
    }
    if remote.contains('\0') {
        return Err("NUL bytes are not allowed");
    }
    let mut parts = Vec::new();
    for part in remote.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err("\"..\" components are not allowed"),
            _ => {}
        }
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => parts.push(part),
            // A drive prefix ("C:") or anything else a platform reads as more than a name.
            _ => return Err("absolute paths are not allowed"),
        }
    }
    if parts.is_empty() {
        return Err("the path names no file");
    }
    Ok(parts)
}

pub(super) fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PART_SUFFIX);
    PathBuf::from(name)
}

type LockTable = HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>;

/// One async lock per file path, so two operations never write the same `.part`.
#[derive(Debug, Default, Clone)]
pub(super) struct PathLocks {
    table: Arc<Mutex<LockTable>>,
}

impl PathLocks {
    fn table(&self) -> MutexGuard<'_, LockTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn lock(&self, path: &Path) -> PathGuard {
        let mutex = self.table().entry(path.to_owned()).or_default().clone();
        let held = mutex.lock_owned().await;
        PathGuard {
            locks: self.clone(),
            path: path.to_owned(),
            held: Some(held),
        }
    }
}

pub(super) struct PathGuard {
    locks: PathLocks,
    path: PathBuf,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        self.held = None;
        let mut table = self.locks.table();
        if table
            .get(&self.path)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            table.remove(&self.path);
        }
    }
}
