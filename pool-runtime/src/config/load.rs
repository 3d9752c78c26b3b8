//! Loading a [`PoolConfig`] from TOML text or the environment. Both go through the same serde
//! types (the environment is turned into a TOML table first, by walking the table of fields
//! in [`crate::rules`]), then through the same checks; errors name the field as its source
//! does: the TOML path, or the environment variable.

use std::ffi::OsString;
use std::path::Path;

use crate::error::ConfigError;
use crate::rules::{self, Kind, FIELDS};

use super::schema::split_invalid;
use super::PoolConfig;

/// How errors name fields: by TOML path (code and files) or by environment variable.
#[derive(Clone, Debug)]
pub(crate) enum Naming {
    Toml,
    Env(String),
}

impl Naming {
    /// The name of the field at `path` (`pool.size`, or `APP_POOL_SIZE`).
    pub(crate) fn name(&self, path: &str) -> String {
        match (self, rules::field(path)) {
            (Naming::Env(prefix), Some(field)) => format!("{prefix}_{}", field.env),
            _ => path.to_owned(),
        }
    }
}

/// Parses TOML text into a checked [`PoolConfig`]; `origin` names the file in errors.
pub(super) fn from_toml(text: &str, origin: Option<&Path>) -> Result<PoolConfig, ConfigError> {
    let toml_error = |e: &toml::de::Error| ConfigError::Toml {
        origin: origin.map(Path::to_path_buf),
        message: e.to_string().trim_end().to_owned(),
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(&e))?;
    let config = deserialize(deserializer, &Naming::Toml, toml_error)?;
    config.check_fields(&Naming::Toml)?;
    Ok(config)
}

/// Reads `{prefix}_{VARIABLE}` for every field of the table through `get` (the process
/// environment, or a map in tests). Unset and empty variables stay unset.
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
    let mut table = toml::Table::new();
    for field in FIELDS {
        let name = naming.name(field.path);
        let text = match get(&name).map(OsString::into_string) {
            None => continue,
            Some(Ok(text)) if text.trim().is_empty() => continue,
            Some(Ok(text)) => text,
            Some(Err(raw)) => {
                return Err(ConfigError::invalid(
                    name,
                    format!("{raw:?}"),
                    "is not valid UTF-8",
                ))
            }
        };
        insert(&mut table, field.path, env_value(&name, field.kind, text)?);
    }
    let config = deserialize(toml::Value::Table(table), &naming, |e| {
        // Only a value of the wrong shape gets here, which `env_value` rules out.
        ConfigError::invalid("environment", prefix, e.to_string())
    })?;
    config.check_fields(&naming)?;
    Ok(config)
}

/// Deserializes through the schema, naming the field of a malformed value from the error's
/// path; other errors (unknown keys, wrong types) go through `other`.
fn deserialize<'de, D>(
    deserializer: D,
    naming: &Naming,
    other: impl Fn(&toml::de::Error) -> ConfigError,
) -> Result<PoolConfig, ConfigError>
where
    D: serde::Deserializer<'de, Error = toml::de::Error>,
{
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        match (rules::field(&path), split_invalid(e.inner().message())) {
            (Some(field), Some((value, reason))) => {
                ConfigError::invalid(naming.name(&path), value, rule_text(field.kind, reason))
            }
            _ => other(e.inner()),
        }
    })
}

/// A count out of its type's range says the range the table allows.
fn rule_text(kind: Kind, reason: &str) -> String {
    match kind {
        Kind::Count { min, max: u64::MAX } => format!("must be at least {min}"),
        Kind::Count { min, max } => format!("must be between {min} and {max}"),
        _ => reason.to_owned(),
    }
}

/// The TOML value of an environment variable: the shape its field takes in a file.
fn env_value(name: &str, kind: Kind, text: String) -> Result<toml::Value, ConfigError> {
    let bad = |reason: &str| ConfigError::invalid(name, format!("{text:?}"), reason);
    Ok(match kind {
        Kind::Count { .. } => {
            toml::Value::Integer(text.trim().parse().map_err(|_| bad("must be an integer"))?)
        }
        Kind::Bool => toml::Value::Boolean(match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(bad("must be true or false")),
        }),
        Kind::List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        Kind::Duration { .. } | Kind::Text => toml::Value::String(text),
    })
}

/// Puts `value` at the dotted `path` of `table`, creating the tables on the way.
fn insert(table: &mut toml::Table, path: &str, value: toml::Value) {
    match path.split_once('.') {
        None => {
            table.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = table
                .entry(head)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
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
        assert_eq!(c.connection.resolve_interval, Some(None));

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
