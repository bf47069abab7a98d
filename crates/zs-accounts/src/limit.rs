//! Login attempts, counted per key (a user name, an address): after a few failures each
//! further one locks the key out for a doubling time, so guessing passwords in a loop gets
//! a clear "try again in N s" and no faster than the lock allows.
//!
//! The table is bounded: keys whose failures have aged out are dropped when it fills, and
//! when it is full of live keys the oldest is dropped (a flood of fresh keys can then only
//! forget old lockouts early, never grow memory).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How logins are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// Failures allowed before lockouts begin.
    pub free_failures: u32,
    /// The first lockout; each further failure doubles it.
    pub first_lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// Most keys tracked.
    pub max_keys: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(300),
            window: Duration::from_secs(15 * 60),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failure counts per key.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: LimitConfig,
    keys: HashMap<String, Failures>,
}

impl Limiter {
    pub(crate) fn new(config: LimitConfig) -> Self {
        Self {
            config,
            keys: HashMap::new(),
        }
    }

    /// How long `key` must still wait, if it is locked out at `now`.
    pub(crate) fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let until = self.keys.get(key)?.locked_until?;
        until
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())
    }

    /// Counts a failure of `key` at `now`.
    pub(crate) fn fail(&mut self, key: &str, now: Instant) {
        if !self.keys.contains_key(key) && self.keys.len() >= self.config.max_keys {
            self.make_room(now);
        }
        let config = self.config;
        let entry = self.keys.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.saturating_duration_since(entry.last) > config.window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if let Some(over) = entry.count.checked_sub(config.free_failures + 1) {
            let lockout = config
                .first_lockout
                .checked_mul(1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX))
                .unwrap_or(config.max_lockout)
                .min(config.max_lockout);
            entry.locked_until = Some(now + lockout);
        }
    }

    /// Forgets `key`'s failures (after a success).
    pub(crate) fn succeed(&mut self, key: &str) {
        self.keys.remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    fn make_room(&mut self, now: Instant) {
        let window = self.config.window;
        self.keys.retain(|_, failures| {
            now.saturating_duration_since(failures.last) <= window
                || failures.locked_until.is_some_and(|until| until > now)
        });
        if self.keys.len() >= self.config.max_keys {
            let oldest = self
                .keys
                .iter()
                .min_by_key(|(_, failures)| failures.last)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.keys.remove(&oldest);
            }
        }
    }
}

/// Failed logins per user name and per address, shared by the accounts service and
/// [`VirtualAuth`](crate::VirtualAuth).
#[derive(Debug)]
pub(crate) struct LoginLimits {
    failures: std::sync::Mutex<Limiter>,
}

impl LoginLimits {
    pub(crate) fn new(config: LimitConfig) -> Self {
        Self {
            failures: std::sync::Mutex::new(Limiter::new(config)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn keys(name: &str, address: std::net::IpAddr) -> [String; 2] {
        [format!("user:{name}"), format!("addr:{address}")]
    }

    /// How long a login as `name` from `address` must still wait, if locked out.
    pub(crate) fn wait(&self, name: &str, address: std::net::IpAddr) -> Option<Duration> {
        let limiter = self.lock();
        let now = Instant::now();
        Self::keys(name, address)
            .iter()
            .filter_map(|key| limiter.wait(key, now))
            .max()
    }

    pub(crate) fn failed(&self, name: &str, address: std::net::IpAddr) {
        let mut limiter = self.lock();
        let now = Instant::now();
        for key in Self::keys(name, address) {
            limiter.fail(&key, now);
        }
    }

    pub(crate) fn succeeded(&self, name: &str, address: std::net::IpAddr) {
        let mut limiter = self.lock();
        for key in Self::keys(name, address) {
            limiter.succeed(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_begin_after_the_free_failures_and_double() {
        let mut limiter = Limiter::new(LimitConfig::default());
        let start = Instant::now();
        for _ in 0..5 {
            limiter.fail("ann", start);
            assert_eq!(limiter.wait("ann", start), None);
        }
        limiter.fail("ann", start);
        assert_eq!(limiter.wait("ann", start), Some(Duration::from_secs(1)));
        limiter.fail("ann", start);
        assert_eq!(limiter.wait("ann", start), Some(Duration::from_secs(2)));
        for _ in 0..20 {
            limiter.fail("ann", start);
        }
        assert_eq!(limiter.wait("ann", start), Some(Duration::from_secs(300)));
        let later = start + Duration::from_secs(100);
        assert_eq!(limiter.wait("ann", later), Some(Duration::from_secs(200)));
        assert_eq!(limiter.wait("ann", start + Duration::from_secs(300)), None);
        assert_eq!(limiter.wait("bob", start), None, "keys are separate");
        limiter.succeed("ann");
        assert_eq!(limiter.wait("ann", start), None);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut limiter = Limiter::new(LimitConfig::default());
        let start = Instant::now();
        for _ in 0..5 {
            limiter.fail("ann", start);
        }
        let much_later = start + Duration::from_secs(16 * 60);
        limiter.fail("ann", much_later);
        assert_eq!(
            limiter.wait("ann", much_later),
            None,
            "counting began again"
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut limiter = Limiter::new(LimitConfig {
            max_keys: 100,
            ..LimitConfig::default()
        });
        let start = Instant::now();
        for i in 0..10_000 {
            limiter.fail(&format!("key{i}"), start + Duration::from_millis(i));
        }
        assert!(limiter.len() <= 100, "{}", limiter.len());
        // The newest keys are the ones kept.
        for _ in 0..6 {
            limiter.fail("key9999", start + Duration::from_secs(10));
        }
        assert!(
            limiter
                .wait("key9999", start + Duration::from_secs(10))
                .is_some()
        );
    }
}
