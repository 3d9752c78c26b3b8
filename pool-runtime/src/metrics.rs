//! Counters and histograms through the `metrics` facade (cargo feature `metrics`), labelled
//! by pool name. Without the feature every function is a no-op.

use std::time::Duration;

#[cfg(feature = "metrics")]
mod imp {
    use super::Duration;

    pub(crate) fn checkout_wait(pool: &str, waited: Duration) {
        metrics::histogram!("grpc_pool_checkout_wait_seconds", "pool" => pool.to_owned())
            .record(waited.as_secs_f64());
    }
    pub(crate) fn checkout_timeout(pool: &str) {
        metrics::counter!("grpc_pool_checkout_timeouts_total", "pool" => pool.to_owned())
            .increment(1);
    }
    pub(crate) fn reconnect(pool: &str) {
        metrics::counter!("grpc_pool_reconnects_total", "pool" => pool.to_owned()).increment(1);
    }
    pub(crate) fn connect_failed(pool: &str) {
        metrics::counter!("grpc_pool_connect_failures_total", "pool" => pool.to_owned())
            .increment(1);
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use super::Duration;

    pub(crate) fn checkout_wait(_pool: &str, _waited: Duration) {}
    pub(crate) fn checkout_timeout(_pool: &str) {}
    pub(crate) fn reconnect(_pool: &str) {}
    pub(crate) fn connect_failed(_pool: &str) {}
}

pub(crate) use imp::{checkout_timeout, checkout_wait, connect_failed, reconnect};
