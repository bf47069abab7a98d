//! [`Signal`]: wakes one driver task from any number of handles.
//!
//! Written here because tokio's `Notify` keeps a waiter list behind a mutex: a driver that
//! creates a `notified()` future every turn locks it twice per turn (register, drop), which
//! showed in `perf` of StableIO RPC. One waiting task needs only a flag and futures-util's
//! `AtomicWaker` (the pattern its documentation gives).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// A wake-up for one waiting task; wake-ups given while it runs are kept (as one) until it
/// waits again.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Wakes the waiting task, or makes its next wait return at once.
    pub(crate) fn notify(&self) {
        // Already set: the task has not consumed the last wake-up yet and will see this one.
        if !self.set.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A notify between the check and the registration woke no one: look again.
        if self.set.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits for the next [`Self::notify`] (returns at once if one came since the last wait).
    /// Only one task may wait at a time.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| self.poll_wait(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_notify_before_the_wait_is_kept_once() {
        let signal = Signal::default();
        signal.notify();
        signal.notify();
        signal.wait().await;
        let second = tokio::time::timeout(Duration::from_secs(1), signal.wait()).await;
        assert!(
            second.is_err(),
            "two notifies before a wait are one wake-up"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_notify_from_another_thread_wakes_the_waiter() {
        let signal = Arc::new(Signal::default());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let waiter = {
            let signal = signal.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                while seen < 10_000 {
                    signal.wait().await;
                    while let Ok(n) = rx.try_recv() {
                        seen = n;
                    }
                }
                seen
            })
        };
        for n in 1..=10_000 {
            tx.send(n).await.expect("waiter alive");
            signal.notify();
        }
        let seen = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("no lost wake-up")
            .expect("waiter ran");
        assert_eq!(seen, 10_000);
    }
}
