//! [`RetryConfig`]: connection attempts and backoff delays.

use std::time::Duration;

/// Connection attempts and the delays between them (the gRPC connection-backoff algorithm:
/// `min(base_delay * 1.6^n, max_delay)` with ±20 % jitter).
///
/// `max_attempts` bounds how many attempts per channel [`Pool::start`](crate::Pool::start)
/// waits for; after a successful start, failing channels keep retrying in the background.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Connection attempts per channel before `start` gives up (at least 1).
    pub max_attempts: u32,
    /// The first delay.
    pub base_delay: Duration,
    /// The largest delay.
    pub max_delay: Duration,
}

impl RetryConfig {
    /// A retry policy.
    pub fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            base_delay,
            max_delay,
        }
    }
}

/// The library defaults: 3 attempts, 1 s base delay, 5 s maximum delay.
impl Default for RetryConfig {
    fn default() -> Self {
        Self::new(3, Duration::from_secs(1), Duration::from_secs(5))
    }
}
