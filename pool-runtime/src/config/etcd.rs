//! `[discovery.etcd]`: the etcd cluster that `etcd:///<prefix>` endpoints are read from.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::load::Naming;
use super::schema::{Section, Value};
use super::TlsConfig;
use crate::error::ConfigError;

/// Where an etcd cluster is and how to log in to it: for `etcd:///<prefix>` endpoints
/// (`[discovery.etcd]`, [`PoolConfigBuilder::etcd`](crate::PoolConfigBuilder::etcd)) and for
/// registering a server (`grpc_pool::discovery::register`, feature `etcd`).
///
/// ```
/// use grpc_pool::config::EtcdConfig;
///
/// let etcd = EtcdConfig::new(["http://10.0.0.1:2379", "10.0.0.2:2379"]).user("svc", "s3cret");
/// assert!(!format!("{etcd:?}").contains("s3cret"));
/// ```
///
/// Endpoints are `http://host:port`, `https://host:port` or `host:port` (plaintext, or TLS
/// when [`tls`](Self::tls) is set). The password is never serialised and `Debug` hides it;
/// read it from the environment (`{PREFIX}_DISCOVERY_ETCD_PASSWORD`) rather than a file.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) endpoints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    #[serde(skip_serializing)]
    pub(crate) password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls: Option<TlsConfig>,
}

impl EtcdConfig {
    /// The cluster's client endpoints (any member will do; the client spreads over them).
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Logs in as `user` (etcd's `Auth/Authenticate`); the token is renewed when etcd
    /// rejects it.
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.user = Some(user.to_owned());
        self.password = Some(password.to_owned());
        self
    }

    /// TLS to etcd (custom CA, client certificate for etcd's `--client-cert-auth`).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The endpoints as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The user, if any.
    pub fn user_name(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The endpoints as `http(s)://host:port` URIs; an error names `discovery.etcd.endpoints`
    /// and the value.
    pub(crate) fn endpoint_uris(&self, naming: &Naming) -> Result<Vec<String>, ConfigError> {
        let field = naming.name("discovery.etcd.endpoints");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.endpoints
            .iter()
            .map(|e| {
                let e = e.trim();
                let uri = if e.contains("://") {
                    e.to_owned()
                } else {
                    format!("{scheme}://{e}")
                };
                super::parse_endpoint_uri(&field, &uri)
                    .map(|u| u.to_string().trim_end_matches('/').to_owned())
            })
            .collect()
    }

    /// Checks the endpoints, the credentials (both or neither) and the TLS files.
    pub(crate) fn check(&self, naming: &Naming) -> Result<(), ConfigError> {
        self.endpoint_uris(naming)?;
        match (&self.user, &self.password) {
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    field: naming.name("discovery.etcd.password"),
                    hint: format!("{} is set", naming.name("discovery.etcd.user")),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    field: naming.name("discovery.etcd.user"),
                    hint: format!("{} is set", naming.name("discovery.etcd.password")),
                })
            }
            _ => {}
        }
        if let Some(user) = &self.user {
            if user.trim().is_empty() {
                return Err(ConfigError::invalid(
                    naming.name("discovery.etcd.user"),
                    format!("{user:?}"),
                    "must not be empty",
                ));
            }
        }
        if let Some(tls) = &self.tls {
            tls.check_at(naming, "discovery.etcd.tls")?;
        }
        Ok(())
    }

    /// Fills every unset field from `defaults`.
    pub(crate) fn or(mut self, defaults: &Self) -> Self {
        if self.endpoints.is_empty() {
            self.endpoints.clone_from(&defaults.endpoints);
        }
        if self.user.is_none() && self.password.is_none() {
            self.user.clone_from(&defaults.user);
            self.password.clone_from(&defaults.password);
        }
        if self.tls.is_none() {
            self.tls.clone_from(&defaults.tls);
        }
        self
    }

    pub(crate) fn visit(&self, _f: &mut dyn FnMut(&'static str, Value)) {
        // Nothing counted or timed: `check` covers every field.
    }
}

impl Section for EtcdConfig {
    fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
            && self.user.is_none()
            && self.password.is_none()
            && self.tls.is_none()
    }
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "etcd")]
    use std::ffi::OsString;

    use crate::config::PoolConfig;
    #[cfg(feature = "etcd")]
    use crate::error::ConfigError;

    #[cfg(feature = "etcd")]
    fn env(vars: &[(&str, &str)]) -> Result<PoolConfig, ConfigError> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        super::super::load::from_env("APP", move |key| {
            vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn from_toml_env_and_code_alike() {
        let toml = PoolConfig::from_toml_str(
            r#"
            endpoints = ["etcd:///svc/users"]
            [discovery.etcd]
            endpoints = ["http://10.0.0.1:2379", "10.0.0.2:2379"]
            user = "svc"
            "#,
        );
        // A user without a password is refused, naming what is missing.
        match toml {
            Err(ConfigError::Missing { field, .. }) => assert_eq!(field, "discovery.etcd.password"),
            other => panic!("{other:?}"),
        }
        let from_env = env(&[
            ("APP_ENDPOINTS", "etcd:///svc/users"),
            (
                "APP_DISCOVERY_ETCD_ENDPOINTS",
                "http://10.0.0.1:2379, 10.0.0.2:2379",
            ),
            ("APP_DISCOVERY_ETCD_USER", "svc"),
            ("APP_DISCOVERY_ETCD_PASSWORD", "s3cret"),
        ])
        .unwrap();
        let from_code = PoolConfig::builder()
            .endpoint("etcd:///svc/users")
            .etcd_endpoint("http://10.0.0.1:2379")
            .etcd_endpoint("10.0.0.2:2379")
            .build()
            .unwrap();
        assert_eq!(from_env.etcd().endpoints(), from_code.etcd().endpoints());
        assert_eq!(from_env.etcd().user_name(), Some("svc"));
        assert_eq!(
            from_env.etcd().endpoint_uris(&super::Naming::Toml).unwrap(),
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        // The password is neither shown nor written out.
        let shown = format!("{from_env:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
        let written = toml::to_string(&from_env).unwrap();
        assert!(!written.contains("s3cret"), "{written}");
        assert!(written.contains("[discovery.etcd]"), "{written}");
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn bad_etcd_settings_name_the_field_and_value() {
        let missing = PoolConfig::builder().endpoint("etcd:///svc/users").build();
        match missing {
            Err(ConfigError::Missing { field, .. }) => {
                assert_eq!(field, "discovery.etcd.endpoints")
            }
            other => panic!("{other:?}"),
        }
        let missing =
            env(&[("APP_ENDPOINTS", "etcd:///svc/users")]).and_then(|c| c.validate().map(|()| c));
        match missing {
            Err(ConfigError::Missing { field, .. }) => {
                assert_eq!(field, "APP_DISCOVERY_ETCD_ENDPOINTS");
            }
            other => panic!("{other:?}"),
        }
        for (endpoint, etcd, field, value, reason) in [
            (
                "etcd://10.0.0.1:2379/svc",
                "h:1",
                "endpoints",
                "etcd://10.0.0.1:2379/svc",
                "three slashes",
            ),
            ("etcd:///", "h:1", "endpoints", "etcd:///", "no key prefix"),
            (
                "etcd:///svc/users",
                "ftp://h:1",
                "discovery.etcd.endpoints",
                "ftp://h:1",
                "http:// or https://",
            ),
            (
                "etcd:///svc/users",
                "h:0",
                "discovery.etcd.endpoints",
                "http://h:0",
                "port 0",
            ),
        ] {
            let err = PoolConfig::builder()
                .endpoint("http://127.0.0.1:1")
                .endpoint(endpoint)
                .etcd_endpoint(etcd)
                .build()
                .unwrap_err();
            match err {
                ConfigError::Invalid {
                    field: f,
                    value: v,
                    reason: r,
                } => {
                    assert_eq!(f, field);
                    assert!(v.contains(value), "{v}");
                    assert!(r.contains(reason), "{r}");
                }
                other => panic!("{endpoint} {etcd}: {other:?}"),
            }
        }
    }

    #[cfg(not(feature = "etcd"))]
    #[test]
    fn etcd_endpoints_without_the_feature_say_which_feature() {
        let err = PoolConfig::builder()
            .endpoint("etcd:///svc/users")
            .etcd_endpoint("http://127.0.0.1:2379")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("`etcd` feature"), "{err}");
    }
}
