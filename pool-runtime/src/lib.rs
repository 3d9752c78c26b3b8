//! Typed, pooled gRPC clients for [tonic]: warm, health-checked, least-loaded channels.
//!
//! A [`Pool`] keeps `size` HTTP/2 connections open (TCP, TLS and HTTP/2 handshakes done at
//! start, kept alive with PINGs and optional health checks) and hands out the READY channel
//! with the fewest calls in flight. Channels are *shared*, not exclusively checked out:
//! HTTP/2 multiplexes many calls over one connection. A broken connection is replaced by its
//! slot's worker with the gRPC backoff algorithm; a call that provably never reached the
//! server is retried on another channel.
//!
//! Generated clients (`grpc-pool-build`, `#[grpc_pool]`) wrap all of this; with a plain tonic
//! client, check out a [`PooledChannel`] and pass it to `XClient::new`:
//!
//! ```no_run
//! use std::time::Duration;
//! use grpc_pool::{Pool, PoolConfig};
//! use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PoolConfig::local("127.0.0.1", 50051)
//!     .size(4)
//!     .checkout_timeout(Duration::from_secs(2))
//!     .build()?;
//! let pool = Pool::start(config).await?; // returns once a channel is READY
//!
//! let channel = pool.checkout().await?; // least-loaded READY channel
//! let reply = HealthClient::new(channel)
//!     .check(HealthCheckRequest { service: String::new() })
//!     .await?;
//! println!("{:?}\n{}", reply.into_inner(), pool.status());
//!
//! pool.shutdown().await; // drain in-flight calls, stop every task
//! # Ok(())
//! # }
//! ```
//!
//! In production a pool also spreads its slots over several endpoints (re-resolving host
//! names through a [`resolver::Resolve`], every `resolve_interval` and after failures),
//! refreshes connections older than `max_connection_age` (opening the replacement before
//! draining the old one), can size itself between `min_size` and `max_size` by load, and runs
//! a per-pool request interceptor ([`PoolConfigBuilder::interceptor`]).
//!
//! Configuration comes from code ([`PoolConfig::builder`] and the presets), TOML
//! ([`PoolConfig::from_file`]) or the environment ([`PoolConfig::from_env`]); see
//! [`PoolConfig`] for the schema and defaults.
//!
//! Cargo features: `macros` (default, re-exports `#[grpc_pool]`), `tls-native-roots` and
//! `tls-webpki-roots` (default), `metrics` (counters, gauges and histograms through the
//! `metrics` facade, labelled by pool; the names are listed in [`mod@metrics`]).

mod backoff;
mod call;
mod channel;
mod classify;
mod codegen_support;
pub mod config;
mod connector;
mod error;
mod health;
mod maintain;
pub mod metrics;
mod named;
mod pool;
pub mod registry;
pub mod resolver;
mod rules;
mod settings;
mod slot;
mod status;
mod worker;

pub use channel::{PooledBody, PooledChannel, ResponseFuture};
pub use config::{PoolConfig, PoolConfigBuilder, Preset, RetryConfig, TlsConfig};
pub use error::{ConfigError, ConnectFailure, PoolError};
pub use named::NamedPool;
pub use pool::Pool;
pub use status::{ChannelState, ChannelStatus, PoolStatus};

#[cfg(feature = "macros")]
pub use grpc_pool_macros::grpc_pool;

/// Implemented by every generated `PooledXClient`: builds the client over a running pool.
pub trait PooledClient: Sized {
    /// The client over `pool`.
    fn from_pool(pool: Pool) -> Self;
}

/// What generated code needs. Not a public API: names and signatures may change in any
/// release.
#[doc(hidden)]
pub mod __private {
    pub use ::http;
    pub use ::prost;
    pub use ::tonic;

    pub use crate::call::{checkout_for_stream, unary};
    pub use crate::codegen_support::*;
    pub use crate::config::Preset;
    pub use crate::named::PoolDefaults;
    pub use crate::{NamedPool, Pool, PoolError, PooledChannel, PooledClient};

    /// The `#[grpc_pool]` settings read by generated `PooledXClient::connect` by bare name.
    pub type Settings = Option<&'static NamedPool>;

    /// The fallback `__GRPC_POOL_SETTINGS` for modules without `#[grpc_pool]` (glob-imported
    /// by generated code, so an item of the same name in the module wins).
    pub mod fallback {
        /// No attribute: the pool is named after the service, with library defaults.
        #[allow(non_upper_case_globals)]
        pub static __GRPC_POOL_SETTINGS: super::Settings = None;
    }

    /// `PooledXClient::connect(endpoint)`: with `Some(named)`, the named pool's
    /// connect-or-reuse; with `None`, a pool named `default_name` (the service's full name)
    /// with library defaults, registered like a named pool. Reuses the running pool of that
    /// name when its endpoint matches; errors naming both endpoints when it does not.
    pub async fn connect_pooled(
        settings: Settings,
        default_name: &'static str,
        endpoint: &str,
    ) -> Result<Pool, PoolError> {
        crate::named::connect_pooled(settings, default_name, endpoint).await
    }
}
