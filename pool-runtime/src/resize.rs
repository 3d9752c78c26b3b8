//! Elastic sizing: when to grow or shrink a pool, and how.
//!
//! An elastic pool (`max_size` set) samples the calls in flight (and the checkouts waiting
//! for room) four times per `resize_interval` (see `maintain`). When the average per READY
//! channel exceeds the grow threshold, it adds up to `resize_step` slots, never past
//! `max_size`. The threshold is half of what a connection takes: `max_in_flight_per_channel`
//! or the server's stream limit (`SETTINGS_MAX_CONCURRENT_STREAMS`), whichever is smaller, or
//! 50 when neither is known; so a pool whose connections are all at the server's limit grows
//! instead of queueing calls; when the pool would stay under half the threshold with fewer slots,
//! it removes up to `resize_step`, never below `min_size`. A removed slot takes no new calls;
//! its calls in flight finish on its connection, which then closes; shutdown waits for them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{debug, info};

use crate::addresses;
use crate::shared::Shared;
use crate::slot::Slot;
use crate::status::ChannelState;

/// The load of a pool at one moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    /// Calls in flight plus checkouts waiting for room.
    pub(crate) in_flight: usize,
    /// READY channels.
    pub(crate) ready: usize,
    /// The smallest stream limit among the READY channels (`usize::MAX`: none known).
    pub(crate) stream_limit: usize,
}

/// One resize decision from a window of samples.
pub(crate) fn decide(shared: &Shared, samples: &[Sample]) {
    let settings = &shared.settings;
    let count = samples.len() as f64;
    let in_flight = samples.iter().map(|s| s.in_flight as f64).sum::<f64>() / count;
    let ready = samples.iter().map(|s| s.ready as f64).sum::<f64>() / count;
    let size = shared.slots.load().len();
    let stream_limit = samples
        .iter()
        .map(|s| s.stream_limit)
        .min()
        .unwrap_or(usize::MAX);
    let threshold = threshold(settings.grow_threshold, stream_limit);
    if ready >= 1.0 && in_flight / ready > threshold && size < settings.max_size {
        let add = settings.resize_step.min(settings.max_size - size);
        info!(parent: &shared.span, from = size, to = size + add, avg_in_flight_per_ready = in_flight / ready, threshold, "growing");
        grow(shared, add);
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
        shrink(shared, remove);
    }
}

/// The grow threshold: the configured one (half of `max_in_flight_per_channel`, or 50), or
/// half the server's stream limit when that is lower (at least one call).
fn threshold(configured: f64, stream_limit: usize) -> f64 {
    if stream_limit == usize::MAX {
        return configured;
    }
    configured.min(((stream_limit / 2) as f64).max(1.0))
}

/// Adds `count` slots, each on the endpoint with the fewest slots.
pub(crate) fn grow(shared: &Shared, count: usize) {
    if shared.is_closed() {
        return;
    }
    let mut slots: Vec<Arc<Slot>> = shared.slots.load().iter().cloned().collect();
    let mut added = Vec::with_capacity(count);
    for _ in 0..count {
        let e = endpoint_for_new_slot(&slots, shared.settings.endpoints.len());
        let slot = shared.new_slot(e);
        slots.push(slot.clone());
        let addrs = shared.resolved.lock().unwrap_or_else(|p| p.into_inner())[e].clone();
        addresses::assign_endpoint(&slots, e, &addrs);
        added.push(slot);
    }
    shared.slots.store(Arc::new(slots));
    for slot in added {
        shared.spawn_worker(slot);
    }
    shared.grown.fetch_add(count as u64, Ordering::Relaxed);
    shared.metrics.resized("up");
}

/// Removes `count` slots. A removed slot takes no new calls; its calls in flight finish on
/// its connection, which then closes (a shutdown meanwhile waits for them, see
/// [`Shared::retire`]).
pub(crate) fn shrink(shared: &Shared, count: usize) {
    if shared.is_closed() {
        return;
    }
    let mut slots: Vec<Arc<Slot>> = shared.slots.load().iter().cloned().collect();
    let mut removed = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(i) = victim(&slots) else {
            break;
        };
        removed.push(slots.remove(i));
    }
    shared.retire(slots, &removed);
    let removed_count = removed.len();
    for slot in removed {
        debug!(parent: &shared.span, slot = slot.index, in_flight = slot.in_flight.load(Ordering::Relaxed), "removing slot");
        slot.stop.cancel();
    }
    shared
        .shrunk
        .fetch_add(removed_count as u64, Ordering::Relaxed);
    shared.metrics.resized("down");
}

/// The slot to remove first: not READY, else on the endpoint and address with the most
/// slots, with the fewest calls in flight.
fn victim(slots: &[Arc<Slot>]) -> Option<usize> {
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
fn endpoint_for_new_slot(slots: &[Arc<Slot>], endpoints: usize) -> usize {
    (0..endpoints)
        .min_by_key(|e| slots.iter().filter(|s| s.endpoint_index == *e).count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::threshold;

    #[test]
    fn the_servers_stream_limit_lowers_the_threshold() {
        assert_eq!(threshold(50.0, usize::MAX), 50.0);
        assert_eq!(threshold(50.0, 100), 50.0);
        assert_eq!(threshold(50.0, 8), 4.0);
        assert_eq!(threshold(2.0, 8), 2.0, "the smaller applies");
        assert_eq!(threshold(50.0, 1), 1.0, "at least one call");
    }
}
