//! Key files: a server's static key pair in its text form, created readable by the owner
//! only, so a server keeps its identity (and its clients' pins stay valid) across restarts.
//!
//! ```no_run
//! let (keypair, created) = zs::key_file::load_or_create("server.key".as_ref())?;
//! if created {
//!     println!("new key, fingerprint {}", keypair.fingerprint());
//! }
//! # Ok::<(), zs::key_file::KeyFileError>(())
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use zs_wire::handshake::StaticKeypair;

/// A key file could not be read, parsed or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading the file failed.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a key pair in text form.
    #[error("invalid key file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Creating or writing the file failed (it may already exist: it is never overwritten).
    #[error("cannot create key file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No random key could be made.
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// Reads the key pair in `path`, or creates the file with a new one when it does not exist.
/// Returns the key pair and whether it was just created.
pub fn load_or_create(path: &Path) -> Result<(StaticKeypair, bool), KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => StaticKeypair::from_text(&text)
            .map(|keypair| (keypair, false))
            .map_err(|error| KeyFileError::Invalid {
                path: path.to_owned(),
                reason: error.to_string(),
            }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let keypair = StaticKeypair::generate()
                .map_err(|error| KeyFileError::Generate(error.to_string()))?;
            write_new(path, &keypair)?;
            Ok((keypair, true))
        }
        Err(source) => Err(KeyFileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates `path` (which must not exist) holding `keypair` in text form, readable by its
/// owner only on Unix.
pub fn write_new(path: &Path, keypair: &StaticKeypair) -> Result<(), KeyFileError> {
    let create_error = |source| KeyFileError::Create {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(create_error)?;
    file.write_all(keypair.to_text().as_bytes())
        .map_err(create_error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_created_key_is_loaded_back_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let (created, fresh) = load_or_create(&path).unwrap();
        assert!(fresh);
        let (loaded, fresh) = load_or_create(&path).unwrap();
        assert!(!fresh);
        assert_eq!(loaded.fingerprint(), created.fingerprint());
        assert!(matches!(
            write_new(&path, &created),
            Err(KeyFileError::Create { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::Invalid { .. })
        ));
    }
}
