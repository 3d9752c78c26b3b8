//! The table of settings: every configuration field with its TOML path, environment
//! variable suffix and the values it accepts.
//!
//! This file is the one source of those rules for three crates: the runtime validates
//! configuration with it, the `#[grpc_pool]` attribute checks its values against it at
//! compile time, and the code generator takes the transparent-retry count from it for the
//! docs it writes. It depends on nothing but `std`, so `grpc-pool-macros` and
//! `grpc-pool-build` include it as a module of their own (`src/rules.rs` there is a symlink
//! to this file, which `cargo package` turns into a copy), and no value the runtime would
//! reject compiles in an attribute.

// Each including crate uses its own part of the table, as a private module.
#![allow(dead_code, unreachable_pub)]

use core::time::Duration;

const SECOND: Duration = Duration::from_secs(1);
/// One hour, the cap of timeouts.
pub const HOUR: Duration = Duration::from_secs(3600);
/// One day, the cap of intervals and ages.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// The most slots a pool may have.
pub const MAX_SLOTS: u64 = 1024;

/// How many times a call that provably never reached the server is sent again, each time on
/// another connection. gRPC allows unlimited transparent retries for requests that never left
/// the client; a small bound keeps a pool whose connections all fail from looping.
pub const MAX_TRANSPARENT_RETRIES: usize = 3;

/// What a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer from `min` to `max`.
    Count {
        /// The smallest value.
        min: u64,
        /// The largest value.
        max: u64,
    },
    /// A duration greater than zero, at least `min` and at most `max`; with `off`, the
    /// string `"off"` turns the feature off.
    Duration {
        /// The shortest value (zero means any value above zero).
        min: Duration,
        /// The longest value.
        max: Duration,
        /// Whether `"off"` is accepted.
        off: bool,
    },
    /// `true` or `false`.
    Bool,
    /// Free text, checked by the field's own rule (names, host names, URIs, paths).
    Text,
    /// A list of URIs.
    List,
}

/// One setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its TOML path (`pool.size`), also how code and file errors name it.
    pub path: &'static str,
    /// Its environment variable, after `{PREFIX}_` (`POOL_SIZE`).
    pub env: &'static str,
    /// What it accepts.
    pub kind: Kind,
}

const fn count(path: &'static str, env: &'static str, min: u64, max: u64) -> Field {
    Field {
        path,
        env,
        kind: Kind::Count { min, max },
    }
}

const fn duration(path: &'static str, env: &'static str, max: Duration) -> Field {
    Field {
        path,
        env,
        kind: Kind::Duration {
            min: Duration::ZERO,
            max,
            off: false,
        },
    }
}

const fn duration_or_off(
    path: &'static str,
    env: &'static str,
    min: Duration,
    max: Duration,
) -> Field {
    Field {
        path,
        env,
        kind: Kind::Duration {
            min,
            max,
            off: true,
        },
    }
}

const fn of(path: &'static str, env: &'static str, kind: Kind) -> Field {
    Field { path, env, kind }
}

/// The shortest `connection.max_connection_age`: a connection must live long enough to be
/// useful before it is replaced.
pub const MIN_CONNECTION_AGE: Duration = Duration::from_millis(100);

/// Every setting, in the order of the TOML schema.
pub const FIELDS: &[Field] = &[
    of("endpoints", "ENDPOINTS", Kind::List),
    of("endpoint.type", "ENDPOINT_TYPE", Kind::Text),
    of("endpoint.host", "HOST", Kind::Text),
    count("endpoint.port", "PORT", 1, 65535),
    of("endpoint.uri", "URI", Kind::Text),
    of("endpoint.tls.ca_cert", "TLS_CA_CERT", Kind::Text),
    of("endpoint.tls.client_cert", "TLS_CLIENT_CERT", Kind::Text),
    of("endpoint.tls.client_key", "TLS_CLIENT_KEY", Kind::Text),
    of("endpoint.tls.domain", "TLS_DOMAIN", Kind::Text),
    count("endpoint.retry.max_attempts", "RETRY_MAX_ATTEMPTS", 1, 1000),
    duration("endpoint.retry.base_delay", "RETRY_BASE_DELAY", HOUR),
    duration("endpoint.retry.max_delay", "RETRY_MAX_DELAY", DAY),
    of("pool.name", "POOL_NAME", Kind::Text),
    count("pool.size", "POOL_SIZE", 1, MAX_SLOTS),
    count("pool.min_size", "POOL_MIN_SIZE", 1, MAX_SLOTS),
    count("pool.max_size", "POOL_MAX_SIZE", 1, MAX_SLOTS),
    duration("pool.resize_interval", "POOL_RESIZE_INTERVAL", HOUR),
    count("pool.resize_step", "POOL_RESIZE_STEP", 1, MAX_SLOTS),
    duration("pool.checkout_timeout", "CHECKOUT_TIMEOUT", HOUR),
    count(
        "pool.max_in_flight_per_channel",
        "MAX_IN_FLIGHT_PER_CHANNEL",
        1,
        u64::MAX,
    ),
    duration("pool.drain_timeout", "DRAIN_TIMEOUT", HOUR),
    of("pool.wait_for_ready", "WAIT_FOR_READY", Kind::Bool),
    duration("connection.connect_timeout", "CONNECT_TIMEOUT", HOUR),
    duration("connection.request_timeout", "REQUEST_TIMEOUT", DAY),
    duration("connection.keepalive", "KEEPALIVE", DAY),
    duration("connection.keepalive_timeout", "KEEPALIVE_TIMEOUT", HOUR),
    of(
        "connection.keepalive_while_idle",
        "KEEPALIVE_WHILE_IDLE",
        Kind::Bool,
    ),
    duration_or_off(
        "connection.ping_interval",
        "PING_INTERVAL",
        Duration::ZERO,
        DAY,
    ),
    duration(
        "connection.reconnect_probe_interval",
        "RECONNECT_PROBE_INTERVAL",
        Duration::from_secs(60),
    ),
    of("connection.health_check", "HEALTH_CHECK", Kind::Bool),
    of("connection.health_service", "HEALTH_SERVICE", Kind::Text),
    duration_or_off(
        "connection.max_connection_age",
        "MAX_CONNECTION_AGE",
        MIN_CONNECTION_AGE,
        DAY,
    ),
    duration_or_off(
        "connection.resolve_interval",
        "RESOLVE_INTERVAL",
        Duration::ZERO,
        DAY,
    ),
    // HTTP/2's bounds (RFC 9113 §6.5.2): windows up to 2^31-1, frames from 2^14 to 2^24-1.
    count(
        "connection.http2.initial_stream_window_size",
        "HTTP2_INITIAL_STREAM_WINDOW_SIZE",
        1,
        MAX_WINDOW,
    ),
    count(
        "connection.http2.initial_connection_window_size",
        "HTTP2_INITIAL_CONNECTION_WINDOW_SIZE",
        1,
        MAX_WINDOW,
    ),
    of(
        "connection.http2.adaptive_window",
        "HTTP2_ADAPTIVE_WINDOW",
        Kind::Bool,
    ),
    count(
        "connection.http2.max_frame_size",
        "HTTP2_MAX_FRAME_SIZE",
        1 << 14,
        (1 << 24) - 1,
    ),
    count(
        "connection.http2.max_header_list_size",
        "HTTP2_MAX_HEADER_LIST_SIZE",
        1,
        u32::MAX as u64,
    ),
    of("connection.service_config", "SERVICE_CONFIG", Kind::Text),
    of(
        "discovery.etcd.endpoints",
        "DISCOVERY_ETCD_ENDPOINTS",
        Kind::List,
    ),
    of("discovery.etcd.user", "DISCOVERY_ETCD_USER", Kind::Text),
    of(
        "discovery.etcd.password",
        "DISCOVERY_ETCD_PASSWORD",
        Kind::Text,
    ),
    of(
        "discovery.etcd.tls.ca_cert",
        "DISCOVERY_ETCD_TLS_CA_CERT",
        Kind::Text,
    ),
    of(
        "discovery.etcd.tls.client_cert",
        "DISCOVERY_ETCD_TLS_CLIENT_CERT",
        Kind::Text,
    ),
    of(
        "discovery.etcd.tls.client_key",
        "DISCOVERY_ETCD_TLS_CLIENT_KEY",
        Kind::Text,
    ),
    of(
        "discovery.etcd.tls.domain",
        "DISCOVERY_ETCD_TLS_DOMAIN",
        Kind::Text,
    ),
];

/// The largest HTTP/2 flow-control window.
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// The field at `path`, if there is one.
pub fn field(path: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.path == path)
}

/// A duration as a user would write it: `24h`, `90s`, `250ms`.
pub fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{d:?}");
    }
    match d.as_millis() {
        0 => "0s".to_owned(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// Why `value` is not accepted by a [`Kind::Count`] field, in the words errors use.
pub fn check_count(kind: Kind, value: u64) -> Result<(), String> {
    match kind {
        Kind::Count { min, .. } if value < min => Err(format!("must be at least {min}")),
        Kind::Count { max, .. } if value > max => Err(format!("must be at most {max}")),
        _ => Ok(()),
    }
}

/// Why `value` is not accepted by a [`Kind::Duration`] field, in the words errors use.
pub fn check_duration(kind: Kind, value: Duration) -> Result<(), String> {
    let Kind::Duration { min, max, .. } = kind else {
        return Ok(());
    };
    if !min.is_zero() && value < min {
        Err(format!("must be at least {}", show_duration(min)))
    } else if value.is_zero() {
        Err("must be greater than zero".to_owned())
    } else if value > max {
        Err(format!("must be at most {}", show_duration(max)))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_variables_are_distinct() {
        for (i, a) in FIELDS.iter().enumerate() {
            for b in &FIELDS[i + 1..] {
                assert_ne!(a.path, b.path);
                assert_ne!(a.env, b.env);
            }
        }
    }

    #[test]
    fn bounds_read_as_errors_say_them() {
        let size = field("pool.size").unwrap().kind;
        assert_eq!(check_count(size, 0).unwrap_err(), "must be at least 1");
        assert_eq!(check_count(size, 1025).unwrap_err(), "must be at most 1024");
        check_count(size, 1024).unwrap();
        let age = field("connection.max_connection_age").unwrap().kind;
        assert_eq!(
            check_duration(age, Duration::from_millis(99)).unwrap_err(),
            "must be at least 100ms"
        );
        assert_eq!(
            check_duration(age, DAY + SECOND).unwrap_err(),
            "must be at most 24h"
        );
        let timeout = field("pool.checkout_timeout").unwrap().kind;
        assert_eq!(
            check_duration(timeout, Duration::ZERO).unwrap_err(),
            "must be greater than zero"
        );
    }
}
