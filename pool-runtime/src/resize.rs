//! Elastic sizing: when to grow or shrink a pool, and how.
//!
//! An elastic pool (`max_size` set) samples the calls in flight (and the checkouts waiting
//! for room) four times per
//! `resize_interval` (see `maintain`). When the average per READY channel exceeds the grow
//! threshold (`max_in_flight_per_channel / 2`, or 50), it adds up to `resize_step` slots,
//! never past `max_size`; when the pool would stay under half the threshold with fewer slots,
//! it removes up to `resize_step`, never below `min_size`. A removed slot takes no new calls;
//! its calls in flight finish on its connection, which then closes; shutdown waits for them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{debug, info};

use crate::addresses;
use crate::shared::Shared;
use crate::slot::Slot;
use crate::status::ChannelState;

/// One resize decision from a window of `(in flight, ready)` samples.
pub(crate) fn decide(shared: &Shared, samples: &[(usize, usize)]) {
    let settings = &shared.settings;
    let count = samples.len() as f64;
    let in_flight = samples.iter().map(|s| s.0 as f64).sum::<f64>() / count;
    let ready = samples.iter().map(|s| s.1 as f64).sum::<f64>() / count;
    let size = shared.slots.load().len();
    let threshold = settings.grow_threshold;
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
