//! One slot of a pool: its current connection, state, in-flight counter and statistics.
//!
//! Written by the slot's worker (state, connection) and by calls (counters); read lock-free
//! by `checkout`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::config::EndpointSpec;
use crate::metrics::PoolMetrics;
use crate::status::{ChannelState, ChannelStatus};

/// Pool-wide wake-ups: checkout waiters, the start waiter and the shutdown drain.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// Notified on every state change (all waiters) and on released calls (one waiter).
    pub(crate) changed: Notify,
    /// Tasks waiting on `changed`; releases notify only when someone waits.
    pub(crate) waiters: AtomicUsize,
    /// Set once shutdown begins.
    pub(crate) closed: AtomicBool,
    /// A connection attempt failed: re-resolve host names soon (the pool's maintenance task).
    pub(crate) resolve_now: Notify,
    /// A checkout found no channel READY or connecting: workers backing off try again now
    /// (at most once per [`DEMAND_FLOOR`](crate::worker::DEMAND_FLOOR)).
    pub(crate) demand: Notify,
}

impl Signals {
    /// A state change: wake everyone who waits.
    pub(crate) fn state_changed(&self) {
        self.changed.notify_waiters();
    }

    /// A call finished: wake one waiter (its capacity is free now).
    pub(crate) fn released(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            if self.closed.load(Ordering::SeqCst) {
                self.changed.notify_waiters();
            } else {
                self.changed.notify_one();
            }
        }
    }
}

/// Counts a task as waiting on [`Signals::changed`] while alive.
pub(crate) struct WaiterGuard<'a>(&'a Signals);

impl<'a> WaiterGuard<'a> {
    pub(crate) fn new(signals: &'a Signals) -> Self {
        signals.waiters.fetch_add(1, Ordering::SeqCst);
        Self(signals)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The "connection lost" signal of one connection: set on EOF, I/O error, GOAWAY, a failed
/// probe or a call that saw the connection fail; the worker then replaces the connection.
/// Checked on every checkout, so the check is one atomic load (a `CancellationToken`'s
/// `is_cancelled` takes a lock); waiting goes through the token.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lost(Arc<LostInner>);

#[derive(Debug, Default)]
struct LostInner {
    flag: AtomicBool,
    token: CancellationToken,
}

impl Lost {
    pub(crate) fn cancel(&self) {
        if !self.0.flag.swap(true, Ordering::AcqRel) {
            self.0.token.cancel();
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Acquire)
    }

    pub(crate) async fn cancelled(&self) {
        self.0.token.cancelled().await;
    }
}

/// One HTTP/2 connection of a slot: a dedicated tonic `Channel` that never reconnects by
/// itself (see `connector`), and the token cancelled when the connection is lost.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) channel: Channel,
    /// Unique over the process: tells a replaced connection from its successor.
    pub(crate) id: u64,
    /// Cancelled when the connection is closed, broken, going away, or a call proved it
    /// unusable. The worker then replaces it.
    pub(crate) lost: Lost,
    /// The address the slot preferred when this connection was opened (`None`: the
    /// connector resolved the host itself).
    pub(crate) preferred: Option<SocketAddr>,
    /// The peer address, once connected.
    pub(crate) peer: Arc<OnceLock<SocketAddr>>,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl Conn {
    pub(crate) fn new(
        channel: Channel,
        lost: Lost,
        preferred: Option<SocketAddr>,
        peer: Arc<OnceLock<SocketAddr>>,
    ) -> Self {
        Self {
            channel,
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            lost,
            preferred,
            peer,
        }
    }
}

/// A slot: one of the pool's channels.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Unique within the pool (an elastic pool never reuses an index).
    pub(crate) index: usize,
    /// Position of `endpoint` in the pool's endpoint list.
    pub(crate) endpoint_index: usize,
    pub(crate) endpoint: EndpointSpec,
    /// The addresses to connect to, the preferred one first (empty: the connector resolves
    /// the host). Set by the pool's resolver; a change of the first asks for a refresh.
    addrs: Mutex<Arc<[SocketAddr]>>,
    /// Wakes the worker to replace a healthy connection (its preferred address moved).
    pub(crate) refresh: Notify,
    /// Cancelled when the slot is removed (elastic shrink) or the pool stops: ends the worker.
    pub(crate) stop: CancellationToken,
    pub(crate) signals: Arc<Signals>,
    pub(crate) metrics: Arc<PoolMetrics>,
    state: AtomicU8,
    conn: ArcSwapOption<Conn>,
    /// Calls checked out or in progress on this slot (any of its connections).
    pub(crate) in_flight: AtomicUsize,
    pub(crate) calls: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    /// Healthy connections replaced (maximum age, moved address).
    pub(crate) refreshes: AtomicU64,
    /// Consecutive failed connection attempts (reset when a connection is made).
    pub(crate) connect_failures: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl Slot {
    pub(crate) fn new(
        index: usize,
        endpoint_index: usize,
        endpoint: EndpointSpec,
        signals: Arc<Signals>,
        metrics: Arc<PoolMetrics>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            index,
            endpoint_index,
            endpoint,
            addrs: Mutex::new(Arc::from(Vec::new())),
            refresh: Notify::new(),
            stop,
            signals,
            metrics,
            state: AtomicU8::new(ChannelState::Connecting as u8),
            conn: ArcSwapOption::empty(),
            in_flight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            connect_failures: AtomicU32::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Sets the state and wakes waiters when it changed.
    pub(crate) fn set_state(&self, state: ChannelState) {
        let old = self.state.swap(state as u8, Ordering::AcqRel);
        if old != state as u8 {
            self.metrics
                .state_changed(Some(ChannelState::from_u8(old)), Some(state));
            self.signals.state_changed();
        }
    }

    /// Marks the slot removed from the pool (elastic shrink, shutdown): `Closed`, counted
    /// out of the gauges. Idempotent.
    pub(crate) fn close(&self) {
        let old = self
            .state
            .swap(ChannelState::Closed as u8, Ordering::AcqRel);
        if old != ChannelState::Closed as u8 {
            self.metrics
                .state_changed(Some(ChannelState::from_u8(old)), None);
            self.signals.state_changed();
        }
    }

    /// The addresses to connect to, preferred first (empty: resolve the host).
    pub(crate) fn addrs(&self) -> Arc<[SocketAddr]> {
        self.addrs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The preferred address, if the pool resolved one.
    pub(crate) fn preferred(&self) -> Option<SocketAddr> {
        self.addrs().first().copied()
    }

    /// Sets the addresses; wakes the worker to move when the preferred one changed.
    pub(crate) fn set_addrs(&self, addrs: Arc<[SocketAddr]>) {
        let moved = {
            let mut current = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
            let moved = current.first() != addrs.first();
            *current = addrs;
            moved
        };
        if moved {
            self.refresh.notify_one();
        }
    }

    /// The current connection, if any.
    pub(crate) fn conn(&self) -> Option<Arc<Conn>> {
        self.conn.load_full()
    }

    /// Installs a connection; the one it replaces (if any) is returned, still open for the
    /// calls that hold it (it closes when the last of them ends).
    pub(crate) fn install(&self, conn: Conn) -> Option<Arc<Conn>> {
        self.conn.swap(Some(Arc::new(conn)))
    }

    /// Drops the slot's reference to its connection (calls still using it keep it open).
    pub(crate) fn uninstall(&self) {
        if let Some(old) = self.conn.swap(None) {
            old.lost.cancel();
        }
    }

    pub(crate) fn set_last_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reserves one in-flight call if the slot is below `cap`; returns whether it did.
    pub(crate) fn try_reserve(&self, cap: Option<usize>) -> bool {
        match cap {
            None => {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                self.metrics.in_flight(1.0);
                true
            }
            Some(cap) => {
                let mut current = self.in_flight.load(Ordering::Acquire);
                while current < cap {
                    match self.in_flight.compare_exchange_weak(
                        current,
                        current + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            self.metrics.in_flight(1.0);
                            return true;
                        }
                        Err(actual) => current = actual,
                    }
                }
                false
            }
        }
    }

    /// Gives back one in-flight call and wakes a waiter.
    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.metrics.in_flight(-1.0);
        self.signals.released();
    }

    pub(crate) fn status(&self) -> ChannelStatus {
        ChannelStatus {
            index: self.index,
            endpoint: self.endpoint.display.clone(),
            address: self
                .conn()
                .and_then(|c| c.peer.get().copied())
                .or_else(|| self.preferred()),
            state: self.state(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            last_error: self.last_error(),
        }
    }
}

/// One in-flight call on a slot; released on drop.
#[derive(Debug)]
pub(crate) struct InFlight {
    slot: Arc<Slot>,
}

impl InFlight {
    /// Wraps a reservation already counted by [`Slot::try_reserve`].
    pub(crate) fn reserved(slot: Arc<Slot>) -> Self {
        Self { slot }
    }

    /// Counts a new call (no cap: the caller already holds a checkout).
    pub(crate) fn acquire(slot: Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        slot.metrics.in_flight(1.0);
        Self { slot }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.slot.release();
    }
}
