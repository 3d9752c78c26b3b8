//! Counters, gauges and histograms through the [`metrics`](https://docs.rs/metrics) facade
//! (cargo feature `metrics`), every one labelled `pool = <name>`. Without the feature
//! nothing is recorded and the pool pays nothing for it.
//!
//! | name | kind | extra labels | what |
//! |---|---|---|---|
//! | `grpc_pool_calls_total` | counter | | calls sent |
//! | `grpc_pool_call_failures_total` | counter | `code` | calls that ended in a status other than OK (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...), transport failures included |
//! | `grpc_pool_call_duration_seconds` | histogram | | from sending the request to the end of the response |
//! | `grpc_pool_checkout_wait_seconds` | histogram | | checkouts that had to wait |
//! | `grpc_pool_checkout_timeouts_total` | counter | | checkouts that timed out |
//! | `grpc_pool_reconnects_total` | counter | | connections replaced after a loss |
//! | `grpc_pool_connect_attempts_total` | counter | `kind` (`connect`, `backoff`, `probe`) | connection attempts: right away (start, after a loss), after a backoff delay, or as an address's probe while calls wait |
//! | `grpc_pool_connect_failures_total` | counter | | failed connection attempts |
//! | `grpc_pool_refreshes_total` | counter | `reason` (`max_age`, `moved`) | connections replaced while healthy |
//! | `grpc_pool_resizes_total` | counter | `direction` (`up`, `down`) | elastic size changes |
//! | `grpc_pool_refused_streams_total` | counter | | calls a server refused (`REFUSED_STREAM`: it was at its stream limit) and the pool sent again |
//! | `grpc_pool_too_many_pings_total` | counter | | connections a server closed with `GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings")`; each doubles the pool's keepalive interval |
//! | `grpc_pool_retries_total` | counter | `reason` (`transparent`, `policy`, `hedge`, `throttled`) | calls sent again: because the server never saw them, under a `retryPolicy`, as hedges; `throttled`: retries `retryThrottling` stopped |
//! | `grpc_pool_call_attempts` | histogram | | attempts each call under a retry or hedging policy made (1 to 5; transparent retries not counted) |
//! | `grpc_pool_ejections_total` | counter | | addresses ejected by outlier detection |
//! | `grpc_pool_size` | gauge | | channels (slots) |
//! | `grpc_pool_channels_ready` | gauge | | channels READY |
//! | `grpc_pool_channels_unhealthy` | gauge | | channels reporting NOT_SERVING |
//! | `grpc_pool_in_flight` | gauge | | calls in flight |
//!
//! Handles are registered when the pool starts, so install the recorder (for example
//! `metrics_exporter_prometheus::PrometheusBuilder::install_recorder`) before starting pools.

use std::time::Duration;

use crate::status::ChannelState;

#[cfg(feature = "metrics")]
mod imp {
    use super::{ChannelState, Duration};
    use metrics::{Counter, Gauge, Histogram};

    /// The handles of one pool, registered once at start.
    #[derive(Debug)]
    pub(crate) struct PoolMetrics {
        pool: String,
        calls: Counter,
        call_duration: Histogram,
        call_attempts: Histogram,
        checkout_wait: Histogram,
        checkout_timeouts: Counter,
        reconnects: Counter,
        connect_failures: Counter,
        size: Gauge,
        ready: Gauge,
        unhealthy: Gauge,
        in_flight: Gauge,
    }

    impl PoolMetrics {
        pub(crate) fn new(pool: &str) -> Self {
            let label = || ("pool", pool.to_owned());
            Self {
                pool: pool.to_owned(),
                calls: metrics::counter!("grpc_pool_calls_total", &[label()]),
                call_duration: metrics::histogram!("grpc_pool_call_duration_seconds", &[label()]),
                call_attempts: metrics::histogram!("grpc_pool_call_attempts", &[label()]),
                checkout_wait: metrics::histogram!("grpc_pool_checkout_wait_seconds", &[label()]),
                checkout_timeouts: metrics::counter!(
                    "grpc_pool_checkout_timeouts_total",
                    &[label()]
                ),
                reconnects: metrics::counter!("grpc_pool_reconnects_total", &[label()]),
                connect_failures: metrics::counter!("grpc_pool_connect_failures_total", &[label()]),
                size: metrics::gauge!("grpc_pool_size", &[label()]),
                ready: metrics::gauge!("grpc_pool_channels_ready", &[label()]),
                unhealthy: metrics::gauge!("grpc_pool_channels_unhealthy", &[label()]),
                in_flight: metrics::gauge!("grpc_pool_in_flight", &[label()]),
            }
        }

        /// A call is about to be sent.
        pub(crate) fn call_started(&self) -> Option<std::time::Instant> {
            self.calls.increment(1);
            Some(std::time::Instant::now())
        }

        /// A call ended with `code` (`None`: OK).
        pub(crate) fn call_ended(
            &self,
            started: Option<std::time::Instant>,
            code: Option<tonic::Code>,
        ) {
            if let Some(started) = started {
                self.call_duration.record(started.elapsed().as_secs_f64());
            }
            if let Some(code) = code.filter(|c| *c != tonic::Code::Ok) {
                metrics::counter!(
                    "grpc_pool_call_failures_total",
                    "pool" => self.pool.clone(),
                    "code" => super::code_name(code),
                )
                .increment(1);
            }
        }

        pub(crate) fn checkout_wait(&self, waited: Duration) {
            self.checkout_wait.record(waited.as_secs_f64());
        }
        pub(crate) fn checkout_timeout(&self) {
            self.checkout_timeouts.increment(1);
        }
        pub(crate) fn reconnect(&self) {
            self.reconnects.increment(1);
        }
        pub(crate) fn connect_attempt(&self, kind: &'static str) {
            metrics::counter!("grpc_pool_connect_attempts_total", "pool" => self.pool.clone(), "kind" => kind)
                .increment(1);
        }
        pub(crate) fn connect_failed(&self) {
            self.connect_failures.increment(1);
        }
        pub(crate) fn refused_stream(&self) {
            metrics::counter!("grpc_pool_refused_streams_total", "pool" => self.pool.clone())
                .increment(1);
        }
        pub(crate) fn too_many_pings(&self) {
            metrics::counter!("grpc_pool_too_many_pings_total", "pool" => self.pool.clone())
                .increment(1);
        }
        pub(crate) fn ejected(&self) {
            metrics::counter!("grpc_pool_ejections_total", "pool" => self.pool.clone())
                .increment(1);
        }
        pub(crate) fn call_attempts(&self, attempts: u32) {
            self.call_attempts.record(f64::from(attempts));
        }
        pub(crate) fn retried(&self, reason: &'static str) {
            metrics::counter!("grpc_pool_retries_total", "pool" => self.pool.clone(), "reason" => reason)
                .increment(1);
        }
        pub(crate) fn refreshed(&self, reason: &'static str) {
            metrics::counter!("grpc_pool_refreshes_total", "pool" => self.pool.clone(), "reason" => reason)
                .increment(1);
        }
        pub(crate) fn resized(&self, direction: &'static str) {
            metrics::counter!("grpc_pool_resizes_total", "pool" => self.pool.clone(), "direction" => direction)
                .increment(1);
        }
        /// A slot went from `old` to `new` (`None`: the slot came or went). Gauges move by
        /// increments only, so pools of the same name (a restarted pool) add up correctly.
        pub(crate) fn state_changed(&self, old: Option<ChannelState>, new: Option<ChannelState>) {
            for (state, delta) in [(old, -1.0), (new, 1.0)] {
                match state {
                    None => self.size.increment(-delta),
                    Some(ChannelState::Ready) => self.ready.increment(delta),
                    Some(ChannelState::Unhealthy) => self.unhealthy.increment(delta),
                    Some(_) => {}
                }
            }
        }
        pub(crate) fn in_flight(&self, delta: f64) {
            self.in_flight.increment(delta);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use super::{ChannelState, Duration};

    /// Without the `metrics` feature: nothing.
    #[derive(Debug)]
    pub(crate) struct PoolMetrics;

    #[allow(clippy::unused_self)]
    impl PoolMetrics {
        pub(crate) fn new(_pool: &str) -> Self {
            PoolMetrics
        }
        #[inline]
        pub(crate) fn call_started(&self) -> Option<std::time::Instant> {
            None
        }
        #[inline]
        pub(crate) fn call_ended(
            &self,
            _started: Option<std::time::Instant>,
            _code: Option<tonic::Code>,
        ) {
        }
        pub(crate) fn checkout_wait(&self, _waited: Duration) {}
        pub(crate) fn checkout_timeout(&self) {}
        pub(crate) fn reconnect(&self) {}
        pub(crate) fn connect_attempt(&self, _kind: &'static str) {}
        pub(crate) fn connect_failed(&self) {}
        pub(crate) fn refused_stream(&self) {}
        pub(crate) fn too_many_pings(&self) {}
        pub(crate) fn retried(&self, _reason: &'static str) {}
        pub(crate) fn call_attempts(&self, _attempts: u32) {}
        pub(crate) fn ejected(&self) {}
        pub(crate) fn refreshed(&self, _reason: &'static str) {}
        pub(crate) fn resized(&self, _direction: &'static str) {}
        #[inline]
        pub(crate) fn state_changed(&self, _old: Option<ChannelState>, _new: Option<ChannelState>) {
        }
        #[inline]
        pub(crate) fn in_flight(&self, _delta: f64) {}
    }
}

pub(crate) use imp::PoolMetrics;

/// The canonical upper-case name of a gRPC status code (`UNAVAILABLE`).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
