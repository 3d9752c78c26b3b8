//! The line of checkouts waiting for a channel: first come, first served.
//!
//! When the pool is saturated, a finished call frees room for exactly one waiting call. If
//! every waiter raced for it (and newcomers too), a call could wait until its deadline while
//! later ones succeed. So waiting checkouts stand in a line: only the first one tries to take
//! a channel; a freed call wakes it alone; when it leaves (served, timed out or cancelled) the
//! next one becomes first and tries at once. A checkout that finds callers already in line
//! joins the back instead of taking a channel past them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The waiting checkouts of one pool.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    line: Mutex<VecDeque<Arc<Notify>>>,
    /// The line's length, readable without the lock (checkout's fast path).
    len: AtomicUsize,
}

impl Queue {
    /// Whether no checkout waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    /// Joins the back of the line.
    pub(crate) fn join(&self) -> Place<'_> {
        let me = Arc::new(Notify::new());
        let mut line = self.lock();
        line.push_back(me.clone());
        self.len.store(line.len(), Ordering::SeqCst);
        Place { queue: self, me }
    }

    /// Wakes the first in line (something changed that may let it take a channel). Its
    /// wake-up is kept if it is not asleep yet, so none is lost.
    pub(crate) fn wake_first(&self) {
        if self.is_empty() {
            return;
        }
        if let Some(first) = self.lock().front() {
            first.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Notify>>> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A checkout's place in the [`Queue`]; leaving (drop) wakes the next in line.
#[derive(Debug)]
pub(crate) struct Place<'a> {
    queue: &'a Queue,
    me: Arc<Notify>,
}

impl Place<'_> {
    /// Whether this checkout is first in line (the only one that may take a channel).
    pub(crate) fn is_first(&self) -> bool {
        self.queue
            .lock()
            .front()
            .is_some_and(|first| Arc::ptr_eq(first, &self.me))
    }

    /// Completes when this checkout is woken (see [`Queue::wake_first`]).
    pub(crate) fn woken(&self) -> Notified<'_> {
        self.me.notified()
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut line = self.queue.lock();
        let was_first = line.front().is_some_and(|f| Arc::ptr_eq(f, &self.me));
        line.retain(|w| !Arc::ptr_eq(w, &self.me));
        self.queue.len.store(line.len(), Ordering::SeqCst);
        if was_first {
            // The next one may take what this one leaves (or what it did not get to).
            if let Some(next) = line.front() {
                next.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Queue;

    #[tokio::test]
    async fn only_the_first_is_woken_and_leaving_wakes_the_next() {
        let queue = Queue::default();
        assert!(queue.is_empty());
        let a = queue.join();
        let b = queue.join();
        let c = queue.join();
        assert!(a.is_first() && !b.is_first() && !c.is_first());
        queue.wake_first();
        // a's wake-up was kept for it; b was not woken.
        tokio::time::timeout(Duration::from_secs(1), a.woken())
            .await
            .expect("the first is woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), b.woken())
                .await
                .is_err(),
            "the second must sleep"
        );
        // c leaves from the middle: nobody is woken, the order stays.
        drop(c);
        assert!(a.is_first() && !b.is_first());
        drop(a);
        assert!(b.is_first());
        tokio::time::timeout(Duration::from_secs(1), b.woken())
            .await
            .expect("the new first is woken when the first leaves");
        drop(b);
        assert!(queue.is_empty());
    }
}
