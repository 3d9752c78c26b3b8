//! Checkout: which channel a call gets ([`choose`]), reserving it, and waiting for one.
//!
//! The hot path reads the slots' lock-free snapshot (an `ArcSwap`) and their atomics only:
//! no lock is taken to choose or reserve a channel.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::debug;

use crate::channel::PooledChannel;
use crate::conn::Conn;
use crate::error::PoolError;
use crate::interceptor::Interceptor;
use crate::latency;
use crate::shared::Shared;
use crate::slot::{InFlight, Slot};
use crate::status::ChannelState;

/// How many times one checkout chooses again after its choice proved unusable (the
/// connection was lost a moment ago, or another call took the last capacity first).
const PASSES: usize = 4;

/// What [`choose`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The slot at this position.
    Slot(usize),
    /// Ready channels exist but are at their cap, or channels are connecting: worth waiting.
    Wait,
    /// Nothing is ready or about to be.
    NoneReady,
}

/// The READY slot with the fewest calls in flight, under `cap` and under its connection's
/// stream limit, scanning from `start` (so ties rotate) and skipping the positions in `skip`
/// (slots whose connection was just lost; worth waiting for). A slot that answers much
/// slower than the fastest (see [`crate::latency`]) is chosen only when no faster one has
/// room.
///
/// A slot whose connection is in `exclude` (a transparent retry avoids the connections that
/// refused the call) is chosen only when no other slot is READY and its connection is still
/// intact (e.g. it answered REFUSED_STREAM), rather than waiting for a replacement that will
/// never come; when that connection is lost, its replacement is worth waiting for.
pub(crate) fn choose(
    slots: &[Arc<Slot>],
    cap: Option<usize>,
    exclude: &[u64],
    skip: &[usize],
    start: usize,
) -> Choice {
    let n = slots.len();
    let slow_above = latency::slow_above(fastest(slots));
    // The clock is read only when some slot looks slow, to see whether its average went stale.
    let mut now = None;
    // (position, (slow, load)): the fast tier first, then the least loaded.
    let mut best: Option<(usize, (bool, usize))> = None;
    let mut fallback: Option<(usize, (bool, usize))> = None; // among the excluded connections
    let mut waiting = false;
    for i in 0..n {
        let position = (start + i) % n;
        if skip.contains(&position) {
            // Its connection was lost a moment ago: the worker reconnects it at once, so a
            // call waits for that rather than failing because every connection went away
            // together (e.g. one GOAWAY per connection, all opened at start).
            waiting = true;
            continue;
        }
        let slot = &slots[position];
        match slot.state() {
            // An address ejected by outlier detection takes no new calls.
            ChannelState::Ready if slot.outcomes.is_some() && slot.is_ejected() => continue,
            ChannelState::Ready => {}
            ChannelState::Connecting => {
                waiting = true;
                continue;
            }
            _ => continue,
        }
        let load = slot.in_flight.load(std::sync::atomic::Ordering::Relaxed);
        // Every connection takes at least one call: an idle slot needs no look at its
        // connection's stream limit (the common case at low load costs one atomic less).
        if load > 0 && load >= limit(cap, slot.stream_limit()) {
            waiting = true;
            continue;
        }
        let slow = slot.latency.last() > slow_above
            && slot
                .latency
                .at(*now.get_or_insert_with(std::time::Instant::now))
                > slow_above;
        let key = (slow, load);
        if !exclude.is_empty() {
            if let Some(conn) = slot.conn().filter(|c| exclude.contains(&c.id)) {
                if conn.lost.is_cancelled() {
                    waiting = true;
                } else if fallback.is_none_or(|(_, k)| key < k) {
                    fallback = Some((position, key));
                }
                continue;
            }
        }
        if best.is_none_or(|(_, k)| key < k) {
            best = Some((position, key));
            if key == (false, 0) {
                break;
            }
        }
    }
    match best.or(fallback) {
        Some((position, _)) => Choice::Slot(position),
        None if waiting => Choice::Wait,
        None => Choice::NoneReady,
    }
}

/// The shortest response-time average among the slots that take calls (0: none measured).
fn fastest(slots: &[Arc<Slot>]) -> u64 {
    slots
        .iter()
        .filter(|s| s.state() == ChannelState::Ready)
        .map(|s| s.latency.last())
        .filter(|l| *l != 0)
        .min()
        .unwrap_or(0)
}

/// The calls a connection takes: `max_in_flight_per_channel` or its stream limit,
/// whichever is smaller.
fn limit(cap: Option<usize>, streams: usize) -> usize {
    cap.unwrap_or(usize::MAX).min(streams)
}

/// Reserves one call on `slot` (under `cap` and `conn`'s stream limit) and hands out `conn`;
/// `None` when another call took the last room first.
fn reserve(
    slot: &Arc<Slot>,
    conn: Arc<Conn>,
    cap: Option<usize>,
    interceptor: &Option<Interceptor>,
) -> Option<PooledChannel> {
    let limit = limit(cap, conn.streams.get());
    if !slot.try_reserve((limit != usize::MAX).then_some(limit)) {
        return None;
    }
    let reservation = InFlight::reserved(slot.clone());
    Some(PooledChannel::new(
        slot.clone(),
        conn,
        reservation,
        interceptor.clone(),
    ))
}

/// The outcome of one attempt to check out without waiting.
enum Pick {
    Got(PooledChannel),
    Wait,
    NoneReady,
    Closed,
}

/// Chooses and reserves, choosing again (up to [`PASSES`] times) when the choice proved
/// unusable.
fn pick(shared: &Shared, exclude: &[u64]) -> Pick {
    let picked = choose_and_reserve(shared, exclude);
    if let Pick::Got(channel) = picked {
        // A shutdown that began meanwhile may have counted the calls in flight before this
        // reservation: give it back rather than run a call the drain does not wait for.
        // (The drain sets `closed`, then counts; this reserved, then reads `closed`: one of
        // the two sees the other, see `Slot::try_reserve`.)
        if shared.is_closed() {
            drop(channel);
            return Pick::Closed;
        }
        return Pick::Got(channel);
    }
    picked
}

fn choose_and_reserve(shared: &Shared, exclude: &[u64]) -> Pick {
    if shared.is_closed() {
        return Pick::Closed;
    }
    let cap = shared.settings.max_in_flight;
    let slots = shared.slots.load();
    let n = slots.len();
    if n == 0 {
        return Pick::NoneReady;
    }
    // Slots whose connection turned out lost in an earlier pass (the worker has not marked
    // them yet): skipped by the later passes.
    let mut lost = [usize::MAX; PASSES];
    for pass in 0..PASSES {
        // Ties are broken from a random start (a thread-local generator: a shared round-robin
        // counter would bounce one cache line between cores on every pick).
        let start = fastrand::usize(..n);
        let position = match choose(&slots, cap, exclude, &lost[..pass], start) {
            Choice::Slot(position) => position,
            Choice::Wait => return Pick::Wait,
            Choice::NoneReady => return Pick::NoneReady,
        };
        let slot = &slots[position];
        let Some(conn) = slot.conn() else { continue };
        if conn.lost.is_cancelled() {
            // Lost a moment ago (EOF, reset, GOAWAY): its worker is about to replace it.
            lost[pass] = position;
            continue;
        }
        if let Some(channel) = reserve(slot, conn, cap, &shared.interceptor) {
            // Elastic shrinking may have removed the slot after this checkout read the slot
            // list: it closes the slot, then counts its calls to know when they are done.
            // Either it counts this reservation, or this sees the slot closed and gives the
            // reservation back (see `Slot::try_reserve`).
            if slot.is_closed() {
                drop(channel);
                continue;
            }
            return Pick::Got(channel);
        }
    }
    Pick::Wait
}

/// Checks out a channel, avoiding the connections in `exclude` (for transparent retries):
/// at once when one has room and no checkout waits before this one, else waiting in line
/// (see [`crate::queue`]) up to `checkout_timeout`, or until the call's `deadline` if that
/// comes first. With no channel READY or connecting, fails at once with `NoReadyChannel`,
/// unless `wait_for_ready`. See [`Pool::checkout`](crate::Pool::checkout).
pub(crate) async fn checkout(
    shared: &Shared,
    exclude: &[u64],
    deadline: Option<Instant>,
    wait_for_ready: bool,
) -> Result<PooledChannel, PoolError> {
    // The fast path, matched directly: a channel is handed out without building the wait.
    if shared.signals.queue.is_empty() {
        match pick(shared, exclude) {
            Pick::Got(channel) => return Ok(channel),
            Pick::Closed => return Err(closed_error(shared)),
            Pick::NoneReady if !wait_for_ready => return Err(no_ready_error(shared)),
            Pick::NoneReady | Pick::Wait => {}
        }
    }
    let started = Instant::now();
    let timeout = started + shared.settings.checkout_timeout;
    let deadline = deadline.map_or(timeout, |d| d.min(timeout));
    debug!(parent: &shared.span, "checkout waiting for a channel");
    // Slots backing off probe their addresses while this waits.
    let _wanting = shared.signals.wait_for_channel();
    let place = shared.signals.queue.join();
    let done = loop {
        let woken = place.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if place.is_first() {
            match pick(shared, exclude) {
                Pick::Got(channel) => break Some(Ok(channel)),
                Pick::Closed => break Some(Err(closed_error(shared))),
                Pick::NoneReady if !wait_for_ready => break Some(Err(no_ready_error(shared))),
                Pick::NoneReady => shared.signals.want_channel(),
                Pick::Wait => {}
            }
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            break None;
        }
    };
    drop(place);
    match done {
        Some(Ok(channel)) => {
            shared.metrics.checkout_wait(started.elapsed());
            Ok(channel)
        }
        Some(Err(e)) => Err(e),
        None => {
            let waited = started.elapsed();
            debug!(parent: &shared.span, waited = ?waited, "checkout timed out");
            shared.metrics.checkout_timeout();
            Err(PoolError::CheckoutTimeout {
                pool: shared.settings.name.clone(),
                waited,
            })
        }
    }
}

fn closed_error(shared: &Shared) -> PoolError {
    PoolError::Closed {
        pool: shared.settings.name.clone(),
    }
}

fn no_ready_error(shared: &Shared) -> PoolError {
    // Someone needs a channel: slots sleeping in backoff probe their addresses now.
    shared.signals.want_channel();
    let slots = shared.slots.load();
    PoolError::NoReadyChannel {
        pool: shared.settings.name.clone(),
        last_error: slots.iter().rev().find_map(|s| s.last_error()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::{choose, Choice};
    use crate::config::PoolConfig;
    use crate::metrics::PoolMetrics;
    use crate::settings::Settings;
    use crate::signals::Signals;
    use crate::slot::Slot;
    use crate::status::ChannelState::{self, Backoff, Closed, Connecting, Ready, Unhealthy};

    /// Slots in these states with these calls in flight (no connections: nothing excluded).
    fn slots(spec: &[(ChannelState, usize)]) -> Vec<Arc<Slot>> {
        let config = PoolConfig::builder()
            .endpoint("http://127.0.0.1:50051")
            .build()
            .unwrap();
        let settings = Settings::resolve(&config, "balance".into()).unwrap();
        let signals = Arc::new(Signals::default());
        let metrics = Arc::new(PoolMetrics::new("balance"));
        let cancel = CancellationToken::new();
        spec.iter()
            .enumerate()
            .map(|(i, (state, load))| {
                let slot = crate::shared::new_slot(i, 0, &settings, &signals, &metrics, &cancel);
                slot.set_state(*state);
                slot.in_flight.store(*load, Ordering::Relaxed);
                slot
            })
            .collect()
    }

    #[test]
    fn the_least_loaded_ready_slot_wins_from_any_start() {
        let s = slots(&[
            (Ready, 3),
            (Unhealthy, 0),
            (Ready, 1),
            (Backoff, 0),
            (Ready, 2),
        ]);
        for start in 0..s.len() {
            assert_eq!(
                choose(&s, None, &[], &[], start),
                Choice::Slot(2),
                "start {start}"
            );
        }
    }

    #[test]
    fn ties_go_to_the_first_slot_from_the_start() {
        let s = slots(&[(Ready, 1), (Ready, 1), (Ready, 1)]);
        for start in 0..s.len() {
            assert_eq!(choose(&s, None, &[], &[], start), Choice::Slot(start));
        }
    }

    #[test]
    fn slots_at_the_cap_or_connecting_are_worth_waiting_for() {
        let full = slots(&[(Ready, 2), (Ready, 3)]);
        assert_eq!(choose(&full, Some(2), &[], &[], 0), Choice::Wait);
        assert_eq!(choose(&full, Some(3), &[], &[], 0), Choice::Slot(0));
        assert_eq!(choose(&full, None, &[], &[], 1), Choice::Slot(0));
        let connecting = slots(&[(Connecting, 0), (Backoff, 0)]);
        assert_eq!(choose(&connecting, None, &[], &[], 0), Choice::Wait);
    }

    #[test]
    fn nothing_ready_or_connecting_is_none_ready() {
        let down = slots(&[(Backoff, 0), (Unhealthy, 0), (Closed, 0)]);
        assert_eq!(choose(&down, None, &[], &[], 0), Choice::NoneReady);
        assert_eq!(choose(&[], None, &[], &[], 0), Choice::NoneReady);
    }

    #[test]
    fn a_slow_slot_is_chosen_only_when_the_fast_ones_are_full() {
        let s = slots(&[(Ready, 3), (Ready, 0), (Ready, 2)]);
        let now = std::time::Instant::now();
        let ms = std::time::Duration::from_millis(1);
        // Slot 1 answers in 40 ms, the others in 2 ms and 4 ms (within twice the fastest and
        // the slack: not slow).
        s[0].latency.observe(2 * ms, now);
        s[1].latency.observe(40 * ms, now);
        s[2].latency.observe(4 * ms, now);
        for start in 0..s.len() {
            assert_eq!(
                choose(&s, None, &[], &[], start),
                Choice::Slot(2),
                "start {start}"
            );
        }
        // The fast ones full: the slow one takes the call rather than make it wait.
        assert_eq!(choose(&s, Some(2), &[], &[], 0), Choice::Slot(1));
        // Not measured yet: not slow.
        s[1].latency.reset();
        assert_eq!(choose(&s, None, &[], &[], 0), Choice::Slot(1));
    }

    #[test]
    fn skipped_positions_are_not_chosen_but_are_worth_waiting_for() {
        let s = slots(&[(Ready, 0), (Ready, 1)]);
        assert_eq!(choose(&s, None, &[], &[0], 0), Choice::Slot(1));
        // Both connections were just lost: their replacements are on the way.
        assert_eq!(choose(&s, None, &[], &[0, 1], 0), Choice::Wait);
    }
}
