//! Field names (TOML path and environment variable), value parsing and range checks.

use std::time::Duration;

use crate::error::ConfigError;

use super::PoolConfig;

/// Every configuration field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Type,
    Host,
    Port,
    Uri,
    Endpoints,
    TlsCaCert,
    TlsClientCert,
    TlsClientKey,
    TlsDomain,
    RetryMaxAttempts,
    RetryBaseDelay,
    RetryMaxDelay,
    Name,
    Size,
    CheckoutTimeout,
    MaxInFlight,
    DrainTimeout,
    ConnectTimeout,
    RequestTimeout,
    Keepalive,
    KeepaliveTimeout,
    PingInterval,
    HealthCheck,
    HealthService,
    MinSize,
    MaxSize,
    ResizeInterval,
    ResizeStep,
    MaxConnectionAge,
    ResolveInterval,
}

impl Field {
    /// `(TOML path, environment variable suffix)`.
    const fn names(self) -> (&'static str, &'static str) {
        match self {
            Field::Type => ("endpoint.type", "ENDPOINT_TYPE"),
            Field::Host => ("endpoint.host", "HOST"),
            Field::Port => ("endpoint.port", "PORT"),
            Field::Uri => ("endpoint.uri", "URI"),
            Field::Endpoints => ("endpoints", "ENDPOINTS"),
            Field::TlsCaCert => ("endpoint.tls.ca_cert", "TLS_CA_CERT"),
            Field::TlsClientCert => ("endpoint.tls.client_cert", "TLS_CLIENT_CERT"),
            Field::TlsClientKey => ("endpoint.tls.client_key", "TLS_CLIENT_KEY"),
            Field::TlsDomain => ("endpoint.tls.domain", "TLS_DOMAIN"),
            Field::RetryMaxAttempts => ("endpoint.retry.max_attempts", "RETRY_MAX_ATTEMPTS"),
            Field::RetryBaseDelay => ("endpoint.retry.base_delay", "RETRY_BASE_DELAY"),
            Field::RetryMaxDelay => ("endpoint.retry.max_delay", "RETRY_MAX_DELAY"),
            Field::Name => ("pool.name", "POOL_NAME"),
            Field::Size => ("pool.size", "POOL_SIZE"),
            Field::CheckoutTimeout => ("pool.checkout_timeout", "CHECKOUT_TIMEOUT"),
            Field::MaxInFlight => (
                "pool.max_in_flight_per_channel",
                "MAX_IN_FLIGHT_PER_CHANNEL",
            ),
            Field::DrainTimeout => ("pool.drain_timeout", "DRAIN_TIMEOUT"),
            Field::ConnectTimeout => ("connection.connect_timeout", "CONNECT_TIMEOUT"),
            Field::RequestTimeout => ("connection.request_timeout", "REQUEST_TIMEOUT"),
            Field::Keepalive => ("connection.keepalive", "KEEPALIVE"),
            Field::KeepaliveTimeout => ("connection.keepalive_timeout", "KEEPALIVE_TIMEOUT"),
            Field::PingInterval => ("connection.ping_interval", "PING_INTERVAL"),
            Field::HealthCheck => ("connection.health_check", "HEALTH_CHECK"),
            Field::HealthService => ("connection.health_service", "HEALTH_SERVICE"),
            Field::MinSize => ("pool.min_size", "POOL_MIN_SIZE"),
            Field::MaxSize => ("pool.max_size", "POOL_MAX_SIZE"),
            Field::ResizeInterval => ("pool.resize_interval", "POOL_RESIZE_INTERVAL"),
            Field::ResizeStep => ("pool.resize_step", "POOL_RESIZE_STEP"),
            Field::MaxConnectionAge => ("connection.max_connection_age", "MAX_CONNECTION_AGE"),
            Field::ResolveInterval => ("connection.resolve_interval", "RESOLVE_INTERVAL"),
        }
    }

    #[cfg(test)]
    pub(crate) const ALL: [Field; 30] = [
        Field::Type,
        Field::Host,
        Field::Port,
        Field::Uri,
        Field::Endpoints,
        Field::TlsCaCert,
        Field::TlsClientCert,
        Field::TlsClientKey,
        Field::TlsDomain,
        Field::RetryMaxAttempts,
        Field::RetryBaseDelay,
        Field::RetryMaxDelay,
        Field::Name,
        Field::Size,
        Field::CheckoutTimeout,
        Field::MaxInFlight,
        Field::DrainTimeout,
        Field::ConnectTimeout,
        Field::RequestTimeout,
        Field::Keepalive,
        Field::KeepaliveTimeout,
        Field::PingInterval,
        Field::HealthCheck,
        Field::HealthService,
        Field::MinSize,
        Field::MaxSize,
        Field::ResizeInterval,
        Field::ResizeStep,
        Field::MaxConnectionAge,
        Field::ResolveInterval,
    ];

    /// The environment variable suffix (`POOL_SIZE`).
    pub(crate) const fn env_suffix(self) -> &'static str {
        self.names().1
    }
}

/// How errors name fields: by TOML path (code and files) or by environment variable.
#[derive(Clone, Debug)]
pub(crate) enum Naming {
    Toml,
    Env(String),
}

impl Naming {
    pub(crate) fn name(&self, field: Field) -> String {
        match self {
            Naming::Toml => field.names().0.to_owned(),
            Naming::Env(prefix) => format!("{prefix}_{}", field.env_suffix()),
        }
    }
}

/// Parses a humantime duration ("250ms", "5s", "1m 30s").
pub(crate) fn parse_duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::invalid(
            name,
            format!("{value:?}"),
            format!("must be a duration like \"250ms\" or \"5s\" ({e})"),
        )
    })
}

/// Parses a duration or "off".
pub(crate) fn parse_optional_duration(
    name: &str,
    value: &str,
) -> Result<Option<Duration>, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "disabled" => Ok(None),
        _ => parse_duration(name, value).map(Some),
    }
}

pub(crate) fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            name,
            format!("{value:?}"),
            "must be true or false",
        )),
    }
}

/// Converts an integer to `T`, naming the field when it does not fit.
pub(crate) fn int<T: TryFrom<i64>>(name: &str, value: i64, what: &str) -> Result<T, ConfigError> {
    T::try_from(value).map_err(|_| ConfigError::invalid(name, value, what))
}

pub(crate) fn parse_int(name: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ConfigError::invalid(name, format!("{value:?}"), "must be an integer"))
}

/// A duration as a user would write it: `1000h`, `90s`, `250ms`.
pub(crate) fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        return humantime::format_duration(d).to_string();
    }
    match ms {
        0 => "0s".to_owned(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

const MAX_SIZE: usize = 1024;
const MAX_ATTEMPTS: u32 = 1000;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// The shortest `connection.max_connection_age`: a connection must live long enough to be
/// useful before it is replaced.
const MIN_CONNECTION_AGE: Duration = Duration::from_millis(100);

/// A count of slots (`pool.size`, `pool.min_size`, ...): 1 to [`MAX_SIZE`].
fn count_in(naming: &Naming, field: Field, value: Option<usize>) -> Result<(), ConfigError> {
    match value {
        Some(0) => Err(ConfigError::invalid(
            naming.name(field),
            0,
            "must be at least 1",
        )),
        Some(v) if v > MAX_SIZE => Err(ConfigError::invalid(
            naming.name(field),
            v,
            format!("must be at most {MAX_SIZE}"),
        )),
        _ => Ok(()),
    }
}

/// The elastic bounds: `min_size` needs `max_size`, `min_size <= max_size`, and `size` (the
/// initial size) within them.
fn check_elastic(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    let n = |f| naming.name(f);
    count_in(naming, Field::MinSize, config.min_size)?;
    count_in(naming, Field::MaxSize, config.max_size)?;
    let Some(max) = config.max_size else {
        if let Some(min) = config.min_size {
            return Err(ConfigError::Missing {
                field: n(Field::MaxSize),
                hint: format!(
                    "{} is set ({min}); an elastic pool needs its largest size too",
                    n(Field::MinSize)
                ),
            });
        }
        return Ok(());
    };
    let min = config.min_size.unwrap_or(1);
    if min > max {
        return Err(ConfigError::invalid(
            n(Field::MinSize),
            min,
            format!("must be at most {} ({max})", n(Field::MaxSize)),
        ));
    }
    if let Some(size) = config.size {
        if size < min || size > max {
            return Err(ConfigError::invalid(
                n(Field::Size),
                size,
                format!(
                    "must be between {} ({min}) and {} ({max}) in an elastic pool",
                    n(Field::MinSize),
                    n(Field::MaxSize)
                ),
            ));
        }
    }
    Ok(())
}

fn duration_in(
    naming: &Naming,
    field: Field,
    value: Option<Duration>,
    max: Duration,
) -> Result<(), ConfigError> {
    let Some(d) = value else { return Ok(()) };
    let shown = || show(d);
    if d.is_zero() {
        return Err(ConfigError::invalid(
            naming.name(field),
            "0s",
            "must be greater than zero",
        ));
    }
    if d > max {
        return Err(ConfigError::invalid(
            naming.name(field),
            shown(),
            format!("must be at most {}", show(max)),
        ));
    }
    Ok(())
}

/// Checks every set value of `config`.
pub(crate) fn check(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    let n = |f| naming.name(f);
    if let Some(size) = config.size {
        if size == 0 {
            return Err(ConfigError::invalid(
                n(Field::Size),
                0,
                "must be at least 1",
            ));
        }
        if size > MAX_SIZE {
            return Err(ConfigError::invalid(
                n(Field::Size),
                size,
                format!("must be at most {MAX_SIZE}"),
            ));
        }
    }
    check_elastic(config, naming)?;
    count_in(naming, Field::ResizeStep, config.resize_step)?;
    if let Some(0) = config.max_in_flight_per_channel {
        return Err(ConfigError::invalid(
            n(Field::MaxInFlight),
            0,
            "must be at least 1",
        ));
    }
    if let Some(attempts) = config.retry_max_attempts {
        if attempts == 0 || attempts > MAX_ATTEMPTS {
            return Err(ConfigError::invalid(
                n(Field::RetryMaxAttempts),
                attempts,
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            ));
        }
    }
    duration_in(
        naming,
        Field::CheckoutTimeout,
        config.checkout_timeout,
        HOUR,
    )?;
    duration_in(naming, Field::DrainTimeout, config.drain_timeout, HOUR)?;
    duration_in(naming, Field::ConnectTimeout, config.connect_timeout, HOUR)?;
    duration_in(naming, Field::RequestTimeout, config.request_timeout, DAY)?;
    duration_in(naming, Field::Keepalive, config.keepalive, DAY)?;
    duration_in(
        naming,
        Field::KeepaliveTimeout,
        config.keepalive_timeout,
        HOUR,
    )?;
    duration_in(
        naming,
        Field::PingInterval,
        config.ping_interval.flatten(),
        DAY,
    )?;
    duration_in(naming, Field::ResizeInterval, config.resize_interval, HOUR)?;
    if let Some(age) = config.max_connection_age.flatten() {
        if age < MIN_CONNECTION_AGE {
            return Err(ConfigError::invalid(
                n(Field::MaxConnectionAge),
                show(age),
                format!("must be at least {}", show(MIN_CONNECTION_AGE)),
            ));
        }
    }
    duration_in(
        naming,
        Field::MaxConnectionAge,
        config.max_connection_age.flatten(),
        DAY,
    )?;
    duration_in(
        naming,
        Field::ResolveInterval,
        config.resolve_interval.flatten(),
        DAY,
    )?;
    duration_in(naming, Field::RetryBaseDelay, config.retry_base_delay, HOUR)?;
    duration_in(naming, Field::RetryMaxDelay, config.retry_max_delay, DAY)?;
    let retry = config.retry();
    if retry.max_delay < retry.base_delay {
        return Err(ConfigError::invalid(
            n(Field::RetryMaxDelay),
            show(retry.max_delay),
            format!(
                "must be at least {} ({})",
                n(Field::RetryBaseDelay),
                show(retry.base_delay)
            ),
        ));
    }
    if let Some(name) = &config.name {
        if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                n(Field::Name),
                format!("{name:?}"),
                "must be a non-empty printable name of at most 200 bytes",
            ));
        }
    }
    if let Some(service) = &config.health_service {
        if service.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::invalid(
                n(Field::HealthService),
                format!("{service:?}"),
                "must be a service name without spaces (\"\" for the whole server)",
            ));
        }
    }
    if let Some(0) = config.port {
        return Err(ConfigError::invalid(
            n(Field::Port),
            0,
            "must be between 1 and 65535",
        ));
    }
    if let Some(host) = &config.host {
        super::resolve::check_host(&n(Field::Host), host)?;
    }
    if let Some(uri) = &config.uri {
        super::resolve::parse_uri(&n(Field::Uri), uri)?;
    }
    for uri in &config.endpoints {
        super::resolve::parse_uri(&n(Field::Endpoints), uri)?;
    }
    if config.uri.is_some() && config.host.is_some() {
        return Err(ConfigError::Conflict {
            first: n(Field::Uri),
            second: n(Field::Host),
            reason: "set either a URI or a host and port".into(),
        });
    }
    if config.port.is_some() && config.host.is_none() {
        return Err(ConfigError::Missing {
            field: n(Field::Host),
            hint: format!("{} is set without a host", n(Field::Port)),
        });
    }
    if let Some(tls) = &config.tls {
        tls.check(naming)?;
    }
    super::resolve::check_scheme_consistency(config, naming)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elastic(
        size: Option<usize>,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Result<(), ConfigError> {
        let config = PoolConfig {
            size,
            min_size: min,
            max_size: max,
            ..PoolConfig::default()
        };
        check(&config, &Naming::Toml)
    }

    fn invalid(result: Result<(), ConfigError>) -> (String, String, String) {
        match result {
            Err(ConfigError::Invalid {
                field,
                value,
                reason,
            }) => (field, value, reason),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn every_field_has_a_distinct_toml_path() {
        let mut names: Vec<&str> = Field::ALL.iter().map(|f| f.names().0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Field::ALL.len());
    }

    #[test]
    fn elastic_bounds_that_hold() {
        elastic(None, None, Some(1)).unwrap();
        elastic(None, Some(1), Some(1)).unwrap();
        elastic(None, Some(4), Some(1024)).unwrap();
        elastic(Some(4), Some(4), Some(8)).unwrap();
        elastic(Some(8), Some(4), Some(8)).unwrap();
        elastic(Some(1), None, Some(8)).unwrap();
    }

    #[test]
    fn elastic_bounds_out_of_range() {
        for (min, max, field, value) in [
            (Some(0), Some(4), "pool.min_size", "0"),
            (Some(2000), Some(4), "pool.min_size", "2000"),
            (None, Some(0), "pool.max_size", "0"),
            (Some(1), Some(1025), "pool.max_size", "1025"),
        ] {
            let (f, v, _) = invalid(elastic(None, min, max));
            assert_eq!((f.as_str(), v.as_str()), (field, value));
        }
    }

    #[test]
    fn min_size_needs_max_size() {
        match elastic(None, Some(2), None) {
            Err(ConfigError::Missing { field, hint }) => {
                assert_eq!(field, "pool.max_size");
                assert!(hint.contains("pool.min_size"), "{hint}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn min_size_above_max_size_names_both() {
        let (field, value, reason) = invalid(elastic(None, Some(9), Some(4)));
        assert_eq!((field.as_str(), value.as_str()), ("pool.min_size", "9"));
        assert!(
            reason.contains("pool.max_size") && reason.contains('4'),
            "{reason}"
        );
    }

    #[test]
    fn size_outside_the_elastic_bounds() {
        for (size, min) in [(Some(9), Some(2)), (Some(1), Some(2))] {
            let (field, value, reason) = invalid(elastic(size, min, Some(8)));
            assert_eq!(field, "pool.size");
            assert_eq!(value, size.unwrap().to_string());
            assert!(reason.contains("pool.min_size (2)"), "{reason}");
            assert!(reason.contains("pool.max_size (8)"), "{reason}");
        }
        // The default minimum is 1 when only max_size is set.
        let (field, _, reason) = invalid(elastic(Some(9), None, Some(8)));
        assert_eq!(field, "pool.size");
        assert!(reason.contains("pool.min_size (1)"), "{reason}");
    }

    #[test]
    fn size_outside_bounds_under_env_naming() {
        let config = PoolConfig {
            size: Some(9),
            max_size: Some(8),
            ..PoolConfig::default()
        };
        let (field, _, reason) = invalid(check(&config, &Naming::Env("APP".into())));
        assert_eq!(field, "APP_POOL_SIZE");
        assert!(reason.contains("APP_POOL_MAX_SIZE (8)"), "{reason}");
    }

    #[test]
    fn resize_and_refresh_bounds() {
        fn ms(n: u64) -> Duration {
            Duration::from_millis(n)
        }
        let with = |f: fn(&mut PoolConfig)| {
            let mut c = PoolConfig::default();
            f(&mut c);
            check(&c, &Naming::Toml)
        };
        /// (how to set the value, field, value shown, reason)
        type Case = (
            fn(&mut PoolConfig),
            &'static str,
            &'static str,
            &'static str,
        );
        #[rustfmt::skip]
        let cases: [Case; 8] = [
            (|c| c.resize_interval = Some(Duration::ZERO), "pool.resize_interval", "0s", "greater than zero"),
            (|c| c.resize_interval = Some(HOUR + ms(1000)), "pool.resize_interval", "3601s", "at most 1h"),
            (|c| c.resize_step = Some(0), "pool.resize_step", "0", "at least 1"),
            (|c| c.resize_step = Some(1025), "pool.resize_step", "1025", "at most 1024"),
            (|c| c.max_connection_age = Some(Some(ms(99))), "connection.max_connection_age", "99ms", "must be at least 100ms"),
            (|c| c.max_connection_age = Some(Some(Duration::ZERO)), "connection.max_connection_age", "0s", "must be at least 100ms"),
            (|c| c.max_connection_age = Some(Some(DAY + ms(1000))), "connection.max_connection_age", "86401s", "at most 24h"),
            (|c| c.resolve_interval = Some(Some(Duration::ZERO)), "connection.resolve_interval", "0s", "greater than zero"),
        ];
        for (set, field, value, reason) in cases {
            let (f, v, r) = invalid(with(set));
            assert_eq!((f.as_str(), v.as_str()), (field, value), "{r}");
            assert!(r.contains(reason), "{field}: {r}");
        }
        with(|c| c.max_connection_age = Some(Some(ms(100)))).unwrap();
        with(|c| c.max_connection_age = Some(Some(DAY))).unwrap();
        with(|c| c.max_connection_age = Some(None)).unwrap();
        with(|c| c.resolve_interval = Some(None)).unwrap();
        with(|c| c.resolve_interval = Some(Some(DAY))).unwrap();
        with(|c| c.resize_interval = Some(HOUR)).unwrap();
        with(|c| c.resize_step = Some(1024)).unwrap();
        let (f, _, _) = invalid(with(|c| c.resolve_interval = Some(Some(DAY + ms(1)))));
        assert_eq!(f, "connection.resolve_interval");
    }
}
