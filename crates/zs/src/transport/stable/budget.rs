//! [`MemoryBudget`]: a server-wide cap on what StableIO sessions hold.
//!
//! Each session's buffers are bounded by its window (resend data kept until the peer's
//! application acknowledges it, received data until this side's application reads it), so
//! `max_sessions` sessions could hold `max_sessions × 2 × window` bytes (80 GB with the
//! defaults) — most of it for clients that went away and will never acknowledge, kept for the
//! give-up time. The budget caps the sum. Sessions charge what their endpoint buffers after
//! every step; a write finding the budget spent waits (back-pressure on that session's
//! application, as a full window does) and, if its client is connected, asks the server to
//! end the session whose client has been gone the longest: its buffers are freed for the
//! clients that are here.
//!
//! The cap can be passed by what arrives from peers (a receiver cannot refuse bytes its
//! window allowed) and by one write per session racing another; writes wait until the sum is
//! back under it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::sync::Notify;

/// The bytes all of a server's StableIO sessions may hold in their buffers.
pub(crate) struct MemoryBudget {
    limit: usize,
    state: Mutex<State>,
    reclaim: Notify,
}

#[derive(Default)]
struct State {
    used: usize,
    /// Writers waiting for room.
    waiters: Vec<Waker>,
}

impl MemoryBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            state: Mutex::new(State::default()),
            reclaim: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes charged by all sessions.
    pub(crate) fn used(&self) -> usize {
        self.lock().used
    }

    /// Bytes a write may take now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.limit.saturating_sub(self.lock().used)
    }

    /// Bytes a write may take now; when none, registers the writer's `waker` (woken when
    /// charges shrink) and, if the writer's session has a link (`attached`: its client is
    /// here), asks the server to reclaim memory from a session without one. A detached
    /// session's writes just wait: they could not be sent anyway. One lock for the check and
    /// the registration, so a release in between cannot be missed.
    pub(crate) fn room_or_wait(&self, waker: &Waker, attached: bool) -> usize {
        let mut state = self.lock();
        let room = self.limit.saturating_sub(state.used);
        if room == 0 {
            if !state.waiters.iter().any(|waiting| waiting.will_wake(waker)) {
                state.waiters.push(waker.clone());
            }
            drop(state);
            if attached {
                self.reclaim.notify_one();
            }
        }
        room
    }

    /// Resolves when a writer waits for room (the server then ends a detached session).
    pub(crate) async fn reclaim_wanted(&self) {
        self.reclaim.notified().await;
    }

    /// Moves a charge from `old` to `new` bytes; waiting writers are woken when it shrinks.
    fn recharge(&self, old: usize, new: usize) {
        if old == new {
            return;
        }
        let mut state = self.lock();
        state.used = state.used.saturating_sub(old).saturating_add(new);
        let waiters = if new < old {
            std::mem::take(&mut state.waiters)
        } else {
            Vec::new()
        };
        drop(state);
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// One session's share of a [`MemoryBudget`] (none on a client); released when dropped.
#[derive(Default)]
pub(crate) struct Charge {
    budget: Option<Arc<MemoryBudget>>,
    bytes: usize,
}

impl Charge {
    pub(crate) fn new(budget: Option<Arc<MemoryBudget>>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// Sets the session's charge to `bytes`.
    pub(crate) fn set(&mut self, bytes: usize) {
        if let Some(budget) = &self.budget {
            budget.recharge(self.bytes, bytes);
            self.bytes = bytes;
        }
    }

    /// The budget, if the session has one.
    pub(crate) fn budget(&self) -> Option<&Arc<MemoryBudget>> {
        self.budget.as_ref()
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_dropping_releases() {
        let budget = MemoryBudget::new(1000);
        let mut a = Charge::new(Some(budget.clone()));
        let mut b = Charge::new(Some(budget.clone()));
        a.set(600);
        b.set(300);
        assert_eq!(budget.used(), 900);
        assert_eq!(budget.available(), 100);
        b.set(500);
        assert_eq!(budget.available(), 0, "over the cap, nothing is available");
        a.set(100);
        assert_eq!(budget.used(), 600);
        drop(b);
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_waiting_writer_is_woken_when_room_frees_and_reclaim_is_asked() {
        let budget = MemoryBudget::new(100);
        let mut charge = Charge::new(Some(budget.clone()));
        charge.set(100);
        let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Waker::from(Arc::new(Flag(woken.clone())));
        let mut reclaim = std::pin::pin!(budget.reclaim_wanted());
        let mut cx = std::task::Context::from_waker(Waker::noop());
        assert_eq!(budget.room_or_wait(&waker, false), 0);
        assert!(
            reclaim.as_mut().poll(&mut cx).is_pending(),
            "a detached session's writer waits without asking for reclaim"
        );
        assert_eq!(budget.room_or_wait(&waker, true), 0);
        assert!(
            reclaim.as_mut().poll(&mut cx).is_ready(),
            "a connected session's writer asks for reclaim"
        );
        charge.set(150);
        assert!(!woken.load(std::sync::atomic::Ordering::SeqCst));
        charge.set(40);
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(budget.available(), 60);
    }

    #[test]
    fn a_session_without_a_budget_charges_nothing() {
        let mut charge = Charge::new(None);
        charge.set(1 << 30);
        assert!(charge.budget().is_none());
    }

    struct Flag(Arc<std::sync::atomic::AtomicBool>);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    use std::future::Future as _;
}
