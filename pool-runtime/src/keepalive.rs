//! The pool's keepalive interval, and how a server's `too_many_pings` changes it (gRFC A8).
//!
//! gRPC servers limit how often a client may ping: by default at most every 5 minutes, and
//! never while no call is active. A client that pings more often gets strikes, then
//! `GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings")` and a closed connection. Like grpc-go, the
//! pool then doubles the keepalive interval of its new connections, so a misconfigured
//! interval converges to one the server accepts instead of losing a connection forever every
//! few pings.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The keepalive state of one pool (in [`Signals`](crate::signals::Signals)).
#[derive(Debug, Default)]
pub(crate) struct Keepalive {
    /// The interval new connections ping at, in milliseconds, once a server objected (0: the
    /// configured one).
    raised_ms: AtomicU64,
    /// `too_many_pings` GOAWAYs received.
    too_many_pings: AtomicU64,
    warned: AtomicBool,
}

/// The interval is never doubled past this (a day: the configuration's upper bound).
const MAX: Duration = Duration::from_secs(24 * 3600);

impl Keepalive {
    /// The interval for a new connection of a pool configured with `configured`.
    pub(crate) fn interval(&self, configured: Duration) -> Duration {
        match self.raised_ms.load(Ordering::Relaxed) {
            0 => configured,
            ms => Duration::from_millis(ms).max(configured),
        }
    }

    /// `too_many_pings` GOAWAYs received so far.
    pub(crate) fn too_many_pings(&self) -> u64 {
        self.too_many_pings.load(Ordering::Relaxed)
    }

    /// A server closed a connection that pinged every `opened_with` for pinging too often:
    /// new connections ping at twice that (connections closed together double it once).
    /// Returns the new interval, and whether this is the pool's first such GOAWAY (to warn
    /// once).
    pub(crate) fn too_many_pings_on(&self, opened_with: Duration) -> (Duration, bool) {
        self.too_many_pings.fetch_add(1, Ordering::Relaxed);
        let doubled = opened_with.saturating_mul(2).min(MAX);
        let ms = u64::try_from(doubled.as_millis()).unwrap_or(u64::MAX);
        let now = self.raised_ms.fetch_max(ms, Ordering::Relaxed).max(ms);
        let first = !self.warned.swap(true, Ordering::Relaxed);
        (Duration::from_millis(now), first)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Keepalive;

    #[test]
    fn each_too_many_pings_doubles_the_interval_it_was_opened_with() {
        let k = Keepalive::default();
        let second = Duration::from_secs(1);
        assert_eq!(k.interval(second), second);
        assert_eq!(k.too_many_pings_on(second), (2 * second, true));
        // Another connection opened at the old interval: doubles to the same value.
        assert_eq!(k.too_many_pings_on(second), (2 * second, false));
        assert_eq!(k.interval(second), 2 * second);
        // A connection opened at the doubled interval doubles again.
        assert_eq!(k.too_many_pings_on(2 * second).0, 4 * second);
        assert_eq!(k.interval(second), 4 * second);
        assert_eq!(k.too_many_pings(), 3);
        // Never below what the configuration says.
        assert_eq!(k.interval(Duration::from_secs(60)), Duration::from_secs(60));
    }
}
