//! [`NamedPool`]: a pool known by name, with compile-time defaults (what `#[grpc_pool]`
//! emits), and the connect-or-reuse logic of generated `PooledXClient::connect`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crate::config::{PoolConfig, Preset, Settings};
use crate::error::{ConfigError, PoolError};
use crate::pool::Pool;
use crate::registry::{self, Registration};

/// Defaults a [`NamedPool`] applies to every setting the runtime config leaves unset.
/// Emitted by `#[grpc_pool(...)]`; not a stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct PoolDefaults {
    pub size: Option<usize>,
    pub checkout_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub keepalive: Option<Duration>,
    /// `Some(None)` = "off".
    pub ping_interval: Option<Option<Duration>>,
    pub health_check: Option<bool>,
    pub max_in_flight_per_channel: Option<usize>,
    pub preset: Option<Preset>,
    pub endpoints: &'static [&'static str],
    pub env: Option<&'static str>,
    pub min_size: Option<usize>,
    pub max_size: Option<usize>,
    /// `Some(None)` = "off".
    pub max_connection_age: Option<Option<Duration>>,
}

impl PoolDefaults {
    /// Nothing set.
    pub const EMPTY: PoolDefaults = PoolDefaults {
        size: None,
        checkout_timeout: None,
        connect_timeout: None,
        keepalive: None,
        ping_interval: None,
        health_check: None,
        max_in_flight_per_channel: None,
        preset: None,
        endpoints: &[],
        env: None,
        min_size: None,
        max_size: None,
        max_connection_age: None,
    };

    fn to_config(self) -> PoolConfig {
        let mut config = PoolConfig::default();
        config.pool.size = self.size;
        config.pool.checkout_timeout = self.checkout_timeout;
        config.connection.connect_timeout = self.connect_timeout;
        config.connection.keepalive = self.keepalive;
        config.connection.ping_interval = self.ping_interval;
        config.connection.health_check = self.health_check;
        config.pool.max_in_flight_per_channel = self.max_in_flight_per_channel;
        config.endpoint.preset = self.preset;
        config.endpoints = self.endpoints.iter().map(|e| (*e).to_owned()).collect();
        config.pool.min_size = self.min_size;
        config.pool.max_size = self.max_size;
        config.connection.max_connection_age = self.max_connection_age;
        config
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
    let mut config = config.or(&defaults.to_config());
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
    let uri = crate::config::parse_endpoint_uri("endpoint", endpoint)?;
    Ok(uri.to_string().trim_end_matches('/').to_owned())
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
