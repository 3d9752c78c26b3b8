//! The pool's maintenance task: re-resolves host names and resizes an elastic pool.
//!
//! **Addresses.** Slots are spread over the endpoints by the configuration (slot *i* of a
//! fixed pool serves endpoint *i mod n*), and the slots of one endpoint over its resolved
//! addresses, evenly. A host name is resolved at start, every `resolve_interval` and soon
//! after a failed connection attempt; when its addresses change, the fewest slots possible
//! move, each opening its new connection before leaving the old one (which drains).
//!
//! **Size.** An elastic pool (`max_size` set) samples the calls in flight four times per
//! `resize_interval`. When the average per READY channel exceeds the grow threshold
//! (`max_in_flight_per_channel / 2`, or 50), it adds up to `resize_step` slots, never past
//! `max_size`; when the pool would stay under half the threshold with fewer slots, it
//! removes up to `resize_step`, never below `min_size`. A removed slot takes no new calls;
//! its calls in flight finish on its connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::config::{EndpointSpec, Settings};
use crate::pool::Shared;
use crate::slot::Slot;
use crate::status::ChannelState;

/// The shortest time between two resolutions of the same pool triggered by failures.
const RESOLVE_FLOOR: Duration = Duration::from_secs(1);

/// The addresses of one endpoint: an IP literal's own, or a host name resolved once.
/// Resolution failures leave the list empty: the slot's connector then resolves the host
/// itself at each attempt.
pub(crate) async fn initial_addresses(settings: &Settings) -> Vec<Arc<[SocketAddr]>> {
    let mut out = Vec::with_capacity(settings.endpoints.len());
    for endpoint in &settings.endpoints {
        let addrs = match endpoint.addr {
            Some(addr) => vec![addr],
            None => resolve(settings, endpoint).await.unwrap_or_default(),
        };
        out.push(Arc::from(addrs));
    }
    out
}

/// Resolves a host-name endpoint; `None` (logged) on failure or an empty answer.
async fn resolve(settings: &Settings, endpoint: &EndpointSpec) -> Option<Vec<SocketAddr>> {
    let lookup = settings.resolver.0.resolve(&endpoint.host, endpoint.port);
    match tokio::time::timeout(settings.connect_timeout, lookup).await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Some(addrs),
        Ok(Ok(_)) => {
            warn!(endpoint = %endpoint.display, "name resolution returned no address; keeping the previous ones");
            None
        }
        Ok(Err(e)) => {
            warn!(endpoint = %endpoint.display, error = %e, "name resolution failed; keeping the previous addresses");
            None
        }
        Err(_) => {
            warn!(endpoint = %endpoint.display, "name resolution timed out; keeping the previous addresses");
            None
        }
    }
}

/// Spreads `slots` (all of one endpoint) over `addrs` evenly, moving as few as possible:
/// a slot keeps its preferred address while that address is under its share. Each slot's
/// list starts at its preferred address and continues with the others (connect fallback).
pub(crate) fn assign(slots: &[&Arc<Slot>], addrs: &Arc<[SocketAddr]>) {
    let m = addrs.len();
    if m == 0 || slots.is_empty() {
        return;
    }
    let n = slots.len();
    let current: Vec<Option<usize>> = slots
        .iter()
        .map(|s| {
            s.preferred()
                .and_then(|p| addrs.iter().position(|a| *a == p))
        })
        .collect();
    let mut holding = vec![0usize; m];
    for j in current.iter().flatten() {
        holding[*j] += 1;
    }
    // Shares: n / m each, and one more for the n % m addresses that hold the most slots now.
    let mut quota = vec![n / m; m];
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by_key(|j| std::cmp::Reverse(holding[*j]));
    for j in order.into_iter().take(n % m) {
        quota[j] += 1;
    }
    let mut count = vec![0usize; m];
    let mut pending = Vec::new();
    for (slot, j) in slots.iter().zip(&current) {
        match j {
            Some(j) if count[*j] < quota[*j] => {
                count[*j] += 1;
                slot.set_addrs(rotated(addrs, *j));
            }
            _ => pending.push(*slot),
        }
    }
    for slot in pending {
        let j = (0..m).find(|j| count[*j] < quota[*j]).unwrap_or(0);
        count[j] += 1;
        slot.set_addrs(rotated(addrs, j));
    }
}

fn rotated(addrs: &[SocketAddr], first: usize) -> Arc<[SocketAddr]> {
    addrs[first..]
        .iter()
        .chain(&addrs[..first])
        .copied()
        .collect()
}

/// Runs until the pool stops. Spawned only for pools that resolve names or resize.
pub(crate) async fn run(shared: Arc<Shared>) {
    let settings = shared.settings.clone();
    let cancel = shared.cancel.clone();
    let resolves = settings.resolves_names();
    let elastic = settings.is_elastic();

    let sample_every = (settings.resize_interval / 4).max(Duration::from_millis(5));
    let mut sampler = tokio::time::interval(sample_every);
    sampler.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples: Vec<(usize, usize)> = Vec::new();
    let mut window_start = Instant::now();

    let far = Duration::from_secs(365 * 24 * 3600);
    let mut last_resolve = Instant::now();
    let mut next_resolve = Instant::now() + settings.resolve_interval.unwrap_or(far);

    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sampler.tick(), if elastic => {
                samples.push(shared.load());
                if window_start.elapsed() >= settings.resize_interval && !samples.is_empty() {
                    resize(&shared, &samples);
                    samples.clear();
                    window_start = Instant::now();
                }
            }
            _ = tokio::time::sleep_until(next_resolve), if resolves => {
                resolve_all(&shared).await;
                last_resolve = Instant::now();
                next_resolve = last_resolve + settings.resolve_interval.unwrap_or(far);
            }
            _ = shared.signals.resolve_now.notified(), if resolves => {
                // A connection attempt failed: resolve again soon, at most once per floor.
                let soon = last_resolve + RESOLVE_FLOOR;
                if soon < next_resolve {
                    next_resolve = soon;
                }
            }
        }
    }
}

/// Re-resolves every host-name endpoint and moves slots whose addresses changed.
async fn resolve_all(shared: &Shared) {
    let settings = &shared.settings;
    for (e, endpoint) in settings.endpoints.iter().enumerate() {
        if endpoint.addr.is_some() {
            continue;
        }
        let Some(addrs) = resolve(settings, endpoint).await else {
            continue;
        };
        let addrs: Arc<[SocketAddr]> = Arc::from(addrs);
        let changed = {
            let mut resolved = shared.resolved.lock().unwrap_or_else(|p| p.into_inner());
            if sorted(&resolved[e]) == sorted(&addrs) {
                false
            } else {
                info!(parent: &shared.span, endpoint = %endpoint.display, from = ?resolved[e], to = ?addrs, "addresses changed");
                resolved[e] = addrs.clone();
                true
            }
        };
        if changed {
            // Slots change only in this task (resize), so this view stays current.
            let slots = shared.slots.load();
            let mine: Vec<&Arc<Slot>> = slots.iter().filter(|s| s.endpoint_index == e).collect();
            assign(&mine, &addrs);
        } else {
            debug!(parent: &shared.span, endpoint = %endpoint.display, "addresses unchanged");
        }
    }
}

fn sorted(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut v = addrs.to_vec();
    v.sort_unstable();
    v
}

/// One resize decision from a window of `(in flight, ready)` samples.
fn resize(shared: &Arc<Shared>, samples: &[(usize, usize)]) {
    let settings = &shared.settings;
    let count = samples.len() as f64;
    let in_flight = samples.iter().map(|s| s.0 as f64).sum::<f64>() / count;
    let ready = samples.iter().map(|s| s.1 as f64).sum::<f64>() / count;
    let size = shared.slots.load().len();
    let threshold = settings.grow_threshold;
    if ready >= 1.0 && in_flight / ready > threshold && size < settings.max_size {
        let add = settings.resize_step.min(settings.max_size - size);
        info!(parent: &shared.span, from = size, to = size + add, avg_in_flight_per_ready = in_flight / ready, threshold, "growing");
        shared.grow(add);
        return;
    }
    let mut remove = 0;
    while remove < settings.resize_step
        && size - remove > settings.min_size
        && in_flight / (size - remove - 1).max(1) as f64 <= threshold / 2.0
    {
        remove += 1;
    }
    if remove > 0 {
        info!(parent: &shared.span, from = size, to = size - remove, avg_in_flight = in_flight, threshold, "shrinking");
        shared.shrink(remove);
    }
}

/// The slot to remove first: not READY, else on the endpoint and address with the most
/// slots, with the fewest calls in flight.
pub(crate) fn victim(slots: &[Arc<Slot>]) -> Option<usize> {
    let per_endpoint = |e: usize| slots.iter().filter(|s| s.endpoint_index == e).count();
    let per_addr = |s: &Slot| {
        let p = s.preferred();
        slots
            .iter()
            .filter(|o| o.endpoint_index == s.endpoint_index && o.preferred() == p)
            .count()
    };
    (0..slots.len()).min_by_key(|i| {
        let s = &slots[*i];
        (
            s.state() == ChannelState::Ready,
            std::cmp::Reverse(per_endpoint(s.endpoint_index)),
            std::cmp::Reverse(per_addr(s)),
            s.in_flight.load(Ordering::Relaxed),
            std::cmp::Reverse(s.index),
        )
    })
}

/// The endpoint that gets the next slot: the one with the fewest (ties: the first).
pub(crate) fn endpoint_for_new_slot(slots: &[Arc<Slot>], endpoints: usize) -> usize {
    (0..endpoints)
        .min_by_key(|e| slots.iter().filter(|s| s.endpoint_index == *e).count())
        .unwrap_or(0)
}
