//! [`PoolConfigBuilder`]: settings from code.

use std::time::Duration;

use crate::error::ConfigError;

use super::load::Naming;
use super::{PoolConfig, Preset, RetryConfig, TlsConfig};

/// Builds a [`PoolConfig`] from code. Every setter returns the builder; [`build`](Self::build)
/// checks the values.
///
/// ```
/// use std::time::Duration;
/// use grpc_pool::PoolConfig;
///
/// let config = PoolConfig::local("127.0.0.1", 50051)
///     .size(8)
///     .checkout_timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(config.size(), 8);
/// # Ok::<(), grpc_pool::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct PoolConfigBuilder {
    config: PoolConfig,
}

impl PoolConfigBuilder {
    pub(super) fn with_preset(preset: Preset, host: String, port: u16) -> Self {
        let mut config = PoolConfig::default();
        config.endpoint.preset = Some(preset);
        config.endpoint.host = Some(host);
        config.endpoint.port = Some(port);
        Self { config }
    }

    /// Adds a backend by URI (`http://host:port` or `https://host:port`), or every server
    /// registered in etcd under a prefix (`etcd:///<prefix>`, feature `etcd`, with
    /// [`etcd_endpoint`](Self::etcd_endpoint)). Called again, it adds one more backend; slots
    /// are spread over the backends evenly.
    pub fn endpoint(mut self, uri: &str) -> Self {
        let c = &mut self.config;
        if c.endpoint.uri.is_none() && c.endpoint.host.is_none() && c.endpoints.is_empty() {
            c.endpoint.uri = Some(uri.to_owned());
        } else {
            c.endpoints.push(uri.to_owned());
        }
        self
    }
    /// The preset (`endpoint.type`) for unset values.
    pub fn preset(mut self, preset: Preset) -> Self {
        self.config.endpoint.preset = Some(preset);
        self
    }
    /// Number of channels; for an elastic pool (see [`max_size`](Self::max_size)), the
    /// initial number, between `min_size` and `max_size`.
    pub fn size(mut self, size: usize) -> Self {
        self.config.pool.size = Some(size);
        self
    }
    /// The fewest channels of an elastic pool (default 1; needs [`max_size`](Self::max_size)).
    pub fn min_size(mut self, min: usize) -> Self {
        self.config.pool.min_size = Some(min);
        self
    }
    /// The most channels: makes the pool *elastic*. It starts with `size` (default
    /// `min_size`) channels, grows while the calls in flight per ready channel stay above a
    /// threshold (half of `max_in_flight_per_channel`, or 50 without a cap) and shrinks
    /// while idle, by at most [`resize_step`](Self::resize_step) channels every
    /// [`resize_interval`](Self::resize_interval).
    ///
    /// ```
    /// use grpc_pool::PoolConfig;
    ///
    /// let config = PoolConfig::local("127.0.0.1", 50051)
    ///     .min_size(2)
    ///     .max_size(16)
    ///     .build()?;
    /// assert!(config.is_elastic());
    /// assert_eq!((config.size(), config.min_size(), config.max_size()), (2, 2, 16));
    /// # Ok::<(), grpc_pool::ConfigError>(())
    /// ```
    pub fn max_size(mut self, max: usize) -> Self {
        self.config.pool.max_size = Some(max);
        self
    }
    /// How often an elastic pool reconsiders its size (default 5 s).
    pub fn resize_interval(mut self, interval: Duration) -> Self {
        self.config.pool.resize_interval = Some(interval);
        self
    }
    /// The most channels an elastic pool adds or removes per resize interval (default 2).
    pub fn resize_step(mut self, step: usize) -> Self {
        self.config.pool.resize_step = Some(step);
        self
    }
    /// The pool's name (registry key, logs, errors).
    pub fn name(mut self, name: &str) -> Self {
        self.config.pool.name = Some(name.to_owned());
        self
    }
    /// How long `checkout` waits for a channel before `CheckoutTimeout`.
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.config.pool.checkout_timeout = Some(timeout);
        self
    }
    /// Bounds one connection attempt: TCP, TLS, HTTP/2 setup and the first health probe
    /// (the endpoint's addresses race within it, each next one 250 ms after the last); also
    /// each name lookup and each later health probe (those at most `ping_interval`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection.connect_timeout = Some(timeout);
        self
    }
    /// Default deadline of every call made through the pool.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection.request_timeout = Some(timeout);
        self
    }
    /// Interval of HTTP/2 keepalive PINGs while calls are in flight (and while idle too when
    /// [`keepalive_while_idle`](Self::keepalive_while_idle) is on). A server that answers
    /// with `GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings")` makes the pool double the interval
    /// for its new connections (counted in `PoolStatus::too_many_pings`).
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.config.connection.keepalive = Some(interval);
        self
    }
    /// How long a keepalive PING may go unanswered.
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection.keepalive_timeout = Some(timeout);
        self
    }
    /// Whether keepalive PINGs are sent while no call is in flight (default false). Servers
    /// with gRPC's default keepalive policy accept no PING while no call is active (and one
    /// every 5 minutes at most otherwise), and answer more with
    /// `GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings")`; so idle connections stay warm through
    /// [`ping_interval`](Self::ping_interval) health checks instead. Turn it on only for
    /// servers that permit pings without calls.
    pub fn keepalive_while_idle(mut self, on: bool) -> Self {
        self.config.connection.keepalive_while_idle = Some(on);
        self
    }
    /// The initial HTTP/2 flow-control window of each stream, in bytes
    /// (`connection.http2.initial_stream_window_size`).
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Self {
        self.config.connection.http2.initial_stream_window_size = Some(bytes);
        self
    }
    /// The initial HTTP/2 flow-control window of each connection, in bytes
    /// (`connection.http2.initial_connection_window_size`).
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Self {
        self.config.connection.http2.initial_connection_window_size = Some(bytes);
        self
    }
    /// Let the HTTP/2 windows follow the measured bandwidth-delay product
    /// (`connection.http2.adaptive_window`; overrides both window sizes).
    pub fn adaptive_window(mut self, on: bool) -> Self {
        self.config.connection.http2.adaptive_window = Some(on);
        self
    }
    /// The largest HTTP/2 frame the client accepts (`connection.http2.max_frame_size`,
    /// 16 KiB to 16 MiB - 1).
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.config.connection.http2.max_frame_size = Some(bytes);
        self
    }
    /// The largest header list (metadata) the client accepts
    /// (`connection.http2.max_header_list_size`).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.config.connection.http2.max_header_list_size = Some(bytes);
        self
    }
    /// How often the slots of an address that is down try it, one at a time, while calls
    /// want a channel (default 50 ms). Without such calls, slots follow the gRPC backoff
    /// (`retry`); when one connects, its siblings connect at once. See how the pool
    /// reconnects in the crate docs.
    pub fn reconnect_probe_interval(mut self, interval: Duration) -> Self {
        self.config.connection.reconnect_probe_interval = Some(interval);
        self
    }
    /// Interval of health-check RPCs; `None` turns them off.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.connection.ping_interval = Some(interval);
        self
    }
    /// Replace each connection once it is this old (`None`: never, the default except in the
    /// `production` preset, 50 min). Each connection's age limit gets ±10 % jitter so slots do
    /// not refresh together. A slot opens the replacement, waits until it is ready, moves new
    /// calls to it and lets the old connection drain. At least 100 ms, at most 1 day.
    pub fn max_connection_age(mut self, age: Option<Duration>) -> Self {
        self.config.connection.max_connection_age = Some(age);
        self
    }
    /// How often endpoint host names are resolved again (default 30 s). `None`: only at
    /// start and after a connection to the host fails.
    pub fn resolve_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.connection.resolve_interval = Some(interval);
        self
    }
    /// Resolves endpoint host names (default: the system resolver,
    /// [`DnsResolver`](crate::resolver::DnsResolver)); see [`Resolve`](crate::resolver::Resolve).
    pub fn resolver(mut self, resolver: impl crate::resolver::Resolve) -> Self {
        self.config.resolver = Some(crate::resolver::ResolverHook(std::sync::Arc::new(resolver)));
        self
    }
    /// Whether workers call `grpc.health.v1.Health/Check` every `ping_interval`.
    pub fn health_check(mut self, on: bool) -> Self {
        self.config.connection.health_check = Some(on);
        self
    }
    /// The service name sent in health checks ("" = the whole server, the default).
    pub fn health_service(mut self, service: &str) -> Self {
        self.config.connection.health_service = Some(service.to_owned());
        self
    }
    /// Connection attempts and backoff delays.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        let section = &mut self.config.endpoint.retry;
        section.max_attempts = Some(retry.max_attempts);
        section.base_delay = Some(retry.base_delay);
        section.max_delay = Some(retry.max_delay);
        self
    }
    /// Call policies from a gRPC service config in its standard JSON form (the text grpc-go
    /// and grpc-java clients take): per-method `timeout`, `waitForReady` and `retryPolicy`,
    /// and `retryThrottling`. Checked by [`build`](Self::build): an error names the JSON path
    /// and value. Takes precedence over a file named by `connection.service_config`.
    pub fn service_config_json(mut self, json: &str) -> Self {
        self.config.service_config_json = Some(json.to_owned());
        self
    }

    /// Outlier detection (gRFC A50) over the pool's backend addresses: an address failing
    /// far more than the others is ejected for a while, and its channels take no new calls
    /// (state `Ejected`). The same as a service config's `outlier_detection_experimental`,
    /// which this replaces when both are given. [`build`](Self::build) checks the values
    /// (percentages up to 100, times above zero, at least one algorithm on).
    pub fn outlier_detection(mut self, detection: super::OutlierDetection) -> Self {
        self.config.outlier_detection = Some(detection);
        self
    }

    /// Adds one client endpoint of the etcd cluster that `etcd:///<prefix>` endpoints are read
    /// from (`http://host:port`, `https://host:port` or `host:port`); see [`etcd`](Self::etcd)
    /// for credentials and TLS.
    pub fn etcd_endpoint(mut self, endpoint: &str) -> Self {
        self.config
            .discovery
            .etcd
            .endpoints
            .push(endpoint.to_owned());
        self
    }

    /// The etcd cluster that `etcd:///<prefix>` endpoints are read from
    /// (`[discovery.etcd]`; the endpoints need grpc-pool's `etcd` feature).
    pub fn etcd(mut self, etcd: super::EtcdConfig) -> Self {
        self.config.discovery.etcd = etcd;
        self
    }

    /// TLS settings (turns TLS on for host/port endpoints).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.endpoint.tls = Some(tls);
        self
    }
    /// Cap on calls in flight per channel (default unlimited).
    pub fn max_in_flight_per_channel(mut self, max: usize) -> Self {
        self.config.pool.max_in_flight_per_channel = Some(max);
        self
    }
    /// Whether calls wait for a READY channel while every channel is in backoff (within
    /// their deadline and `checkout_timeout`) instead of failing at once with `UNAVAILABLE`
    /// (default false, like gRPC's `wait_for_ready`). Calls always wait while a channel is
    /// connecting for the first time after a loss, or while ready channels are full.
    pub fn wait_for_ready(mut self, on: bool) -> Self {
        self.config.pool.wait_for_ready = Some(on);
        self
    }
    /// How long `shutdown` waits for in-flight calls.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.pool.drain_timeout = Some(timeout);
        self
    }

    /// Runs `interceptor` on the metadata of every request of the pool before it is sent:
    /// every RPC of every generated client of the pool, and raw [`PooledChannel`] calls.
    /// Returning an error fails the call with that status without sending it.
    ///
    /// For credentials that refresh asynchronously, keep the current token in shared state
    /// (an `Arc<RwLock<..>>` or `arc_swap::ArcSwap`) updated by your own task, and read it here:
    ///
    /// ```
    /// use std::sync::{Arc, RwLock};
    /// use grpc_pool::PoolConfig;
    ///
    /// let token = Arc::new(RwLock::new(String::from("Bearer first")));
    /// let current = token.clone();
    /// let config = PoolConfig::local("127.0.0.1", 50051)
    ///     .interceptor(move |metadata| {
    ///         let value = current.read().unwrap().parse()
    ///             .map_err(|_| tonic::Status::unauthenticated("token is not a header value"))?;
    ///         metadata.insert("authorization", value);
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// *token.write().unwrap() = "Bearer refreshed".into(); // seen by the next call
    /// # Ok::<(), grpc_pool::ConfigError>(())
    /// ```
    ///
    /// [`PooledChannel`]: crate::PooledChannel
    pub fn interceptor<F>(mut self, interceptor: F) -> Self
    where
        F: Fn(&mut tonic::metadata::MetadataMap) -> Result<(), tonic::Status>
            + Send
            + Sync
            + 'static,
    {
        let hook: crate::interceptor::Interceptor = std::sync::Arc::new(move |request| {
            let headers = std::mem::take(request.headers_mut());
            let mut metadata = tonic::metadata::MetadataMap::from_headers(headers);
            let result = interceptor(&mut metadata);
            *request.headers_mut() = metadata.into_headers();
            result
        });
        self.config.interceptor = Some(super::RequestInterceptor(hook));
        self
    }

    /// Checks every value that was set and returns the configuration.
    ///
    /// An endpoint is not required here, since a [`NamedPool`](crate::NamedPool) may supply
    /// it; [`PoolConfig::validate`] and [`Pool::start`](crate::Pool::start) require one.
    pub fn build(self) -> Result<PoolConfig, ConfigError> {
        self.config.check_fields(&Naming::Toml)?;
        Ok(self.config)
    }
}
