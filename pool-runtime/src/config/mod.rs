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
//! | `connection.connect_timeout` | 5 s | | | 2 s |
//! | `connection.keepalive` / `keepalive_timeout` | 30 s / 10 s | | | |
//! | `connection.ping_interval` | 25 s | | | off |
//! | `connection.health_check` | false | true | | false |
//! | `connection.max_connection_age` | off | 50 min (±10 % jitter) | | |
//! | `connection.resolve_interval` | 30 s | | | |
//! | resolver (code only) | the system resolver ([`DnsResolver`](crate::resolver::DnsResolver)) | | | |
//! | `endpoint.retry` | 3 / 1 s / 5 s | | | 3 / 50 ms / 250 ms |

mod builder;
mod env;
mod fields;
mod raw;
mod resolve;
mod tls;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub use builder::PoolConfigBuilder;
pub(crate) use resolve::{parse_uri as parse_endpoint_uri, EndpointSpec, Settings};
pub use tls::TlsConfig;

use crate::error::ConfigError;
use fields::Naming;

/// A preset: TLS on or off and timings suited to an environment (`endpoint.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// TLS with the system (native) and webpki roots, health checks on.
    Production,
    /// Plaintext, for a server on the same machine or network.
    Local,
    /// Plaintext, fast retries and timeouts, no periodic health pings.
    Test,
}

impl Preset {
    /// The name used in TOML and environment variables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Production => "production",
            Preset::Local => "local",
            Preset::Test => "test",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "production" => Ok(Preset::Production),
            "local" => Ok(Preset::Local),
            "test" => Ok(Preset::Test),
            _ => Err(ConfigError::invalid(
                "endpoint.type",
                format!("{s:?}"),
                "must be one of production, local, test",
            )),
        }
    }
}

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

/// The configuration of a [`Pool`](crate::Pool).
///
/// Build one with [`PoolConfig::builder`] or a preset ([`PoolConfig::production`],
/// [`local`](PoolConfig::local), [`test`](PoolConfig::test)), or load it with
/// [`from_toml_str`](PoolConfig::from_toml_str), [`from_file`](PoolConfig::from_file) or
/// [`from_env`](PoolConfig::from_env). Serialises to and from the TOML schema
/// (`[endpoint]`, `[endpoint.tls]`, `[endpoint.retry]`, `[pool]`, `[connection]`). `Debug`
/// never shows key material.
#[derive(Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "raw::RawConfig", into = "raw::RawConfig")]
pub struct PoolConfig {
    pub(crate) preset: Option<Preset>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) uri: Option<String>,
    pub(crate) endpoints: Vec<String>,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) retry_max_attempts: Option<u32>,
    pub(crate) retry_base_delay: Option<Duration>,
    pub(crate) retry_max_delay: Option<Duration>,
    pub(crate) name: Option<String>,
    pub(crate) size: Option<usize>,
    pub(crate) checkout_timeout: Option<Duration>,
    pub(crate) max_in_flight_per_channel: Option<usize>,
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) keepalive_timeout: Option<Duration>,
    pub(crate) ping_interval: Option<Option<Duration>>,
    pub(crate) health_check: Option<bool>,
    pub(crate) health_service: Option<String>,
    pub(crate) min_size: Option<usize>,
    pub(crate) max_size: Option<usize>,
    pub(crate) resize_interval: Option<Duration>,
    pub(crate) resize_step: Option<usize>,
    /// `Some(None)` = "off".
    pub(crate) max_connection_age: Option<Option<Duration>>,
    /// `Some(None)` = "off".
    pub(crate) resolve_interval: Option<Option<Duration>>,
    /// Code, not data: never serialised, shown only as present or absent.
    pub(crate) interceptor: Option<RequestInterceptor>,
    /// Code, not data: never serialised, shown only as present or absent.
    pub(crate) resolver: Option<crate::resolver::ResolverHook>,
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

    /// Reads `{prefix}_HOST`, `{prefix}_PORT`, `{prefix}_URI`, `{prefix}_ENDPOINTS`,
    /// `{prefix}_ENDPOINT_TYPE`, `{prefix}_POOL_SIZE`, `{prefix}_POOL_NAME`,
    /// `{prefix}_CHECKOUT_TIMEOUT`, `{prefix}_MAX_IN_FLIGHT_PER_CHANNEL`,
    /// `{prefix}_DRAIN_TIMEOUT`, `{prefix}_CONNECT_TIMEOUT`, `{prefix}_REQUEST_TIMEOUT`,
    /// `{prefix}_KEEPALIVE`, `{prefix}_KEEPALIVE_TIMEOUT`, `{prefix}_PING_INTERVAL`,
    /// `{prefix}_HEALTH_CHECK`, `{prefix}_HEALTH_SERVICE`, `{prefix}_POOL_MIN_SIZE`,
    /// `{prefix}_POOL_MAX_SIZE`, `{prefix}_POOL_RESIZE_INTERVAL`, `{prefix}_POOL_RESIZE_STEP`,
    /// `{prefix}_MAX_CONNECTION_AGE`, `{prefix}_RESOLVE_INTERVAL`, `{prefix}_RETRY_MAX_ATTEMPTS`,
    /// `{prefix}_RETRY_BASE_DELAY`, `{prefix}_RETRY_MAX_DELAY`, `{prefix}_TLS_CA_CERT`,
    /// `{prefix}_TLS_CLIENT_CERT`, `{prefix}_TLS_CLIENT_KEY` and `{prefix}_TLS_DOMAIN`.
    ///
    /// Unset variables stay unset. Every value is checked; an error names the variable and
    /// the value. An endpoint is not required here (a named pool may supply it).
    pub fn from_env(prefix: &str) -> Result<PoolConfig, ConfigError> {
        env::from_env(prefix, |key| std::env::var_os(key))
    }

    /// Parses the TOML schema (unknown keys are errors) and checks every value.
    pub fn from_toml_str(s: &str) -> Result<PoolConfig, ConfigError> {
        raw::from_toml(s, None)
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
            Some("toml") | None => raw::from_toml(&text, Some(path)),
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
        resolve::endpoints(self).map(drop)
    }

    /// Checks every value that is set (not the presence of an endpoint).
    pub(crate) fn check_fields(&self, naming: &Naming) -> Result<(), ConfigError> {
        fields::check(self, naming)
    }

    /// The pool name, if set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The preset (`endpoint.type`), if set.
    pub fn preset(&self) -> Option<Preset> {
        self.preset
    }
    /// The endpoints as URIs (`https://host:port`), in order.
    pub fn endpoints(&self) -> Vec<String> {
        resolve::endpoint_strings(self)
    }
    /// Whether connections use TLS (by preset, `[endpoint.tls]` or an `https://` URI).
    pub fn tls_enabled(&self) -> bool {
        resolve::tls_enabled(self)
    }
    /// The TLS settings, if any were given.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }
    /// Number of channels (slots): the fixed size, or the initial size of an elastic pool
    /// (`pool.size` if set, else [`min_size`](Self::min_size)).
    pub fn size(&self) -> usize {
        match self.size {
            Some(size) => size,
            None if self.is_elastic() => self.min_size(),
            None => 5,
        }
    }
    /// Whether the pool grows and shrinks between [`min_size`](Self::min_size) and
    /// [`max_size`](Self::max_size) (`pool.max_size` is set).
    pub fn is_elastic(&self) -> bool {
        self.max_size.is_some()
    }
    /// The fewest slots: `pool.min_size` (default 1) for an elastic pool, else
    /// [`size`](Self::size).
    pub fn min_size(&self) -> usize {
        match self.max_size {
            Some(_) => self.min_size.unwrap_or(1),
            None => self.size(),
        }
    }
    /// The most slots: `pool.max_size` for an elastic pool, else [`size`](Self::size).
    pub fn max_size(&self) -> usize {
        self.max_size.unwrap_or_else(|| self.size())
    }
    /// How often an elastic pool reconsiders its size (default 5 s).
    pub fn resize_interval(&self) -> Duration {
        self.resize_interval.unwrap_or(Duration::from_secs(5))
    }
    /// The most slots an elastic pool adds or removes per
    /// [`resize_interval`](Self::resize_interval) (default 2).
    pub fn resize_step(&self) -> usize {
        self.resize_step.unwrap_or(2)
    }
    /// The age at which a slot replaces its connection (`None`: never; the default, except
    /// 50 min in the `production` preset). The runtime applies ±10 % jitter per connection,
    /// so slots do not refresh together.
    pub fn max_connection_age(&self) -> Option<Duration> {
        self.max_connection_age.unwrap_or(match self.preset {
            Some(Preset::Production) => Some(Duration::from_secs(50 * 60)),
            _ => None,
        })
    }
    /// How often host names of endpoints are resolved again (default 30 s; `None`: only at
    /// start and after connection failures).
    pub fn resolve_interval(&self) -> Option<Duration> {
        self.resolve_interval
            .unwrap_or(Some(Duration::from_secs(30)))
    }
    /// How long `checkout` waits for a channel.
    pub fn checkout_timeout(&self) -> Duration {
        self.checkout_timeout
            .unwrap_or(self.by_preset(Duration::from_secs(15), Duration::from_secs(5)))
    }
    /// The per-channel cap on calls in flight (`None`: unlimited).
    pub fn max_in_flight_per_channel(&self) -> Option<usize> {
        self.max_in_flight_per_channel
    }
    /// How long `shutdown` lets in-flight calls finish.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
            .unwrap_or(self.by_preset(Duration::from_secs(10), Duration::from_secs(2)))
    }
    /// Timeout of one connection attempt (TCP, TLS and HTTP/2 handshakes and the first probe).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
            .unwrap_or(self.by_preset(Duration::from_secs(5), Duration::from_secs(2)))
    }
    /// Default deadline of every call (`None`: none).
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }
    /// Interval of HTTP/2 keepalive PINGs.
    pub fn keepalive(&self) -> Duration {
        self.keepalive.unwrap_or(Duration::from_secs(30))
    }
    /// How long a keepalive PING may go unanswered before the connection is closed.
    pub fn keepalive_timeout(&self) -> Duration {
        self.keepalive_timeout.unwrap_or(Duration::from_secs(10))
    }
    /// Interval of health-check RPCs (`None`: off).
    pub fn ping_interval(&self) -> Option<Duration> {
        self.ping_interval.unwrap_or(match self.preset {
            Some(Preset::Test) => None,
            _ => Some(Duration::from_secs(25)),
        })
    }
    /// Whether workers call `grpc.health.v1.Health/Check` every `ping_interval`.
    pub fn health_check(&self) -> bool {
        self.health_check
            .unwrap_or(self.preset == Some(Preset::Production))
    }
    /// The service name sent in health checks ("" = the whole server).
    pub fn health_service(&self) -> &str {
        self.health_service.as_deref().unwrap_or("")
    }
    /// The retry policy in effect.
    pub fn retry(&self) -> RetryConfig {
        let fast = self.preset == Some(Preset::Test);
        RetryConfig {
            max_attempts: self.retry_max_attempts.unwrap_or(3),
            base_delay: self.retry_base_delay.unwrap_or(if fast {
                Duration::from_millis(50)
            } else {
                Duration::from_secs(1)
            }),
            max_delay: self.retry_max_delay.unwrap_or(if fast {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            }),
        }
    }

    fn by_preset(&self, normal: Duration, test: Duration) -> Duration {
        if self.preset == Some(Preset::Test) {
            test
        } else {
            normal
        }
    }

    /// Fills every unset field from `defaults` (explicit settings win).
    pub(crate) fn or(mut self, defaults: &PoolConfig) -> PoolConfig {
        // Explicit elastic bounds replace a default fixed size rather than clash with it.
        let explicit_bounds = self.min_size.is_some() || self.max_size.is_some();
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = defaults.$f.clone(); } )* };
        }
        fill!(
            preset,
            host,
            port,
            uri,
            tls,
            retry_max_attempts,
            retry_base_delay,
            retry_max_delay,
            name,
            checkout_timeout,
            max_in_flight_per_channel,
            drain_timeout,
            connect_timeout,
            request_timeout,
            keepalive,
            keepalive_timeout,
            ping_interval,
            health_check,
            health_service,
            min_size,
            max_size,
            resize_interval,
            resize_step,
            max_connection_age,
            resolve_interval,
            interceptor,
            resolver
        );
        if self.size.is_none() && !explicit_bounds {
            self.size = defaults.size;
        }
        if self.endpoints.is_empty() && self.uri.is_none() && self.host.is_none() {
            self.endpoints = defaults.endpoints.clone();
        }
        self
    }
}

impl fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConfig")
            .field("name", &self.name)
            .field("preset", &self.preset)
            .field("endpoints", &self.endpoints())
            .field("tls", &self.tls)
            .field("size", &self.size())
            .field("min_size", &self.min_size())
            .field("max_size", &self.max_size())
            .field("resize_interval", &self.resize_interval())
            .field("resize_step", &self.resize_step())
            .field("checkout_timeout", &self.checkout_timeout())
            .field("max_in_flight_per_channel", &self.max_in_flight_per_channel)
            .field("connect_timeout", &self.connect_timeout())
            .field("request_timeout", &self.request_timeout)
            .field("keepalive", &self.keepalive())
            .field("keepalive_timeout", &self.keepalive_timeout())
            .field("ping_interval", &self.ping_interval())
            .field("max_connection_age", &self.max_connection_age())
            .field("resolve_interval", &self.resolve_interval())
            .field("health_check", &self.health_check())
            .field("retry", &self.retry())
            .field("interceptor", &self.interceptor.as_ref().map(|_| "<fn>"))
            .field("resolver", &self.resolver.as_ref().map(|_| "<resolver>"))
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
        assert_eq!(merged.min_size, Some(2));
        assert_eq!(merged.max_size, Some(9));
        assert_eq!(merged.resize_interval, Some(Duration::from_secs(1)));
        assert_eq!(merged.resize_step, Some(1));
        assert_eq!(merged.max_connection_age, Some(Some(MIN)));
        assert_eq!(merged.resolve_interval, Some(None));
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
