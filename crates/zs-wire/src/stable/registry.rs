//! Server: the sessions by id, with their limits.

use std::time::Instant;

use bytes::BytesMut;

use super::{
    LinkRequest, PendingLink, SessionId, SessionTable, StableConfig, StableEndpoint, StableError,
};

/// Server: the sessions, by id, with their limits. See the module docs. Admission (limits,
/// which session a full server gives up, id collisions) is [`SessionTable`]'s, the same code
/// the tokio runtime's session table runs.
#[derive(Debug)]
pub struct StableRegistry {
    config: StableConfig,
    sessions: SessionTable<StableEndpoint>,
}

impl StableRegistry {
    /// An empty registry.
    pub fn new(config: StableConfig) -> Self {
        let config = config.clamped();
        Self {
            sessions: SessionTable::new(config.max_sessions),
            config,
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A session's endpoint.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut StableEndpoint> {
        self.sessions.get_mut(id)
    }

    /// Forgets a session (the runtime's own decision, e.g. shutdown).
    pub fn remove(&mut self, id: SessionId) -> Option<StableEndpoint> {
        self.sessions.remove(id)
    }

    /// A newly accepted link; its transmit holds the challenge. `link_secret` as in
    /// [`StableEndpoint::link_established`].
    pub fn new_link(&mut self, link_secret: &[u8]) -> Result<PendingLink, StableError> {
        PendingLink::new(link_secret)
    }

    /// Feeds a pending link's bytes. `Ok(Some(id))`: the link now carries session `id`
    /// (opened or resumed; its endpoint queued the answer) and the rest of `input` belongs
    /// to that endpoint. `Ok(None)`: more bytes are needed. `Err`: the link is refused (a
    /// `Refused` frame is queued on the pending link when the client should learn why);
    /// write its transmit and close the link.
    pub fn handle_pending_link(
        &mut self,
        link: &mut PendingLink,
        input: &mut BytesMut,
        now: Instant,
    ) -> Result<Option<SessionId>, StableError> {
        let Some(request) = link.handle_input(input)? else {
            return Ok(None);
        };
        let result = match request {
            LinkRequest::Open => self.open(link, now),
            LinkRequest::Resume {
                session_id,
                proof,
                next_expected,
            } => self.resume(link, session_id, &proof, next_expected, now),
        };
        if let Err(error) = &result {
            if matches!(
                error,
                StableError::TooManySessions { .. } | StableError::UnknownSession
            ) {
                link.refuse_for(error);
            }
            input.clear();
        }
        result.map(Some)
    }

    fn open(&mut self, link: &PendingLink, now: Instant) -> Result<SessionId, StableError> {
        if self.sessions.len() >= self.sessions.max_sessions() {
            // Expired and closed sessions go first; then a detached one makes room.
            self.reap(now);
        }
        // The evicted session's client learns it when it resumes (unknown session).
        drop(self.sessions.make_room()?);
        let mut endpoint = StableEndpoint::open_server(self.config.clone(), link, now)?;
        loop {
            let Some(id) = endpoint.session_id() else {
                return Err(StableError::Malformed {
                    what: "opened session without an id",
                });
            };
            match self.sessions.insert(id, endpoint) {
                Ok(()) => return Ok(id),
                // An id collision: 16 random bytes, so practically never.
                Err(_) => endpoint = StableEndpoint::open_server(self.config.clone(), link, now)?,
            }
        }
    }

    fn resume(
        &mut self,
        link: &mut PendingLink,
        id: SessionId,
        proof: &[u8; 32],
        next_expected: u64,
        now: Instant,
    ) -> Result<SessionId, StableError> {
        let Some(endpoint) = self.sessions.get_mut(id) else {
            return Err(StableError::UnknownSession);
        };
        let result = endpoint.resume_server(link, proof, next_expected, now);
        if matches!(result, Err(StableError::Expired)) {
            self.sessions.remove(id);
        }
        result.map(|()| id)
    }

    fn reap(&mut self, now: Instant) -> Vec<SessionId> {
        self.sessions.retain(|endpoint| {
            endpoint.handle_timeout(now);
            !endpoint.is_over()
        })
    }

    /// Runs every session's timers (call at [`Self::poll_timeout`]) and forgets expired and
    /// closed sessions; returns their ids. Sessions' own events stay on their endpoints
    /// until then — poll them before.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<SessionId> {
        self.reap(now)
    }

    /// The earliest timer of any session.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(StableEndpoint::poll_timeout)
            .min()
    }
}
