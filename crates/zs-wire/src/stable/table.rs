//! Server: the session table's admission policy, shared by every owner of sessions.
//!
//! The sans-IO [`StableRegistry`](super::StableRegistry) keeps [`StableEndpoint`]s in it;
//! the tokio runtime keeps a handle per session (its endpoint lives with the session's
//! driver task). Both decide the same way which session a full server gives up and which
//! links are refused, because both run this code.

use std::collections::HashMap;
use std::time::Instant;

use super::{SessionId, StableEndpoint, StableError};

/// What a [`SessionTable`] needs to know about a session it holds.
pub trait TableEntry {
    /// Since when the session has been without a link; `None` while a link is up.
    fn detached_since(&self) -> Option<Instant>;
}

impl TableEntry for StableEndpoint {
    fn detached_since(&self) -> Option<Instant> {
        StableEndpoint::detached_since(self)
    }
}

/// Server: the sessions alive, by id, with the limit on how many there may be.
///
/// A new session at a full table takes the place of the session whose client has been gone
/// the longest (a client that is here now wins over one that may never come back); only
/// when every session has a link is the new one refused
/// ([`StableError::TooManySessions`]). So dead clients cannot hold the server's sessions
/// for their whole give-up time.
#[derive(Debug)]
pub struct SessionTable<T> {
    max_sessions: usize,
    sessions: HashMap<SessionId, T>,
}

impl<T: TableEntry> SessionTable<T> {
    /// An empty table for at most `max_sessions` sessions (at least one).
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions: max_sessions.max(1),
            sessions: HashMap::new(),
        }
    }

    /// The most sessions the table holds.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A session, e.g. the one a resuming link names.
    pub fn get(&self, id: SessionId) -> Option<&T> {
        self.sessions.get(&id)
    }

    /// A session, mutably.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut T> {
        self.sessions.get_mut(&id)
    }

    /// Every session (timers).
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.sessions.values()
    }

    /// Makes room for one new session. `Ok(None)`: there was room. `Ok(Some(..))`: the
    /// longest-detached session was taken out to make room; its owner ends it. `Err`: the
    /// table is full of sessions that all have a link.
    pub fn make_room(&mut self) -> Result<Option<(SessionId, T)>, StableError> {
        if self.sessions.len() < self.max_sessions {
            return Ok(None);
        }
        match self.evict_longest_detached() {
            Some(evicted) => Ok(Some(evicted)),
            None => Err(StableError::TooManySessions {
                max: self.max_sessions,
            }),
        }
    }

    /// Takes out the session that has been without a link the longest, if any (also used
    /// when another limit, such as the server's connection slots, is reached).
    pub fn evict_longest_detached(&mut self) -> Option<(SessionId, T)> {
        let (id, _) = self
            .sessions
            .iter()
            .filter_map(|(id, entry)| Some((*id, entry.detached_since()?)))
            .min_by_key(|(_, since)| *since)?;
        self.sessions.remove_entry(&id)
    }

    /// Adds a session after [`Self::make_room`]. Gives the entry back if the id is taken
    /// (the caller picks another id) or the table is full.
    pub fn insert(&mut self, id: SessionId, entry: T) -> Result<(), T> {
        if self.sessions.len() >= self.max_sessions || self.sessions.contains_key(&id) {
            return Err(entry);
        }
        self.sessions.insert(id, entry);
        Ok(())
    }

    /// Forgets a session.
    pub fn remove(&mut self, id: SessionId) -> Option<T> {
        self.sessions.remove(&id)
    }

    /// Keeps the sessions `keep` says to; returns the ids of the others.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut T) -> bool) -> Vec<SessionId> {
        let mut gone = Vec::new();
        self.sessions.retain(|id, entry| {
            let kept = keep(entry);
            if !kept {
                gone.push(*id);
            }
            kept
        });
        gone
    }

    /// Takes out the longest-detached session to free memory for the clients that are
    /// here, if any session has a link; `None` if none has. The session whose write asked
    /// may have lost its link since (its server had not noticed the loss yet): then no
    /// client here needs the room, and a session that may still resume is kept.
    pub fn evict_for_present_clients(&mut self) -> Option<(SessionId, T)> {
        if self
            .sessions
            .values()
            .all(|entry| entry.detached_since().is_some())
        {
            return None;
        }
        self.evict_longest_detached()
    }

    /// Forgets every session.
    pub fn clear(&mut self) {
        self.sessions.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Entry(Option<Instant>);
    impl TableEntry for Entry {
        fn detached_since(&self) -> Option<Instant> {
            self.0
        }
    }

    fn id(n: u8) -> SessionId {
        SessionId([n; 16])
    }

    #[test]
    fn a_full_table_gives_up_the_session_detached_longest() {
        let now = Instant::now();
        let mut table = SessionTable::new(3);
        assert!(table.insert(id(1), Entry(None)).is_ok());
        assert!(
            table
                .insert(id(2), Entry(Some(now + Duration::from_secs(5))))
                .is_ok()
        );
        assert!(table.insert(id(3), Entry(Some(now))).is_ok());
        assert!(table.insert(id(4), Entry(None)).is_err(), "full");
        let evicted = table.make_room().unwrap().map(|(id, _)| id);
        assert_eq!(evicted, Some(id(3)));
        assert!(table.insert(id(4), Entry(None)).is_ok());
        let evicted = table.make_room().unwrap().map(|(id, _)| id);
        assert_eq!(evicted, Some(id(2)));
        assert!(table.insert(id(5), Entry(None)).is_ok());
        assert_eq!(
            table.make_room().map(|evicted| evicted.is_some()),
            Err(StableError::TooManySessions { max: 3 }),
            "every session has a link"
        );
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn memory_is_reclaimed_only_while_some_client_is_here() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        assert!(table.insert(id(1), Entry(Some(now))).is_ok());
        assert!(
            table
                .insert(id(2), Entry(Some(now + Duration::from_secs(1))))
                .is_ok()
        );
        assert!(
            table.evict_for_present_clients().is_none(),
            "no client is here to need the room"
        );
        assert!(table.insert(id(3), Entry(None)).is_ok());
        let evicted = table.evict_for_present_clients().map(|(id, _)| id);
        assert_eq!(evicted, Some(id(1)), "the one detached longest");
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn ids_do_not_collide_and_room_needs_no_eviction_below_the_limit() {
        let mut table = SessionTable::new(2);
        assert!(table.make_room().unwrap().is_none());
        assert!(table.insert(id(1), Entry(Some(Instant::now()))).is_ok());
        assert!(table.insert(id(1), Entry(None)).is_err());
        assert!(table.make_room().unwrap().is_none());
        assert_eq!(table.retain(|entry| entry.0.is_none()), vec![id(1)]);
        assert!(table.is_empty());
    }
}
