//! Per-user areas of a [`FileService`](super::FileService): `public/...` for everyone to
//! read (and logged-in users to write), everything else in the caller's own directory,
//! `users/<name>/` under the served root, with an optional quota.

use std::io;
use std::path::{Path, PathBuf};

use super::paths::parse_remote;
use crate::dispatch::User;

/// The prefix of paths in the shared area.
pub(super) const PUBLIC: &str = "public/";

/// How the served root is divided.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct UserAreas {
    /// Most bytes one user's area may hold.
    pub(super) quota: Option<u64>,
}

/// Where a request lands.
#[derive(Debug)]
pub(super) struct Area {
    /// The area's directory (canonical): nothing outside it is reached.
    pub(super) root: PathBuf,
    /// The path within the area.
    pub(super) path: String,
    /// The quota that applies to writes, if any.
    pub(super) quota: Option<u64>,
}

/// Why a request has no area.
#[derive(Debug)]
pub(super) enum AreaError {
    /// Private files need a login (and writing public ones).
    NeedsLogin,
    /// A user name that cannot be a directory name.
    BadUser(String),
    Io(io::Error),
}

impl UserAreas {
    /// The area of `remote` for `user`; `write` for requests that change files.
    pub(super) async fn area(
        &self,
        root: &Path,
        user: Option<&User>,
        remote: &str,
        write: bool,
    ) -> Result<Area, AreaError> {
        let (dir, path, quota) = match remote.strip_prefix(PUBLIC) {
            Some(rest) => {
                if write && user.is_none() {
                    return Err(AreaError::NeedsLogin);
                }
                (root.join("public"), rest, None)
            }
            None => {
                let user = user.ok_or(AreaError::NeedsLogin)?;
                // Names chosen elsewhere (virtual auth) must still be one plain component.
                let name = user.name();
                if parse_remote(name).ok().as_deref() != Some(&[name][..]) {
                    return Err(AreaError::BadUser(name.to_owned()));
                }
                (root.join("users").join(name), remote, self.quota)
            }
        };
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(AreaError::Io)?;
        let dir = tokio::fs::canonicalize(&dir).await.map_err(AreaError::Io)?;
        // The area itself may not be a link out of the root.
        if !dir.starts_with(root) {
            return Err(AreaError::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the area resolves outside the served directory",
            )));
        }
        Ok(Area {
            root: dir,
            path: path.to_owned(),
            quota,
        })
    }
}

/// Bytes held under `dir` (files only, links not followed), `.part` files included.
pub(super) async fn usage(dir: PathBuf) -> io::Result<u64> {
    tokio::task::spawn_blocking(move || {
        let mut total = 0u64;
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    pending.push(entry.path());
                } else if kind.is_file() {
                    total = total.saturating_add(entry.metadata()?.len());
                }
            }
        }
        Ok(total)
    })
    .await
    .map_err(io::Error::other)?
}
