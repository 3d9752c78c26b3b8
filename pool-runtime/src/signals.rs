//! Pool-wide wake-ups, and the one way to wait on them: [`Signals::wait_until`].
//!
//! The start waiter and the shutdown drain wait the same way: check a condition, and if it
//! does not hold, sleep until something changed (a slot changed state, a call finished) or a
//! deadline passed, then check again. Nothing polls. Checkouts wait in line instead (see
//! [`crate::queue`]), woken by the same events one at a time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::keepalive::Keepalive;
use crate::probe::Probes;
use crate::queue::Queue;

/// How long after a checkout found no channel the pool still counts as wanting one (callers
/// that failed fast tend to call again).
const DEMAND_WINDOW: Duration = Duration::from_secs(1);

/// Pool-wide wake-ups: checkout waiters, the start waiter and the shutdown drain.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// Notified on every state change (all waiters), and on released calls once the pool
    /// is closing (the drain).
    pub(crate) changed: Notify,
    /// Checkouts waiting for a channel, in line (woken on state changes and released calls).
    pub(crate) queue: Queue,
    /// Tasks waiting on `changed`; releases notify only when someone waits.
    pub(crate) waiters: AtomicUsize,
    /// Set once shutdown begins.
    pub(crate) closed: AtomicBool,
    /// A connection attempt failed: re-resolve host names soon (the pool's maintenance task).
    pub(crate) resolve_now: Notify,
    /// A checkout found no channel READY or connecting: workers backing off take their
    /// address's next reconnect probe (see [`crate::probe`]).
    pub(crate) demand: Notify,
    /// When a checkout last found no channel.
    demand_at: Mutex<Option<Instant>>,
    /// Checkouts waiting for a channel (not the start waiter or the drain).
    wanting: AtomicUsize,
    /// The reconnect gates of the pool's addresses.
    pub(crate) probes: Probes,
    /// A slot warned that health checks cannot be used (once per pool).
    pub(crate) health_warned: AtomicBool,
    /// Calls may carry a retry policy's [`Commit`](crate::retry::Commit), which channels then
    /// look for: set when the pool has a service config, or when a call comes with a
    /// generated method's default retry policy. Until then no call pays for the lookup.
    pub(crate) commits: AtomicBool,
    /// The keepalive interval of new connections, raised by `too_many_pings`.
    pub(crate) keepalive: Keepalive,
}

impl Signals {
    /// A state change: wake everyone who waits.
    pub(crate) fn state_changed(&self) {
        self.changed.notify_waiters();
        self.queue.wake_first();
    }

    /// A checkout found no channel: wake the workers in backoff.
    pub(crate) fn want_channel(&self) {
        *self.demand_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.demand.notify_waiters();
    }

    /// A checkout waits for a channel: calls want one until the guard drops.
    pub(crate) fn wait_for_channel(&self) -> Wanting<'_> {
        self.wanting.fetch_add(1, Ordering::SeqCst);
        self.want_channel();
        Wanting(self)
    }

    /// Checkouts waiting for a channel now.
    pub(crate) fn waiting_checkouts(&self) -> usize {
        self.wanting.load(Ordering::SeqCst)
    }

    /// Whether calls want a channel: checkouts wait for one, or one was missing a moment ago.
    pub(crate) fn wanted(&self) -> bool {
        self.wanting.load(Ordering::SeqCst) > 0
            || self
                .demand_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|at| at.elapsed() < DEMAND_WINDOW)
    }

    /// A call finished: its room goes to the first checkout in line; the drain of a closing
    /// pool counts it.
    pub(crate) fn released(&self) {
        self.queue.wake_first();
        if self.waiters.load(Ordering::SeqCst) > 0 && self.closed.load(Ordering::SeqCst) {
            self.changed.notify_waiters();
        }
    }

    /// Waits until `check` returns `Some`, checking it again after every notification of
    /// `changed`; `None` once `deadline` passes first (no deadline: waits as long as it takes).
    ///
    /// The notification is armed before each check, so a change between the check and the
    /// sleep is not missed. The task counts as a waiter meanwhile (see [`released`]).
    ///
    /// [`released`]: Signals::released
    pub(crate) async fn wait_until<T>(
        &self,
        deadline: Option<Instant>,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let _waiting = WaiterGuard::new(self);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(done) = check() {
                return Some(done);
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return None;
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// A checkout waiting for a channel (see [`Signals::wait_for_channel`]).
pub(crate) struct Wanting<'a>(&'a Signals);

impl Drop for Wanting<'_> {
    fn drop(&mut self) {
        self.0.wanting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a task as waiting on [`Signals::changed`] while alive.
struct WaiterGuard<'a>(&'a Signals);

impl<'a> WaiterGuard<'a> {
    fn new(signals: &'a Signals) -> Self {
        signals.waiters.fetch_add(1, Ordering::SeqCst);
        Self(signals)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Signals;

    #[tokio::test]
    async fn wait_until_rechecks_on_each_change_and_stops_at_the_deadline() {
        let signals = Arc::new(Signals::default());
        let value = Arc::new(AtomicUsize::new(0));
        let (s, v) = (signals.clone(), value.clone());
        let bumper = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                v.fetch_add(1, Ordering::SeqCst);
                s.state_changed();
            }
        });
        let got = signals
            .wait_until(None, || {
                let now = value.load(Ordering::SeqCst);
                (now >= 3).then_some(now)
            })
            .await;
        assert_eq!(got, Some(3));
        bumper.await.unwrap();
        assert_eq!(signals.waiters.load(Ordering::SeqCst), 0);

        let deadline = Instant::now() + Duration::from_millis(20);
        let never = signals.wait_until(Some(deadline), || None::<()>).await;
        assert_eq!(never, None);
        assert!(Instant::now() >= deadline);
        assert_eq!(signals.waiters.load(Ordering::SeqCst), 0);
    }
}
