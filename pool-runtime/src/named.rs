//! [`NamedPool`]: a pool known by name, with compile-time defaults (what `#[grpc_pool]`
//! emits), and the connect-or-reuse logic of generated `PooledXClient::connect`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crate::config::{PoolConfig, PoolConfigBuilder};
use crate::error::{ConfigError, PoolError};
use crate::pool::Pool;
use crate::registry::{self, Registration};
use crate::settings::Settings;

/// Defaults a [`NamedPool`] applies to every setting the runtime config leaves unset, as
/// calls of the public [`PoolConfigBuilder`], so they are checked like any other
/// configuration. Emitted by `#[grpc_pool(...)]`; not a stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct PoolDefaults {
    /// The prefix of [`NamedPool::start_from_env`].
    pub env: Option<&'static str>,
    /// Sets the defaults on an empty builder.
    pub apply: fn(PoolConfigBuilder) -> PoolConfigBuilder,
}

impl PoolDefaults {
    /// Nothing set.
    pub const EMPTY: PoolDefaults = PoolDefaults::new(None, |b| b);

    /// Defaults with this env prefix, set by `apply`.
    pub const fn new(
        env: Option<&'static str>,
        apply: fn(PoolConfigBuilder) -> PoolConfigBuilder,
    ) -> PoolDefaults {
        PoolDefaults { env, apply }
    }

    /// The defaults as a configuration. The attribute checked every value at compile time,
    /// so an error here means it and the runtime disagree; it is reported, not a panic.
    fn to_config(self) -> Result<PoolConfig, ConfigError> {
        let mut config = (self.apply)(PoolConfig::builder()).build()?;
        // The builder keeps a first endpoint as `endpoint.uri`. Default endpoints are one
        // list, used only when the runtime config names no endpoint of its own (`or`).
        if let Some(uri) = config.endpoint.uri.take() {
            config.endpoints.insert(0, uri);
        }
        Ok(config)
    }
}

impl Default for PoolDefaults {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// A pool known by name, declared as a `static` (what `#[grpc_pool(name = "...")]` emits as
/// `POOL`). At most one pool runs under a name at a time; it is held by the registry until
/// [`Pool::shutdown`], so [`get`](NamedPool::get) finds it from anywhere.
#[derive(Debug)]
pub struct NamedPool {
    name: &'static str,
    defaults: PoolDefaults,
}

impl NamedPool {
    /// A named pool with defaults for unset settings.
    pub const fn new(name: &'static str, defaults: PoolDefaults) -> NamedPool {
        NamedPool { name, defaults }
    }

    /// The pool's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The compile-time defaults.
    #[doc(hidden)]
    pub fn defaults(&self) -> &PoolDefaults {
        &self.defaults
    }

    /// Starts the pool: settings `config` leaves unset take this pool's defaults. The pool's
    /// name is always this `NamedPool`'s name. Fails with [`PoolError::AlreadyRunning`] when
    /// it runs already.
    pub async fn start(&self, config: PoolConfig) -> Result<Pool, PoolError> {
        start_named(self.name, &self.defaults, config).await
    }

    /// Starts the pool with its defaults and this endpoint (replacing the default endpoints).
    pub async fn connect(&self, endpoint: &str) -> Result<Pool, PoolError> {
        self.start(endpoint_config(endpoint)?).await
    }

    /// Starts the pool from `{env}_HOST`, `{env}_PORT`, ... (see
    /// [`PoolConfig::from_env`]) over its defaults; the prefix is the attribute's `env`.
    pub async fn start_from_env(&self) -> Result<Pool, PoolError> {
        let Some(prefix) = self.defaults.env else {
            return Err(ConfigError::Missing {
                field: format!("env prefix of pool `{}`", self.name),
                hint: "declare it with #[grpc_pool(env = \"PREFIX\")] or use start(PoolConfig::from_env(..)?)".into(),
            }
            .into());
        };
        self.start(PoolConfig::from_env(prefix)?).await
    }

    /// The running pool when it runs with `endpoint`; else starts it with `endpoint`. Fails
    /// with [`PoolError::EndpointMismatch`] when it runs with other endpoints.
    pub async fn connect_or_reuse(&self, endpoint: &str) -> Result<Pool, PoolError> {
        connect_or_reuse(self.name, &self.defaults, endpoint).await
    }

    /// The running pool, if started.
    pub fn get(&self) -> Option<Pool> {
        registry::get(self.name)
    }

    /// Shuts the running pool down, if any (see [`Pool::shutdown`]).
    pub async fn shutdown(&self) {
        if let Some(pool) = self.get() {
            pool.shutdown().await;
        }
    }
}

fn endpoint_config(endpoint: &str) -> Result<PoolConfig, ConfigError> {
    PoolConfig::builder().endpoint(endpoint).build()
}

async fn start_named(
    name: &str,
    defaults: &PoolDefaults,
    config: PoolConfig,
) -> Result<Pool, PoolError> {
    let mut config = config.or(&defaults.to_config()?);
    config.pool.name = Some(name.to_owned());
    let id = crate::pool::next_id();
    let settings = Settings::resolve(&config, name.to_owned())?;
    Pool::launch(id, settings, Registration::Strong).await
}

/// One async lock per name, so concurrent `connect`s of one name start one pool.
static STARTING: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

pub(crate) async fn connect_or_reuse(
    name: &str,
    defaults: &PoolDefaults,
    endpoint: &str,
) -> Result<Pool, PoolError> {
    let requested = normalize(endpoint)?;
    let lock = STARTING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_owned())
        .or_default()
        .clone();
    let _starting = lock.lock().await;
    if let Some(pool) = registry::get(name) {
        let running = pool.endpoints();
        return if running == [requested.clone()] {
            Ok(pool)
        } else {
            Err(PoolError::EndpointMismatch {
                pool: name.to_owned(),
                running: running.join(", "),
                requested,
            })
        };
    }
    start_named(name, defaults, endpoint_config(endpoint)?).await
}

/// The endpoint as the pool displays it, for comparison.
fn normalize(endpoint: &str) -> Result<String, ConfigError> {
    Ok(crate::config::parse_target("endpoint", endpoint)?.display())
}

/// `connect` for generated clients (see `__private::connect_pooled`).
pub(crate) async fn connect_pooled(
    settings: Option<&'static NamedPool>,
    default_name: &'static str,
    endpoint: &str,
) -> Result<Pool, PoolError> {
    match settings {
        Some(named) => named.connect_or_reuse(endpoint).await,
        None => connect_or_reuse(default_name, &PoolDefaults::EMPTY, endpoint).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_the_config_leaves_unset() {
        let defaults = PoolDefaults::new(Some("USERS"), |b| {
            b.endpoint("http://a:1").endpoint("http://b:2").size(3)
        })
        .to_config()
        .unwrap();
        let config = PoolConfig::builder().build().unwrap().or(&defaults);
        assert_eq!(config.endpoints(), ["http://a:1", "http://b:2"]);
        assert_eq!(config.size(), 3);
        let config = PoolConfig::builder().size(7).build().unwrap().or(&defaults);
        assert_eq!(config.size(), 7, "explicit settings win");
    }

    #[test]
    fn default_endpoints_yield_to_any_endpoint_of_the_config() {
        let defaults = PoolDefaults::new(None, |b| b.endpoint("http://a:1"))
            .to_config()
            .unwrap();
        let uri = PoolConfig::builder()
            .endpoint("http://c:3")
            .build()
            .unwrap();
        assert_eq!(uri.or(&defaults).endpoints(), ["http://c:3"]);
        let host = PoolConfig::local("c", 3).build().unwrap();
        assert_eq!(host.or(&defaults).endpoints(), ["http://c:3"]);
    }

    #[test]
    fn empty_defaults_set_nothing() {
        let config = PoolDefaults::EMPTY.to_config().unwrap();
        assert_eq!(config, PoolConfig::default());
    }
}
