//! Configuration of [`NatServer`](crate::NatServer) and [`NatAgent`](crate::NatAgent), from
//! TOML (`[nat.server]` and `[nat.agent]` tables) or from code. Every field but a mapping's
//! `public`/`local` and `token` has a default, so minimal files work:
//!
//! ```toml
//! # server side: agents connect to `listen`, users to each mapping's `public`
//! [nat.server]
//! listen = "0.0.0.0:4921"
//! key_file = "zs-nat-server.key"   # the server's identity; created on first start
//! [nat.server.mappings.web]
//! public = "0.0.0.0:8080"
//! token = "change-me"
//!
//! # agent side (behind NAT): dials `server`, forwards each mapping to `local`
//! [nat.agent]
//! server = "nat.example.com:4921"
//! pin = "sha3-256:..."            # optional: the server's key fingerprint
//! [nat.agent.mappings.web]
//! local = "127.0.0.1:8000"
//! token = "change-me"
//! ```
//!
//! ```
//! let file = zs_nat::ConfigFile::from_toml(r#"
//!     [nat.server]
//!     listen = "127.0.0.1:4921"
//!     [nat.server.mappings.web]
//!     public = "127.0.0.1:8080"
//!     token = "change-me"
//! "#)?;
//! let server = file.nat.server.unwrap();
//! assert_eq!(server.mappings["web"].public, "127.0.0.1:8080");
//! assert_eq!(server.keepalive_secs, 15);
//! # Ok::<(), zs_nat::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zs::mux::MuxConfig;
use zs::{Fingerprint, Security, Suite};

use crate::Secret;
use crate::codec::{MAX_AGENT_NAME, MAX_TOKEN_LEN, MAX_WEIGHT, is_valid_mapping_name};

/// Default receive window of a forwarded connection: 4 MiB. With the mux's own 256 KiB
/// default, one bulk connection through XNat ran at 0.73 of rathole on loopback; with 4 MiB
/// at 1.35 (BENCHMARKS.md, "XNat vs rathole").
pub const DEFAULT_STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Default link-wide buffer budget, MiB (see the server's `link_buffer_mib`).
pub const DEFAULT_LINK_BUFFER_MIB: u64 = 4096;

/// Default address the server accepts agents on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4921";

/// A configuration could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid TOML for this schema (unknown keys included).
    #[error("invalid configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// The file has no `[nat.server]` / `[nat.agent]` table where one is needed.
    #[error("the configuration has no [nat.{0}] table")]
    MissingSection(&'static str),
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// A whole TOML file; tables other than `[nat]` are ignored (so one file may also configure
/// `zs serve`).
#[derive(Debug, Default, Deserialize)]
pub struct ConfigFile {
    /// The `[nat]` table.
    #[serde(default)]
    pub nat: NatSection,
}

/// The `[nat]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    /// `[nat.server]`: run by `zs nat server`.
    #[serde(default)]
    pub server: Option<ServerConfig>,
    /// `[nat.agent]`: run by `zs nat agent`.
    #[serde(default)]
    pub agent: Option<AgentConfig>,
}

impl ConfigFile {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }
}

fn default_suites() -> Vec<String> {
    Suite::DEFAULT_SUITES
        .iter()
        .map(|suite| suite.name().to_owned())
        .collect()
}

fn seconds(value: u64) -> Option<Duration> {
    (value > 0).then(|| Duration::from_secs(value))
}

/// Settings of the encrypted, multiplexed link, shared by both ends.
#[derive(Debug, Clone)]
pub(crate) struct LinkSettings {
    pub(crate) security: Security,
    pub(crate) mux: MuxConfig,
    pub(crate) handshake_timeout: Duration,
}

fn link_settings(
    suites: &[String],
    allow_plain: bool,
    handshake_timeout_secs: u64,
    keepalive_secs: u64,
    idle_timeout_secs: u64,
    stream_window: u32,
    link_buffer_mib: u64,
) -> Result<LinkSettings, ConfigError> {
    if suites.is_empty() {
        return Err(invalid("`suites` is empty"));
    }
    let suites = suites
        .iter()
        .map(|name| {
            Suite::from_name(name).ok_or_else(|| {
                let known: Vec<_> = Suite::ALL.iter().map(|suite| suite.name()).collect();
                invalid(format!(
                    "unknown cipher suite {name:?} (known: {})",
                    known.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let (Some(keepalive), Some(idle)) = (seconds(keepalive_secs), seconds(idle_timeout_secs))
        && keepalive >= idle
    {
        return Err(invalid(format!(
            "keepalive_secs ({keepalive_secs}) must be below idle_timeout_secs ({idle_timeout_secs})"
        )));
    }
    let handshake_timeout = Duration::from_secs(handshake_timeout_secs.max(1));
    let mut security = Security::default();
    security
        .suites(suites)
        .allow_plain(allow_plain)
        .handshake_timeout(handshake_timeout);
    // MiB to bytes, saturating; the mux raises anything below one initial window to it.
    let link_buffer =
        usize::try_from(link_buffer_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let mux = MuxConfig::default()
        .with_stream_window(stream_window)
        .with_max_buffered(Some(link_buffer))
        .with_keepalive_interval(seconds(keepalive_secs))
        .with_idle_timeout(seconds(idle_timeout_secs));
    Ok(LinkSettings {
        security,
        mux,
        handshake_timeout,
    })
}

fn check_token(mapping: &str, token: &Secret) -> Result<(), ConfigError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(invalid(format!(
            "mapping {mapping:?}: the token must be 1..={MAX_TOKEN_LEN} bytes"
        )));
    }
    Ok(())
}

fn check_mapping_name(name: &str) -> Result<(), ConfigError> {
    if !is_valid_mapping_name(name) {
        return Err(invalid(format!(
            "mapping name {name:?}: use 1..=64 ASCII letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

/// `[nat.server]`: the public side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address agents connect to (default `127.0.0.1:4921`); empty = accept no agents (only
    /// dial them, see `dial`).
    pub listen: String,
    /// The server's key file (its identity, which agents may pin): loaded, or created with a
    /// new key when missing. Unset = a fresh key at each start (`zs nat server` defaults to
    /// `zs-nat-server.key`).
    pub key_file: Option<PathBuf>,
    /// Cipher suites allowed on agent links, in preference order (default: every encrypted
    /// suite). List `"plain"` (first, to prefer it) with `allow_plain` for no encryption.
    pub suites: Vec<String>,
    /// Allow the unencrypted `plain` suite (default false; the agent must allow it too).
    pub allow_plain: bool,
    /// Seconds an agent's handshake and its first control message may take (default 10).
    pub handshake_timeout_secs: u64,
    /// Ping an agent link after this many seconds without traffic (default 15; 0 = off).
    /// Keeps NAT and firewall state alive on idle links.
    pub keepalive_secs: u64,
    /// Close an agent link after this many seconds without traffic (default 60; 0 = off).
    pub idle_timeout_secs: u64,
    /// Receive window of each forwarded connection on a link, bytes (default 4 MiB, at
    /// most 16 MiB): a single connection moves at most one window per round trip. Memory is
    /// taken only by data actually in flight, so idle connections cost nothing for it.
    pub stream_window: u32,
    /// Received data one agent link may hold over all its forwarded connections, MiB
    /// (default 4,096): what arrived and is not yet written to its socket, plus what the peer
    /// may still send. Without it a link's bound would be its stream limit × `stream_window`;
    /// with it, once the link's connections hold this much, their windows shrink and new
    /// forwarded connections on the link are refused until they drain. Each open connection
    /// reserves at least 256 KiB of it (the window the protocol grants a new stream), so this
    /// also caps a link's connections open at once at `link_buffer_mib × 4` less one for the
    /// link's control stream (16,383 by default).
    pub link_buffer_mib: u64,
    /// Agent links served at once (default 1024); more are closed at once.
    pub max_agents: usize,
    /// Seconds to wait for an agent to accept a forwarded connection (default 10).
    pub open_timeout_secs: u64,
    /// Log every mapping's counters this often, when they changed (default 60; 0 = off).
    pub stats_interval_secs: u64,
    /// On shutdown, seconds to let forwarded connections finish (default 5).
    pub shutdown_grace_secs: u64,
    /// Optional admin endpoint: a zs server on this address answering the console command
    /// `nat.stats` with JSON counters (`zs nat stats --admin ADDR`). Same key as the server.
    pub admin: Option<String>,
    /// Token clients of the admin endpoint must present (default none).
    pub admin_token: Option<Secret>,
    /// Reverse mode: agents (run with `listen`) this server dials and keeps dialing.
    pub dial: Vec<String>,
    /// Reverse mode: first delay before redialing an agent, milliseconds (default 200).
    pub reconnect_min_ms: u64,
    /// Reverse mode: longest delay between redials, milliseconds (default 10,000).
    pub reconnect_max_ms: u64,
    /// The mappings, by name (`[nat.server.mappings.NAME]`).
    pub mappings: BTreeMap<String, ServerMapping>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            key_file: None,
            suites: default_suites(),
            allow_plain: false,
            handshake_timeout_secs: 10,
            keepalive_secs: 15,
            idle_timeout_secs: 60,
            stream_window: DEFAULT_STREAM_WINDOW,
            link_buffer_mib: DEFAULT_LINK_BUFFER_MIB,
            max_agents: 1024,
            open_timeout_secs: 10,
            stats_interval_secs: 60,
            shutdown_grace_secs: 5,
            admin: None,
            admin_token: None,
            dial: Vec::new(),
            reconnect_min_ms: 200,
            reconnect_max_ms: 10_000,
            mappings: BTreeMap::new(),
        }
    }
}

/// `[nat.server.mappings.NAME]`: one exposed service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerMapping {
    /// Address users connect to, e.g. `0.0.0.0:8080` (port 0 = any free port). Opened when
    /// the first agent for the mapping registers, closed when the last one leaves.
    pub public: String,
    /// Agents must present this token to serve the mapping (1..=255 bytes).
    pub token: Secret,
    /// Public connections forwarded at once; more are closed at once (default 65,536).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_max_connections() -> usize {
    65_536
}

impl ServerMapping {
    /// A mapping on `public` for agents with `token`.
    pub fn new(public: impl Into<String>, token: impl Into<Secret>) -> Self {
        Self {
            public: public.into(),
            token: token.into(),
            max_connections: default_max_connections(),
        }
    }
}

impl ServerConfig {
    /// The `[nat.server]` table of a TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        ConfigFile::from_toml(text)?
            .nat
            .server
            .ok_or(ConfigError::MissingSection("server"))
    }

    /// Checks every value; [`NatServer::start`](crate::NatServer::start) calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.link_settings()?;
        if self.mappings.is_empty() {
            return Err(invalid("[nat.server] has no mappings"));
        }
        if self.listen.is_empty() && self.dial.is_empty() {
            return Err(invalid(
                "[nat.server] needs `listen` (agents dial in) or `dial` (it dials agents)",
            ));
        }
        for (name, mapping) in &self.mappings {
            check_mapping_name(name)?;
            check_token(name, &mapping.token)?;
            if mapping.public.is_empty() {
                return Err(invalid(format!("mapping {name:?}: `public` is empty")));
            }
            if mapping.max_connections == 0 {
                return Err(invalid(format!("mapping {name:?}: max_connections is 0")));
            }
        }
        if self.max_agents == 0 {
            return Err(invalid("max_agents is 0"));
        }
        if self.admin_token.as_ref().is_some_and(Secret::is_empty) {
            return Err(invalid("admin_token is empty"));
        }
        Ok(())
    }

    pub(crate) fn link_settings(&self) -> Result<LinkSettings, ConfigError> {
        link_settings(
            &self.suites,
            self.allow_plain,
            self.handshake_timeout_secs,
            self.keepalive_secs,
            self.idle_timeout_secs,
            self.stream_window,
            self.link_buffer_mib,
        )
    }
}

/// `[nat.agent]`: the side behind NAT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The server to dial, `host:port`. Either this or `listen`.
    pub server: Option<String>,
    /// Reverse mode: wait for the server to dial this address instead of dialing it.
    pub listen: Option<String>,
    /// Name shown in the server's logs and statistics (default: none; the address is shown).
    pub name: String,
    /// The server's key fingerprint (`sha3-256:` + 64 hex digits, printed by `zs nat server`):
    /// any other server is refused. Strongly advised: without it the agent serves whoever
    /// answers at `server` (its tokens stay safe: only link-bound proofs of them are sent).
    pub pin: Option<String>,
    /// Cipher suites offered, in preference order (default: every encrypted suite).
    pub suites: Vec<String>,
    /// Allow the unencrypted `plain` suite (default false; the server must allow it too).
    pub allow_plain: bool,
    /// Seconds the TCP connect to the server may take (default 10).
    pub connect_timeout_secs: u64,
    /// Seconds the handshake and registration may take (default 10).
    pub handshake_timeout_secs: u64,
    /// Ping the link after this many seconds without traffic (default 15; 0 = off).
    pub keepalive_secs: u64,
    /// Close the link after this many seconds without traffic (default 60; 0 = off); the
    /// agent then reconnects.
    pub idle_timeout_secs: u64,
    /// Receive window of each forwarded connection, bytes (default 4 MiB, at most 16 MiB;
    /// see the server's `stream_window`).
    pub stream_window: u32,
    /// Received data the link may hold over all forwarded connections, MiB (default 4,096;
    /// see the server's `link_buffer_mib`).
    pub link_buffer_mib: u64,
    /// First delay before reconnecting after the link drops, milliseconds (default 200).
    pub reconnect_min_ms: u64,
    /// Longest delay between reconnect attempts, milliseconds (default 10,000); the delay
    /// doubles from `reconnect_min_ms` and starts over once a link works.
    pub reconnect_max_ms: u64,
    /// On shutdown, seconds to let forwarded connections finish (default 5).
    pub shutdown_grace_secs: u64,
    /// The mappings, by name (`[nat.agent.mappings.NAME]`).
    pub mappings: BTreeMap<String, AgentMapping>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            server: None,
            listen: None,
            name: String::new(),
            pin: None,
            suites: default_suites(),
            allow_plain: false,
            connect_timeout_secs: 10,
            handshake_timeout_secs: 10,
            keepalive_secs: 15,
            idle_timeout_secs: 60,
            stream_window: DEFAULT_STREAM_WINDOW,
            link_buffer_mib: DEFAULT_LINK_BUFFER_MIB,
            reconnect_min_ms: 200,
            reconnect_max_ms: 10_000,
            shutdown_grace_secs: 5,
            mappings: BTreeMap::new(),
        }
    }
}

/// `[nat.agent.mappings.NAME]`: one service this agent serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentMapping {
    /// The local service forwarded to, e.g. `127.0.0.1:8000`. Not set for a virtual server.
    #[serde(default)]
    pub local: Option<String>,
    /// The mapping's token, as on the server.
    pub token: Secret,
    /// This agent's share of new connections when several agents serve the mapping
    /// (1..=1000, default 1).
    #[serde(default = "default_weight")]
    pub weight: u16,
    /// Serve a zs server on the mapping instead of a local socket (attach it with
    /// [`NatAgent::serve_virtual`](crate::NatAgent::serve_virtual); `zs nat agent` serves its
    /// built-in commands). Default false.
    #[serde(default)]
    pub virtual_server: bool,
}

fn default_weight() -> u16 {
    1
}

impl AgentMapping {
    /// A mapping forwarded to the local service at `local`.
    pub fn local(local: impl Into<String>, token: impl Into<Secret>) -> Self {
        Self {
            local: Some(local.into()),
            token: token.into(),
            weight: default_weight(),
            virtual_server: false,
        }
    }

    /// A mapping served by a [`VirtualService`](crate::VirtualService), no local socket.
    pub fn virtual_server(token: impl Into<Secret>) -> Self {
        Self {
            local: None,
            token: token.into(),
            weight: default_weight(),
            virtual_server: true,
        }
    }

    /// Sets the weight.
    pub fn with_weight(mut self, weight: u16) -> Self {
        self.weight = weight;
        self
    }
}

impl AgentConfig {
    /// An agent dialing `server`, with no mappings yet.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: Some(server.into()),
            ..Self::default()
        }
    }

    /// The `[nat.agent]` table of a TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        ConfigFile::from_toml(text)?
            .nat
            .agent
            .ok_or(ConfigError::MissingSection("agent"))
    }

    /// Checks every value (but not whether virtual services are attached: see
    /// [`NatAgent::start`](crate::NatAgent::start)).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.link_settings()?;
        match (&self.server, &self.listen) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(invalid(
                    "[nat.agent] needs exactly one of `server` (dial it) and `listen` (be dialed)",
                ));
            }
        }
        if self.name.len() > MAX_AGENT_NAME {
            return Err(invalid(format!(
                "agent name longer than {MAX_AGENT_NAME} bytes"
            )));
        }
        if self.mappings.is_empty() {
            return Err(invalid("[nat.agent] has no mappings"));
        }
        for (name, mapping) in &self.mappings {
            check_mapping_name(name)?;
            check_token(name, &mapping.token)?;
            if !(1..=MAX_WEIGHT).contains(&mapping.weight) {
                return Err(invalid(format!(
                    "mapping {name:?}: weight {} outside 1..={MAX_WEIGHT}",
                    mapping.weight
                )));
            }
            match (&mapping.local, mapping.virtual_server) {
                (Some(local), false) if !local.is_empty() => {}
                (None, true) => {}
                _ => {
                    return Err(invalid(format!(
                        "mapping {name:?}: set either `local` or `virtual_server = true`"
                    )));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn link_settings(&self) -> Result<LinkSettings, ConfigError> {
        let mut settings = link_settings(
            &self.suites,
            self.allow_plain,
            self.handshake_timeout_secs,
            self.keepalive_secs,
            self.idle_timeout_secs,
            self.stream_window,
            self.link_buffer_mib,
        )?;
        if let Some(pin) = &self.pin {
            let fingerprint: Fingerprint = pin
                .parse()
                .map_err(|error| invalid(format!("pin {pin:?}: {error}")))?;
            settings.security.pin(fingerprint);
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SERVER: &str = r#"
        [nat.server]
        listen = "127.0.0.1:4921"
        [nat.server.mappings.web]
        public = "127.0.0.1:8080"
        token = "change-me"
    "#;

    const AGENT: &str = r#"
        [nat.agent]
        server = "127.0.0.1:4921"
        [nat.agent.mappings.web]
        local = "127.0.0.1:8000"
        token = "change-me"
    "#;

    #[test]
    fn the_minimal_files_of_the_readme_parse_and_validate() {
        let server = ServerConfig::from_toml(SERVER).unwrap();
        server.validate().unwrap();
        assert_eq!(server.mappings["web"].token.expose(), "change-me");
        let agent = AgentConfig::from_toml(AGENT).unwrap();
        agent.validate().unwrap();
        assert_eq!(agent.mappings["web"].weight, 1);
        assert_eq!(agent.reconnect_min_ms, 200);
        // Each file lacks the other's table.
        assert!(matches!(
            AgentConfig::from_toml(SERVER),
            Err(ConfigError::MissingSection("agent"))
        ));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        let typo = SERVER.replace("public =", "publik =");
        assert!(ServerConfig::from_toml(&typo).is_err());
        let mut server = ServerConfig::from_toml(SERVER).unwrap();
        server.suites = vec!["rot13".into()];
        let error = server.validate().unwrap_err().to_string();
        assert!(error.contains("rot13"), "{error}");
        let mut agent = AgentConfig::from_toml(AGENT).unwrap();
        agent.pin = Some("sha3-256:nothex".into());
        assert!(agent.validate().unwrap_err().to_string().contains("pin"));
        let mut agent = AgentConfig::from_toml(AGENT).unwrap();
        agent.listen = Some("127.0.0.1:1".into());
        assert!(agent.validate().is_err());
        let mut agent = AgentConfig::from_toml(AGENT).unwrap();
        agent.mappings.insert(
            "bad name".into(),
            AgentMapping::local("127.0.0.1:1", "token"),
        );
        assert!(
            agent
                .validate()
                .unwrap_err()
                .to_string()
                .contains("bad name")
        );
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let server = ServerConfig::from_toml(SERVER).unwrap();
        assert!(!format!("{server:?}").contains("change-me"));
    }
}
