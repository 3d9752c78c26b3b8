//! The gRPC connection-backoff algorithm: `min(base * 1.6^n, max)` with ±20 % jitter.

use std::time::Duration;

/// Growth factor per attempt (gRPC's `MULTIPLIER`).
const MULTIPLIER: f64 = 1.6;
/// Relative jitter (gRPC's `JITTER`).
const JITTER: f64 = 0.2;

/// Delays between connection attempts of one slot.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// Failures since the last [`reset`](Self::reset).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// The un-jittered delay after `failures` failures: `min(base * 1.6^(failures-1), max)`.
    pub(crate) fn nominal(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(64) as i32;
        let secs = self.base.as_secs_f64() * MULTIPLIER.powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Records a failure and returns the delay (whole milliseconds) before the next attempt, with jitter drawn
    /// from `unit` (a number in `[0, 1)`).
    pub(crate) fn next_with(&mut self, unit: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let nominal = self.nominal(self.failures).as_secs_f64();
        let factor = 1.0 + JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        // Whole milliseconds: timers have millisecond resolution anyway.
        Duration::from_millis((nominal * factor * 1000.0).round().max(0.0) as u64)
    }

    /// Records a failure and returns the jittered delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.next_with(fastrand::f64())
    }

    /// A success: the next failure starts from `base` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_by_1_6_until_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_with(0.5)).collect();
        assert_eq!(delays[0], ms(1000));
        assert_eq!(delays[1], ms(1600));
        assert_eq!(delays[2], ms(2560));
        assert_eq!(delays[3], ms(4096));
        assert_eq!(delays[4], ms(5000));
        assert_eq!(delays[5], ms(5000));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        for _ in 0..1000 {
            let d = b.next_delay();
            assert!(d >= ms(800) && d <= ms(1200), "{d:?}");
        }
        assert_eq!(b.clone().next_with(0.0), ms(800));
        assert_eq!(b.next_with(1.0), ms(1200));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(ms(100), ms(10_000));
        for _ in 0..5 {
            b.next_with(0.5);
        }
        assert_eq!(b.failures(), 5);
        b.reset();
        assert_eq!(b.next_with(0.5), ms(100));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(ms(1), Duration::from_secs(120));
        for _ in 0..10_000 {
            b.next_with(0.5);
        }
        assert_eq!(b.next_with(0.5), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn sleeping_the_delays_takes_their_sum() {
        let mut b = Backoff::new(ms(100), ms(300));
        let start = Instant::now();
        let mut total = Duration::ZERO;
        for _ in 0..4 {
            let d = b.next_delay();
            total += d;
            tokio::time::sleep(d).await;
        }
        // 100 + 160 + 256 + 300 = 816 ms nominal, each ±20 %.
        assert_eq!(start.elapsed(), total);
        assert!(total >= ms(652) && total <= ms(980), "{total:?}");
    }
}
