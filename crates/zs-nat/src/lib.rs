//! # zs-nat — XNat: expose TCP services behind NAT through a public server
//!
//! Like frp or rathole (and ZServer4D's XNat): a [`NatServer`] runs on a public host, a
//! [`NatAgent`] runs next to the service behind NAT. The agent dials the server (or, in
//! reverse mode, the server dials the agent), the two run the zs handshake
//! ([`zs::EncryptedStream`]: Noise XX, AEAD records; the agent may pin the server's key) and a
//! p2pVM multiplexer ([`zs::mux::MuxLink`]) over it. On a control stream the agent registers
//! its mappings, each with its token. The server opens a mapping's public port when its first
//! agent registers and closes it when the last one leaves; each public connection becomes one
//! virtual stream to an agent chosen by least active connections (with weights), which
//! connects it to the local service — or hands it to a [`VirtualService`] such as a whole
//! [`zs::Server`] with no socket of its own.
//!
//! ```no_run
//! use zs_nat::{AgentConfig, AgentMapping, NatAgent, NatServer, ServerConfig, ServerMapping};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Public host: users reach "web" on port 8080.
//! let mut server_config = ServerConfig::default();
//! server_config.listen = "0.0.0.0:4921".into();
//! server_config.mappings.insert("web".into(), ServerMapping::new("0.0.0.0:8080", "change-me"));
//! let server = NatServer::new(server_config).start().await?;
//!
//! // Behind NAT: forward "web" to the local HTTP server.
//! let mut agent_config = AgentConfig::new("public.example.com:4921");
//! agent_config.pin = Some(server.fingerprint().to_string());
//! agent_config.mappings.insert("web".into(), AgentMapping::local("127.0.0.1:8000", "change-me"));
//! let agent = NatAgent::new(agent_config).start().await?;
//! agent.wait_settled().await;
//! # Ok(()) }
//! ```
//!
//! Both sides read TOML ([`ConfigFile`], `[nat.server]` / `[nat.agent]`); `zs nat server` and
//! `zs nat agent` run them. The sans-IO parts — [`codec`] (control messages),
//! [`balance`] (agent choice), [`backoff`] (reconnect delays) — are usable on their own.
//!
//! ZServer4D: `XNATService` (server), `XNATClient` (agent), `XNATMappingOnVirutalService`
//! (virtual-server mapping).

pub mod backoff;
pub mod balance;
pub mod codec;
mod config;
mod link;
mod relay;
mod secret;
mod stats;

mod agent;
mod server;

pub use agent::{AgentError, AgentHandle, AgentStatus, MappingStatus, NatAgent, VirtualService};
pub use config::{
    AgentConfig, AgentMapping, ConfigError, ConfigFile, DEFAULT_LINK_BUFFER_MIB, DEFAULT_LISTEN,
    DEFAULT_STREAM_WINDOW, NatSection, ServerConfig, ServerMapping,
};
pub use secret::Secret;
pub use server::{NatServer, NatServerHandle, STATS_COMMAND, ServerError};
pub use stats::{AgentStats, MappingStats, ServerStats};
