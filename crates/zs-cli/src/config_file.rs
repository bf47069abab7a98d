//! The TOML configuration file of `zs serve`. Every field is optional.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:4920"      # address to listen on (IPv4 or IPv6)
//! max_connections = 10000        # connections past this get a "server full" close
//! max_frame_size = 16777216      # largest frame body accepted, bytes
//! max_concurrent_requests = 1024 # requests from one peer running at once
//! keepalive_secs = 15            # ping after this much silence (0 = off)
//! idle_timeout_secs = 60         # close after this much silence (0 = off)
//! shutdown_grace_secs = 10       # graceful shutdown waits this long for handlers
//! stable_memory_mib = 512        # what all StableIO sessions may buffer together, MiB
//! stream_window_kib = 4096       # window of each BigStream/CompleteBuffer received, KiB (>= 1024)
//! # files = "/srv/zs"            # serve this directory to `zs put` / `zs get` (off if unset)
//! # db = "/srv/zdb"              # serve the ZDB store in this directory to `zs db` (off if unset)
//! # accounts = "/srv/zs-accounts" # users who log in (`zs user`, `zs call --user`); off if unset
//! open_registration = false      # with accounts: anyone may register (else `zs user add` only)
//! require_login = []             # commands (or "prefix.*") that need a logged-in user
//! user_areas = false             # with files and accounts: a public/ area and one per user
//! user_quota_mib = 0             # with user areas: most MiB per user (0 = no quota)
//! metrics = true                 # count calls and bytes for `stats` and /metrics
//!
//! [security]
//! suites = ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305", "rc6-gcm", "twofish-gcm", "serpent-gcm", "mars-gcm"]
//! random_suite = false           # pick a random allowed suite per connection
//! allow_plain = false            # allow the unencrypted "plain" suite if listed
//! key_file = "zs-server.key"     # server identity; created on first start
//! token = ""                     # clients must present this token (empty = none)
//! rekey_after_bytes = 1073741824 # rotate each direction's key after this many bytes
//! rekey_after_secs = 3600        # ... or after this many seconds
//!
//! [admin]
//! # listen = "127.0.0.1:9920"    # dashboard, /metrics and the JSON API (off if unset)
//! # token = "..."                # bearer token; required when listen is not loopback
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

/// Address `zs serve` listens on without configuration.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4920";

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Server settings.
    #[serde(default)]
    pub server: ServerSection,
    /// Security settings.
    #[serde(default)]
    pub security: SecuritySection,
    /// The admin listener (dashboard, `/metrics`, JSON API); off unless `listen` is set.
    #[serde(default)]
    pub admin: zs_admin::AdminConfig,
}

/// Default path of the server's key file, relative to the working directory.
pub const DEFAULT_KEY_FILE: &str = "zs-server.key";

/// `[security]`: every field defaults to the library default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Allowed cipher suites, in preference order.
    pub suites: Vec<String>,
    /// Pick a random allowed suite per connection.
    pub random_suite: bool,
    /// Allow the unencrypted `plain` suite when listed.
    pub allow_plain: bool,
    /// The server's key file; created on first start.
    pub key_file: std::path::PathBuf,
    /// A token clients must present; empty means none.
    pub token: MaskedString,
    /// Rotate each direction's key after this many bytes.
    pub rekey_after_bytes: u64,
    /// Rotate each direction's key after this many seconds.
    pub rekey_after_secs: u64,
}

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            suites: zs::Suite::DEFAULT_SUITES
                .iter()
                .map(|suite| suite.name().to_owned())
                .collect(),
            random_suite: false,
            allow_plain: false,
            key_file: DEFAULT_KEY_FILE.into(),
            token: MaskedString::default(),
            rekey_after_bytes: zs::transport::DEFAULT_REKEY_AFTER_BYTES,
            rekey_after_secs: zs::transport::DEFAULT_REKEY_AFTER.as_secs(),
        }
    }
}

/// A secret from the config file: never printed by `Debug`.
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub struct MaskedString(pub String);

impl std::fmt::Debug for MaskedString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<hidden>\""
        })
    }
}

/// Parses suite names (as on the command line and in the config file).
pub fn parse_suites(names: &[String]) -> anyhow::Result<Vec<zs::Suite>> {
    anyhow::ensure!(!names.is_empty(), "the suite list is empty");
    names
        .iter()
        .map(|name| {
            zs::Suite::from_name(name).ok_or_else(|| {
                let known: Vec<_> = zs::Suite::ALL.iter().map(|suite| suite.name()).collect();
                anyhow::anyhow!(
                    "unknown cipher suite {name:?} (known: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

impl SecuritySection {
    /// Applies these settings to a library configuration (everything but the key file).
    pub fn apply(&self, security: &mut zs::Security) -> anyhow::Result<()> {
        security
            .suites(parse_suites(&self.suites)?)
            .random_suite(self.random_suite)
            .allow_plain(self.allow_plain)
            .rekey_after_bytes(self.rekey_after_bytes)
            .rekey_after(Duration::from_secs(self.rekey_after_secs.max(1)));
        if !self.token.0.is_empty() {
            security.token(self.token.0.as_bytes().to_vec());
        }
        Ok(())
    }
}

/// `[server]`: every field defaults to the library default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Largest frame body accepted, in bytes.
    pub max_frame_size: u32,
    /// Requests from one peer that may run at once.
    pub max_concurrent_requests: usize,
    /// Seconds of silence before a keep-alive ping; 0 disables.
    pub keepalive_secs: u64,
    /// Seconds of silence before the connection is closed; 0 disables.
    pub idle_timeout_secs: u64,
    /// Seconds a graceful shutdown waits for running handlers.
    pub shutdown_grace_secs: u64,
    /// MiB all StableIO sessions may hold in their buffers together (data kept for clients
    /// that may resume); past it writes wait and detached sessions are ended first.
    pub stable_memory_mib: usize,
    /// KiB a BigStream or CompleteBuffer being received may have in flight (its window; at
    /// least 1,024, the protocol's initial window): what a handler that stops reading holds.
    pub stream_window_kib: u32,
    /// A directory to serve to `zs put` / `zs get`; none by default.
    pub files: Option<std::path::PathBuf>,
    /// A directory holding the ZDB store served to `zs db`; none by default.
    pub db: Option<std::path::PathBuf>,
    /// A directory holding the accounts (a ZDB store of its own, made with `zs user`):
    /// clients log in with `zs call --user`; none by default.
    pub accounts: Option<std::path::PathBuf>,
    /// With accounts: whether anyone may register an account over the network (otherwise
    /// users are added with `zs user add`). Off by default.
    pub open_registration: bool,
    /// Commands that need a logged-in user: names, or prefixes ending in `*`
    /// (`"__zs.files.*"`). Empty by default.
    pub require_login: Vec<String>,
    /// With `files` (and accounts): divide the served directory into `public/` and one
    /// private area per user, `users/<name>/`. Off by default.
    pub user_areas: bool,
    /// With user areas: the most MiB one user's area may hold; 0 (the default) for no
    /// quota.
    pub user_quota_mib: u64,
    /// Count each call's time, status and bytes for `stats` and the admin listener's
    /// `/metrics` (on by default; off saves a few atomic adds per call).
    pub metrics: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 4920))),
            max_connections: zs::config::DEFAULT_MAX_CONNECTIONS,
            max_frame_size: zs_wire::frame::DEFAULT_MAX_FRAME_SIZE,
            max_concurrent_requests: 1024,
            keepalive_secs: 15,
            idle_timeout_secs: 60,
            shutdown_grace_secs: zs::config::DEFAULT_SHUTDOWN_GRACE.as_secs(),
            stable_memory_mib: zs::config::DEFAULT_STABLE_MEMORY >> 20,
            stream_window_kib: zs::transfer::DEFAULT_STREAM_WINDOW >> 10,
            files: None,
            db: None,
            accounts: None,
            open_registration: false,
            require_login: Vec::new(),
            user_areas: false,
            user_quota_mib: 0,
            metrics: true,
        }
    }
}

impl ConfigFile {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: Self = toml::from_str(text)?;
        anyhow::ensure!(
            file.server.max_connections > 0,
            "server.max_connections must be at least 1"
        );
        anyhow::ensure!(
            file.server.max_frame_size >= 1024,
            "server.max_frame_size must be at least 1024"
        );
        anyhow::ensure!(
            file.server.max_concurrent_requests > 0,
            "server.max_concurrent_requests must be at least 1"
        );
        anyhow::ensure!(
            (1024..=zs::transfer::MAX_STREAM_WINDOW >> 10).contains(&file.server.stream_window_kib),
            "server.stream_window_kib must be between 1024 and {}",
            zs::transfer::MAX_STREAM_WINDOW >> 10
        );
        parse_suites(&file.security.suites).context("security.suites")?;
        Ok(file)
    }
}

impl ServerSection {
    /// The library configuration these settings describe.
    pub fn to_config(&self) -> zs::Config {
        let seconds = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        let mut config = zs::Config::default();
        config
            .max_connections(self.max_connections)
            .max_frame_size(self.max_frame_size)
            .max_concurrent_requests(self.max_concurrent_requests)
            .keepalive_interval(seconds(self.keepalive_secs))
            .idle_timeout(seconds(self.idle_timeout_secs))
            .shutdown_grace(Duration::from_secs(self.shutdown_grace_secs))
            .stable_memory(self.stable_memory_mib.saturating_mul(1 << 20))
            .stream_window(self.stream_window_kib.saturating_mul(1 << 10))
            .metrics(self.metrics);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        let file = ConfigFile::parse("").unwrap();
        assert_eq!(file.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            file.server.max_connections,
            zs::config::DEFAULT_MAX_CONNECTIONS
        );
    }

    #[test]
    fn stream_window_is_bounded_by_the_protocol_minimum() {
        let file = ConfigFile::parse("[server]\nstream_window_kib = 8192").unwrap();
        assert_eq!(file.server.stream_window_kib, 8192);
        let error = ConfigFile::parse("[server]\nstream_window_kib = 512").unwrap_err();
        assert!(error.to_string().contains("stream_window_kib"), "{error}");
        assert_eq!(
            ConfigFile::parse("").unwrap().server.stream_window_kib,
            zs::transfer::DEFAULT_STREAM_WINDOW >> 10
        );
    }

    #[test]
    fn example_in_the_docs_parses() {
        let doc = include_str!("config_file.rs");
        let example: String = doc
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| line.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let file = ConfigFile::parse(&example).unwrap();
        assert_eq!(file.server.max_frame_size, 16_777_216);
    }

    #[test]
    fn secrets_are_not_printed() {
        let file = ConfigFile::parse("[security]\ntoken = \"hunter2\"").unwrap();
        assert!(!format!("{file:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_suites_are_refused_with_the_known_names() {
        let error = ConfigFile::parse("[security]\nsuites = [\"des\"]").unwrap_err();
        assert!(format!("{error:#}").contains("mars-gcm"), "{error:#}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(ConfigFile::parse("[server]\nlisten_on = \"x\"").is_err());
        assert!(ConfigFile::parse("[server]\nmax_connections = 0").is_err());
        assert!(ConfigFile::parse("[server]\nlisten = \"not an address\"").is_err());
    }
}
