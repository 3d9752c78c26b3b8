//! The TOML schema as serde types, and conversions to and from [`PoolConfig`].
//!
//! Durations are strings parsed here (not by serde) so errors name the field and the value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

use super::fields::{int, parse_duration, parse_optional_duration, Field, Naming};
use super::{PoolConfig, TlsConfig};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<RawEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<RawPool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<RawConnection>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<RawTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<RawRetry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_delay: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkout_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_in_flight_per_channel: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drain_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resize_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resize_step: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connect_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keepalive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keepalive_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ping_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health_check: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_connection_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolve_interval: Option<String>,
}

/// Parses TOML text into a checked [`PoolConfig`].
pub(super) fn from_toml(text: &str, origin: Option<&Path>) -> Result<PoolConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Toml {
        origin: origin.map(Path::to_path_buf),
        message: e.to_string().trim_end().to_owned(),
    })?;
    PoolConfig::try_from(raw)
}

fn dur(field: Field, value: Option<String>) -> Result<Option<Duration>, ConfigError> {
    value
        .map(|v| parse_duration(&Naming::Toml.name(field), &v))
        .transpose()
}

/// A duration or "off".
fn optional_dur(
    field: Field,
    value: Option<String>,
) -> Result<Option<Option<Duration>>, ConfigError> {
    value
        .map(|v| parse_optional_duration(&Naming::Toml.name(field), &v))
        .transpose()
}

fn count<T: TryFrom<i64>>(
    field: Field,
    value: Option<i64>,
    what: &str,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| int(&Naming::Toml.name(field), v, what))
        .transpose()
}

/// The range of slot counts (`pool.size`, `pool.min_size`, ...).
const SLOTS: &str = "must be between 1 and 1024";

impl TryFrom<RawConfig> for PoolConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let endpoint = raw.endpoint.unwrap_or_default();
        let retry = endpoint.retry.unwrap_or_default();
        let pool = raw.pool.unwrap_or_default();
        let conn = raw.connection.unwrap_or_default();
        let config = PoolConfig {
            interceptor: None,
            resolver: None,
            preset: endpoint.kind.map(|k| k.parse()).transpose()?,
            host: endpoint.host,
            port: count(Field::Port, endpoint.port, "must be between 1 and 65535")?,
            uri: endpoint.uri,
            endpoints: raw.endpoints,
            tls: endpoint.tls.map(|t| TlsConfig {
                ca_cert: t.ca_cert,
                client_cert: t.client_cert,
                client_key: t.client_key,
                domain: t.domain,
            }),
            retry_max_attempts: count(
                Field::RetryMaxAttempts,
                retry.max_attempts,
                "must be between 1 and 1000",
            )?,
            retry_base_delay: dur(Field::RetryBaseDelay, retry.base_delay)?,
            retry_max_delay: dur(Field::RetryMaxDelay, retry.max_delay)?,
            name: pool.name,
            size: count(Field::Size, pool.size, SLOTS)?,
            checkout_timeout: dur(Field::CheckoutTimeout, pool.checkout_timeout)?,
            max_in_flight_per_channel: count(
                Field::MaxInFlight,
                pool.max_in_flight_per_channel,
                "must be at least 1",
            )?,
            drain_timeout: dur(Field::DrainTimeout, pool.drain_timeout)?,
            connect_timeout: dur(Field::ConnectTimeout, conn.connect_timeout)?,
            request_timeout: dur(Field::RequestTimeout, conn.request_timeout)?,
            keepalive: dur(Field::Keepalive, conn.keepalive)?,
            keepalive_timeout: dur(Field::KeepaliveTimeout, conn.keepalive_timeout)?,
            ping_interval: optional_dur(Field::PingInterval, conn.ping_interval)?,
            health_check: conn.health_check,
            health_service: conn.health_service,
            min_size: count(Field::MinSize, pool.min_size, SLOTS)?,
            max_size: count(Field::MaxSize, pool.max_size, SLOTS)?,
            resize_interval: dur(Field::ResizeInterval, pool.resize_interval)?,
            resize_step: count(Field::ResizeStep, pool.resize_step, SLOTS)?,
            max_connection_age: optional_dur(Field::MaxConnectionAge, conn.max_connection_age)?,
            resolve_interval: optional_dur(Field::ResolveInterval, conn.resolve_interval)?,
        };
        config.check_fields(&Naming::Toml)?;
        Ok(config)
    }
}

fn show(d: Option<Duration>) -> Option<String> {
    d.map(super::fields::show)
}

/// A duration, or "off" for `None`.
fn show_or_off(d: Option<Duration>) -> String {
    show(d).unwrap_or_else(|| "off".to_owned())
}

fn some_if<T>(value: T, any: bool) -> Option<T> {
    any.then_some(value)
}

impl From<PoolConfig> for RawConfig {
    fn from(c: PoolConfig) -> Self {
        let retry = RawRetry {
            max_attempts: c.retry_max_attempts.map(i64::from),
            base_delay: show(c.retry_base_delay),
            max_delay: show(c.retry_max_delay),
        };
        let has_retry =
            retry.max_attempts.is_some() || retry.base_delay.is_some() || retry.max_delay.is_some();
        let endpoint = RawEndpoint {
            kind: c.preset.map(|p| p.as_str().to_owned()),
            host: c.host,
            port: c.port.map(i64::from),
            uri: c.uri,
            tls: c.tls.map(|t| RawTls {
                ca_cert: t.ca_cert,
                client_cert: t.client_cert,
                client_key: t.client_key,
                domain: t.domain,
            }),
            retry: some_if(retry, has_retry),
        };
        let has_endpoint = endpoint.kind.is_some()
            || endpoint.host.is_some()
            || endpoint.port.is_some()
            || endpoint.uri.is_some()
            || endpoint.tls.is_some()
            || endpoint.retry.is_some();
        let pool = RawPool {
            name: c.name,
            size: c.size.and_then(|s| i64::try_from(s).ok()),
            checkout_timeout: show(c.checkout_timeout),
            max_in_flight_per_channel: c
                .max_in_flight_per_channel
                .and_then(|s| i64::try_from(s).ok()),
            drain_timeout: show(c.drain_timeout),
            min_size: c.min_size.and_then(|s| i64::try_from(s).ok()),
            max_size: c.max_size.and_then(|s| i64::try_from(s).ok()),
            resize_interval: show(c.resize_interval),
            resize_step: c.resize_step.and_then(|s| i64::try_from(s).ok()),
        };
        let has_pool = pool.name.is_some()
            || pool.size.is_some()
            || pool.checkout_timeout.is_some()
            || pool.max_in_flight_per_channel.is_some()
            || pool.drain_timeout.is_some()
            || pool.min_size.is_some()
            || pool.max_size.is_some()
            || pool.resize_interval.is_some()
            || pool.resize_step.is_some();
        let conn = RawConnection {
            connect_timeout: show(c.connect_timeout),
            request_timeout: show(c.request_timeout),
            keepalive: show(c.keepalive),
            keepalive_timeout: show(c.keepalive_timeout),
            ping_interval: c.ping_interval.map(show_or_off),
            health_check: c.health_check,
            health_service: c.health_service,
            max_connection_age: c.max_connection_age.map(show_or_off),
            resolve_interval: c.resolve_interval.map(show_or_off),
        };
        let has_conn = conn.connect_timeout.is_some()
            || conn.request_timeout.is_some()
            || conn.keepalive.is_some()
            || conn.keepalive_timeout.is_some()
            || conn.ping_interval.is_some()
            || conn.health_check.is_some()
            || conn.health_service.is_some()
            || conn.max_connection_age.is_some()
            || conn.resolve_interval.is_some();
        RawConfig {
            endpoints: c.endpoints,
            endpoint: some_if(endpoint, has_endpoint),
            pool: some_if(pool, has_pool),
            connection: some_if(conn, has_conn),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn round_trip(config: &PoolConfig) -> (String, PoolConfig) {
        let text = toml::to_string(config).unwrap();
        let back = from_toml(&text, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, back)
    }

    #[test]
    fn new_fields_round_trip() {
        let config = PoolConfig::local("127.0.0.1", 50051)
            .size(3)
            .min_size(2)
            .max_size(12)
            .resize_interval(Duration::from_millis(1500))
            .resize_step(4)
            .max_connection_age(Some(Duration::from_secs(600)))
            .resolve_interval(Some(Duration::from_secs(45)))
            .build()
            .unwrap();
        let (text, back) = round_trip(&config);
        for line in [
            "min_size = 2",
            "max_size = 12",
            "resize_interval = \"1500ms\"",
            "resize_step = 4",
            "max_connection_age = \"10m\"",
            "resolve_interval = \"45s\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(back, config);
        assert_eq!(back.min_size, Some(2));
        assert_eq!(back.max_size, Some(12));
        assert_eq!(back.resize_interval, Some(Duration::from_millis(1500)));
        assert_eq!(back.resize_step, Some(4));
        assert_eq!(
            back.max_connection_age,
            Some(Some(Duration::from_secs(600)))
        );
        assert_eq!(back.resolve_interval, Some(Some(Duration::from_secs(45))));
    }

    #[test]
    fn off_round_trips_as_off() {
        let config = PoolConfig::production("api", 443)
            .max_connection_age(None)
            .resolve_interval(None)
            .build()
            .unwrap();
        let (text, back) = round_trip(&config);
        assert!(text.contains("max_connection_age = \"off\""), "{text}");
        assert!(text.contains("resolve_interval = \"off\""), "{text}");
        assert_eq!(back, config);
        assert_eq!(back.max_connection_age(), None);
        assert_eq!(back.resolve_interval(), None);
    }

    #[test]
    fn new_fields_parse_from_toml() {
        let config = from_toml(
            r#"
            [pool]
            min_size = 1
            max_size = 8
            resize_interval = "2s"
            resize_step = 3
            [connection]
            max_connection_age = "50m"
            resolve_interval = "off"
            "#,
            None,
        )
        .unwrap();
        assert!(config.is_elastic());
        assert_eq!(
            (config.size(), config.min_size(), config.max_size()),
            (1, 1, 8)
        );
        assert_eq!(config.resize_interval(), Duration::from_secs(2));
        assert_eq!(config.resize_step(), 3);
        assert_eq!(config.max_connection_age(), Some(Duration::from_secs(3000)));
        assert_eq!(config.resolve_interval(), None);
    }

    #[test]
    fn unset_new_fields_are_not_written() {
        let config = PoolConfig::local("h", 1).build().unwrap();
        let text = toml::to_string(&config).unwrap();
        for key in [
            "min_size",
            "max_size",
            "resize",
            "max_connection_age",
            "resolve_interval",
            "resolver",
        ] {
            assert!(!text.contains(key), "{key} in\n{text}");
        }
    }

    #[test]
    fn a_resolver_is_not_serialised() {
        #[derive(Debug)]
        struct Nothing;
        impl crate::resolver::Resolve for Nothing {
            fn resolve(&self, _: &str, _: u16) -> crate::resolver::ResolveFuture {
                Box::pin(async { Ok(Vec::new()) })
            }
        }
        let config = PoolConfig::local("h", 1).resolver(Nothing).build().unwrap();
        let (text, back) = round_trip(&config);
        assert!(!text.contains("resolver"), "{text}");
        assert!(back.resolver.is_none());
        assert!(format!("{config:?}").contains("resolver: Some(\"<resolver>\")"));
        assert!(format!("{back:?}").contains("resolver: None"));
    }
}
