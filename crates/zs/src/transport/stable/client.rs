//! Client side: dialing links and opening a session.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use zs_wire::stable::{StableConfig, StableEndpoint};

use crate::transport::encrypted::EncryptedStream;
use crate::transport::entries::Entries;
use crate::transport::security::Security;

// The shared session state (`Inner`, `Shared`) and link types live in the parent.
use super::driver::{Driver, LinkError, LinkSource};
use super::*;

/// How a client makes its next link: the entry pool, raced with Happy Eyeballs.
pub(super) struct Dialer {
    pub(super) entries: Entries,
    pub(super) security: Security,
    pub(super) connect_timeout: Duration,
    pub(super) attempt_delay: Duration,
    /// The entry of the last link: after it is lost, it is tried last.
    pub(super) current: Option<SocketAddr>,
}

impl Dialer {
    /// Resolve the pool, race TCP connects, handshake, magic: a link ready for the
    /// StableIO link protocol.
    pub(super) async fn dial(&mut self) -> Result<(BoxedLink, [u8; 32], EncryptedInfo), LinkError> {
        let addresses = self.entries.resolve().await?;
        let (tcp, address) = crate::transport::entries::connect_tcp(
            &addresses,
            self.current,
            self.attempt_delay,
            self.connect_timeout,
        )
        .await?;
        self.current = Some(address);
        let remote = tcp.peer_addr().unwrap_or(address);
        let local = tcp.local_addr().unwrap_or(address);
        let stream = EncryptedStream::connect_stable_link(tcp, &self.security).await?;
        let secret = *stream.link_secret();
        let info = EncryptedInfo {
            suite: stream.suite(),
            peer_fingerprint: stream.peer_fingerprint(),
            remote,
            local,
        };
        tracing::debug!(entry = %address, "StableIO link up");
        Ok((Box::new(stream), secret, info))
    }
}

/// What the first link's handshake established.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncryptedInfo {
    pub(crate) suite: zs_wire::crypto::record::Suite,
    pub(crate) peer_fingerprint: zs_wire::handshake::Fingerprint,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// Client: dials the first link, opens the session, and returns the stream plus what the
/// first handshake established; a driver task keeps the session alive from then on.
pub(crate) async fn connect(
    entries: Entries,
    security: Security,
    connect_timeout: Duration,
    attempt_delay: Duration,
    config: StableConfig,
    link_timeout: Duration,
) -> Result<(StableStream, EncryptedInfo), crate::ConnectError> {
    let mut dialer = Dialer {
        entries,
        security,
        connect_timeout,
        attempt_delay,
        current: None,
    };
    let (io, secret, info) = dialer.dial().await.map_err(|error| match error {
        LinkError::Io(error) => crate::ConnectError::Io(error),
        LinkError::Security(error) => crate::ConnectError::Security(error),
        other => crate::ConnectError::Io(io::Error::other(other.to_string())),
    })?;
    let now = Instant::now().into_std();
    let mut endpoint = StableEndpoint::new_client(config.clone(), now);
    endpoint.link_established(now, &secret);
    let shared = Shared::new(endpoint, super::budget::Charge::default());
    let (opened_sender, opened) = tokio::sync::oneshot::channel();
    let driver = Driver {
        shared: shared.clone(),
        source: LinkSource::Dial(Box::new(dialer)),
        link_timeout,
        reconnect_attempt: 0,
        config,
        linger_until: None,
    };
    tokio::spawn(driver.run(Some((io, BytesMut::new())), Some(opened_sender)));
    match tokio::time::timeout(connect_timeout, opened).await {
        Ok(Ok(Ok(()))) => Ok((StableStream::new(shared), info)),
        Ok(Ok(Err(why))) => Err(crate::ConnectError::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            why,
        ))),
        Ok(Err(_)) => Err(crate::ConnectError::Io(session_error(
            "StableIO driver stopped",
        ))),
        Err(_) => {
            shared.lock().end("StableIO open timed out");
            shared.wake_driver.notify();
            Err(crate::ConnectError::Timeout(connect_timeout))
        }
    }
}
