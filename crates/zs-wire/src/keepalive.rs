//! The keep-alive and idle timers of a connection, without I/O: one implementation for the
//! [`Session`](crate::session::Session) and the [`Mux`](crate::mux::Mux).
//!
//! Both rules count from the last time anything was *received*: after
//! `interval` of silence one ping is due (and no other until something arrives), after
//! `idle_timeout` of silence the connection is over. Time is passed in; the owner encodes
//! the ping or the close in its own frame format.

use std::time::{Duration, Instant};

/// What [`KeepAlive::handle_timeout`] found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveAction {
    /// Send a ping now; no other is due until something is received.
    SendPing,
    /// Nothing was received for the idle timeout (the value): close the connection.
    IdleTimeout(Duration),
}

/// Keep-alive pings and the idle timeout of one connection.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    interval: Option<Duration>,
    idle_timeout: Option<Duration>,
    last_received: Instant,
    /// A ping was sent and nothing has been received since.
    ping_outstanding: bool,
}

impl KeepAlive {
    /// Timers starting at `now`. `None` disables pings or the idle timeout.
    pub fn new(interval: Option<Duration>, idle_timeout: Option<Duration>, now: Instant) -> Self {
        Self {
            interval,
            idle_timeout,
            last_received: now,
            ping_outstanding: false,
        }
    }

    /// Something arrived at `now`: both timers restart.
    pub fn on_received(&mut self, now: Instant) {
        self.last_received = now;
        self.ping_outstanding = false;
    }

    /// When the last byte arrived (or the timers started).
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    /// True while a ping is unanswered (nothing received since it was due).
    pub fn is_ping_outstanding(&self) -> bool {
        self.ping_outstanding
    }

    /// When [`Self::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self
            .idle_timeout
            .map(|timeout| self.last_received + timeout);
        let ping = match self.interval {
            Some(interval) if !self.ping_outstanding => Some(self.last_received + interval),
            _ => None,
        };
        match (idle, ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What is due at `now`, if anything. The idle timeout wins over a ping; a ping
    /// returned here counts as sent.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<KeepAliveAction> {
        let silent_for = now.saturating_duration_since(self.last_received);
        if let Some(timeout) = self.idle_timeout
            && silent_for >= timeout
        {
            return Some(KeepAliveAction::IdleTimeout(timeout));
        }
        if let Some(interval) = self.interval
            && !self.ping_outstanding
            && silent_for >= interval
        {
            self.ping_outstanding = true;
            return Some(KeepAliveAction::SendPing);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn one_ping_per_silence_then_the_idle_timeout() {
        let start = Instant::now();
        let mut timers = KeepAlive::new(Some(SECOND), Some(3 * SECOND), start);
        assert_eq!(timers.poll_timeout(), Some(start + SECOND));
        assert_eq!(timers.handle_timeout(start), None);
        assert_eq!(
            timers.handle_timeout(start + SECOND),
            Some(KeepAliveAction::SendPing)
        );
        assert!(timers.is_ping_outstanding());
        // No second ping until something arrives; the idle deadline remains.
        assert_eq!(timers.poll_timeout(), Some(start + 3 * SECOND));
        assert_eq!(timers.handle_timeout(start + 2 * SECOND), None);
        assert_eq!(
            timers.handle_timeout(start + 3 * SECOND),
            Some(KeepAliveAction::IdleTimeout(3 * SECOND))
        );
    }

    #[test]
    fn receiving_restarts_both_timers() {
        let start = Instant::now();
        let mut timers = KeepAlive::new(Some(SECOND), Some(3 * SECOND), start);
        timers.handle_timeout(start + SECOND);
        timers.on_received(start + 2 * SECOND);
        assert!(!timers.is_ping_outstanding());
        assert_eq!(timers.last_received(), start + 2 * SECOND);
        assert_eq!(timers.poll_timeout(), Some(start + 3 * SECOND));
    }

    #[test]
    fn disabled_timers_never_fire() {
        let start = Instant::now();
        let mut timers = KeepAlive::new(None, None, start);
        assert_eq!(timers.poll_timeout(), None);
        assert_eq!(timers.handle_timeout(start + 1000 * SECOND), None);
    }
}
