//! Browsing a [`FileService`](super::FileService): directory listings and range reads (the
//! original's fragment download: a piece of a file, without a transfer).
//!
//! - `__zs.files.list` (stream): `[path: String]` (`""` — or `public/` with user areas — for
//!   the area's top) → `[name: String, dir: bool, size: u64, modified: u64 (Unix s)]*`,
//!   sorted by name; symbolic links are left out.
//! - `__zs.files.read` (stream): `[path: String, offset: u64, len: u32]` (`len` at most
//!   [`MAX_READ`]) → `[bytes]`, shorter at the end of the file.

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use zs_wire::DataFrame;

use super::server::{ServeError, Served, io_error};
use crate::dispatch::User;

/// Longest range one `read` returns: 4 MiB.
pub const MAX_READ: u32 = 4 * 1024 * 1024;

/// One directory entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// Whether it is a directory.
    pub dir: bool,
    /// Its size in bytes (0 for directories).
    pub size: u64,
    /// When it was last changed, seconds since the Unix epoch.
    pub modified: u64,
}

impl DirEntry {
    pub(super) fn read_all(frame: &DataFrame) -> Result<Vec<DirEntry>, String> {
        let mut reader = frame.reader();
        let mut entries = Vec::new();
        while reader.peek().is_some() {
            entries.push(DirEntry {
                name: reader.read_string().map_err(|error| error.to_string())?,
                dir: reader.read_bool().map_err(|error| error.to_string())?,
                size: reader.read_u64().map_err(|error| error.to_string())?,
                modified: reader.read_u64().map_err(|error| error.to_string())?,
            });
        }
        Ok(entries)
    }
}

fn bad_request(error: impl ToString) -> ServeError {
    ServeError::Refused(format!("bad request: {}", error.to_string()))
}

impl Served {
    /// The local directory `remote` names for `user`.
    async fn directory(&self, user: Option<&User>, remote: &str) -> Result<PathBuf, ServeError> {
        let area = self.area(user, remote, false).await?;
        let inside = area.path.trim_matches('/');
        if inside.is_empty() || inside == "." {
            return Ok(area.root);
        }
        self.resolve_in(&area.root, inside, remote, false).await
    }

    pub(super) async fn list(
        &self,
        user: Option<&User>,
        input: &DataFrame,
    ) -> Result<DataFrame, ServeError> {
        let remote = input.reader().read_string().map_err(bad_request)?;
        let dir = self.directory(user, &remote).await?;
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ServeError::NotFound(remote));
            }
            Err(error) => return Err(io_error(&remote)(error)),
        };
        let mut listed = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_error(&remote))? {
            let meta = entry.metadata().await.map_err(io_error(&remote))?;
            if meta.file_type().is_symlink() {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |since| since.as_secs());
            listed.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                dir: meta.is_dir(),
                size: if meta.is_dir() { 0 } else { meta.len() },
                modified,
            });
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed.into_iter().fold(DataFrame::new(), |frame, entry| {
            frame
                .with(entry.name)
                .with(entry.dir)
                .with(entry.size)
                .with(entry.modified)
        }))
    }

    pub(super) async fn read(
        &self,
        user: Option<&User>,
        input: &DataFrame,
    ) -> Result<DataFrame, ServeError> {
        let mut reader = input.reader();
        let remote = reader.read_string().map_err(bad_request)?;
        let offset = reader.read_u64().map_err(bad_request)?;
        let len = reader.read_u32().map_err(bad_request)?;
        if len > MAX_READ {
            return Err(ServeError::Refused(format!(
                "a read of {len} bytes; at most {MAX_READ}"
            )));
        }
        let (path, _area) = self.resolve(user, &remote, false).await?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ServeError::NotFound(remote));
            }
            Err(error) => return Err(io_error(&remote)(error)),
        };
        let meta = file.metadata().await.map_err(io_error(&remote))?;
        if !meta.is_file() {
            return Err(ServeError::Refused(format!(
                "{remote} is not a regular file"
            )));
        }
        let available = meta.len().saturating_sub(offset);
        let take = u64::from(len).min(available);
        file.seek(SeekFrom::Start(offset.min(meta.len())))
            .await
            .map_err(io_error(&remote))?;
        // Bounded by MAX_READ above.
        let mut bytes = vec![0u8; usize::try_from(take).unwrap_or(0)];
        file.read_exact(&mut bytes)
            .await
            .map_err(io_error(&remote))?;
        Ok(DataFrame::new().with(bytes))
    }
}
