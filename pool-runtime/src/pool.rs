//! [`Pool`]: start, checkout (least in flight), execute, status, shutdown.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::channel::{Interceptor, PooledChannel};
use crate::config::{PoolConfig, Settings};
use crate::error::{ConnectFailure, PoolError};
use crate::metrics::PoolMetrics;
use crate::registry::{self, Registration};
use crate::slot::{InFlight, Signals, Slot, WaiterGuard};
use crate::status::{ChannelState, PoolStatus};

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique pool id (tells a pool from a successor under the same name).
pub(crate) fn next_id() -> u64 {
    NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed)
}

/// A pool of warm, shared gRPC channels. Cheap to clone: all clones share the channels.
///
/// Dropping the last handle stops the pool's tasks and closes its connections (calls in
/// progress keep their connection until they finish). [`shutdown`](Pool::shutdown) does the
/// same gracefully.
#[derive(Clone)]
pub struct Pool {
    pub(crate) handle: Arc<Handle>,
}

/// The owner of a pool's tasks: dropped with the last [`Pool`] clone.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// Everything the pool's handles, workers and channels share.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) settings: Arc<Settings>,
    /// The current slots. Replaced (never edited in place) when an elastic pool resizes.
    pub(crate) slots: ArcSwap<Vec<Arc<Slot>>>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) metrics: Arc<PoolMetrics>,
    /// The addresses of each endpoint (by position), as last resolved.
    pub(crate) resolved: Mutex<Vec<Arc<[SocketAddr]>>>,
    /// The index of the next slot added (indexes are never reused).
    next_index: AtomicUsize,
    /// Slots added and removed by elastic sizing.
    grown: AtomicU64,
    shrunk: AtomicU64,
    pub(crate) cancel: CancellationToken,
    tracker: TaskTracker,
    pub(crate) span: tracing::Span,
    interceptor: Option<Interceptor>,
}

/// The outcome of one pass over the slots.
enum Pick {
    Got(PooledChannel),
    /// Ready channels exist but are at their cap, or channels are connecting: worth waiting.
    Wait,
    /// Nothing is ready or about to be.
    NoneReady,
    Closed,
}

impl Pool {
    /// Validates `config`, opens every channel concurrently and returns once one is READY.
    ///
    /// Fails with [`PoolError::Config`] for an invalid configuration, with
    /// [`PoolError::AlreadyRunning`] when a pool of the same name runs, and with
    /// [`PoolError::Connect`] (naming the endpoint and the last cause) when every channel
    /// failed `retry.max_attempts` attempts. After a successful start, channels that failed
    /// keep reconnecting in the background with backoff.
    pub async fn start(config: PoolConfig) -> Result<Pool, PoolError> {
        let id = next_id();
        let settings = Settings::resolve(&config, format!("pool-{id}"))?;
        Self::launch(id, settings, Registration::Weak).await
    }

    /// Starts a pool from resolved settings and registers it.
    pub(crate) async fn launch(
        id: u64,
        settings: Settings,
        registration: Registration,
    ) -> Result<Pool, PoolError> {
        let settings = Arc::new(settings);
        let span = tracing::info_span!("grpc_pool", pool = %settings.name);
        let signals = Arc::new(Signals::default());
        let metrics = Arc::new(PoolMetrics::new(&settings.name));
        let cancel = CancellationToken::new();
        let resolved = crate::maintain::initial_addresses(&settings)
            .instrument(span.clone())
            .await;
        let slots: Vec<Arc<Slot>> = (0..settings.size)
            .map(|i| {
                let e = i % settings.endpoints.len();
                Arc::new(Slot::new(
                    i,
                    e,
                    settings.endpoints[e].clone(),
                    signals.clone(),
                    metrics.clone(),
                    cancel.child_token(),
                ))
            })
            .collect();
        for (e, addrs) in resolved.iter().enumerate() {
            let mine: Vec<&Arc<Slot>> = slots.iter().filter(|s| s.endpoint_index == e).collect();
            crate::maintain::assign(&mine, addrs);
        }
        for _ in &slots {
            metrics.state_changed(None, Some(ChannelState::Connecting));
        }
        let shared = Arc::new(Shared {
            id,
            settings: settings.clone(),
            next_index: AtomicUsize::new(slots.len()),
            grown: AtomicU64::new(0),
            shrunk: AtomicU64::new(0),
            slots: ArcSwap::from_pointee(slots),
            signals,
            metrics,
            resolved: Mutex::new(resolved),
            cancel,
            tracker: TaskTracker::new(),
            span: span.clone(),
            interceptor: settings.interceptor.as_ref().map(|i| i.0.clone()),
        });
        let pool = Pool {
            handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
        };
        registry::reserve(&pool, registration)?;
        // Until started: a failed or abandoned start stops the workers and frees the name.
        let mut guard = StartGuard {
            shared: shared.clone(),
            armed: true,
        };
        info!(parent: &span, size = settings.size, endpoints = %settings.endpoint_list(), "starting");
        for slot in shared.slots.load().iter() {
            shared.spawn_worker(slot.clone());
        }
        if settings.resolves_names() || settings.is_elastic() {
            let task = crate::maintain::run(shared.clone());
            shared.tracker.spawn(task.instrument(span.clone()));
        }
        shared.wait_started().instrument(span.clone()).await?;
        guard.armed = false;
        registry::mark_started(&pool);
        info!(parent: &span, ready = pool.status().ready, "started");
        Ok(pool)
    }

    /// The READY channel with the fewest calls in flight (ties rotate), reserving one call
    /// on it. Waits, woken by finished calls and state changes, while channels are at
    /// `max_in_flight_per_channel` or connecting, up to `checkout_timeout`
    /// ([`PoolError::CheckoutTimeout`]); fails at once with [`PoolError::NoReadyChannel`]
    /// when no channel is ready or connecting, and with [`PoolError::Closed`] after shutdown.
    pub async fn checkout(&self) -> Result<PooledChannel, PoolError> {
        self.handle.shared.checkout(&[]).await
    }

    /// Checks out a channel and runs `op` with it.
    pub async fn execute<F, Fut, T>(&self, op: F) -> Result<T, PoolError>
    where
        F: FnOnce(PooledChannel) -> Fut,
        Fut: Future<Output = T>,
    {
        let channel = self.checkout().await?;
        Ok(op(channel).await)
    }

    /// A snapshot of every channel's state and counters.
    pub fn status(&self) -> PoolStatus {
        self.handle.shared.status()
    }

    /// The pool's name (`pool.name`, the `#[grpc_pool]` name, or `pool-N`).
    pub fn name(&self) -> &str {
        &self.handle.shared.settings.name
    }

    /// The endpoints the pool connects to.
    pub fn endpoints(&self) -> Vec<String> {
        let settings = &self.handle.shared.settings;
        settings
            .endpoints
            .iter()
            .map(|e| e.display.clone())
            .collect()
    }

    /// Graceful shutdown: new checkouts fail with [`PoolError::Closed`], calls in flight get
    /// up to `drain_timeout` to finish, every worker task ends, the pool leaves the registry.
    /// Calling it again (or from a clone) waits for the same shutdown.
    pub async fn shutdown(&self) {
        self.handle.shared.shutdown().await;
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name())
            .field("size", &self.handle.shared.settings.size)
            .finish_non_exhaustive()
    }
}

/// Stops a pool whose start failed or was abandoned, and frees its name.
struct StartGuard {
    shared: Arc<Shared>,
    armed: bool,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.shared.stop();
        registry::remove(&self.shared.settings.name, self.shared.id);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop();
        registry::remove(&self.shared.settings.name, self.shared.id);
    }
}

impl Shared {
    pub(crate) fn is_closed(&self) -> bool {
        self.signals.closed.load(Ordering::SeqCst)
    }

    /// Waits until a slot is READY, or fails once every slot has settled without one.
    async fn wait_started(&self) -> Result<(), PoolError> {
        let _waiting = WaiterGuard::new(&self.signals);
        let max_attempts = self.settings.retry.max_attempts;
        loop {
            let notified = self.signals.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let slots = self.slots.load();
            let ready = slots.iter().any(|s| s.state() == ChannelState::Ready);
            if ready {
                return Ok(());
            }
            let exhausted =
                |s: &Arc<Slot>| s.connect_failures.load(Ordering::SeqCst) >= max_attempts;
            let unhealthy = |s: &Arc<Slot>| s.state() == ChannelState::Unhealthy;
            if slots.iter().all(|s| exhausted(s) || unhealthy(s)) {
                if slots.iter().any(unhealthy) {
                    warn!("started, but every connected channel reports NOT_SERVING");
                    return Ok(());
                }
                let last = slots.iter().rev().find(|s| s.last_error().is_some());
                let (endpoint, cause) = match last {
                    Some(s) => (
                        s.endpoint.display.clone(),
                        s.last_error().unwrap_or_default(),
                    ),
                    None => (self.settings.endpoint_list(), "unknown error".to_owned()),
                };
                warn!(endpoint = %endpoint, error = %cause, attempts = max_attempts, "start failed");
                self.stop();
                return Err(PoolError::Connect {
                    pool: self.settings.name.clone(),
                    endpoint,
                    attempts: max_attempts,
                    source: ConnectFailure::new(cause),
                });
            }
            notified.await;
        }
    }

    /// One pass: the least-loaded READY slot under the cap, reserved.
    fn pick(&self, exclude: &[u64]) -> Pick {
        if self.is_closed() {
            return Pick::Closed;
        }
        let cap = self.settings.max_in_flight;
        let slots = self.slots.load();
        let n = slots.len();
        if n == 0 {
            return Pick::NoneReady;
        }
        // Slots whose connection turned out lost in an earlier pass (the worker has not
        // marked them yet): skipped by the later passes.
        let mut lost: [usize; 4] = [usize::MAX; 4];
        for pass in 0..4 {
            // Ties are broken from a random start (a thread-local generator: a shared
            // round-robin counter would bounce one cache line between cores on every pick).
            let start = fastrand::usize(..n);
            let mut best: Option<(usize, usize)> = None; // (position, load)
                                                         // Least-loaded READY channel among the excluded ones whose connection is still
                                                         // intact (a call there was refused, e.g. REFUSED_STREAM, but the connection lives):
                                                         // used only when no other channel is READY, rather than waiting for a
                                                         // replacement that will never come.
            let mut fallback: Option<(usize, usize)> = None;
            let mut waiting = false;
            for i in 0..n {
                let position = (start + i) % n;
                let slot = &slots[position];
                if pass > 0 && lost[..pass].contains(&position) {
                    continue;
                }
                match slot.state() {
                    ChannelState::Ready => {}
                    ChannelState::Connecting => {
                        waiting = true;
                        continue;
                    }
                    _ => continue,
                }
                let load = slot.in_flight.load(Ordering::Relaxed);
                if cap.is_some_and(|c| load >= c) {
                    waiting = true;
                    continue;
                }
                if !exclude.is_empty() {
                    if let Some(conn) = slot.conn().filter(|c| exclude.contains(&c.id)) {
                        if conn.lost.is_cancelled() {
                            // A connection that broke under this call: wait for its replacement.
                            waiting = true;
                        } else if fallback.is_none_or(|(_, l)| load < l) {
                            fallback = Some((position, load));
                        }
                        continue;
                    }
                }
                if best.is_none_or(|(_, l)| load < l) {
                    best = Some((position, load));
                    if load == 0 {
                        break;
                    }
                }
            }
            let Some((position, _)) = best.or(fallback) else {
                return if waiting { Pick::Wait } else { Pick::NoneReady };
            };
            let slot = &slots[position];
            let Some(conn) = slot.conn() else { continue };
            if conn.lost.is_cancelled() {
                // Lost a moment ago (EOF, reset, GOAWAY): its worker is about to replace it.
                lost[pass] = position;
                continue;
            }
            if slot.try_reserve(cap) {
                let reservation = InFlight::reserved(slot.clone());
                return Pick::Got(PooledChannel::new(
                    slot.clone(),
                    conn,
                    reservation,
                    self.interceptor.clone(),
                ));
            }
        }
        Pick::Wait
    }

    /// Checkout, avoiding the connections in `exclude` (for transparent retries).
    pub(crate) async fn checkout(&self, exclude: &[u64]) -> Result<PooledChannel, PoolError> {
        match self.pick(exclude) {
            Pick::Got(channel) => return Ok(channel),
            Pick::Closed => return Err(self.closed_error()),
            Pick::NoneReady => return Err(self.no_ready_error()),
            Pick::Wait => {}
        }
        let started = Instant::now();
        let deadline = started + self.settings.checkout_timeout;
        debug!(parent: &self.span, "checkout waiting for a channel");
        let _waiting = WaiterGuard::new(&self.signals);
        loop {
            let notified = self.signals.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.pick(exclude) {
                Pick::Got(channel) => {
                    self.metrics.checkout_wait(started.elapsed());
                    return Ok(channel);
                }
                Pick::Closed => return Err(self.closed_error()),
                Pick::NoneReady => return Err(self.no_ready_error()),
                Pick::Wait => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let waited = started.elapsed();
                debug!(parent: &self.span, waited = ?waited, "checkout timed out");
                self.metrics.checkout_timeout();
                return Err(PoolError::CheckoutTimeout {
                    pool: self.settings.name.clone(),
                    waited,
                });
            }
        }
    }

    fn closed_error(&self) -> PoolError {
        PoolError::Closed {
            pool: self.settings.name.clone(),
        }
    }

    fn no_ready_error(&self) -> PoolError {
        // Someone needs a channel: slots sleeping in backoff try again now.
        self.signals.demand.notify_waiters();
        let slots = self.slots.load();
        PoolError::NoReadyChannel {
            pool: self.settings.name.clone(),
            last_error: slots.iter().rev().find_map(|s| s.last_error()),
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let channels = self.slots.load().iter().map(|s| s.status()).collect();
        let mut status =
            PoolStatus::from_channels(self.settings.name.clone(), self.is_closed(), channels);
        status.grown = self.grown.load(Ordering::Relaxed);
        status.shrunk = self.shrunk.load(Ordering::Relaxed);
        status
    }

    fn in_flight(&self) -> usize {
        let slots = self.slots.load();
        slots
            .iter()
            .map(|s| s.in_flight.load(Ordering::SeqCst))
            .sum()
    }

    /// Stops at once: refuse checkouts, end the workers, drop the connections.
    fn stop(&self) {
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
    fn spawn_worker(&self, slot: Arc<Slot>) {
        let settings = &self.settings;
        let slot_span = tracing::info_span!(parent: &self.span, "slot", pool = %settings.name, slot = slot.index, endpoint = %slot.endpoint.display);
        let task = crate::worker::run(slot, settings.clone(), self.cancel.clone());
        self.tracker.spawn(task.instrument(slot_span));
    }

    /// The calls in flight and the READY channels now (for elastic sizing).
    pub(crate) fn load(&self) -> (usize, usize) {
        let slots = self.slots.load();
        let ready = slots
            .iter()
            .filter(|s| s.state() == ChannelState::Ready)
            .count();
        let in_flight = slots
            .iter()
            .map(|s| s.in_flight.load(Ordering::Relaxed))
            .sum();
        (in_flight, ready)
    }

    /// Adds `count` slots (elastic growth), each on the endpoint with the fewest slots.
    pub(crate) fn grow(&self, count: usize) {
        if self.is_closed() {
            return;
        }
        let mut slots: Vec<Arc<Slot>> = self.slots.load().iter().cloned().collect();
        let mut added = Vec::with_capacity(count);
        for _ in 0..count {
            let e = crate::maintain::endpoint_for_new_slot(&slots, self.settings.endpoints.len());
            let slot = Arc::new(Slot::new(
                self.next_index.fetch_add(1, Ordering::Relaxed),
                e,
                self.settings.endpoints[e].clone(),
                self.signals.clone(),
                self.metrics.clone(),
                self.cancel.child_token(),
            ));
            self.metrics
                .state_changed(None, Some(ChannelState::Connecting));
            slots.push(slot.clone());
            let addrs = self.resolved.lock().unwrap_or_else(|p| p.into_inner())[e].clone();
            let mine: Vec<&Arc<Slot>> = slots.iter().filter(|s| s.endpoint_index == e).collect();
            crate::maintain::assign(&mine, &addrs);
            added.push(slot);
        }
        self.slots.store(Arc::new(slots));
        for slot in added {
            self.spawn_worker(slot);
        }
        self.grown.fetch_add(count as u64, Ordering::Relaxed);
        self.metrics.resized("up");
    }

    /// Removes `count` slots (elastic shrink). A removed slot takes no new calls; its calls
    /// in flight finish on its connection, which then closes.
    pub(crate) fn shrink(&self, count: usize) {
        if self.is_closed() {
            return;
        }
        let mut slots: Vec<Arc<Slot>> = self.slots.load().iter().cloned().collect();
        let mut removed = Vec::with_capacity(count);
        for _ in 0..count {
            let Some(i) = crate::maintain::victim(&slots) else {
                break;
            };
            removed.push(slots.remove(i));
        }
        self.slots.store(Arc::new(slots));
        let removed_count = removed.len();
        for slot in removed {
            debug!(parent: &self.span, slot = slot.index, in_flight = slot.in_flight.load(Ordering::Relaxed), "removing slot");
            slot.stop.cancel();
        }
        self.shrunk
            .fetch_add(removed_count as u64, Ordering::Relaxed);
        self.metrics.resized("down");
    }

    async fn shutdown(&self) {
        let first = !self.signals.closed.swap(true, Ordering::SeqCst);
        if first {
            let _span = self.span.enter();
            info!(in_flight = self.in_flight(), "shutting down");
        }
        self.signals.state_changed();
        // Drain: wait for calls in flight (woken by each release while closed).
        let deadline = Instant::now() + self.settings.drain_timeout;
        {
            let _waiting = WaiterGuard::new(&self.signals);
            loop {
                let notified = self.signals.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.in_flight() == 0 {
                    break;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    warn!(parent: &self.span, in_flight = self.in_flight(), timeout = ?self.settings.drain_timeout, "drain timed out; closing with calls in flight");
                    break;
                }
            }
        }
        self.stop();
        self.tracker.wait().await;
        registry::remove(&self.settings.name, self.id);
        if first {
            info!(parent: &self.span, "shut down");
        }
    }
}
