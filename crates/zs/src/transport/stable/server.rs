//! Server side: the session table, new links and resumes.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use zs_wire::stable::{
    LinkRequest, PendingLink, SessionTable, StableConfig, StableEndpoint, TableEntry,
};

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
    budget: Arc<MemoryBudget>,
    on_end: impl FnOnce() + Send + 'static,
) -> (StableStream, SessionEntry) {
    let shared = Shared::new(endpoint, super::budget::Charge::new(Some(budget)));
    let (links, receiver) = mpsc::unbounded_channel();
    let driver = Driver {
        shared: shared.clone(),
        source: LinkSource::Accept(receiver),
        link_timeout,
        reconnect_attempt: 0,
        config,
        linger_until: None,
    };
    tokio::spawn(async move {
        driver.run(Some((io, leftover)), None).await;
        on_end();
    });
    (
        StableStream::new(shared.clone()),
        SessionEntry { links, shared },
    )
}

/// Server: the StableIO sessions alive, by id, so a resuming link finds its driver. Limits
/// and which session a full server gives up are [`SessionTable`]'s, the code the sans-IO
/// simulation tests run.
pub(crate) struct Sessions {
    table: Mutex<SessionTable<SessionEntry>>,
    budget: Arc<MemoryBudget>,
}

/// What the server keeps of one StableIO session: where resuming links go, and the
/// session's state (whether it has a link, since when not).
pub(crate) struct SessionEntry {
    links: mpsc::UnboundedSender<IncomingLink>,
    shared: Arc<Shared>,
}

impl TableEntry for SessionEntry {
    fn detached_since(&self) -> Option<std::time::Instant> {
        self.shared.lock().endpoint.detached_since()
    }
}

impl Sessions {
    pub(crate) fn new(max_sessions: usize, memory: usize) -> Self {
        Self {
            table: Mutex::new(SessionTable::new(max_sessions)),
            budget: MemoryBudget::new(memory),
        }
    }

    /// The budget the sessions' buffers share.
    pub(crate) fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Waits until a session's write finds the memory budget spent, then ends the session
    /// that has been without a link the longest, if any, while some session has a link (its
    /// buffers are freed once its driver stops). Run beside the accept loop.
    pub(crate) async fn reclaim_memory(&self) {
        loop {
            self.budget.reclaim_wanted().await;
            let evicted = self.lock().evict_for_present_clients();
            log_evicted(evicted, "StableIO memory budget");
        }
    }

    fn lock(&self) -> MutexGuard<'_, SessionTable<SessionEntry>> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sessions held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Makes room for a new session, giving up the longest-detached one if the table is
    /// full; `false` when every session has a link.
    pub(crate) fn make_room(&self) -> bool {
        match self.lock().make_room() {
            Ok(evicted) => {
                log_evicted(evicted, "StableIO session limit");
                true
            }
            Err(_) => false,
        }
    }

    /// Adds a new session (after [`Self::make_room`]). Gives the entry back when the table
    /// filled up meanwhile (or, practically never, the id is taken).
    pub(crate) fn insert(
        &self,
        id: zs_wire::stable::SessionId,
        entry: SessionEntry,
    ) -> Result<(), SessionEntry> {
        self.lock().insert(id, entry)
    }

    /// Ends the session that has been without a link the longest, if any: its connection
    /// slot goes to a client that is here now. Returns whether a session was ended (its
    /// slot frees once its driver has stopped).
    pub(crate) fn evict_longest_detached(&self) -> bool {
        let evicted = self.lock().evict_longest_detached();
        let any = evicted.is_some();
        log_evicted(evicted, "connection limit");
        any
    }

    pub(crate) fn remove(&self, id: zs_wire::stable::SessionId) {
        self.lock().remove(id);
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
        let sender = self.lock().get(id).map(|entry| entry.links.clone());
        match sender {
            Some(sender) => sender.send(link).map_err(|refused| Box::new(refused.0)),
            None => Err(Box::new(link)),
        }
    }
}

/// Dropping an evicted entry drops its link sender, which ends its driver's wait for a
/// resume; the client learns it when it comes back (unknown session).
fn log_evicted(evicted: Option<(zs_wire::stable::SessionId, SessionEntry)>, limit: &str) {
    if let Some((id, entry)) = evicted {
        let detached_for = entry
            .detached_since()
            .map(|since| Instant::now().into_std().saturating_duration_since(since));
        tracing::info!(
            ?id,
            ?detached_for,
            limit,
            "server full: StableIO session without a link ended"
        );
    }
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
