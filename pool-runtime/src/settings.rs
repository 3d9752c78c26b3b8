//! The settings of a running pool: a validated [`PoolConfig`] turned into the values the
//! runtime uses (endpoints with their TLS and HTTP/2 settings, timings, hooks).

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::transport::{Http2Options, Origin, Tls, Transport};

use crate::config::{EtcdConfig, Naming, PoolConfig, RequestInterceptor, RetryConfig, Target};
use crate::error::ConfigError;
use crate::service_config::ServiceConfig;

/// One backend: where slots connect.
#[derive(Clone, Debug)]
pub(crate) struct EndpointSpec {
    /// The URI as shown in logs, status and errors.
    pub(crate) display: String,
    /// How its connections are set up and what its requests carry.
    pub(crate) transport: Transport,
    /// The URI's host, without the brackets of an IPv6 literal.
    pub(crate) host: String,
    /// The URI's port, or 443 (`https`) / 80 (`http`) when it has none.
    pub(crate) port: u16,
    /// The socket address when `host` is an IP address; `None` for a name, which the
    /// runtime resolves.
    pub(crate) addr: Option<std::net::SocketAddr>,
    /// For `etcd:///<prefix>`: the prefix whose keys list the addresses (`host` and `port`
    /// are then unused).
    pub(crate) etcd_prefix: Option<String>,
}

/// The settings in effect for a running pool.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) endpoints: Vec<EndpointSpec>,
    /// The etcd cluster, when some endpoint is `etcd:///<prefix>`.
    pub(crate) etcd: Option<EtcdConfig>,
    /// Call policies by method (`PoolConfigBuilder::service_config_json`,
    /// `connection.service_config`).
    pub(crate) service_config: Option<Arc<ServiceConfig>>,
    /// Outlier detection from the builder (it replaces the service config's).
    pub(crate) outlier_detection: Option<crate::outlier::OutlierDetection>,
    /// The initial number of slots (`pool.size`, or `min_size` for an elastic pool).
    pub(crate) size: usize,
    /// The fewest slots (fixed pool: `size`).
    pub(crate) min_size: usize,
    /// The most slots (fixed pool: `size`).
    pub(crate) max_size: usize,
    /// How often an elastic pool reconsiders its size.
    pub(crate) resize_interval: Duration,
    /// The most slots added or removed per `resize_interval`.
    pub(crate) resize_step: usize,
    /// An elastic pool grows while the average number of calls in flight per ready channel
    /// stays above this: half of `max_in_flight_per_channel` (integer division, at least 1)
    /// when the cap is set, else 50, half of the common HTTP/2 `MAX_CONCURRENT_STREAMS` of
    /// 100.
    pub(crate) grow_threshold: f64,
    pub(crate) checkout_timeout: Duration,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) drain_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// The configured keepalive interval (a server's `too_many_pings` raises the interval
    /// of new connections above it, see `keepalive`).
    pub(crate) keepalive: Duration,
    /// Calls wait for a READY channel while every channel is in backoff (within their
    /// deadline), instead of failing at once.
    pub(crate) wait_for_ready: bool,
    /// The default deadline of every call.
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) ping_interval: Option<Duration>,
    /// How often the slots of an address that is down probe it while calls want a channel.
    pub(crate) reconnect_probe_interval: Duration,
    /// Replace a connection at this age (the runtime adds ±10 % jitter); `None`: never.
    pub(crate) max_connection_age: Option<Duration>,
    /// Resolve host names again this often; `None`: only at start and after failures.
    pub(crate) resolve_interval: Option<Duration>,
    /// Resolves the hosts of endpoints that are not IP addresses.
    pub(crate) resolver: crate::resolver::ResolverHook,
    pub(crate) health_check: bool,
    pub(crate) health_service: String,
    pub(crate) retry: RetryConfig,
    pub(crate) interceptor: Option<RequestInterceptor>,
}

impl Settings {
    /// Validates `config` and resolves it; `name` is used when the config names no pool.
    pub(crate) fn resolve(config: &PoolConfig, name: String) -> Result<Settings, ConfigError> {
        config.validate()?;
        let endpoints = crate::config::endpoint_targets(config)?
            .into_iter()
            .map(|target| match target {
                Target::Uri(uri) => build_endpoint(config, uri),
                Target::Etcd(prefix) => build_etcd_endpoint(config, prefix),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let etcd = endpoints
            .iter()
            .any(|e| e.etcd_prefix.is_some())
            .then(|| config.etcd().clone());
        let service_config = config.service_config(&Naming::Toml)?.map(|c| {
            for field in &c.unknown {
                tracing::warn!(field = %field, "service config: unknown field ignored");
            }
            Arc::new(c)
        });
        Ok(Settings {
            name: config.name().map_or(name, str::to_owned),
            endpoints,
            etcd,
            service_config,
            outlier_detection: config.outlier_detection.clone(),
            size: config.size(),
            min_size: config.min_size(),
            max_size: config.max_size(),
            resize_interval: config.resize_interval(),
            resize_step: config.resize_step(),
            grow_threshold: grow_threshold(config.max_in_flight_per_channel()),
            checkout_timeout: config.checkout_timeout(),
            max_in_flight: config.max_in_flight_per_channel(),
            drain_timeout: config.drain_timeout(),
            connect_timeout: config.connect_timeout(),
            keepalive: config.keepalive(),
            wait_for_ready: config.wait_for_ready(),
            request_timeout: config.request_timeout(),
            ping_interval: config.ping_interval(),
            reconnect_probe_interval: config.reconnect_probe_interval(),
            max_connection_age: config.max_connection_age(),
            resolve_interval: config.resolve_interval(),
            resolver: config.resolver.clone().unwrap_or_default(),
            health_check: config.health_check(),
            health_service: config.health_service().to_owned(),
            retry: config.retry(),
            interceptor: config.interceptor.clone(),
        })
    }

    /// Whether some endpoint is a host name (the pool then re-resolves names).
    pub(crate) fn resolves_names(&self) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.addr.is_none() && e.etcd_prefix.is_none())
    }

    /// Outlier detection, if any: the builder's, else the service config's.
    pub(crate) fn outlier_detection(&self) -> Option<&crate::outlier::OutlierDetection> {
        self.outlier_detection
            .as_ref()
            .or_else(|| self.service_config.as_ref()?.outlier_detection.as_ref())
    }

    /// Whether some endpoint's addresses come from a naming service (etcd).
    pub(crate) fn discovers(&self) -> bool {
        self.etcd.is_some()
    }

    /// Whether the pool sizes itself between `min_size` and `max_size`.
    pub(crate) fn is_elastic(&self) -> bool {
        self.max_size > self.min_size
    }

    /// The endpoints joined for messages.
    pub(crate) fn endpoint_list(&self) -> String {
        let list: Vec<&str> = self.endpoints.iter().map(|e| e.display.as_str()).collect();
        list.join(", ")
    }
}

/// See [`Settings::grow_threshold`].
fn grow_threshold(max_in_flight: Option<usize>) -> f64 {
    match max_in_flight {
        Some(cap) => ((cap / 2) as f64).max(1.0),
        None => 50.0,
    }
}

/// An `etcd:///<prefix>` endpoint. Its servers are addressed (`:authority`) by the last
/// segment of the prefix (`echo` for `svc/echo`: the service's name, where grpc-go would
/// send the whole prefix percent-encoded, which HTTP/2 libraries here refuse), or by the TLS
/// domain override, which TLS needs: discovered addresses are IPs, and the certificate names
/// the service.
fn build_etcd_endpoint(config: &PoolConfig, prefix: String) -> Result<EndpointSpec, ConfigError> {
    let display = format!("etcd:///{prefix}");
    let tls_config = config.tls().cloned().unwrap_or_default();
    let authority = match tls_config.domain_name() {
        Some(domain) => domain_authority(domain)?,
        None => {
            let name = prefix.rsplit('/').next().unwrap_or(&prefix);
            name.parse::<Authority>().map_err(|_| ConfigError::Missing {
                field: "endpoint.tls.domain".into(),
                hint: format!(
                    "the last segment of {display} ({name:?}) is not a host name to address its servers by; name one"
                ),
            })?
        }
    };
    let (scheme, tls) = if config.tls_enabled() {
        let Some(domain) = tls_config.domain_name() else {
            return Err(ConfigError::Missing {
                field: "endpoint.tls.domain".into(),
                hint: format!(
                    "{display} uses TLS: name the servers' certificate (discovered addresses are IPs)"
                ),
            });
        };
        (Scheme::HTTPS, Some(tls(&tls_config, domain)?))
    } else {
        (Scheme::HTTP, None)
    };
    Ok(EndpointSpec {
        display,
        transport: transport(config, scheme, authority, tls),
        host: String::new(),
        port: 0,
        addr: None,
        etcd_prefix: Some(prefix),
    })
}

/// TLS that verifies the server as `name`.
fn tls(tls_config: &crate::TlsConfig, name: &str) -> Result<Tls, ConfigError> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
        ConfigError::invalid(
            "endpoint.tls.domain",
            name,
            format!("is not a DNS name or IP address: {e}"),
        )
    })?;
    Ok(Tls {
        config: Arc::new(tls_config.to_rustls()?),
        server_name,
    })
}

/// The TLS domain override as the `:authority` servers are addressed by.
fn domain_authority(domain: &str) -> Result<Authority, ConfigError> {
    domain.parse::<Authority>().map_err(|e| {
        ConfigError::invalid(
            "endpoint.tls.domain",
            domain,
            format!("is not a valid authority: {e}"),
        )
    })
}

/// How the connections of an endpoint are set up.
fn transport(
    config: &PoolConfig,
    scheme: Scheme,
    authority: Authority,
    tls: Option<Tls>,
) -> Transport {
    Transport {
        origin: Arc::new(Origin::new(scheme, authority, config.request_timeout())),
        tls,
        http2: Http2Options {
            keepalive_timeout: config.keepalive_timeout(),
            keepalive_while_idle: config.keepalive_while_idle(),
            initial_stream_window_size: config.initial_stream_window_size(),
            initial_connection_window_size: config.initial_connection_window_size(),
            adaptive_window: config.adaptive_window(),
            max_frame_size: config.max_frame_size(),
            max_header_list_size: config.max_header_list_size(),
        },
    }
}

fn build_endpoint(config: &PoolConfig, uri: Uri) -> Result<EndpointSpec, ConfigError> {
    let display = uri.to_string().trim_end_matches('/').to_owned();
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = host
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| std::net::SocketAddr::new(ip, port));
    let invalid = |field: &str, value: &str, why: String| ConfigError::invalid(field, value, why);
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| invalid("endpoint", &display, "has no host".to_owned()))?;
    let tls_config = config.tls().cloned().unwrap_or_default();
    let (scheme, authority, tls) = if https {
        // The name the server is verified as is also the name it is addressed as (grpc-go
        // and gRPC C-core do the same), so a server behind a name other than its address sees
        // the name it has a certificate for.
        let tls = tls(&tls_config, tls_config.domain_name().unwrap_or(&host))?;
        let authority = match tls_config.domain_name() {
            Some(domain) => domain_authority(domain)?,
            None => authority,
        };
        (Scheme::HTTPS, authority, Some(tls))
    } else {
        (Scheme::HTTP, authority, None)
    };
    Ok(EndpointSpec {
        display,
        transport: transport(config, scheme, authority, tls),
        host,
        port,
        addr,
        etcd_prefix: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(config: crate::config::PoolConfigBuilder) -> Settings {
        Settings::resolve(&config.build().unwrap(), "t".into()).unwrap()
    }

    #[test]
    fn settings_of_a_fixed_pool() {
        let s = settings(PoolConfig::local("127.0.0.1", 50051).size(4));
        assert_eq!((s.size, s.min_size, s.max_size), (4, 4, 4));
        assert_eq!(s.resize_interval, Duration::from_secs(5));
        assert_eq!(s.resize_step, 2);
        assert_eq!(s.grow_threshold, 50.0);
        assert_eq!(s.max_connection_age, None);
        assert_eq!(s.resolve_interval, Some(Duration::from_secs(30)));
        assert_eq!(format!("{:?}", s.resolver), "DnsResolver");
    }

    #[test]
    fn settings_of_an_elastic_pool() {
        let s = settings(
            PoolConfig::local("127.0.0.1", 50051)
                .min_size(2)
                .max_size(6)
                .resize_interval(Duration::from_millis(200))
                .resize_step(1)
                .max_in_flight_per_channel(20)
                .max_connection_age(Some(Duration::from_millis(300)))
                .resolve_interval(None),
        );
        assert_eq!((s.size, s.min_size, s.max_size), (2, 2, 6));
        assert_eq!(s.resize_interval, Duration::from_millis(200));
        assert_eq!(s.resize_step, 1);
        assert_eq!(s.grow_threshold, 10.0);
        assert_eq!(s.max_connection_age, Some(Duration::from_millis(300)));
        assert_eq!(s.resolve_interval, None);
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn an_etcd_endpoint_is_addressed_by_its_service_name_or_the_tls_domain() {
        let etcd = || {
            PoolConfig::builder()
                .endpoint("etcd:///prod/svc/users")
                .etcd_endpoint("http://127.0.0.1:2379")
        };
        let s = settings(etcd());
        let e = &s.endpoints[0];
        assert_eq!(e.display, "etcd:///prod/svc/users");
        assert_eq!(e.etcd_prefix.as_deref(), Some("prod/svc/users"));
        assert_eq!(e.transport.origin.authority.as_str(), "users");
        assert!(!s.resolves_names() && s.discovers());
        // TLS: the servers' certificate name must be given (addresses are IPs).
        let tls = etcd().tls(crate::TlsConfig::new()).build().unwrap();
        match Settings::resolve(&tls, "t".into()) {
            Err(ConfigError::Missing { field, .. }) => assert_eq!(field, "endpoint.tls.domain"),
            other => panic!("{other:?}"),
        }
        let tls = etcd()
            .tls(crate::TlsConfig::new().domain("users.internal"))
            .build()
            .unwrap();
        let s = Settings::resolve(&tls, "t".into()).unwrap();
        assert_eq!(
            s.endpoints[0].transport.origin.authority.as_str(),
            "users.internal"
        );
        assert!(s.endpoints[0].transport.tls.is_some());
    }

    #[test]
    fn grow_threshold_is_half_the_cap_and_at_least_one() {
        assert_eq!(grow_threshold(None), 50.0);
        assert_eq!(grow_threshold(Some(100)), 50.0);
        assert_eq!(grow_threshold(Some(7)), 3.0);
        assert_eq!(grow_threshold(Some(2)), 1.0);
        assert_eq!(grow_threshold(Some(1)), 1.0);
    }

    #[test]
    fn a_custom_resolver_reaches_the_settings() {
        #[derive(Debug)]
        struct Nothing;
        impl crate::resolver::Resolve for Nothing {
            fn resolve(&self, _: &str, _: u16) -> crate::resolver::ResolveFuture {
                Box::pin(async { Ok(Vec::new()) })
            }
        }
        let s = settings(PoolConfig::local("h", 1).resolver(Nothing));
        assert_eq!(format!("{:?}", s.resolver), "Nothing");
    }

    #[test]
    fn endpoint_hosts_and_ports() {
        let s = settings(
            PoolConfig::builder()
                .endpoint("http://127.0.0.1:50051")
                .endpoint("http://[::1]:7000")
                .endpoint("http://api.internal")
                .endpoint("http://backend-2:81"),
        );
        let got: Vec<(&str, u16, bool)> = s
            .endpoints
            .iter()
            .map(|e| (e.host.as_str(), e.port, e.addr.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("127.0.0.1", 50051, true),
                ("::1", 7000, true),
                ("api.internal", 80, false),
                ("backend-2", 81, false),
            ]
        );
        let s = settings(PoolConfig::production("api.example.com", 443));
        assert_eq!(s.endpoints[0].host, "api.example.com");
        assert_eq!(s.endpoints[0].port, 443);
        assert!(s.endpoints[0].addr.is_none());
        let s = settings(PoolConfig::builder().endpoint("https://10.1.2.3"));
        assert_eq!(
            (s.endpoints[0].port, s.endpoints[0].addr.is_some()),
            (443, true)
        );
    }
}
