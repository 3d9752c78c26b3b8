//! `PoolConfig::from_env(prefix)`: `{PREFIX}_HOST`, `{PREFIX}_POOL_SIZE`, ...

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::ConfigError;

use super::fields::{
    int, parse_bool, parse_duration, parse_int, parse_optional_duration, Field, Naming,
};
use super::{PoolConfig, Preset, TlsConfig};

/// Reads the variables through `get` (the process environment, or a map in tests).
pub(super) fn from_env(
    prefix: &str,
    get: impl Fn(&str) -> Option<OsString>,
) -> Result<PoolConfig, ConfigError> {
    let prefix = prefix.trim_end_matches('_');
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(ConfigError::invalid(
            "environment prefix",
            format!("{prefix:?}"),
            "must be non-empty ASCII letters, digits and underscores",
        ));
    }
    let naming = Naming::Env(prefix.to_owned());
    let var = |field: Field| -> Result<Option<(String, String)>, ConfigError> {
        let name = naming.name(field);
        match get(&name) {
            None => Ok(None),
            Some(v) => match v.into_string() {
                Ok(s) if s.trim().is_empty() => Ok(None),
                Ok(s) => Ok(Some((name, s))),
                Err(raw) => Err(ConfigError::invalid(
                    name,
                    format!("{raw:?}"),
                    "is not valid UTF-8",
                )),
            },
        }
    };
    let duration = |field| -> Result<_, ConfigError> {
        var(field)?.map(|(n, v)| parse_duration(&n, &v)).transpose()
    };
    let integer = |field| -> Result<Option<i64>, ConfigError> {
        var(field)?.map(|(n, v)| parse_int(&n, &v)).transpose()
    };
    fn fit<T: TryFrom<i64>>(
        naming: &Naming,
        field: Field,
        v: Option<i64>,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        v.map(|v| int(&naming.name(field), v, what)).transpose()
    }
    let path = |field| -> Result<Option<PathBuf>, ConfigError> {
        Ok(var(field)?.map(|(_, v)| PathBuf::from(v)))
    };

    let tls = TlsConfig {
        ca_cert: path(Field::TlsCaCert)?,
        client_cert: path(Field::TlsClientCert)?,
        client_key: path(Field::TlsClientKey)?,
        domain: var(Field::TlsDomain)?.map(|(_, v)| v),
    };
    let preset = match var(Field::Type)? {
        None => None,
        Some((name, v)) => Some(v.parse::<Preset>().map_err(|_| {
            ConfigError::invalid(
                name,
                format!("{v:?}"),
                "must be one of production, local, test",
            )
        })?),
    };
    let port = integer(Field::Port)?;
    let optional_duration = |field| -> Result<_, ConfigError> {
        var(field)?
            .map(|(n, v)| parse_optional_duration(&n, &v))
            .transpose()
    };
    let slots = |field| -> Result<Option<usize>, ConfigError> {
        fit(
            &naming,
            field,
            integer(field)?,
            "must be between 1 and 1024",
        )
    };
    let config = PoolConfig {
        interceptor: None,
        resolver: None,
        preset,
        host: var(Field::Host)?.map(|(_, v)| v),
        port: fit(&naming, Field::Port, port, "must be between 1 and 65535")?,
        uri: var(Field::Uri)?.map(|(_, v)| v),
        endpoints: var(Field::Endpoints)?
            .map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        tls: (tls != TlsConfig::default()).then_some(tls),
        retry_max_attempts: fit(
            &naming,
            Field::RetryMaxAttempts,
            integer(Field::RetryMaxAttempts)?,
            "must be between 1 and 1000",
        )?,
        retry_base_delay: duration(Field::RetryBaseDelay)?,
        retry_max_delay: duration(Field::RetryMaxDelay)?,
        name: var(Field::Name)?.map(|(_, v)| v),
        size: fit(
            &naming,
            Field::Size,
            integer(Field::Size)?,
            "must be between 1 and 1024",
        )?,
        checkout_timeout: duration(Field::CheckoutTimeout)?,
        max_in_flight_per_channel: fit(
            &naming,
            Field::MaxInFlight,
            integer(Field::MaxInFlight)?,
            "must be at least 1",
        )?,
        drain_timeout: duration(Field::DrainTimeout)?,
        connect_timeout: duration(Field::ConnectTimeout)?,
        request_timeout: duration(Field::RequestTimeout)?,
        keepalive: duration(Field::Keepalive)?,
        keepalive_timeout: duration(Field::KeepaliveTimeout)?,
        ping_interval: optional_duration(Field::PingInterval)?,
        health_check: var(Field::HealthCheck)?
            .map(|(n, v)| parse_bool(&n, &v))
            .transpose()?,
        health_service: var(Field::HealthService)?.map(|(_, v)| v),
        min_size: slots(Field::MinSize)?,
        max_size: slots(Field::MaxSize)?,
        resize_interval: duration(Field::ResizeInterval)?,
        resize_step: slots(Field::ResizeStep)?,
        max_connection_age: optional_duration(Field::MaxConnectionAge)?,
        resolve_interval: optional_duration(Field::ResolveInterval)?,
    };
    config.check_fields(&naming)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn env(vars: &[(&str, &str)]) -> Result<PoolConfig, ConfigError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(*v)))
            .collect();
        from_env("GRPC", move |k| map.get(k).cloned())
    }

    #[test]
    fn every_field_has_a_distinct_variable() {
        let mut names: Vec<&str> = Field::ALL.iter().map(|f| f.env_suffix()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Field::ALL.len());
    }

    #[test]
    fn reads_host_port_and_size() {
        let c = env(&[
            ("GRPC_HOST", "api"),
            ("GRPC_PORT", "8443"),
            ("GRPC_POOL_SIZE", "7"),
        ])
        .unwrap();
        assert_eq!(c.size(), 7);
        assert_eq!(c.endpoints(), vec!["http://api:8443".to_owned()]);
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        let cases = [
            ("GRPC_POOL_SIZE", "0"),
            ("GRPC_POOL_SIZE", "many"),
            ("GRPC_PORT", "70000"),
            ("GRPC_CHECKOUT_TIMEOUT", "soon"),
            ("GRPC_PING_INTERVAL", "0s"),
            ("GRPC_HEALTH_CHECK", "maybe"),
            ("GRPC_ENDPOINT_TYPE", "prod"),
            ("GRPC_RETRY_MAX_ATTEMPTS", "0"),
            ("GRPC_URI", "ftp://x"),
        ];
        for (var, value) in cases {
            let err = env(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
            assert!(err.contains(value), "{var}: {err}");
        }
    }

    #[test]
    fn reads_elastic_refresh_and_resolve_settings() {
        let c = env(&[
            ("GRPC_HOST", "api"),
            ("GRPC_POOL_MIN_SIZE", "2"),
            ("GRPC_POOL_MAX_SIZE", "20"),
            ("GRPC_POOL_RESIZE_INTERVAL", "750ms"),
            ("GRPC_POOL_RESIZE_STEP", "5"),
            ("GRPC_MAX_CONNECTION_AGE", "30m"),
            ("GRPC_RESOLVE_INTERVAL", "off"),
        ])
        .unwrap();
        assert!(c.is_elastic());
        assert_eq!((c.size(), c.min_size(), c.max_size()), (2, 2, 20));
        assert_eq!(c.resize_interval(), Duration::from_millis(750));
        assert_eq!(c.resize_step(), 5);
        assert_eq!(c.max_connection_age(), Some(Duration::from_secs(1800)));
        assert_eq!(c.resolve_interval(), None);
        assert_eq!(c.resolve_interval, Some(None));

        let c = env(&[
            ("GRPC_ENDPOINT_TYPE", "production"),
            ("GRPC_MAX_CONNECTION_AGE", "off"),
            ("GRPC_RESOLVE_INTERVAL", "10s"),
        ])
        .unwrap();
        assert_eq!(c.max_connection_age(), None);
        assert_eq!(c.resolve_interval(), Some(Duration::from_secs(10)));
    }

    #[test]
    fn bad_new_values_name_the_variable_and_value() {
        let cases: [&[(&str, &str)]; 12] = [
            &[("GRPC_POOL_MAX_SIZE", "0")],
            &[("GRPC_POOL_MAX_SIZE", "2000")],
            &[("GRPC_POOL_MAX_SIZE", "-1")],
            &[("GRPC_POOL_MIN_SIZE", "0"), ("GRPC_POOL_MAX_SIZE", "4")],
            &[("GRPC_POOL_MIN_SIZE", "9"), ("GRPC_POOL_MAX_SIZE", "4")],
            &[("GRPC_POOL_SIZE", "9"), ("GRPC_POOL_MAX_SIZE", "4")],
            &[("GRPC_POOL_RESIZE_INTERVAL", "0s")],
            &[("GRPC_POOL_RESIZE_INTERVAL", "2h")],
            &[("GRPC_POOL_RESIZE_STEP", "0")],
            &[("GRPC_MAX_CONNECTION_AGE", "50ms")],
            &[("GRPC_MAX_CONNECTION_AGE", "25h")],
            &[("GRPC_RESOLVE_INTERVAL", "0s")],
        ];
        for vars in cases {
            let (var, value) = vars[0];
            let err = env(vars).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
            assert!(err.contains(value), "{var}: {err}");
        }
        let err = env(&[("GRPC_POOL_MIN_SIZE", "2")]).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }), "{err:?}");
        assert_eq!(err.field(), Some("GRPC_POOL_MAX_SIZE"));
        assert!(err.to_string().contains("GRPC_POOL_MIN_SIZE"), "{err}");
    }

    #[test]
    fn tls_conflict_names_the_tls_variable() {
        let err = env(&[("GRPC_URI", "http://h:1"), ("GRPC_TLS_DOMAIN", "h")]).unwrap_err();
        match err {
            ConfigError::Conflict { first, second, .. } => {
                assert_eq!(first, "GRPC_TLS_DOMAIN");
                assert_eq!(second, "GRPC_URI");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_prefix_is_rejected() {
        assert!(from_env("", |_| None).is_err());
    }
}
