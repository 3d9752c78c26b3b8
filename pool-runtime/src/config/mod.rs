//! Pool configuration: schema, presets, builder, environment, TOML and validation.
//!
//! A [`PoolConfig`] is a set of *explicit* settings; every unset field falls back, in order,
//! to the defaults of a [`NamedPool`](crate::NamedPool) (for `#[grpc_pool]` pools), to the
//! [`Preset`] (`endpoint.type`), and to the library defaults. The getters return the value in
//! effect.
//!
//! | setting | default | `production` | `local` | `test` |
//! |---|---|---|---|---|
//! | transport | plaintext unless `https://` or `[endpoint.tls]` | TLS, system + webpki roots | plaintext | plaintext |
//! | `pool.size` | 5 (elastic: `pool.min_size`) | | | |
//! | `pool.min_size` / `pool.max_size` | unset (fixed size); `min_size` 1 when `max_size` is set | | | |
//! | `pool.resize_interval` / `resize_step` | 5 s / 2 | | | |
//! | `pool.checkout_timeout` | 15 s | | | 5 s |
//! | `pool.drain_timeout` | 10 s | | | 2 s |
//! | `pool.wait_for_ready` | false | | | |
//! | `connection.connect_timeout` | 5 s | | | 2 s |
//! | `connection.keepalive` / `keepalive_timeout` | 30 s / 10 s | | | |
//! | `connection.keepalive_while_idle` | false | | | |
//! | `connection.ping_interval` | 25 s | | | off |
//! | `connection.reconnect_probe_interval` | 50 ms | | | |
//! | `connection.health_check` | false | true | | false |
//! | `connection.max_connection_age` | off | 50 min (±10 % jitter) | | |
//! | `connection.resolve_interval` | 30 s | | | |
//! | `connection.http2.*` (window sizes, `adaptive_window`, `max_frame_size`, `max_header_list_size`) | hyper's | | | |
//! | resolver (code only) | the system resolver ([`DnsResolver`](crate::resolver::DnsResolver)) | | | |
//! | `endpoint.retry` | 3 / 1 s / 5 s | | | 3 / 50 ms / 250 ms |

mod builder;
mod check;
mod etcd;
mod load;
mod preset;
mod retry;
mod schema;
mod tls;

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use builder::PoolConfigBuilder;
pub(crate) use check::{
    endpoints as endpoint_targets, parse_target, parse_uri as parse_endpoint_uri, Target,
};
pub use etcd::EtcdConfig;
pub use preset::Preset;
use preset::PRESETS;
pub use retry::RetryConfig;
pub use tls::TlsConfig;

pub use crate::outlier::{FailurePercentageEjection, OutlierDetection, SuccessRateEjection};

use crate::error::ConfigError;
pub(crate) use load::Naming;
use schema::{ConnectionSection, DiscoverySection, EndpointSection, PoolSection, Section};

/// The configuration of a [`Pool`](crate::Pool).
///
/// Build one with [`PoolConfig::builder`] or a preset ([`PoolConfig::production`],
/// [`local`](PoolConfig::local), [`test`](PoolConfig::test)), or load it with
/// [`from_toml_str`](PoolConfig::from_toml_str), [`from_file`](PoolConfig::from_file) or
/// [`from_env`](PoolConfig::from_env). Serialises to and from the TOML schema
/// (`endpoints`, `[endpoint]`, `[endpoint.tls]`, `[endpoint.retry]`, `[pool]`,
/// `[connection]`); deserializing checks shapes and formats, [`validate`](Self::validate)
/// (or [`Pool::start`](crate::Pool::start)) checks ranges. `Debug` never shows key material.
#[derive(Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// More backends, after `endpoint`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) endpoints: Vec<String>,
    #[serde(skip_serializing_if = "Section::is_empty")]
    pub(crate) endpoint: EndpointSection,
    #[serde(skip_serializing_if = "Section::is_empty")]
    pub(crate) pool: PoolSection,
    #[serde(skip_serializing_if = "Section::is_empty")]
    pub(crate) connection: ConnectionSection,
    #[serde(skip_serializing_if = "Section::is_empty")]
    pub(crate) discovery: DiscoverySection,
    /// Code, not data: never serialised, shown only as present or absent.
    #[serde(skip)]
    pub(crate) interceptor: Option<RequestInterceptor>,
    /// Code, not data: never serialised, shown only as present or absent.
    #[serde(skip)]
    pub(crate) resolver: Option<crate::resolver::ResolverHook>,
    /// A service config given as text in code ([`PoolConfigBuilder::service_config_json`]);
    /// files are named by `connection.service_config`.
    #[serde(skip)]
    pub(crate) service_config_json: Option<String>,
    /// Outlier detection set in code ([`PoolConfigBuilder::outlier_detection`]); files give
    /// it in the service config.
    #[serde(skip)]
    pub(crate) outlier_detection: Option<OutlierDetection>,
}

/// A per-pool request interceptor (see [`PoolConfigBuilder::interceptor`]).
#[derive(Clone)]
pub(crate) struct RequestInterceptor(pub(crate) crate::interceptor::Interceptor);

impl fmt::Debug for RequestInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<interceptor>")
    }
}

/// Two configurations are equal only if they share the same interceptor instance.
impl PartialEq for RequestInterceptor {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

const SECOND: Duration = Duration::from_secs(1);

impl PoolConfig {
    /// A builder with nothing set (add at least one [`endpoint`](PoolConfigBuilder::endpoint)).
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder::default()
    }

    /// The `production` preset: TLS with the system and webpki roots, health checks on.
    pub fn production(host: impl Into<String>, port: u16) -> PoolConfigBuilder {
        PoolConfigBuilder::with_preset(Preset::Production, host.into(), port)
    }

    /// The `local` preset: plaintext.
    pub fn local(host: impl Into<String>, port: u16) -> PoolConfigBuilder {
        PoolConfigBuilder::with_preset(Preset::Local, host.into(), port)
    }

    /// The `test` preset: plaintext, fast retries, no periodic health pings.
    pub fn test(host: impl Into<String>, port: u16) -> PoolConfigBuilder {
        PoolConfigBuilder::with_preset(Preset::Test, host.into(), port)
    }

    /// Reads `{prefix}_{VARIABLE}` for every setting: `HOST`, `PORT`, `URI`, `ENDPOINTS`
    /// (comma-separated), `ENDPOINT_TYPE`, `TLS_CA_CERT`, `TLS_CLIENT_CERT`,
    /// `TLS_CLIENT_KEY`, `TLS_DOMAIN`, `RETRY_MAX_ATTEMPTS`, `RETRY_BASE_DELAY`,
    /// `RETRY_MAX_DELAY`, `POOL_NAME`, `POOL_SIZE`, `POOL_MIN_SIZE`, `POOL_MAX_SIZE`,
    /// `POOL_RESIZE_INTERVAL`, `POOL_RESIZE_STEP`, `CHECKOUT_TIMEOUT`,
    /// `MAX_IN_FLIGHT_PER_CHANNEL`, `DRAIN_TIMEOUT`, `CONNECT_TIMEOUT`, `REQUEST_TIMEOUT`,
    /// `KEEPALIVE`, `KEEPALIVE_TIMEOUT`, `KEEPALIVE_WHILE_IDLE`, `PING_INTERVAL`,
    /// `HEALTH_CHECK`, `HEALTH_SERVICE`, `MAX_CONNECTION_AGE` and `RESOLVE_INTERVAL`: the
    /// values a TOML file takes (booleans also as `yes`/`no`, `on`/`off`, `1`/`0`).
    ///
    /// Unset and empty variables stay unset. Every value is checked; an error names the
    /// variable and the value. An endpoint is not required here (a named pool may supply it).
    pub fn from_env(prefix: &str) -> Result<PoolConfig, ConfigError> {
        load::from_env(prefix, |key| std::env::var_os(key))
    }

    /// Parses the TOML schema (unknown keys are errors) and checks every value.
    pub fn from_toml_str(s: &str) -> Result<PoolConfig, ConfigError> {
        load::from_toml(s, None)
    }

    /// Reads a `.toml` file (see [`from_toml_str`](PoolConfig::from_toml_str)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<PoolConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            field: "config file".into(),
            path: path.to_path_buf(),
            source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") | None => load::from_toml(&text, Some(path)),
            Some(other) => Err(ConfigError::invalid(
                "config file",
                path.display(),
                format!("has an unsupported extension `.{other}` (expected .toml)"),
            )),
        }
    }

    /// Checks the whole configuration, as [`Pool::start`](crate::Pool::start) does: every
    /// value, the endpoints (at least one), and the TLS files (readable PEM, certificate and
    /// key together).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_fields(&Naming::Toml)?;
        check::endpoints(self).map(drop)
    }

    /// Checks every value that is set (not the presence of an endpoint).
    pub(crate) fn check_fields(&self, naming: &Naming) -> Result<(), ConfigError> {
        check::check(self, naming)
    }

    /// Calls `f` with the TOML path and value of every setting that is set.
    fn visit(&self, f: &mut dyn FnMut(&'static str, schema::Value)) {
        self.endpoint.visit(f);
        self.pool.visit(f);
        self.connection.visit(f);
        self.discovery.visit(f);
    }

    /// The pool name, if set.
    pub fn name(&self) -> Option<&str> {
        self.pool.name.as_deref()
    }
    /// The preset (`endpoint.type`), if set.
    pub fn preset(&self) -> Option<Preset> {
        self.endpoint.preset
    }
    /// The endpoints as URIs (`https://host:port`), in order.
    pub fn endpoints(&self) -> Vec<String> {
        check::endpoint_strings(self)
    }
    /// Whether connections use TLS (by preset, `[endpoint.tls]` or an `https://` URI).
    pub fn tls_enabled(&self) -> bool {
        check::tls_enabled(self)
    }
    /// The service config, parsed: from [`PoolConfigBuilder::service_config_json`], else the
    /// file named by `connection.service_config` (`None` when neither is set).
    pub(crate) fn service_config(
        &self,
        naming: &Naming,
    ) -> Result<Option<crate::service_config::ServiceConfig>, ConfigError> {
        if let Some(json) = &self.service_config_json {
            return crate::service_config::parse("service_config_json", json).map(Some);
        }
        let Some(path) = &self.connection.service_config else {
            return Ok(None);
        };
        let field = naming.name("connection.service_config");
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            field: field.clone(),
            path: path.clone(),
            source,
        })?;
        crate::service_config::parse(&format!("{field} ({})", path.display()), &text).map(Some)
    }
    /// The etcd cluster of `etcd:///<prefix>` endpoints (`[discovery.etcd]`).
    pub fn etcd(&self) -> &EtcdConfig {
        &self.discovery.etcd
    }
    /// The TLS settings, if any were given.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.endpoint.tls.as_ref()
    }
    /// Number of channels (slots): the fixed size, or the initial size of an elastic pool
    /// (`pool.size` if set, else [`min_size`](Self::min_size)).
    pub fn size(&self) -> usize {
        match self.pool.size {
            Some(size) => size,
            None if self.is_elastic() => self.min_size(),
            None => 5,
        }
    }
    /// Whether the pool grows and shrinks between [`min_size`](Self::min_size) and
    /// [`max_size`](Self::max_size) (`pool.max_size` is set).
    pub fn is_elastic(&self) -> bool {
        self.pool.max_size.is_some()
    }
    /// The fewest slots: `pool.min_size` (default 1) for an elastic pool, else
    /// [`size`](Self::size).
    pub fn min_size(&self) -> usize {
        match self.pool.max_size {
            Some(_) => self.pool.min_size.unwrap_or(1),
            None => self.size(),
        }
    }
    /// The most slots: `pool.max_size` for an elastic pool, else [`size`](Self::size).
    pub fn max_size(&self) -> usize {
        self.pool.max_size.unwrap_or_else(|| self.size())
    }
    /// How often an elastic pool reconsiders its size (default 5 s).
    pub fn resize_interval(&self) -> Duration {
        self.pool.resize_interval.unwrap_or(5 * SECOND)
    }
    /// The most slots an elastic pool adds or removes per
    /// [`resize_interval`](Self::resize_interval) (default 2).
    pub fn resize_step(&self) -> usize {
        self.pool.resize_step.unwrap_or(2)
    }
    /// The age at which a slot replaces its connection (`None`: never; the default, except
    /// 50 min in the `production` preset). The runtime applies ±10 % jitter per connection,
    /// so slots do not refresh together.
    pub fn max_connection_age(&self) -> Option<Duration> {
        let production = self.preset() == Some(Preset::Production);
        let default = production.then_some(50 * 60 * SECOND);
        self.connection.max_connection_age.unwrap_or(default)
    }
    /// How often host names of endpoints are resolved again (default 30 s; `None`: only at
    /// start and after connection failures).
    pub fn resolve_interval(&self) -> Option<Duration> {
        self.connection
            .resolve_interval
            .unwrap_or(Some(30 * SECOND))
    }
    /// How long `checkout` waits for a channel.
    pub fn checkout_timeout(&self) -> Duration {
        let default = self.by_preset(15 * SECOND, 5 * SECOND);
        self.pool.checkout_timeout.unwrap_or(default)
    }
    /// The per-channel cap on calls in flight (`None`: unlimited).
    pub fn max_in_flight_per_channel(&self) -> Option<usize> {
        self.pool.max_in_flight_per_channel
    }
    /// Whether a call that finds every channel in backoff waits for one to become READY
    /// (within its deadline and `checkout_timeout`) instead of failing at once with
    /// `UNAVAILABLE` (default false, as gRPC's `wait_for_ready`). Generated clients can
    /// override it with `with_wait_for_ready`.
    pub fn wait_for_ready(&self) -> bool {
        self.pool.wait_for_ready.unwrap_or(false)
    }
    /// How long `shutdown` lets in-flight calls finish.
    pub fn drain_timeout(&self) -> Duration {
        let default = self.by_preset(10 * SECOND, 2 * SECOND);
        self.pool.drain_timeout.unwrap_or(default)
    }
    /// Bounds one connection attempt: TCP, TLS, HTTP/2 setup and the first health probe;
    /// also each name lookup and each later health probe.
    pub fn connect_timeout(&self) -> Duration {
        let default = self.by_preset(5 * SECOND, 2 * SECOND);
        self.connection.connect_timeout.unwrap_or(default)
    }
    /// Default deadline of every call (`None`: none).
    pub fn request_timeout(&self) -> Option<Duration> {
        self.connection.request_timeout
    }
    /// Interval of HTTP/2 keepalive PINGs.
    pub fn keepalive(&self) -> Duration {
        self.connection.keepalive.unwrap_or(30 * SECOND)
    }
    /// How long a keepalive PING may go unanswered before the connection is closed.
    pub fn keepalive_timeout(&self) -> Duration {
        self.connection.keepalive_timeout.unwrap_or(10 * SECOND)
    }
    /// Whether keepalive PINGs are sent while no call is in flight (default false: gRPC
    /// servers by default refuse pings on a connection without calls, and close it after
    /// two; idle connections stay warm through `ping_interval` health checks instead).
    pub fn keepalive_while_idle(&self) -> bool {
        self.connection.keepalive_while_idle.unwrap_or(false)
    }
    /// The initial HTTP/2 flow-control window of each stream, in bytes (hyper's default
    /// when unset).
    pub fn initial_stream_window_size(&self) -> Option<u32> {
        self.connection.http2.initial_stream_window_size
    }
    /// The initial HTTP/2 flow-control window of each connection, in bytes (hyper's default
    /// when unset).
    pub fn initial_connection_window_size(&self) -> Option<u32> {
        self.connection.http2.initial_connection_window_size
    }
    /// Whether the HTTP/2 windows adapt to the measured bandwidth-delay product (BDP
    /// pings; default false). It overrides both window sizes.
    pub fn adaptive_window(&self) -> bool {
        self.connection.http2.adaptive_window.unwrap_or(false)
    }
    /// The largest HTTP/2 frame the client accepts, in bytes (hyper's default, 16 KiB,
    /// when unset).
    pub fn max_frame_size(&self) -> Option<u32> {
        self.connection.http2.max_frame_size
    }
    /// The largest header list (metadata) the client accepts, in bytes (hyper's default
    /// when unset).
    pub fn max_header_list_size(&self) -> Option<u32> {
        self.connection.http2.max_header_list_size
    }
    /// While an address is down and calls want a channel, its slots probe it one at a time,
    /// this often (default 50 ms), whatever their backoff.
    pub fn reconnect_probe_interval(&self) -> Duration {
        let default = Duration::from_millis(50);
        self.connection.reconnect_probe_interval.unwrap_or(default)
    }
    /// Interval of health-check RPCs (`None`: off).
    pub fn ping_interval(&self) -> Option<Duration> {
        let default = (self.preset() != Some(Preset::Test)).then_some(25 * SECOND);
        self.connection.ping_interval.unwrap_or(default)
    }
    /// Whether workers call `grpc.health.v1.Health/Check` every `ping_interval`.
    pub fn health_check(&self) -> bool {
        let default = self.preset() == Some(Preset::Production);
        self.connection.health_check.unwrap_or(default)
    }
    /// The service name sent in health checks ("" = the whole server).
    pub fn health_service(&self) -> &str {
        self.connection.health_service.as_deref().unwrap_or("")
    }
    /// The retry policy in effect.
    pub fn retry(&self) -> RetryConfig {
        let retry = &self.endpoint.retry;
        let fast = self.preset() == Some(Preset::Test);
        let (base, max) = if fast {
            (Duration::from_millis(50), Duration::from_millis(250))
        } else {
            (SECOND, 5 * SECOND)
        };
        RetryConfig {
            max_attempts: retry.max_attempts.unwrap_or(3),
            base_delay: retry.base_delay.unwrap_or(base),
            max_delay: retry.max_delay.unwrap_or(max),
        }
    }

    fn by_preset(&self, normal: Duration, test: Duration) -> Duration {
        if self.preset() == Some(Preset::Test) {
            test
        } else {
            normal
        }
    }

    /// Fills every unset field from `defaults` (explicit settings win).
    pub(crate) fn or(self, defaults: &PoolConfig) -> PoolConfig {
        // Explicit elastic bounds replace a default fixed size rather than clash with it.
        let keep_default_size = self.pool.size.is_some()
            || (self.pool.min_size.is_none() && self.pool.max_size.is_none());
        let has_endpoint = !self.endpoints.is_empty()
            || self.endpoint.uri.is_some()
            || self.endpoint.host.is_some();
        let mut merged = PoolConfig {
            endpoint: self.endpoint.or(&defaults.endpoint),
            pool: self.pool.or(&defaults.pool),
            connection: self.connection.or(&defaults.connection),
            discovery: self.discovery.or(&defaults.discovery),
            endpoints: if has_endpoint {
                self.endpoints
            } else {
                defaults.endpoints.clone()
            },
            interceptor: self.interceptor.or_else(|| defaults.interceptor.clone()),
            resolver: self.resolver.or_else(|| defaults.resolver.clone()),
            service_config_json: self
                .service_config_json
                .or_else(|| defaults.service_config_json.clone()),
            outlier_detection: self
                .outlier_detection
                .or_else(|| defaults.outlier_detection.clone()),
        };
        if !keep_default_size {
            merged.pool.size = None;
        }
        merged
    }
}

impl fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConfig")
            .field("name", &self.name())
            .field("preset", &self.preset())
            .field("endpoints", &self.endpoints())
            .field("tls", &self.tls())
            .field("size", &self.size())
            .field("min_size", &self.min_size())
            .field("max_size", &self.max_size())
            .field("resize_interval", &self.resize_interval())
            .field("resize_step", &self.resize_step())
            .field("checkout_timeout", &self.checkout_timeout())
            .field(
                "max_in_flight_per_channel",
                &self.max_in_flight_per_channel(),
            )
            .field("wait_for_ready", &self.wait_for_ready())
            .field("connect_timeout", &self.connect_timeout())
            .field("request_timeout", &self.request_timeout())
            .field("keepalive", &self.keepalive())
            .field("keepalive_timeout", &self.keepalive_timeout())
            .field("keepalive_while_idle", &self.keepalive_while_idle())
            .field("http2", &self.connection.http2)
            .field("ping_interval", &self.ping_interval())
            .field("reconnect_probe_interval", &self.reconnect_probe_interval())
            .field("max_connection_age", &self.max_connection_age())
            .field("resolve_interval", &self.resolve_interval())
            .field("health_check", &self.health_check())
            .field("retry", &self.retry())
            .field("etcd", &self.discovery.etcd)
            .field("interceptor", &self.interceptor.as_ref().map(|_| "<fn>"))
            .field("resolver", &self.resolver.as_ref().map(|_| "<resolver>"))
            .field("service_config", &self.connection.service_config)
            .field(
                "service_config_json",
                &self.service_config_json.as_ref().map(|_| "<json>"),
            )
            .field("outlier_detection", &self.outlier_detection)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn defaults_of_the_new_settings() {
        for config in [
            PoolConfig::builder().build().unwrap(),
            PoolConfig::local("h", 1).build().unwrap(),
            PoolConfig::test("h", 1).build().unwrap(),
            PoolConfig::production("h", 1).build().unwrap(),
        ] {
            let production = config.preset() == Some(Preset::Production);
            assert!(!config.is_elastic());
            assert_eq!(
                (config.size(), config.min_size(), config.max_size()),
                (5, 5, 5)
            );
            assert_eq!(config.resize_interval(), Duration::from_secs(5));
            assert_eq!(config.resize_step(), 2);
            assert_eq!(config.resolve_interval(), Some(Duration::from_secs(30)));
            let age = config.max_connection_age();
            assert_eq!(age, production.then_some(50 * MIN), "{config:?}");
        }
    }

    #[test]
    fn a_fixed_size_is_both_bounds() {
        let c = PoolConfig::local("h", 1).size(7).build().unwrap();
        assert!(!c.is_elastic());
        assert_eq!((c.size(), c.min_size(), c.max_size()), (7, 7, 7));
    }

    #[test]
    fn an_elastic_pool_starts_at_min_size_unless_size_is_set() {
        let c = PoolConfig::local("h", 1).max_size(10).build().unwrap();
        assert!(c.is_elastic());
        assert_eq!((c.size(), c.min_size(), c.max_size()), (1, 1, 10));
        let c = PoolConfig::local("h", 1)
            .min_size(3)
            .max_size(10)
            .build()
            .unwrap();
        assert_eq!((c.size(), c.min_size(), c.max_size()), (3, 3, 10));
        let c = PoolConfig::local("h", 1)
            .min_size(3)
            .max_size(10)
            .size(6)
            .build()
            .unwrap();
        assert_eq!((c.size(), c.min_size(), c.max_size()), (6, 3, 10));
    }

    #[test]
    fn explicit_values_beat_the_production_preset() {
        let c = PoolConfig::production("h", 1)
            .max_connection_age(None)
            .build()
            .unwrap();
        assert_eq!(c.max_connection_age(), None);
        let c = PoolConfig::local("h", 1)
            .max_connection_age(Some(Duration::from_millis(300)))
            .build()
            .unwrap();
        assert_eq!(c.max_connection_age(), Some(Duration::from_millis(300)));
    }

    #[test]
    fn or_fills_the_new_fields() {
        #[derive(Debug)]
        struct Nothing;
        impl crate::resolver::Resolve for Nothing {
            fn resolve(&self, _: &str, _: u16) -> crate::resolver::ResolveFuture {
                Box::pin(async { Ok(Vec::new()) })
            }
        }
        let defaults = PoolConfig::builder()
            .min_size(2)
            .max_size(9)
            .resize_interval(Duration::from_secs(1))
            .resize_step(3)
            .max_connection_age(Some(MIN))
            .resolve_interval(None)
            .resolver(Nothing)
            .build()
            .unwrap();
        let merged = PoolConfig::builder()
            .resize_step(1)
            .build()
            .unwrap()
            .or(&defaults);
        assert_eq!(merged.pool.min_size, Some(2));
        assert_eq!(merged.pool.max_size, Some(9));
        assert_eq!(merged.pool.resize_interval, Some(Duration::from_secs(1)));
        assert_eq!(merged.pool.resize_step, Some(1));
        assert_eq!(merged.connection.max_connection_age, Some(Some(MIN)));
        assert_eq!(merged.connection.resolve_interval, Some(None));
        assert_eq!(merged.resolver, defaults.resolver);
        assert!(merged.resolver.is_some());
    }

    #[test]
    fn explicit_elastic_bounds_replace_a_default_fixed_size() {
        // `#[grpc_pool(size = 5)]` defaults and a runtime config with `max_size(3)`.
        let defaults = PoolConfig::builder().size(5).build().unwrap();
        let merged = PoolConfig::local("h", 1)
            .max_size(3)
            .build()
            .unwrap()
            .or(&defaults);
        merged.validate().unwrap();
        assert_eq!((merged.size(), merged.max_size()), (1, 3));
        // Without bounds, the default size still applies.
        let merged = PoolConfig::local("h", 1).build().unwrap().or(&defaults);
        assert_eq!(merged.size(), 5);
    }

    #[test]
    fn debug_shows_the_new_settings() {
        let c = PoolConfig::production("h", 1).max_size(4).build().unwrap();
        let debug = format!("{c:?}");
        for part in [
            "min_size: 1",
            "max_size: 4",
            "resize_interval: 5s",
            "resize_step: 2",
            "max_connection_age: Some(3000s)",
            "resolve_interval: Some(30s)",
            "resolver: None",
        ] {
            assert!(debug.contains(part), "{part} missing from {debug}");
        }
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    fn round_trip(config: &PoolConfig) -> (String, PoolConfig) {
        let text = toml::to_string(config).unwrap();
        let back = PoolConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
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
        assert_eq!(back.pool.min_size, Some(2));
        assert_eq!(back.pool.max_size, Some(12));
        assert_eq!(back.pool.resize_interval, Some(Duration::from_millis(1500)));
        assert_eq!(back.pool.resize_step, Some(4));
        assert_eq!(
            back.connection.max_connection_age,
            Some(Some(Duration::from_secs(600)))
        );
        assert_eq!(
            back.connection.resolve_interval,
            Some(Some(Duration::from_secs(45)))
        );
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
        let config = PoolConfig::from_toml_str(
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

    #[test]
    fn every_bounded_setting_has_a_row_in_the_table_and_back() {
        // A configuration with every counted and timed setting set.
        let config = PoolConfig::local("h", 1)
            .size(2)
            .min_size(1)
            .max_size(3)
            .resize_interval(Duration::from_secs(1))
            .resize_step(1)
            .checkout_timeout(Duration::from_secs(1))
            .max_in_flight_per_channel(9)
            .drain_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(1))
            .request_timeout(Duration::from_secs(1))
            .keepalive(Duration::from_secs(1))
            .keepalive_timeout(Duration::from_secs(1))
            .ping_interval(Some(Duration::from_secs(1)))
            .reconnect_probe_interval(Duration::from_millis(20))
            .max_connection_age(Some(Duration::from_secs(1)))
            .resolve_interval(Some(Duration::from_secs(1)))
            .initial_stream_window_size(1 << 16)
            .initial_connection_window_size(1 << 16)
            .max_frame_size(1 << 14)
            .max_header_list_size(1 << 14)
            .retry(RetryConfig::new(
                2,
                Duration::from_secs(1),
                Duration::from_secs(2),
            ))
            .build()
            .unwrap();
        let mut visited = Vec::new();
        config.visit(&mut |path, _| visited.push(path));
        let bounded: Vec<&str> = crate::rules::FIELDS
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    crate::rules::Kind::Count { .. } | crate::rules::Kind::Duration { .. }
                )
            })
            .map(|f| f.path)
            .collect();
        for path in &visited {
            assert!(crate::rules::field(path).is_some(), "{path} has no row");
        }
        for path in &bounded {
            assert!(visited.contains(path), "{path} is not in the schema");
        }
    }

    #[test]
    fn reconnect_probe_interval_from_code_toml_and_env_with_bounds() {
        let default = PoolConfig::local("h", 1).build().unwrap();
        assert_eq!(
            default.reconnect_probe_interval(),
            Duration::from_millis(50)
        );
        let file =
            PoolConfig::from_toml_str("[connection]\nreconnect_probe_interval = \"20ms\"").unwrap();
        assert_eq!(file.reconnect_probe_interval(), Duration::from_millis(20));
        let env = load::from_env("APP", |k| {
            (k == "APP_RECONNECT_PROBE_INTERVAL").then(|| "20ms".into())
        })
        .unwrap();
        assert_eq!(env, file);
        let err = PoolConfig::builder()
            .reconnect_probe_interval(Duration::from_secs(61))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), Some("connection.reconnect_probe_interval"));
        assert!(err.to_string().contains("61s"), "{err}");
    }

    #[test]
    fn http2_settings_from_code_toml_and_env_with_bounds() {
        let default = PoolConfig::local("h", 1).build().unwrap();
        assert_eq!(default.initial_stream_window_size(), None);
        assert!(!default.adaptive_window());
        let code = PoolConfig::local("h", 1)
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .adaptive_window(true)
            .max_frame_size(1 << 15)
            .max_header_list_size(64 << 10)
            .build()
            .unwrap();
        let (text, back) = round_trip(&code);
        assert!(text.contains("[connection.http2]"), "{text}");
        assert_eq!(back, code);
        let file = PoolConfig::from_toml_str(
            "[endpoint]\ntype = \"local\"\nhost = \"h\"\nport = 1\n\
             [connection.http2]\ninitial_stream_window_size = 1048576\n\
             initial_connection_window_size = 4194304\nadaptive_window = true\n\
             max_frame_size = 32768\nmax_header_list_size = 65536\n",
        )
        .unwrap();
        assert_eq!(file, code);
        let env = load::from_env("APP", |k| match k {
            "APP_ENDPOINT_TYPE" => Some("local".into()),
            "APP_HOST" => Some("h".into()),
            "APP_PORT" => Some("1".into()),
            "APP_HTTP2_INITIAL_STREAM_WINDOW_SIZE" => Some("1048576".into()),
            "APP_HTTP2_INITIAL_CONNECTION_WINDOW_SIZE" => Some("4194304".into()),
            "APP_HTTP2_ADAPTIVE_WINDOW" => Some("true".into()),
            "APP_HTTP2_MAX_FRAME_SIZE" => Some("32768".into()),
            "APP_HTTP2_MAX_HEADER_LIST_SIZE" => Some("65536".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(env, code);
        // HTTP/2 forbids frames under 16 KiB.
        let err = PoolConfig::local("h", 1)
            .max_frame_size(1000)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), Some("connection.http2.max_frame_size"));
        assert!(err.to_string().contains("1000"), "{err}");
        let err = load::from_env("APP", |k| {
            (k == "APP_HTTP2_INITIAL_STREAM_WINDOW_SIZE").then(|| "0".into())
        })
        .unwrap_err();
        assert_eq!(err.field(), Some("APP_HTTP2_INITIAL_STREAM_WINDOW_SIZE"));
    }

    #[test]
    fn keepalive_while_idle_from_code_toml_and_env() {
        // Off unless asked for: stock gRPC servers refuse pings on idle connections.
        assert!(!PoolConfig::local("h", 1)
            .build()
            .unwrap()
            .keepalive_while_idle());
        let code = PoolConfig::local("h", 1)
            .keepalive_while_idle(true)
            .build()
            .unwrap();
        assert!(code.keepalive_while_idle());
        let (text, back) = round_trip(&code);
        assert!(text.contains("keepalive_while_idle = true"), "{text}");
        assert_eq!(back, code);
        let file = PoolConfig::from_toml_str(
            "[endpoint]\ntype = \"local\"\nhost = \"h\"\nport = 1\n\
             [connection]\nkeepalive_while_idle = true\n",
        )
        .unwrap();
        assert_eq!(file, code);
        let env = load::from_env("APP", |k| match k {
            "APP_ENDPOINT_TYPE" => Some("local".into()),
            "APP_HOST" => Some("h".into()),
            "APP_PORT" => Some("1".into()),
            "APP_KEEPALIVE_WHILE_IDLE" => Some("yes".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(env, code);
        let err = load::from_env("APP", |k| {
            (k == "APP_KEEPALIVE_WHILE_IDLE").then(|| "sometimes".into())
        })
        .unwrap_err();
        assert_eq!(err.field(), Some("APP_KEEPALIVE_WHILE_IDLE"));
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err =
            PoolConfig::from_toml_str("[connection]\nkeepalive_while_idle = \"no\"").unwrap_err();
        assert!(matches!(err, ConfigError::Toml { .. }), "{err:?}");
    }

    #[test]
    fn wait_for_ready_from_code_toml_and_env() {
        assert!(!PoolConfig::local("h", 1).build().unwrap().wait_for_ready());
        let code = PoolConfig::local("h", 1)
            .wait_for_ready(true)
            .build()
            .unwrap();
        assert!(code.wait_for_ready());
        let (text, back) = round_trip(&code);
        assert!(text.contains("wait_for_ready = true"), "{text}");
        assert_eq!(back, code);
        let file = PoolConfig::from_toml_str(
            "[endpoint]\ntype = \"local\"\nhost = \"h\"\nport = 1\n[pool]\nwait_for_ready = true\n",
        )
        .unwrap();
        assert_eq!(file, code);
        let env = load::from_env("APP", |k| match k {
            "APP_ENDPOINT_TYPE" => Some("local".into()),
            "APP_HOST" => Some("h".into()),
            "APP_PORT" => Some("1".into()),
            "APP_WAIT_FOR_READY" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(env, code);
        let err = load::from_env("APP", |k| {
            (k == "APP_WAIT_FOR_READY").then(|| "soon".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("APP_WAIT_FOR_READY"), "{err}");
        assert!(err.to_string().contains("soon"), "{err}");
    }
}
