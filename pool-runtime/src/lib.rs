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
//! let pool = Pool::start(config).await?; // returns once the channels are READY
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

// The modules, by concern. Users see `Pool`, `PoolConfig` and the re-exports below;
// generated code uses `__private` (everything it needs is in `codegen`).
//
// Checkout:      balance (choose a channel, reserve, wait), channel (PooledChannel,
//                PooledBody), retry (transparent retry of unsent calls), classify (which
//                transport errors mean "never sent" or "connection lost"), interceptor.
// A pool:        pool (the Pool handle: start, shutdown), shared (the state of a running
//                pool), handle (who keeps a pool running; the table of pools by name),
//                registry (public lookups by name), named (NamedPool, #[grpc_pool]).
// Its tasks:     worker (one per slot: connect, serve, refresh, back off), connector (one
//                connection: TCP, TLS, HTTP/2, and the I/O that reports its end; dial races
//                the addresses it may use), transport (what a call needs from a connection:
//                origin, user-agent, deadline), frames (what the server's frames say),
//                conn (a connection and its `lost` signal), slot (one channel's state and
//                counters), health (probes), backoff, maintain (the maintenance task) with
//                addresses (which slot connects where) and resize (elastic size), signals
//                (pool-wide wake-ups), probe (turns at reconnecting to an address that is
//                down).
// Settings:      config (PoolConfig: schema, builder, validation, TOML, environment), rules
//                (the table of settings shared with the macro and the generator), settings
//                (a validated config turned into what the runtime uses), resolver.
// Reporting:     status, error, metrics.
mod addresses;
mod backoff;
mod balance;
mod channel;
mod classify;
mod codegen;
pub mod config;
mod conn;
mod connector;
mod dial;
#[cfg(feature = "etcd")]
pub mod discovery;
mod error;
mod frames;
mod handle;
mod health;
mod interceptor;
mod keepalive;
mod latency;
mod maintain;
pub mod metrics;
mod named;
mod options;
mod outlier;
mod pool;
mod probe;
mod queue;
pub mod registry;
mod replay;
mod resize;
pub mod resolver;
mod retry;
mod rules;
mod service_config;
mod settings;
mod shared;
mod signals;
mod slot;
mod status;
mod status_codes;
mod transport;
mod worker;

pub use channel::{PooledBody, PooledChannel, ResponseFuture};
pub use config::{EtcdConfig, PoolConfig, PoolConfigBuilder, Preset, RetryConfig, TlsConfig};
pub use error::{ConfigError, ConnectFailure, PoolError};
pub use named::NamedPool;
pub use pool::Pool;
pub use status::{
    ChannelState, ChannelStatus, DiscoveredServer, DiscoveryStatus, PoolStatus, RetryCounts,
};

#[cfg(feature = "macros")]
pub use grpc_pool_macros::grpc_pool;

/// Implemented by every generated `PooledXClient`: builds the client over a running pool.
pub trait PooledClient: Sized {
    /// The client over `pool`.
    fn from_pool(pool: Pool) -> Self;
}

/// What generated code needs (see `codegen.rs`). Not a public API: names and signatures may
/// change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::codegen::*;
}
