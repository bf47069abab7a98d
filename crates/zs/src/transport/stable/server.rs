//! Server side: the session table, new links and resumes.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use zs_wire::stable::{LinkRequest, PendingLink, StableConfig, StableEndpoint};

// The shared session state (`Inner`, `Shared`) and link types live in the parent.
use super::driver::{Driver, LinkError, LinkSource};
use super::*;

/// A link a resuming client opened, handed to its session's driver.
pub(crate) struct IncomingLink {
    pub(crate) io: BoxedLink,
    pub(crate) pending: PendingLink,
    pub(crate) proof: [u8; 32],
    pub(crate) next_expected: u64,
    pub(crate) leftover: BytesMut,
}

/// Server: a session opened on `io` by `endpoint`. Returns the stream for the zs session
/// and the session's entry for the session table (through which resuming links reach the
/// session's driver); the driver ends (and `on_end` runs) when the session is over.
pub(crate) fn serve(
    endpoint: StableEndpoint,
    io: BoxedLink,
    leftover: BytesMut,
    config: StableConfig,
    link_timeout: Duration,
    on_end: impl FnOnce() + Send + 'static,
) -> (StableStream, SessionEntry) {
    let shared = Shared::new(endpoint);
    let (links, receiver) = mpsc::unbounded_channel();
    let detached = DetachedSince::default();
    let driver = Driver {
        shared: shared.clone(),
        source: LinkSource::Accept(receiver),
        link_timeout,
        reconnect_attempt: 0,
        config,
        linger_until: None,
        detached: Some(detached.clone()),
    };
    tokio::spawn(async move {
        driver.run(Some((io, leftover)), None).await;
        on_end();
    });
    (StableStream::new(shared), SessionEntry { links, detached })
}

/// Server: the StableIO sessions alive, by id, so a resuming link finds its driver.
#[derive(Default)]
pub(crate) struct Sessions {
    pub(super) drivers: Mutex<HashMap<zs_wire::stable::SessionId, SessionEntry>>,
}

/// What the server keeps of one StableIO session: where resuming links go, and since when
/// the session has had no link.
pub(crate) struct SessionEntry {
    pub(super) links: mpsc::UnboundedSender<IncomingLink>,
    pub(super) detached: DetachedSince,
}

/// When a server session lost its link; `None` while one is attached. Shared between the
/// session's driver and the session table, so a full server can find the session that has
/// waited longest for its client.
pub(crate) type DetachedSince = Arc<Mutex<Option<Instant>>>;

impl Sessions {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<zs_wire::stable::SessionId, SessionEntry>> {
        self.drivers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sessions held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn insert(&self, id: zs_wire::stable::SessionId, entry: SessionEntry) {
        self.lock().insert(id, entry);
    }

    /// Ends the session that has been without a link the longest, if any: its slot goes to
    /// a client that is here now instead of one that may never come back. Returns whether a
    /// session was ended (its connection slot frees once its driver has stopped).
    pub(crate) fn evict_longest_detached(&self) -> bool {
        let mut drivers = self.lock();
        let oldest = drivers
            .iter()
            .filter_map(|(id, entry)| Some(((*lock_detached(&entry.detached))?, *id)))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((since, id)) => {
                // Dropping the sender ends the driver's wait for a resume.
                drivers.remove(&id);
                tracing::info!(?id, detached_for = ?since.elapsed(), "server full: StableIO session without a link ended");
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&self, id: zs_wire::stable::SessionId) {
        self.lock().remove(&id);
    }

    /// Forgets every session: their drivers end (server shutdown).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Hands a resuming link to its session; gives it back when there is no such session.
    pub(crate) fn route(
        &self,
        id: zs_wire::stable::SessionId,
        link: IncomingLink,
    ) -> Result<(), Box<IncomingLink>> {
        let sender = self.lock().get(&id).map(|entry| entry.links.clone());
        match sender {
            Some(sender) => sender.send(link).map_err(|refused| Box::new(refused.0)),
            None => Err(Box::new(link)),
        }
    }
}

pub(super) fn lock_detached(detached: &DetachedSince) -> MutexGuard<'_, Option<Instant>> {
    detached
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Server: reads a new link's first StableIO frame after sending the challenge.
pub(crate) async fn read_link_request(
    io: &mut BoxedLink,
    pending: &mut PendingLink,
    timeout: Duration,
) -> Result<(LinkRequest, BytesMut), LinkError> {
    let mut challenge = BytesMut::new();
    pending.poll_transmit(&mut challenge, usize::MAX);
    io.write_all(&challenge).await?;
    io.flush().await?;
    let mut input = BytesMut::with_capacity(256);
    let request = tokio::time::timeout(timeout, async {
        loop {
            if let Some(request) = pending.handle_input(&mut input)? {
                return Ok::<_, LinkError>(request);
            }
            if io.read_buf(&mut input).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    })
    .await
    .map_err(|_| LinkError::Silent(timeout))??;
    Ok((request, input))
}

/// Writes a pending link's refusal and closes the link.
pub(crate) async fn refuse_link(
    io: BoxedLink,
    pending: &mut PendingLink,
    reason: zs_wire::stable::RefuseReason,
) {
    pending.refuse(reason);
    send_refusal(io, pending).await;
}

/// Writes whatever refusal `pending` holds, then closes the link (bounded in time).
pub(super) async fn send_refusal(mut io: BoxedLink, pending: &mut PendingLink) {
    let mut refusal = BytesMut::new();
    pending.poll_transmit(&mut refusal, usize::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        io.write_all(&refusal).await?;
        io.shutdown().await
    })
    .await;
}
