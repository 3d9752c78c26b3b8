//! Outlier detection (gRFC A50): every `interval`, the pool compares the backend addresses'
//! call outcomes and ejects the outliers for a while. An ejected address's slots take no new
//! calls (their calls in flight finish); the ejection lasts `baseEjectionTime` times the
//! number of times the address was ejected (at most `maxEjectionTime`), and the count decays
//! by one per interval the address stays in.
//!
//! Two algorithms, each on when configured:
//! - success rate: among addresses with at least `requestVolume` calls in the interval (and
//!   at least `minimumHosts` of them), eject those whose success rate is below
//!   `mean - stdev * stdevFactor / 1000`;
//! - failure percentage: eject those whose failures are above `threshold` % of their calls.
//!
//! Never more than `maxEjectionPercent` % of the addresses are ejected at once (the first
//! ejection is always allowed, as grpc-go does). A call's outcome is its gRPC status: OK is a
//! success, anything else a failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{info, warn};

use crate::error::ConfigError;
use crate::shared::Shared;

/// Outlier detection (gRFC A50): which backend addresses to eject, and for how long. Set it
/// in code with [`PoolConfigBuilder::outlier_detection`](crate::PoolConfigBuilder::outlier_detection),
/// or in a service config file as `loadBalancingConfig`'s `outlier_detection_experimental`
/// (the same fields, in camelCase). `Default` has A50's defaults and both algorithms off:
/// turn on at least one.
///
/// ```
/// use std::time::Duration;
/// use grpc_pool::config::{FailurePercentageEjection, OutlierDetection};
///
/// let detection = OutlierDetection::default()
///     .interval(Duration::from_secs(5))
///     .max_ejection_percent(50)
///     .failure_percentage(FailurePercentageEjection::default().threshold(50).minimum_hosts(3));
/// let config = grpc_pool::PoolConfig::builder()
///     .endpoint("http://10.0.0.1:50051")
///     .endpoint("http://10.0.0.2:50051")
///     .endpoint("http://10.0.0.3:50051")
///     .outlier_detection(detection)
///     .build()?;
/// # Ok::<(), grpc_pool::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OutlierDetection {
    pub(crate) interval: Duration,
    pub(crate) base_ejection_time: Duration,
    pub(crate) max_ejection_time: Duration,
    pub(crate) max_ejection_percent: u32,
    pub(crate) success_rate: Option<SuccessRateEjection>,
    pub(crate) failure_percentage: Option<FailurePercentageEjection>,
}

impl Default for OutlierDetection {
    /// gRFC A50's defaults, both algorithms off.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            success_rate: None,
            failure_percentage: None,
        }
    }
}

impl OutlierDetection {
    /// How often the addresses' outcomes are compared (default 10 s).
    #[must_use]
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every;
        self
    }

    /// An ejection lasts this long times the number of times the address was ejected
    /// (default 30 s).
    #[must_use]
    pub fn base_ejection_time(mut self, time: Duration) -> Self {
        self.base_ejection_time = time;
        self
    }

    /// The longest an ejection lasts (default 300 s, and at least `base_ejection_time`).
    #[must_use]
    pub fn max_ejection_time(mut self, time: Duration) -> Self {
        self.max_ejection_time = time;
        self
    }

    /// At most this percentage of the addresses are ejected at once (default 10; the first
    /// ejection is always allowed).
    #[must_use]
    pub fn max_ejection_percent(mut self, percent: u32) -> Self {
        self.max_ejection_percent = percent;
        self
    }

    /// Ejects the addresses whose success rate is far below the others'.
    #[must_use]
    pub fn success_rate(mut self, rule: SuccessRateEjection) -> Self {
        self.success_rate = Some(rule);
        self
    }

    /// Ejects the addresses whose failures pass a percentage of their calls.
    #[must_use]
    pub fn failure_percentage(mut self, rule: FailurePercentageEjection) -> Self {
        self.failure_percentage = Some(rule);
        self
    }

    /// Checks the values, naming a bad one as `field.name` (`field` is where the detection
    /// was given, e.g. `outlier_detection`).
    pub(crate) fn check(&self, field: &str) -> Result<(), ConfigError> {
        let invalid = |name: &str, value: String, reason: &str| {
            Err(ConfigError::invalid(
                format!("{field}.{name}"),
                value,
                reason,
            ))
        };
        for (name, value) in [
            ("interval", self.interval),
            ("base_ejection_time", self.base_ejection_time),
            ("max_ejection_time", self.max_ejection_time),
        ] {
            if value.is_zero() {
                return invalid(name, "0s".to_owned(), "must be more than zero");
            }
        }
        let mut percents = vec![("max_ejection_percent", self.max_ejection_percent)];
        if let Some(rule) = &self.success_rate {
            percents.push((
                "success_rate.enforcement_percentage",
                rule.enforcement_percentage,
            ));
        }
        if let Some(rule) = &self.failure_percentage {
            percents.push(("failure_percentage.threshold", rule.threshold));
            percents.push((
                "failure_percentage.enforcement_percentage",
                rule.enforcement_percentage,
            ));
        }
        for (name, value) in percents {
            if value > 100 {
                return invalid(
                    name,
                    value.to_string(),
                    "must be a percentage from 0 to 100",
                );
            }
        }
        if self.success_rate.is_none() && self.failure_percentage.is_none() {
            return Err(ConfigError::Missing {
                field: format!("{field}.success_rate or {field}.failure_percentage"),
                hint: "outlier detection with neither algorithm ejects nothing".to_owned(),
            });
        }
        Ok(())
    }
}

/// `successRateEjection`: among the addresses with at least `request_volume` calls in the
/// interval (and at least `minimum_hosts` such addresses), ejects those whose success rate
/// is below `mean - stdev * stdev_factor / 1000`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SuccessRateEjection {
    pub(crate) stdev_factor: u32,
    pub(crate) enforcement_percentage: u32,
    pub(crate) minimum_hosts: u32,
    pub(crate) request_volume: u32,
}

impl Default for SuccessRateEjection {
    /// gRFC A50's defaults: factor 1900, enforced 100 %, 5 hosts, 100 calls.
    fn default() -> Self {
        Self {
            stdev_factor: 1900,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 100,
        }
    }
}

impl SuccessRateEjection {
    /// How many thousandths of a standard deviation below the mean ejects (default 1900).
    #[must_use]
    pub fn stdev_factor(mut self, factor: u32) -> Self {
        self.stdev_factor = factor;
        self
    }

    /// The chance, in percent, that an outlier found is ejected (default 100).
    #[must_use]
    pub fn enforcement_percentage(mut self, percent: u32) -> Self {
        self.enforcement_percentage = percent;
        self
    }

    /// The addresses with enough calls needed for a verdict (default 5).
    #[must_use]
    pub fn minimum_hosts(mut self, hosts: u32) -> Self {
        self.minimum_hosts = hosts;
        self
    }

    /// The calls in an interval an address needs to count (default 100).
    #[must_use]
    pub fn request_volume(mut self, calls: u32) -> Self {
        self.request_volume = calls;
        self
    }
}

/// `failurePercentageEjection`: ejects the addresses (with at least `request_volume` calls in
/// the interval, and at least `minimum_hosts` such addresses) whose failures are above
/// `threshold` percent of their calls.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FailurePercentageEjection {
    pub(crate) threshold: u32,
    pub(crate) enforcement_percentage: u32,
    pub(crate) minimum_hosts: u32,
    pub(crate) request_volume: u32,
}

impl Default for FailurePercentageEjection {
    /// gRFC A50's defaults: 85 %, enforced 100 %, 5 hosts, 50 calls.
    fn default() -> Self {
        Self {
            threshold: 85,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 50,
        }
    }
}

impl FailurePercentageEjection {
    /// The failure percentage above which an address is ejected (default 85).
    #[must_use]
    pub fn threshold(mut self, percent: u32) -> Self {
        self.threshold = percent;
        self
    }

    /// The chance, in percent, that an outlier found is ejected (default 100).
    #[must_use]
    pub fn enforcement_percentage(mut self, percent: u32) -> Self {
        self.enforcement_percentage = percent;
        self
    }

    /// The addresses with enough calls needed for a verdict (default 5).
    #[must_use]
    pub fn minimum_hosts(mut self, hosts: u32) -> Self {
        self.minimum_hosts = hosts;
        self
    }

    /// The calls in an interval an address needs to count (default 50).
    #[must_use]
    pub fn request_volume(mut self, calls: u32) -> Self {
        self.request_volume = calls;
        self
    }
}

/// A slot's call outcomes since the last interval (kept only with outlier detection on).
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Outcomes {
    pub(crate) fn record(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(ok, failed)` since the last take.
    fn take(&self) -> (u64, u64) {
        (
            self.ok.swap(0, Ordering::Relaxed),
            self.failed.swap(0, Ordering::Relaxed),
        )
    }
}

/// The detector's memory of one address.
#[derive(Debug, Default)]
struct Address {
    /// Ejections so far, less one per interval spent in (the ejection time multiplier).
    multiplier: u32,
    ejected_at: Option<Instant>,
}

/// Runs in the pool's maintenance task.
#[derive(Debug, Default)]
pub(crate) struct Detector {
    addresses: HashMap<SocketAddr, Address>,
}

impl Detector {
    /// One interval: un-ejects the addresses whose time is up, ejects the new outliers, and
    /// marks every slot with its address's state.
    pub(crate) fn tick(&mut self, shared: &Shared, config: &OutlierDetection) {
        let now = Instant::now();
        let slots = shared.slots.load();
        // Outcomes per address over the interval.
        let mut volume: HashMap<SocketAddr, (u64, u64)> = HashMap::new();
        for slot in slots.iter() {
            let (Some(outcomes), Some(addr)) = (&slot.outcomes, slot.address()) else {
                continue;
            };
            let (ok, failed) = outcomes.take();
            let v = volume.entry(addr).or_default();
            v.0 += ok;
            v.1 += failed;
            self.addresses.entry(addr).or_default();
        }
        // Forget addresses no slot has any more.
        self.addresses.retain(|a, _| volume.contains_key(a));
        for (addr, state) in &mut self.addresses {
            match state.ejected_at {
                Some(at) => {
                    let time = config
                        .base_ejection_time
                        .saturating_mul(state.multiplier)
                        .min(config.max_ejection_time.max(config.base_ejection_time));
                    if now >= at + time {
                        state.ejected_at = None;
                        info!(parent: &shared.span, address = %addr, "outlier detection: address back in");
                    }
                }
                None => state.multiplier = state.multiplier.saturating_sub(1),
            }
        }
        let total = self.addresses.len();
        let mut ejected = self
            .addresses
            .values()
            .filter(|a| a.ejected_at.is_some())
            .count();
        let mut eject = |addr: &SocketAddr,
                         why: String,
                         detector: &mut HashMap<SocketAddr, Address>| {
            // The first ejection is always allowed; then no more than the percentage.
            if ejected > 0 && ejected * 100 >= total * config.max_ejection_percent as usize {
                return;
            }
            if let Some(state) = detector.get_mut(addr) {
                if state.ejected_at.is_none() {
                    state.ejected_at = Some(now);
                    state.multiplier += 1;
                    ejected += 1;
                    warn!(parent: &shared.span, address = %addr, reason = %why, "outlier detection: address ejected");
                    shared.ejections.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.ejected();
                }
            }
        };
        if let Some(rule) = &config.success_rate {
            let rates: Vec<(SocketAddr, f64)> = volume
                .iter()
                .filter(|(_, (ok, failed))| ok + failed >= u64::from(rule.request_volume))
                .map(|(a, (ok, failed))| (*a, *ok as f64 / (ok + failed) as f64))
                .collect();
            if rates.len() >= rule.minimum_hosts as usize && !rates.is_empty() {
                let n = rates.len() as f64;
                let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / n;
                let variance = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
                let floor = mean - variance.sqrt() * f64::from(rule.stdev_factor) / 1000.0;
                for (addr, rate) in &rates {
                    if *rate < floor && enforced(rule.enforcement_percentage) {
                        let why = format!(
                            "success rate {:.1} % below {:.1} %",
                            rate * 100.0,
                            floor * 100.0
                        );
                        eject(addr, why, &mut self.addresses);
                    }
                }
            }
        }
        if let Some(rule) = &config.failure_percentage {
            let eligible: Vec<(&SocketAddr, &(u64, u64))> = volume
                .iter()
                .filter(|(_, (ok, failed))| ok + failed >= u64::from(rule.request_volume))
                .collect();
            if eligible.len() >= rule.minimum_hosts as usize {
                for (addr, (ok, failed)) in eligible {
                    let percent = *failed as f64 * 100.0 / (ok + failed) as f64;
                    if percent > f64::from(rule.threshold) && enforced(rule.enforcement_percentage)
                    {
                        let why = format!(
                            "{percent:.1} % of calls failed (threshold {} %)",
                            rule.threshold
                        );
                        eject(addr, why, &mut self.addresses);
                    }
                }
            }
        }
        // Mark the slots.
        let wall = SystemTime::now();
        for slot in slots.iter() {
            let until = slot
                .address()
                .and_then(|a| self.addresses.get(&a))
                .and_then(|state| {
                    let at = state.ejected_at?;
                    let time = config
                        .base_ejection_time
                        .saturating_mul(state.multiplier)
                        .min(config.max_ejection_time.max(config.base_ejection_time));
                    Some(wall + (at + time).saturating_duration_since(now))
                });
            slot.set_ejected(until);
        }
    }
}

/// Whether an ejection the rule calls for is enforced (`enforcementPercentage`).
fn enforced(percentage: u32) -> bool {
    percentage >= 100 || fastrand::u32(0..100) < percentage
}
