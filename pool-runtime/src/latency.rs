//! How fast each slot answers, so checkout keeps calls off a connection that answers much
//! slower than its peers (a degraded backend: a GC pause, a noisy neighbour, a bad disk).
//!
//! Least-loaded selection alone already sends fewer calls to a slow backend (its calls stay
//! in flight longer), but not few enough: with HTTP/2 multiplexing a fast backend does not
//! get slower with more calls in flight, so every call a slow backend still takes is a call
//! that waits ten times longer than it had to, and those calls are the pool's p99. A
//! load-times-latency score (Finagle's and linkerd's peak EWMA) has the same flaw: it
//! assumes calls queue behind one another, so an idle slow connection still looks as good
//! as a busy fast one.
//!
//! So the pool sorts connections in two tiers. A connection whose moving average of response
//! time is more than twice the fastest's, and [`SLACK`] more, is *slow*: it takes calls only
//! when every fast connection is full (at `max_in_flight_per_channel` or its stream limit).
//! Within a tier, the least-loaded connection wins as before, so equal backends still share
//! the load evenly, however noisy their timings.
//!
//! What is measured is the time from sending a call to its response headers: for a unary
//! call the whole call, for a stream how long the server took to start it, never how long
//! it stays open. A call that fails before any message (a Trailers-Only error) or on the
//! transport is not measured: a backend that fails fast must not look fast.
//!
//! An average that is no longer fed (a slow connection takes no calls while the fast ones
//! have room) halves every [`HALF_LIFE`], so a backend that recovered is tried again within
//! seconds and measured anew.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How much slower than twice the fastest a connection must answer to be slow: the timings
/// of equal backends on a busy machine jitter by a few milliseconds, and that is no reason
/// to take a connection out of the rotation.
pub(crate) const SLACK: Duration = Duration::from_millis(3);

/// An average not fed for this long counts half (twice as long: a quarter, ...).
pub(crate) const HALF_LIFE: Duration = Duration::from_secs(1);

/// Each response moves the average by this fraction (1/8) of its distance from it.
const WEIGHT_SHIFT: u32 = 3;

/// A slot's moving average of response time, in nanoseconds (0: not measured yet), and when
/// it was last fed. Lock-free; two calls that end at once may lose one of their samples,
/// which an average does not miss.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    average: AtomicU64,
    fed_at: AtomicU64,
}

/// Milliseconds since the first use of this clock in the process (an `Instant` does not fit
/// an atomic).
fn millis(now: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    now.saturating_duration_since(epoch).as_millis() as u64
}

/// `average` decayed for the time since `fed_at` (both as stored).
fn decayed(average: u64, fed_at: u64, now: u64) -> u64 {
    let halvings = now.saturating_sub(fed_at) / HALF_LIFE.as_millis() as u64;
    average.checked_shr(halvings.min(63) as u32).unwrap_or(0)
}

impl Latency {
    /// Feeds one response time, taken at `now`.
    pub(crate) fn observe(&self, took: Duration, now: Instant) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let now = millis(now);
        let old = decayed(
            self.average.load(Ordering::Relaxed),
            self.fed_at.load(Ordering::Relaxed),
            now,
        );
        let new = if old == 0 {
            sample
        } else if sample >= old {
            old + ((sample - old) >> WEIGHT_SHIFT)
        } else {
            old - ((old - sample) >> WEIGHT_SHIFT)
        };
        self.average.store(new.max(1), Ordering::Relaxed);
        self.fed_at.store(now, Ordering::Relaxed);
    }

    /// The average as last fed, in nanoseconds (0: not measured yet). Cheap: no clock.
    pub(crate) fn last(&self) -> u64 {
        self.average.load(Ordering::Relaxed)
    }

    /// The average decayed to `now`.
    pub(crate) fn at(&self, now: Instant) -> u64 {
        decayed(
            self.average.load(Ordering::Relaxed),
            self.fed_at.load(Ordering::Relaxed),
            millis(now),
        )
    }

    /// Forgets the average (a new connection, maybe to another address).
    pub(crate) fn reset(&self) {
        self.average.store(0, Ordering::Relaxed);
    }
}

/// The response time above which a connection is slow, given the fastest one's (`best`, in
/// nanoseconds; 0: nothing measured, nothing is slow).
pub(crate) fn slow_above(best: u64) -> u64 {
    if best == 0 {
        return u64::MAX;
    }
    best.saturating_mul(2)
        .saturating_add(SLACK.as_nanos() as u64)
}

/// The average as a `Duration`, for status (`None`: not measured yet).
pub(crate) fn as_duration(average: u64) -> Option<Duration> {
    (average != 0).then(|| Duration::from_nanos(average))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_sample_is_the_average_and_later_ones_move_it_by_an_eighth() {
        let latency = Latency::default();
        let now = Instant::now();
        assert_eq!(latency.last(), 0);
        latency.observe(8 * MS, now);
        assert_eq!(latency.last(), 8_000_000);
        latency.observe(16 * MS, now);
        assert_eq!(latency.last(), 9_000_000);
        latency.observe(MS, now);
        assert_eq!(latency.last(), 8_000_000);
    }

    #[test]
    fn an_average_not_fed_halves_every_half_life() {
        let latency = Latency::default();
        // The clock's epoch is its first use: `now` must not come before it.
        millis(Instant::now());
        let now = Instant::now();
        latency.observe(20 * MS, now);
        assert_eq!(latency.at(now), 20_000_000);
        assert_eq!(latency.at(now + HALF_LIFE), 10_000_000);
        assert_eq!(latency.at(now + 3 * HALF_LIFE), 2_500_000);
        // Fed again after a long pause, it starts from the decayed value: a backend that
        // recovered is not held to its old slowness.
        latency.observe(2 * MS, now + 4 * HALF_LIFE);
        assert_eq!(latency.last(), 1_250_000 + 93_750);
    }

    #[test]
    fn slow_means_over_twice_the_fastest_and_the_slack() {
        assert_eq!(slow_above(0), u64::MAX);
        assert_eq!(slow_above(2_000_000), 7_000_000);
        assert_eq!(slow_above(u64::MAX), u64::MAX);
    }
}
