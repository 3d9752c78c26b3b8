//! From a validated [`PoolConfig`] to the values the runtime uses: endpoint URIs, tonic
//! `Endpoint`s with TLS, timings.

use std::time::Duration;

use http::Uri;
use tonic::transport::Endpoint;

use crate::error::ConfigError;

use super::fields::{Field, Naming};
use super::{PoolConfig, Preset, RetryConfig};

/// One backend: where slots connect.
#[derive(Clone, Debug)]
pub(crate) struct EndpointSpec {
    /// The URI as shown in logs, status and errors.
    pub(crate) display: String,
    /// The tonic endpoint with every connection setting applied.
    pub(crate) endpoint: Endpoint,
}

/// The settings in effect for a running pool.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) endpoints: Vec<EndpointSpec>,
    pub(crate) size: usize,
    pub(crate) checkout_timeout: Duration,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) drain_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) health_check: bool,
    pub(crate) health_service: String,
    pub(crate) retry: RetryConfig,
    pub(crate) interceptor: Option<super::RequestInterceptor>,
}

impl Settings {
    /// Validates `config` and resolves it; `name` is used when the config names no pool.
    pub(crate) fn resolve(config: &PoolConfig, name: String) -> Result<Settings, ConfigError> {
        config.validate()?;
        let endpoints = endpoints(config)?
            .into_iter()
            .map(|uri| build_endpoint(config, uri))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Settings {
            name: config.name.clone().unwrap_or(name),
            endpoints,
            size: config.size(),
            checkout_timeout: config.checkout_timeout(),
            max_in_flight: config.max_in_flight_per_channel(),
            drain_timeout: config.drain_timeout(),
            connect_timeout: config.connect_timeout(),
            ping_interval: config.ping_interval(),
            health_check: config.health_check(),
            health_service: config.health_service().to_owned(),
            retry: config.retry(),
            interceptor: config.interceptor.clone(),
        })
    }

    /// The endpoints joined for messages.
    pub(crate) fn endpoint_list(&self) -> String {
        let list: Vec<&str> = self.endpoints.iter().map(|e| e.display.as_str()).collect();
        list.join(", ")
    }
}

fn build_endpoint(config: &PoolConfig, uri: Uri) -> Result<EndpointSpec, ConfigError> {
    let display = uri.to_string().trim_end_matches('/').to_owned();
    let https = uri.scheme_str() == Some("https");
    let mut endpoint = Endpoint::from(uri)
        .http2_keep_alive_interval(config.keepalive())
        .keep_alive_timeout(config.keepalive_timeout())
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if let Some(timeout) = config.request_timeout() {
        endpoint = endpoint.timeout(timeout);
    }
    if https {
        let tls = config.tls.clone().unwrap_or_default().to_tonic()?;
        endpoint = endpoint.tls_config(tls).map_err(|e| {
            ConfigError::invalid(
                "endpoint.tls",
                &display,
                format!("cannot be used: {}", crate::error::error_chain(&e)),
            )
        })?;
    }
    Ok(EndpointSpec { display, endpoint })
}

/// Whether host/port endpoints use TLS.
pub(super) fn tls_enabled(config: &PoolConfig) -> bool {
    if let Some(uri) = config
        .uri
        .as_deref()
        .or(config.endpoints.first().map(String::as_str))
    {
        if config.host.is_none() {
            return uri.trim().starts_with("https://");
        }
    }
    config.tls.is_some() || config.preset == Some(Preset::Production)
}

/// The endpoint URIs as strings, unvalidated (for display).
pub(super) fn endpoint_strings(config: &PoolConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(host) = &config.host {
        out.push(host_uri(config, host));
    }
    if let Some(uri) = &config.uri {
        out.push(uri.trim().to_owned());
    }
    out.extend(config.endpoints.iter().map(|e| e.trim().to_owned()));
    out
}

fn host_uri(config: &PoolConfig, host: &str) -> String {
    let tls = config.tls.is_some() || config.preset == Some(Preset::Production);
    let scheme = if tls { "https" } else { "http" };
    let port = config.port.unwrap_or(if tls { 443 } else { 80 });
    let host = host.trim();
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// The endpoint URIs, parsed; at least one.
pub(super) fn endpoints(config: &PoolConfig) -> Result<Vec<Uri>, ConfigError> {
    let naming = Naming::Toml;
    let uris = endpoint_strings(config);
    if uris.is_empty() {
        return Err(ConfigError::Missing {
            field: naming.name(Field::Host),
            hint: "set endpoint.host and endpoint.port, endpoint.uri, or endpoints".into(),
        });
    }
    let field = if config.host.is_some() {
        Field::Host
    } else {
        Field::Uri
    };
    uris.iter()
        .map(|u| parse_uri(&naming.name(field), u))
        .collect()
}

/// Parses an endpoint URI: `http://` or `https://`, a host, an optional port, no path.
pub(crate) fn parse_uri(field: &str, value: &str) -> Result<Uri, ConfigError> {
    let bad = |reason: &str| ConfigError::invalid(field, format!("{value:?}"), reason);
    let uri: Uri = value
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&format!("is not a valid URI ({e})")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err(bad("must use the http:// or https:// scheme")),
        None => return Err(bad("must start with http:// or https://")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => {}
        _ => return Err(bad("has no host")),
    }
    if uri.port_u16() == Some(0) {
        return Err(bad("has port 0"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(bad("must not have a path"));
    }
    Ok(uri)
}

/// A host name or IP address, without scheme, port or path.
pub(crate) fn check_host(field: &str, host: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::invalid(field, format!("{host:?}"), reason);
    let h = host.trim();
    if h.is_empty() {
        return Err(bad("must not be empty"));
    }
    if h.contains("://") {
        return Err(bad(
            "must be a host name without scheme (use endpoint.uri for URIs)",
        ));
    }
    if h.contains(['/', ' ', '?', '#', '@']) || h.chars().any(char::is_control) {
        return Err(bad("must be a host name or IP address"));
    }
    let test = if h.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("http://[{h}]")
    } else {
        format!("http://{h}")
    };
    match test.parse::<Uri>() {
        Ok(uri) if uri.port().is_none() => Ok(()),
        Ok(_) => Err(bad("must not include a port (use endpoint.port)")),
        Err(_) => Err(bad("must be a host name or IP address")),
    }
}

/// `[endpoint.tls]` with an `http://` URI is a contradiction.
pub(super) fn check_scheme_consistency(
    config: &PoolConfig,
    naming: &Naming,
) -> Result<(), ConfigError> {
    if config.tls.is_none() {
        return Ok(());
    }
    let plain = config
        .uri
        .iter()
        .chain(config.endpoints.iter())
        .find(|u| u.trim().starts_with("http://"));
    match plain {
        Some(uri) => Err(ConfigError::Conflict {
            first: "endpoint.tls".into(),
            second: naming.name(if config.uri.as_deref() == Some(uri.as_str()) {
                Field::Uri
            } else {
                Field::Endpoints
            }),
            reason: format!("TLS is configured but {uri} is plaintext (use https://)"),
        }),
        None => Ok(()),
    }
}
