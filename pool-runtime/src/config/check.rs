//! Validation: every counted and timed value against its row of the table in
//! [`crate::rules`], then the rules that tie fields together (elastic bounds, retry delays,
//! endpoints, TLS).

use http::Uri;

use crate::error::ConfigError;
use crate::rules::{self, check_count, check_duration, show_duration, Kind};

use super::load::Naming;
use super::schema::Value;
use super::{PoolConfig, Preset};

/// Checks every set value of `config`.
pub(super) fn check(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    let mut result = Ok(());
    config.visit(&mut |path, value| {
        if result.is_ok() {
            result = check_value(naming, path, value);
        }
    });
    result?;
    check_elastic(config, naming)?;
    check_retry(config, naming)?;
    check_names(config, naming)?;
    check_endpoints(config, naming)?;
    if let Some(tls) = &config.endpoint.tls {
        tls.check(naming)?;
    }
    config.service_config(naming)?;
    if let Some(detection) = &config.outlier_detection {
        detection.check("outlier_detection")?;
    }
    check_scheme_consistency(config, naming)
}

/// One value against the bounds of its field.
fn check_value(naming: &Naming, path: &str, value: Value) -> Result<(), ConfigError> {
    let Some(field) = rules::field(path) else {
        return Ok(());
    };
    let (shown, verdict) = match (field.kind, value) {
        (kind @ Kind::Count { .. }, Value::Count(n)) => (n.to_string(), check_count(kind, n)),
        (kind @ Kind::Duration { .. }, Value::Duration(d)) => {
            (show_duration(d), check_duration(kind, d))
        }
        _ => return Ok(()),
    };
    verdict.map_err(|reason| ConfigError::invalid(naming.name(path), shown, reason))
}

/// The elastic bounds: `min_size` needs `max_size`, `min_size <= max_size`, and `size` (the
/// initial size) within them.
fn check_elastic(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    let n = |path| naming.name(path);
    let pool = &config.pool;
    let Some(max) = pool.max_size else {
        if let Some(min) = pool.min_size {
            return Err(ConfigError::Missing {
                field: n("pool.max_size"),
                hint: format!(
                    "{} is set ({min}); an elastic pool needs its largest size too",
                    n("pool.min_size")
                ),
            });
        }
        return Ok(());
    };
    let min = pool.min_size.unwrap_or(1);
    if min > max {
        return Err(ConfigError::invalid(
            n("pool.min_size"),
            min,
            format!("must be at most {} ({max})", n("pool.max_size")),
        ));
    }
    match pool.size {
        Some(size) if size < min || size > max => Err(ConfigError::invalid(
            n("pool.size"),
            size,
            format!(
                "must be between {} ({min}) and {} ({max}) in an elastic pool",
                n("pool.min_size"),
                n("pool.max_size")
            ),
        )),
        _ => Ok(()),
    }
}

fn check_retry(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    let retry = config.retry();
    if retry.max_delay < retry.base_delay {
        return Err(ConfigError::invalid(
            naming.name("endpoint.retry.max_delay"),
            show_duration(retry.max_delay),
            format!(
                "must be at least {} ({})",
                naming.name("endpoint.retry.base_delay"),
                show_duration(retry.base_delay)
            ),
        ));
    }
    Ok(())
}

fn check_names(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    if let Some(name) = &config.pool.name {
        if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                naming.name("pool.name"),
                format!("{name:?}"),
                "must be a non-empty printable name of at most 200 bytes",
            ));
        }
    }
    if let Some(service) = &config.connection.health_service {
        if service.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::invalid(
                naming.name("connection.health_service"),
                format!("{service:?}"),
                "must be a service name without spaces (\"\" for the whole server)",
            ));
        }
    }
    Ok(())
}

fn check_endpoints(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    let n = |path| naming.name(path);
    let endpoint = &config.endpoint;
    if let Some(host) = &endpoint.host {
        check_host(&n("endpoint.host"), host)?;
    }
    let mut etcd = false;
    if let Some(uri) = &endpoint.uri {
        etcd |= matches!(parse_target(&n("endpoint.uri"), uri)?, Target::Etcd(_));
    }
    for uri in &config.endpoints {
        etcd |= matches!(parse_target(&n("endpoints"), uri)?, Target::Etcd(_));
    }
    if endpoint.uri.is_some() && endpoint.host.is_some() {
        return Err(ConfigError::Conflict {
            first: n("endpoint.uri"),
            second: n("endpoint.host"),
            reason: "set either a URI or a host and port".into(),
        });
    }
    if endpoint.port.is_some() && endpoint.host.is_none() {
        return Err(ConfigError::Missing {
            field: n("endpoint.host"),
            hint: format!("{} is set without a host", n("endpoint.port")),
        });
    }
    let discovery = &config.discovery.etcd;
    if etcd && discovery.endpoints.is_empty() {
        return Err(ConfigError::Missing {
            field: n("discovery.etcd.endpoints"),
            hint: "an etcd:/// endpoint is read from an etcd cluster: give its client endpoints"
                .into(),
        });
    }
    if !super::schema::Section::is_empty(discovery) {
        discovery.check(naming)?;
    }
    Ok(())
}

/// Whether host/port endpoints use TLS.
pub(super) fn tls_enabled(config: &PoolConfig) -> bool {
    let endpoint = &config.endpoint;
    if let Some(uri) = endpoint
        .uri
        .as_deref()
        .or(config.endpoints.first().map(String::as_str))
    {
        if endpoint.host.is_none() && !uri.trim().starts_with("etcd://") {
            return uri.trim().starts_with("https://");
        }
    }
    endpoint.tls.is_some() || endpoint.preset == Some(Preset::Production)
}

/// The endpoint URIs as strings, unvalidated (for display).
pub(super) fn endpoint_strings(config: &PoolConfig) -> Vec<String> {
    let endpoint = &config.endpoint;
    let mut out = Vec::new();
    if let Some(host) = &endpoint.host {
        let tls = endpoint.tls.is_some() || endpoint.preset == Some(Preset::Production);
        let scheme = if tls { "https" } else { "http" };
        let port = endpoint.port.unwrap_or(if tls { 443 } else { 80 });
        let host = host.trim();
        out.push(if host.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("{scheme}://[{host}]:{port}")
        } else {
            format!("{scheme}://{host}:{port}")
        });
    }
    if let Some(uri) = &endpoint.uri {
        out.push(uri.trim().to_owned());
    }
    out.extend(config.endpoints.iter().map(|e| e.trim().to_owned()));
    out
}

/// The endpoints, parsed; at least one.
pub(crate) fn endpoints(config: &PoolConfig) -> Result<Vec<Target>, ConfigError> {
    let uris = endpoint_strings(config);
    if uris.is_empty() {
        return Err(ConfigError::Missing {
            field: "endpoint.host".into(),
            hint: "set endpoint.host and endpoint.port, endpoint.uri, or endpoints".into(),
        });
    }
    let field = if config.endpoint.host.is_some() {
        "endpoint.host"
    } else {
        "endpoint.uri"
    };
    uris.iter().map(|u| parse_target(field, u)).collect()
}

/// An endpoint as configured: a server's URI, or a key prefix in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `http://host:port` or `https://host:port`.
    Uri(Uri),
    /// `etcd:///<prefix>`: the servers registered under `<prefix>/` in the etcd cluster of
    /// `[discovery.etcd]`, in the format of grpc-go's etcd naming (`go.etcd.io/etcd/client/v3/naming`).
    Etcd(String),
}

impl Target {
    /// How logs, status and errors show it.
    pub(crate) fn display(&self) -> String {
        match self {
            Target::Uri(uri) => uri.to_string().trim_end_matches('/').to_owned(),
            Target::Etcd(prefix) => format!("etcd:///{prefix}"),
        }
    }
}

/// Parses an endpoint: an `http(s)://` URI (see [`parse_uri`]) or `etcd:///<prefix>`.
pub(crate) fn parse_target(field: &str, value: &str) -> Result<Target, ConfigError> {
    let Some(rest) = value.trim().strip_prefix("etcd://") else {
        return parse_uri(field, value).map(Target::Uri);
    };
    let bad = |reason: &str| ConfigError::invalid(field, format!("{value:?}"), reason);
    // grpc-go's form has no authority: etcd's own addresses are configuration, not part of
    // the name, so one name means the same service wherever the configuration points.
    let Some(prefix) = rest.strip_prefix('/') else {
        return Err(bad(
            "must be etcd:///<prefix> (three slashes; etcd's own endpoints go in discovery.etcd.endpoints)",
        ));
    };
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return Err(bad("has no key prefix (etcd:///<prefix>)"));
    }
    if prefix.contains(['?', '#', ' ']) || prefix.chars().any(char::is_control) {
        return Err(bad(
            "must be etcd:///<prefix> with a key prefix free of spaces, '?' and '#'",
        ));
    }
    if !cfg!(feature = "etcd") {
        return Err(bad(
            "needs grpc-pool's `etcd` feature (grpc-pool = { features = [\"etcd\"] })",
        ));
    }
    Ok(Target::Etcd(prefix.to_owned()))
}

/// Parses an endpoint URI: `http://` or `https://`, a host, an optional port, no path, no
/// query and no credentials.
pub(crate) fn parse_uri(field: &str, value: &str) -> Result<Uri, ConfigError> {
    // `user:token@host` would be printed in logs, status and errors and sent as
    // `:authority`: refuse it without echoing the secret.
    if let Some((scheme, rest)) = value.trim().split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((_, host)) = authority.rsplit_once('@') {
            return Err(ConfigError::invalid(
                field,
                format!("\"{scheme}://<redacted>@{host}\""),
                "must not carry credentials (user:password@); send them with an interceptor",
            ));
        }
    }
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
    if uri.query().is_some() {
        return Err(bad("must not have a query"));
    }
    Ok(uri)
}

/// A host name or IP address, without scheme, port or path.
fn check_host(field: &str, host: &str) -> Result<(), ConfigError> {
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

/// `[endpoint.tls]` with an `http://` URI is a contradiction. The error names the TLS
/// section (`endpoint.tls`), or under environment naming the first TLS variable set.
fn check_scheme_consistency(config: &PoolConfig, naming: &Naming) -> Result<(), ConfigError> {
    let Some(tls) = &config.endpoint.tls else {
        return Ok(());
    };
    let uri = config.endpoint.uri.as_ref();
    let Some(plain) = uri
        .into_iter()
        .chain(&config.endpoints)
        .find(|u| u.trim().starts_with("http://"))
    else {
        return Ok(());
    };
    Err(ConfigError::Conflict {
        first: tls_field_name(tls, naming),
        second: naming.name(if uri == Some(plain) {
            "endpoint.uri"
        } else {
            "endpoints"
        }),
        reason: format!("TLS is configured but {plain} is plaintext (use https://)"),
    })
}

/// How a conflict names the TLS settings: the section in TOML and code, the first TLS
/// variable that is set in the environment.
fn tls_field_name(tls: &super::TlsConfig, naming: &Naming) -> String {
    let Naming::Env(_) = naming else {
        return "endpoint.tls".into();
    };
    [
        (tls.ca_cert.is_some(), "endpoint.tls.ca_cert"),
        (tls.client_cert.is_some(), "endpoint.tls.client_cert"),
        (tls.client_key.is_some(), "endpoint.tls.client_key"),
        (tls.domain.is_some(), "endpoint.tls.domain"),
    ]
    .into_iter()
    .find(|(set, _)| *set)
    .map_or_else(|| "endpoint.tls".into(), |(_, path)| naming.name(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsConfig;
    use crate::rules::{DAY, HOUR};
    use std::time::Duration;

    fn elastic(
        size: Option<usize>,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Result<(), ConfigError> {
        let mut config = PoolConfig::default();
        (config.pool.size, config.pool.min_size, config.pool.max_size) = (size, min, max);
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
    fn credentials_in_an_endpoint_are_refused_without_being_shown() {
        for (uri, host) in [
            (
                "https://user:s3cret@api.example.com:443",
                "api.example.com:443",
            ),
            ("http://s3cret@10.0.0.1", "10.0.0.1"),
        ] {
            let err = PoolConfig::builder().endpoint(uri).build().unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            let (field, value, reason) = invalid(Err(err));
            assert_eq!(field, "endpoint.uri");
            assert!(
                value.contains(host) && value.contains("<redacted>"),
                "{value}"
            );
            assert!(reason.contains("credentials"), "{reason}");
        }
        let err = PoolConfig::builder()
            .endpoint("http://a:1")
            .endpoint("http://b:2/?token=s3cret")
            .build()
            .unwrap_err();
        let (field, _, reason) = invalid(Err(err));
        assert_eq!(
            (field.as_str(), reason.as_str()),
            ("endpoints", "must not have a query")
        );
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
        let mut config = PoolConfig::default();
        (config.pool.size, config.pool.max_size) = (Some(9), Some(8));
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
            (|c| c.pool.resize_interval = Some(Duration::ZERO), "pool.resize_interval", "0s", "greater than zero"),
            (|c| c.pool.resize_interval = Some(HOUR + ms(1000)), "pool.resize_interval", "3601s", "at most 1h"),
            (|c| c.pool.resize_step = Some(0), "pool.resize_step", "0", "at least 1"),
            (|c| c.pool.resize_step = Some(1025), "pool.resize_step", "1025", "at most 1024"),
            (|c| c.connection.max_connection_age = Some(Some(ms(99))), "connection.max_connection_age", "99ms", "must be at least 100ms"),
            (|c| c.connection.max_connection_age = Some(Some(Duration::ZERO)), "connection.max_connection_age", "0s", "must be at least 100ms"),
            (|c| c.connection.max_connection_age = Some(Some(DAY + ms(1000))), "connection.max_connection_age", "86401s", "at most 24h"),
            (|c| c.connection.resolve_interval = Some(Some(Duration::ZERO)), "connection.resolve_interval", "0s", "greater than zero"),
        ];
        for (set, field, value, reason) in cases {
            let (f, v, r) = invalid(with(set));
            assert_eq!((f.as_str(), v.as_str()), (field, value), "{r}");
            assert!(r.contains(reason), "{field}: {r}");
        }
        with(|c| c.connection.max_connection_age = Some(Some(ms(100)))).unwrap();
        with(|c| c.connection.max_connection_age = Some(Some(DAY))).unwrap();
        with(|c| c.connection.max_connection_age = Some(None)).unwrap();
        with(|c| c.connection.resolve_interval = Some(None)).unwrap();
        with(|c| c.connection.resolve_interval = Some(Some(DAY))).unwrap();
        with(|c| c.pool.resize_interval = Some(HOUR)).unwrap();
        with(|c| c.pool.resize_step = Some(1024)).unwrap();
        let (f, _, _) = invalid(with(|c| {
            c.connection.resolve_interval = Some(Some(DAY + ms(1)))
        }));
        assert_eq!(f, "connection.resolve_interval");
    }

    #[test]
    fn tls_conflicts_name_the_section_or_the_first_tls_variable() {
        let mut config = PoolConfig::default();
        config.endpoint.uri = Some("http://h:1".into());
        config.endpoint.tls = Some(TlsConfig::new().ca_cert("/ca.pem").domain("h"));
        let first = |naming: &Naming| match check_scheme_consistency(&config, naming) {
            Err(ConfigError::Conflict { first, .. }) => first,
            other => panic!("{other:?}"),
        };
        assert_eq!(first(&Naming::Toml), "endpoint.tls");
        assert_eq!(first(&Naming::Env("APP".into())), "APP_TLS_CA_CERT");
        let only_key = TlsConfig::new().client_key("/k.pem").domain("h");
        assert_eq!(
            tls_field_name(&only_key, &Naming::Env("APP".into())),
            "APP_TLS_CLIENT_KEY"
        );
        assert_eq!(
            tls_field_name(&TlsConfig::new(), &Naming::Env("APP".into())),
            "endpoint.tls"
        );
    }
}
