//! [`Shared`]: the state of one running pool, shared by its handles, workers, maintenance
//! task and channels. The modules that act on a pool (`pool`, `balance`, `resize`,
//! `addresses`, `maintain`, `handle`) all depend on this one, and it on none of them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::interceptor::Interceptor;
use crate::metrics::PoolMetrics;
use crate::settings::Settings;
use crate::signals::Signals;
use crate::slot::Slot;
use crate::status::{ChannelState, DiscoveryStatus, PoolStatus};

/// Everything the pool's handles, workers and channels share.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) settings: Arc<Settings>,
    /// The current slots. Replaced (never edited in place) when an elastic pool resizes.
    pub(crate) slots: ArcSwap<Vec<Arc<Slot>>>,
    /// Slots removed by elastic shrinking while calls ran on them: those calls finish on
    /// the slot's connection, and the shutdown drain waits for them too. A slot leaves the
    /// list once its last call ended (see [`Shared::in_flight`]).
    pub(crate) removed: Mutex<Vec<Arc<Slot>>>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) metrics: Arc<PoolMetrics>,
    /// The addresses of each endpoint (by position), as last resolved.
    pub(crate) resolved: Mutex<Vec<Arc<[SocketAddr]>>>,
    /// The index of the next slot added (indexes are never reused).
    pub(crate) next_index: AtomicUsize,
    /// Slots added and removed by elastic sizing.
    pub(crate) grown: AtomicU64,
    pub(crate) shrunk: AtomicU64,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) span: tracing::Span,
    pub(crate) interceptor: Option<Interceptor>,
    /// What discovery reports per `etcd:///` endpoint (empty without one).
    pub(crate) discovery: Vec<Arc<Mutex<DiscoveryStatus>>>,
    /// The service config's `retryThrottling`, shared by every call of the pool.
    pub(crate) throttle: Option<crate::retry::Throttle>,
    /// Calls sent again, by reason (see [`PoolStatus::retries`]).
    pub(crate) retries: crate::retry::Retries,
    /// Addresses ejected by outlier detection since start.
    pub(crate) ejections: AtomicU64,
}

impl Shared {
    pub(crate) fn is_closed(&self) -> bool {
        self.signals.closed.load(Ordering::SeqCst)
    }

    /// A new slot on endpoint `e` (not yet in `slots`, no worker yet), counted as connecting.
    pub(crate) fn new_slot(&self, e: usize) -> Arc<Slot> {
        new_slot(
            self.next_index.fetch_add(1, Ordering::Relaxed),
            e,
            &self.settings,
            &self.signals,
            &self.metrics,
            &self.cancel,
        )
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let channels = self.slots.load().iter().map(|s| s.status()).collect();
        let mut status =
            PoolStatus::from_channels(self.settings.name.clone(), self.is_closed(), channels);
        status.grown = self.grown.load(Ordering::Relaxed);
        status.shrunk = self.shrunk.load(Ordering::Relaxed);
        let keepalive = &self.signals.keepalive;
        status.too_many_pings = keepalive.too_many_pings();
        status.keepalive = keepalive.interval(self.settings.keepalive);
        status.retries = self.retries.snapshot();
        status.ejections = self.ejections.load(Ordering::Relaxed);
        status.discovery = self
            .discovery
            .iter()
            .map(|d| d.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect();
        status
    }

    /// The calls in flight over every slot, those removed by shrinking included.
    ///
    /// The current slots are read before the removed ones, and [`Shared::retire`] lists a
    /// slot as removed before it leaves the current ones, so a slot being removed meanwhile
    /// is counted at least once.
    pub(crate) fn in_flight(&self) -> usize {
        let slots = self.slots.load();
        let current: usize = slots
            .iter()
            .map(|s| s.in_flight.load(Ordering::SeqCst))
            .sum();
        current + self.removed_in_flight()
    }

    /// Takes `removed` out of the current slots (`kept` are the ones that stay), keeping
    /// them for the drain while their calls run. They are closed at once: a checkout still
    /// reading the old slot list skips them.
    pub(crate) fn retire(&self, kept: Vec<Arc<Slot>>, removed: &[Arc<Slot>]) {
        for slot in removed {
            slot.close();
        }
        self.lock_removed().extend(removed.iter().cloned());
        self.slots.store(Arc::new(kept));
        // Closed, then counted (and forgotten at zero): a checkout that reserves on one of
        // them and then reads its state behind a SeqCst fence either sees it closed or has its
        // call counted here.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.removed_in_flight();
    }

    /// The calls in flight on removed slots; forgets the slots that have none left.
    fn removed_in_flight(&self) -> usize {
        let mut total = 0;
        self.lock_removed().retain(|s| {
            let n = s.in_flight.load(Ordering::SeqCst);
            total += n;
            n > 0
        });
        total
    }

    fn lock_removed(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        self.removed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The calls in flight, the READY channels, and the smallest stream limit among them
    /// (`usize::MAX`: none known), now (for elastic sizing).
    pub(crate) fn load(&self) -> crate::resize::Sample {
        let slots = self.slots.load();
        let mut ready = 0;
        let mut stream_limit = usize::MAX;
        for slot in slots.iter().filter(|s| s.state() == ChannelState::Ready) {
            ready += 1;
            stream_limit = stream_limit.min(slot.stream_limit());
        }
        // Checkouts waiting for room count as load: with `max_in_flight_per_channel = 1` a full
        // pool has exactly one call per channel, which never exceeds the grow threshold.
        let in_flight = slots
            .iter()
            .map(|s| s.in_flight.load(Ordering::Relaxed))
            .sum::<usize>()
            + self.signals.waiting_checkouts();
        crate::resize::Sample {
            in_flight,
            ready,
            stream_limit,
        }
    }

    /// Stops at once: refuse checkouts, end the workers, drop the connections.
    pub(crate) fn stop(&self) {
        self.signals.closed.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        self.tracker.close();
        for slot in self.slots.load().iter() {
            slot.uninstall();
            slot.close();
        }
        self.signals.state_changed();
    }

    /// Spawns the worker of `slot` in its span.
    pub(crate) fn spawn_worker(&self, slot: Arc<Slot>) {
        let settings = &self.settings;
        let slot_span = tracing::info_span!(parent: &self.span, "slot", pool = %settings.name, slot = slot.index, endpoint = %slot.endpoint.display);
        let task = crate::worker::run(slot, settings.clone(), self.cancel.clone());
        self.tracker.spawn(task.instrument(slot_span));
    }
}

/// Slot `index` on endpoint `e`, counted as connecting in the gauges.
pub(crate) fn new_slot(
    index: usize,
    e: usize,
    settings: &Settings,
    signals: &Arc<Signals>,
    metrics: &Arc<PoolMetrics>,
    cancel: &CancellationToken,
) -> Arc<Slot> {
    let slot = Arc::new(Slot::new(
        index,
        e,
        settings,
        signals.clone(),
        metrics.clone(),
        cancel.child_token(),
    ));
    metrics.state_changed(None, Some(ChannelState::Connecting));
    slot
}
