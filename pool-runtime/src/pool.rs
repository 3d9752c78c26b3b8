//! [`Pool`]: the handle users hold, and its lifecycle: start, shutdown.
//!
//! What a running pool does is elsewhere: `balance` (checkout), `worker` (one task per slot),
//! `maintain` with `addresses` and `resize` (re-resolution, elastic size), `handle` (who keeps
//! it running, and the table of pools by name).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::channel::PooledChannel;
use crate::config::PoolConfig;
use crate::error::{ConnectFailure, PoolError};
use crate::handle::{self, Handle, Registration};
use crate::metrics::PoolMetrics;
use crate::settings::Settings;
use crate::shared::{self, Shared};
use crate::signals::Signals;
use crate::slot::Slot;
use crate::status::{ChannelState, PoolStatus};

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique pool id (tells a pool from a successor under the same name).
pub(crate) fn next_id() -> u64 {
    NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed)
}

/// A pool of warm, shared gRPC channels. Cheap to clone: all clones share the channels.
///
/// A pool from [`Pool::start`] stops when its last handle is dropped: its tasks end and its
/// connections close (calls in progress keep their connection until they finish). A named
/// pool ([`NamedPool`](crate::NamedPool), `#[grpc_pool]`) is also held by the registry, so it
/// runs until [`shutdown`](Pool::shutdown), which stops either kind gracefully.
#[derive(Clone)]
pub struct Pool {
    pub(crate) handle: Arc<Handle>,
}

impl Pool {
    /// Validates `config`, opens every channel concurrently and returns once one is READY and
    /// every other one is READY too or has finished its first attempt (at most
    /// `connect_timeout` after one is READY), so the first calls find the pool warm.
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
        signals
            .commits
            .store(settings.service_config.is_some(), Ordering::Relaxed);
        let metrics = Arc::new(PoolMetrics::new(&settings.name));
        let cancel = CancellationToken::new();
        #[cfg(feature = "etcd")]
        // Boxed: discovery starts a pool of its own (the connection to etcd), through here.
        let discovery = Box::pin(crate::discovery::start(&settings))
            .instrument(span.clone())
            .await?;
        #[allow(unused_mut)]
        let mut resolved = crate::addresses::initial_addresses(&settings)
            .instrument(span.clone())
            .await;
        #[allow(unused_mut)]
        let mut discovery_status = Vec::new();
        #[cfg(feature = "etcd")]
        if let Some(started) = &discovery {
            for (e, addrs) in &started.initial {
                resolved[*e] = addrs.clone();
            }
            discovery_status.clone_from(&started.statuses);
        }
        let slots: Vec<_> = (0..settings.size)
            .map(|i| {
                let e = i % settings.endpoints.len();
                shared::new_slot(i, e, &settings, &signals, &metrics, &cancel)
            })
            .collect();
        for (e, addrs) in resolved.iter().enumerate() {
            crate::addresses::assign_endpoint(&slots, e, addrs);
        }
        let shared = Arc::new(Shared {
            id,
            settings: settings.clone(),
            next_index: AtomicUsize::new(slots.len()),
            grown: AtomicU64::new(0),
            shrunk: AtomicU64::new(0),
            slots: ArcSwap::from_pointee(slots),
            removed: Mutex::new(Vec::new()),
            signals,
            metrics,
            resolved: Mutex::new(resolved),
            cancel,
            tracker: TaskTracker::new(),
            span: span.clone(),
            interceptor: settings.interceptor.as_ref().map(|i| i.0.clone()),
            discovery: discovery_status,
            throttle: settings
                .service_config
                .as_ref()
                .and_then(|c| c.retry_throttling)
                .map(crate::retry::Throttle::new),
            retries: crate::retry::Retries::default(),
            ejections: AtomicU64::new(0),
        });
        let pool = Pool {
            handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
        };
        handle::reserve(&pool.handle, registration)?;
        // Until started: a failed or abandoned start stops the workers and frees the name.
        let mut guard = StartGuard {
            shared: shared.clone(),
            armed: true,
        };
        info!(parent: &span, size = settings.size, endpoints = %settings.endpoint_list(), "starting");
        for slot in shared.slots.load().iter() {
            shared.spawn_worker(slot.clone());
        }
        #[allow(unused_mut)]
        let mut discovered = None;
        #[cfg(feature = "etcd")]
        if let Some(started) = discovery {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            started.spawn(&shared.tracker, &shared.cancel, &tx, &span);
            discovered = Some(rx);
        }
        if settings.resolves_names()
            || settings.discovers()
            || settings.is_elastic()
            || settings.outlier_detection().is_some()
        {
            let task = crate::maintain::run(shared.clone(), discovered);
            shared.tracker.spawn(task.instrument(span.clone()));
        }
        wait_started(&shared).instrument(span.clone()).await?;
        guard.armed = false;
        handle::mark_started(&shared);
        info!(parent: &span, ready = pool.status().ready, "started");
        Ok(pool)
    }

    /// The READY channel with the fewest calls in flight (ties rotate), reserving one call
    /// on it. Waits in line (first come, first served), woken by finished calls and state
    /// changes, while channels are full (at `max_in_flight_per_channel` or at the server's
    /// stream limit) or connecting, up to `checkout_timeout`
    /// ([`PoolError::CheckoutTimeout`]); fails at once with [`PoolError::NoReadyChannel`]
    /// when no channel is ready or connecting (unless `wait_for_ready`, which waits for one),
    /// and with [`PoolError::Closed`] after shutdown.
    pub async fn checkout(&self) -> Result<PooledChannel, PoolError> {
        let shared = &self.handle.shared;
        crate::balance::checkout(shared, &[], None, shared.settings.wait_for_ready).await
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
    /// up to `drain_timeout` to finish (calls on channels that elastic shrinking removed
    /// included), every worker task ends, the pool leaves the registry.
    /// Calling it again (or from a clone) waits for the same shutdown.
    ///
    /// The teardown runs in a task of its own: a caller that stops waiting (a timeout, a
    /// dropped future) does not leave the pool half shut down, its tasks running and its name
    /// taken.
    pub async fn shutdown(&self) {
        let shared = self.handle.shared.clone();
        let teardown = tokio::spawn(async move { shutdown(&shared).await });
        // A teardown that panicked has nothing left to wait for.
        let _ = teardown.await;
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
        handle::remove(&self.shared.settings.name, self.shared.id);
    }
}

/// Waits until a slot is READY and every other slot has finished its first attempt (or
/// `connect_timeout` passed), or fails once every slot has settled without a READY one.
async fn wait_started(shared: &Shared) -> Result<(), PoolError> {
    let began = Instant::now();
    let max_attempts = shared.settings.retry.max_attempts;
    let started = shared.signals.wait_until(None, || {
        let slots = shared.slots.load();
        if slots.iter().any(|s| s.state() == ChannelState::Ready) {
            return Some(Ok(()));
        }
        let exhausted = |s: &Slot| s.connect_failures.load(Ordering::SeqCst) >= max_attempts;
        let unhealthy = |s: &Slot| s.state() == ChannelState::Unhealthy;
        if !slots.iter().all(|s| exhausted(s) || unhealthy(s)) {
            return None;
        }
        if slots.iter().any(|s| unhealthy(s)) {
            warn!("started, but every connected channel reports NOT_SERVING");
            return Some(Ok(()));
        }
        let last = slots.iter().rev().find(|s| s.last_error().is_some());
        let (endpoint, cause) = match last {
            Some(s) => (
                s.endpoint.display.clone(),
                s.last_error().unwrap_or_default(),
            ),
            None => (shared.settings.endpoint_list(), "unknown error".to_owned()),
        };
        warn!(endpoint = %endpoint, error = %cause, attempts = max_attempts, "start failed");
        shared.stop();
        Some(Err(PoolError::Connect {
            pool: shared.settings.name.clone(),
            endpoint,
            attempts: max_attempts,
            source: ConnectFailure::new(cause),
        }))
    });
    started.await.expect("waits without a deadline")?;
    // Warm means warm: a burst of calls right after start should find every channel, not
    // the one that won the race. Wait (at most `connect_timeout`) until every slot is READY
    // or has finished its first attempt.
    let settled = |s: &Arc<Slot>| {
        matches!(
            s.state(),
            ChannelState::Ready | ChannelState::Unhealthy | ChannelState::Backoff
        ) || s.connect_failures.load(Ordering::SeqCst) > 0
    };
    let deadline = began + shared.settings.connect_timeout;
    shared
        .signals
        .wait_until(Some(deadline), || {
            shared.slots.load().iter().all(settled).then_some(())
        })
        .await;
    Ok(())
}

/// Refuses new checkouts, drains the calls in flight (up to `drain_timeout`; on removed
/// slots too, see [`Shared::in_flight`]), stops every task and leaves the registry.
async fn shutdown(shared: &Shared) {
    let first = !shared.signals.closed.swap(true, Ordering::SeqCst);
    if first {
        let _span = shared.span.enter();
        info!(in_flight = shared.in_flight(), "shutting down");
    }
    shared.signals.state_changed();
    // Drain: wait for calls in flight (woken by each release while closed).
    let deadline = Instant::now() + shared.settings.drain_timeout;
    let drained = shared
        .signals
        .wait_until(Some(deadline), || (shared.in_flight() == 0).then_some(()))
        .await;
    if drained.is_none() {
        warn!(parent: &shared.span, in_flight = shared.in_flight(), timeout = ?shared.settings.drain_timeout, "drain timed out; closing with calls in flight");
    }
    shared.stop();
    shared.tracker.wait().await;
    handle::remove(&shared.settings.name, shared.id);
    if first {
        info!(parent: &shared.span, "shut down");
    }
}
