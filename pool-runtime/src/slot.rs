//! One slot of a pool: its current connection, state, in-flight counter and statistics.
//!
//! Written by the slot's worker (state, connection) and by calls (counters); read lock-free
//! by `checkout`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::conn::Conn;
use crate::health::Probe;
use crate::metrics::PoolMetrics;
use crate::settings::EndpointSpec;
use crate::signals::Signals;
use crate::status::{ChannelState, ChannelStatus};

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
    /// Calls the server refused at its stream limit (sent again by the pool).
    pub(crate) refused_streams: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    /// Healthy connections replaced (maximum age, moved address).
    pub(crate) refreshes: AtomicU64,
    /// Connection attempts, and of those the probes (see [`crate::probe`]).
    pub(crate) connect_attempts: AtomicU64,
    pub(crate) probe_attempts: AtomicU64,
    /// Consecutive failed connection attempts (reset when a connection is made).
    pub(crate) connect_failures: AtomicU32,
    last_error: Mutex<Option<String>>,
    /// Call outcomes for outlier detection (`None`: the pool has none).
    pub(crate) outcomes: Option<crate::outlier::Outcomes>,
    /// How fast the slot's connection answers (see [`crate::latency`]).
    pub(crate) latency: crate::latency::Latency,
    /// Set while outlier detection ejects the slot's address: it takes no new calls.
    ejected: AtomicBool,
    ejected_until: Mutex<Option<std::time::SystemTime>>,
}

impl Slot {
    /// Slot `index` on the endpoint at `endpoint_index` of `settings`.
    pub(crate) fn new(
        index: usize,
        endpoint_index: usize,
        settings: &crate::settings::Settings,
        signals: Arc<Signals>,
        metrics: Arc<PoolMetrics>,
        stop: CancellationToken,
    ) -> Self {
        let endpoint = settings.endpoints[endpoint_index].clone();
        Self {
            outcomes: settings
                .outlier_detection()
                .map(|_| crate::outlier::Outcomes::default()),
            latency: crate::latency::Latency::default(),
            ejected: AtomicBool::new(false),
            ejected_until: Mutex::new(None),
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
            refused_streams: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            connect_attempts: AtomicU64::new(0),
            probe_attempts: AtomicU64::new(0),
            connect_failures: AtomicU32::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether the slot was removed from the pool (see [`try_reserve`](Self::try_reserve)).
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::SeqCst) == ChannelState::Closed as u8
    }

    /// Sets the state and wakes waiters when it changed. A `Closed` slot stays closed: a
    /// worker that sets a state while the pool stops must not bring it back (it would be
    /// counted out of the gauges twice).
    pub(crate) fn set_state(&self, state: ChannelState) {
        let mut old = self.state.load(Ordering::Acquire);
        loop {
            if old == state as u8 || old == ChannelState::Closed as u8 {
                return;
            }
            match self.state.compare_exchange_weak(
                old,
                state as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        self.metrics
            .state_changed(Some(ChannelState::from_u8(old)), Some(state));
        self.signals.state_changed();
    }

    /// Marks the slot removed from the pool (elastic shrink, shutdown): `Closed`, counted
    /// out of the gauges. Idempotent.
    pub(crate) fn close(&self) {
        let old = self
            .state
            .swap(ChannelState::Closed as u8, Ordering::SeqCst);
        if old != ChannelState::Closed as u8 {
            self.metrics
                .state_changed(Some(ChannelState::from_u8(old)), None);
            self.signals.state_changed();
        }
    }

    /// Sets the state from a probe that reached the server (`first`: of a new connection;
    /// `health_check`: a NOT_SERVING answer makes the slot `Unhealthy`).
    pub(crate) fn apply_probe(&self, probe: Probe, first: bool, health_check: bool) {
        match probe {
            Probe::Serving | Probe::Unusable(_) => {
                if let Probe::Unusable(code) = probe {
                    if health_check && !self.signals.health_warned.swap(true, Ordering::Relaxed) {
                        warn!(code = ?code, "the server's grpc.health.v1.Health service cannot be used; treating the server as healthy (keepalive only)");
                    }
                }
                let was = self.state();
                self.set_state(ChannelState::Ready);
                if first {
                    info!("ready");
                } else if was == ChannelState::Unhealthy {
                    info!("healthy again");
                }
            }
            Probe::NotServing(why) if health_check => {
                if self.state() != ChannelState::Unhealthy {
                    warn!(reason = %why, "unhealthy; routing no calls here");
                }
                self.set_last_error(why);
                self.set_state(ChannelState::Unhealthy);
            }
            Probe::NotServing(why) => {
                // Health checks are off: the server answered, so the connection works.
                debug!(reason = %why, "health service answered, health checks off");
                self.set_state(ChannelState::Ready);
                if first {
                    info!("ready");
                }
            }
            Probe::Failed(_) => {}
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

    /// How many calls the current connection takes (see [`StreamLimit`]); unlimited
    /// without a connection. A lock-free load, for checkout's hot path.
    ///
    /// [`StreamLimit`]: crate::conn::StreamLimit
    pub(crate) fn stream_limit(&self) -> usize {
        self.conn
            .load()
            .as_ref()
            .map_or(usize::MAX, |c| c.streams.get())
    }

    /// Installs a connection and wakes the checkouts waiting: they may be waiting for this
    /// very connection while the slot's state stays the same (a refresh, or a retry that
    /// avoids the connection it replaces). The one it replaces (if any) is returned, still open
    /// for the calls that hold it (it closes when the last of them ends).
    pub(crate) fn install(&self, conn: Conn) -> Option<Arc<Conn>> {
        let old = self.conn.swap(Some(Arc::new(conn)));
        // The new connection may reach another address (a refresh, a moved address): its
        // speed is measured anew.
        self.latency.reset();
        self.signals.state_changed();
        old
    }

    /// Drops the slot's reference to its connection (calls still using it keep it open).
    pub(crate) fn uninstall(&self) {
        if let Some(old) = self.conn.swap(None) {
            old.lost.cancel();
        }
    }

    /// The bookkeeping of a lost connection: new calls no longer get it, the slot counts a
    /// reconnect, `why` is its last error.
    pub(crate) fn lost(&self, why: &str) {
        self.uninstall();
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.metrics.reconnect();
        self.set_last_error(why.to_owned());
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
    ///
    /// Sequentially consistent (as cheap as acquire-release on x86 and ARMv8), with
    /// [`is_closed`](Self::is_closed) and the pool's `closed` flag: a checkout reserves, then
    /// reads those; shrinking and shutdown close, then count the calls in flight. Whichever
    /// comes first in the single order of these operations, one side sees the other.
    pub(crate) fn try_reserve(&self, cap: Option<usize>) -> bool {
        match cap {
            None => {
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                self.metrics.in_flight(1.0);
                true
            }
            Some(cap) => {
                let mut current = self.in_flight.load(Ordering::SeqCst);
                while current < cap {
                    match self.in_flight.compare_exchange_weak(
                        current,
                        current + 1,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
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

    /// The address the slot is connected to, else the one it will try first.
    pub(crate) fn address(&self) -> Option<SocketAddr> {
        self.conn()
            .and_then(|c| c.peer)
            .or_else(|| self.preferred())
    }

    /// Whether outlier detection ejected the slot's address.
    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Ejects the slot until `until`, or (`None`) lets it take calls again.
    pub(crate) fn set_ejected(&self, until: Option<std::time::SystemTime>) {
        let was = self.ejected.swap(until.is_some(), Ordering::Relaxed);
        *self.ejected_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
        if was && until.is_none() {
            // Calls waiting for room may take this slot now.
            self.signals.state_changed();
        }
    }

    pub(crate) fn status(&self) -> ChannelStatus {
        ChannelStatus {
            index: self.index,
            endpoint: self.endpoint.display.clone(),
            address: self.address(),
            state: match self.state() {
                ChannelState::Ready if self.is_ejected() => ChannelState::Ejected,
                state => state,
            },
            latency: crate::latency::as_duration(self.latency.at(std::time::Instant::now())),
            ejected_until: *self.ejected_until.lock().unwrap_or_else(|p| p.into_inner()),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            refused_streams: self.refused_streams.load(Ordering::Relaxed),
            stream_limit: Some(self.stream_limit()).filter(|l| *l != usize::MAX),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            connect_attempts: self.connect_attempts.load(Ordering::Relaxed),
            probe_attempts: self.probe_attempts.load(Ordering::Relaxed),
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

    /// The slot the call runs on.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PoolConfig;
    use crate::settings::Settings;

    fn slot() -> Slot {
        let config = PoolConfig::local("127.0.0.1", 1).build().unwrap();
        let settings = Settings::resolve(&config, "t".into()).unwrap();
        Slot::new(
            0,
            0,
            &settings,
            Arc::new(Signals::default()),
            Arc::new(PoolMetrics::new("t")),
            CancellationToken::new(),
        )
    }

    #[test]
    fn a_closed_slot_stays_closed() {
        let slot = slot();
        slot.set_state(ChannelState::Ready);
        assert_eq!(slot.state(), ChannelState::Ready);
        slot.close();
        // The worker, racing the stop, sets a state after the slot was closed.
        slot.set_state(ChannelState::Backoff);
        assert_eq!(slot.state(), ChannelState::Closed);
    }

    /// A checkout may wait for a new connection of a slot whose state does not change (a
    /// retry avoiding the connection that was replaced): installing it must wake the waiters.
    #[tokio::test(start_paused = true)]
    async fn installing_a_connection_wakes_waiters() {
        use std::time::Duration;

        use crate::conn::Lost;

        let slot = Arc::new(slot());
        slot.set_state(ChannelState::Ready);
        let waiter = tokio::spawn({
            let slot = slot.clone();
            async move {
                let signals = slot.signals.clone();
                signals.wait_until(None, || slot.conn().map(|_| ())).await
            }
        });
        while slot.signals.waiters.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        slot.install(Conn::new(
            crate::transport::unanswered().await,
            Lost::default(),
            None,
            None,
            Arc::default(),
        ));
        // Time is paused: a waiter nobody wakes makes the runtime idle, and the timeout fires.
        let woken = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(woken.is_ok(), "installing a connection woke nobody");
        assert_eq!(slot.state(), ChannelState::Ready);
    }
}
