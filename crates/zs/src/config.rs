//! Runtime configuration: limits and timers, with safe defaults.

use std::time::Duration;

use zs_wire::session::SessionConfig;

use crate::transport::security::Security;

/// Limits and timers shared by servers and clients.
///
/// Every limit exists to bound what one peer can cost: memory (`max_frame_size`,
/// `max_concurrent_requests`), sockets (`max_connections`) or time (`idle_timeout`).
/// Defaults suit a public server; raise them for trusted bulk links.
///
/// ```
/// use std::time::Duration;
/// let mut config = zs::Config::default();
/// config.max_frame_size(1 << 20).call_timeout(Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) session: SessionConfig,
    pub(crate) call_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) connection_attempt_delay: Duration,
    pub(crate) command_queue: usize,
    pub(crate) security: Security,
    pub(crate) max_offload: usize,
    pub(crate) max_complete_buffer: u64,
    pub(crate) stream_window: u32,
    pub(crate) complete_buffer_compression: zs_wire::frame::Compression,
    pub(crate) stable: zs_wire::stable::StableConfig,
    pub(crate) stable_link_timeout: Duration,
    pub(crate) stable_memory: usize,
    pub(crate) accept_stable: bool,
    pub(crate) metrics: bool,
}

/// Default for [`Config::call_timeout`].
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Config::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default for [`Config::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default for [`Config::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`Config::stable_memory`]: 512 MiB.
pub const DEFAULT_STABLE_MEMORY: usize = 512 * 1024 * 1024;

/// Default for [`Config::stable_link_timeout`].
pub const DEFAULT_STABLE_LINK_TIMEOUT: Duration = Duration::from_secs(40);

/// The cores this process may use, asked once: `available_parallelism` reads the cgroup
/// files on every call (an open, a read and a stat), and every `Client::connect` builds a
/// default `Config` — 5 % of a connection set-up's CPU before it was cached.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, usize::from))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            connection_attempt_delay: crate::transport::entries::DEFAULT_CONNECTION_ATTEMPT_DELAY,
            command_queue: 1024,
            security: Security::default(),
            max_offload: cores(),
            max_complete_buffer: crate::transfer::large::DEFAULT_MAX_COMPLETE_BUFFER,
            stream_window: crate::transfer::large::DEFAULT_STREAM_WINDOW,
            complete_buffer_compression: zs_wire::frame::Compression::None,
            stable: zs_wire::stable::StableConfig::default(),
            stable_link_timeout: DEFAULT_STABLE_LINK_TIMEOUT,
            stable_memory: DEFAULT_STABLE_MEMORY,
            accept_stable: true,
            metrics: true,
        }
    }
}

impl Config {
    /// Largest frame body accepted (default 16 MiB). A peer announcing more is disconnected
    /// before its frame is buffered, so one peer claims at most this much memory per frame.
    pub fn max_frame_size(&mut self, bytes: u32) -> &mut Self {
        self.session.max_frame_size = bytes;
        self
    }

    /// Requests from one peer that may run at once (default 1024). Past it the connection
    /// stops reading, so a flooding peer slows down only itself.
    pub fn max_concurrent_requests(&mut self, count: usize) -> &mut Self {
        self.session.max_concurrent_requests = count.max(1);
        self
    }

    /// Ping the peer after this long without receiving anything (default 15 s; `None` off).
    pub fn keepalive_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.session.keepalive_interval = interval;
        self
    }

    /// Close a connection after this long without receiving anything (default 60 s; `None`
    /// off). With keep-alive on, only a dead or stuck peer is that silent.
    pub fn idle_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.session.idle_timeout = timeout;
        self
    }

    /// Default time a call waits for its reply (default 30 s); per call: `.timeout(d)`.
    pub fn call_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.call_timeout = timeout;
        self
    }

    /// Most connections a server serves at once (default 10,000). Connections past it get a
    /// "server full" close and are dropped, instead of exhausting file descriptors.
    pub fn max_connections(&mut self, count: usize) -> &mut Self {
        self.max_connections = count.max(1);
        self
    }

    /// How long a graceful shutdown waits for running handlers (default 10 s) before it
    /// closes the remaining connections hard.
    pub fn shutdown_grace(&mut self, grace: Duration) -> &mut Self {
        self.shutdown_grace = grace;
        self
    }

    /// How long `Client::connect` waits for the TCP connection and the server's preamble
    /// (default 10 s).
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// Happy Eyeballs (RFC 8305): when a name or pool gives several addresses, the head
    /// start each connection attempt gets before the next one starts in parallel (default
    /// 250 ms, the RFC's recommendation). A refused attempt starts the next at once.
    pub fn connection_attempt_delay(&mut self, delay: Duration) -> &mut Self {
        self.connection_attempt_delay = delay;
        self
    }

    /// Ask the peer to run this side's requests strictly in order, each after the previous
    /// one's reply (ZServer4D's serialized command queue). Default off: requests run
    /// concurrently. See `docs/ORDERING.md`.
    pub fn ordered_requests(&mut self, ordered: bool) -> &mut Self {
        self.session.ordered_requests = ordered;
        self
    }

    /// Most [`Context::offload`](crate::Context::offload) jobs running at once (default: the
    /// number of CPUs); further jobs wait for a slot, so heavy handlers cannot exhaust the
    /// blocking thread pool.
    pub fn max_offload(&mut self, jobs: usize) -> &mut Self {
        self.max_offload = jobs.max(1);
        self
    }

    /// Largest CompleteBuffer this side accepts (default 64 MiB). A larger announcement is
    /// refused with an error reply before any of its bytes is buffered, so a peer cannot make
    /// this side allocate more.
    pub fn max_complete_buffer(&mut self, bytes: u64) -> &mut Self {
        self.max_complete_buffer = bytes;
        self
    }

    /// Window of each BigStream/CompleteBuffer this side receives: how many bytes the sender
    /// may have in flight (default 4 MiB; at least the protocol's initial 1 MiB, at most
    /// 256 MiB). A receiving handler that stops reading holds at most this much of its
    /// transfer in memory; a larger window keeps a fast sender from waiting for credit.
    pub fn stream_window(&mut self, bytes: u32) -> &mut Self {
        self.stream_window = bytes.clamp(
            zs_wire::session::INITIAL_STREAM_WINDOW as u32,
            crate::transfer::large::MAX_STREAM_WINDOW,
        );
        self
    }

    /// Compression for CompleteBuffers this side sends: `None` (default), `Lz4` (fast) or
    /// `Zstd` (smaller). Applied only to buffers over 1 KiB, and only when it saves at least
    /// an eighth.
    pub fn complete_buffer_compression(
        &mut self,
        compression: zs_wire::frame::Compression,
    ) -> &mut Self {
        self.complete_buffer_compression = compression;
        self
    }

    /// Security settings: suites, key rotation, token, pinning, server key.
    pub fn security(&mut self) -> &mut Security {
        &mut self.security
    }

    /// StableIO settings ([`ClientBuilder::connect_stable`](crate::ClientBuilder::connect_stable)
    /// and the server side of such sessions): resend window (the per-session memory cap is
    /// about twice it), give-up time (default 5 minutes), reconnect backoff, most sessions a
    /// server holds. Both ends must use the same window.
    pub fn stable_config(&mut self, config: zs_wire::stable::StableConfig) -> &mut Self {
        self.stable = config;
        self
    }

    /// StableIO: a link on which nothing arrives for this long is taken for dead and
    /// replaced (default 40 s). The session's keep-alive pings (see
    /// [`Self::keepalive_interval`]) keep a healthy link busy, so keep this above the
    /// keep-alive interval.
    pub fn stable_link_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.stable_link_timeout = timeout;
        self
    }

    /// Server: the bytes all StableIO sessions together may hold in their buffers (default
    /// 512 MiB; each one alone is bounded by about twice its window). A session whose writes
    /// find the budget spent waits, as at a full window, and the session whose client has
    /// been gone the longest is ended to free its buffers.
    pub fn stable_memory(&mut self, bytes: usize) -> &mut Self {
        self.stable_memory = bytes;
        self
    }

    /// Server: whether StableIO clients are served on the same port as plain ones
    /// (default true).
    pub fn accept_stable(&mut self, accept: bool) -> &mut Self {
        self.accept_stable = accept;
        self
    }

    /// Whether each call's time, status and bytes are counted for
    /// [`ServerRef::stats`](crate::ServerRef::stats) and
    /// [`ServerRef::metrics`](crate::ServerRef::metrics) (default true). Off, those read
    /// zero calls and bytes; connection, handshake and transfer counts stay.
    pub fn metrics(&mut self, enabled: bool) -> &mut Self {
        self.metrics = enabled;
        self
    }
}
