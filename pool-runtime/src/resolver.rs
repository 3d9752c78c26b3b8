//! Name resolution of endpoint hosts: the [`Resolve`] seam and the default [`DnsResolver`].
//!
//! A pool resolves every endpoint whose host is a name (not an IP literal) at start, again
//! every `connection.resolve_interval` (30 s by default) and soon after a connection to it
//! fails. Slots are spread over the resolved addresses; when the set changes, slots move to
//! new addresses (opening the new connection before leaving the old one, which drains).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// The future returned by [`Resolve::resolve`].
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves a host name and port to socket addresses.
///
/// The default is [`DnsResolver`] (the system resolver, through tokio). Supply another with
/// [`PoolConfigBuilder::resolver`](crate::PoolConfigBuilder::resolver), for example to read
/// addresses from a service registry or, in tests, from a list you change.
///
/// ```
/// use std::net::SocketAddr;
/// use std::sync::{Arc, Mutex};
/// use grpc_pool::resolver::{Resolve, ResolveFuture};
///
/// /// Addresses from a list that the test edits.
/// #[derive(Debug)]
/// struct Fixed(Arc<Mutex<Vec<SocketAddr>>>);
///
/// impl Resolve for Fixed {
///     fn resolve(&self, _host: &str, _port: u16) -> ResolveFuture {
///         let addrs = self.0.lock().unwrap().clone();
///         Box::pin(async move { Ok(addrs) })
///     }
/// }
/// ```
pub trait Resolve: fmt::Debug + Send + Sync + 'static {
    /// The addresses of `host:port`, in the order slots should be spread over them. An empty
    /// list or an error keeps the addresses resolved before.
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture;
}

/// The system resolver (`getaddrinfo` on a blocking thread, via `tokio::net::lookup_host`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsResolver;

impl Resolve for DnsResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        let target = format!("{host}:{port}");
        Box::pin(async move {
            let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await?.collect();
            // getaddrinfo may list an address once per socket type; keep the first of each.
            let mut seen = std::collections::HashSet::new();
            addrs.retain(|a| seen.insert(*a));
            Ok(addrs)
        })
    }
}

/// A shared resolver, as stored in a configuration.
#[derive(Clone)]
pub(crate) struct ResolverHook(pub(crate) Arc<dyn Resolve>);

impl fmt::Debug for ResolverHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Two configurations are equal only if they share the same resolver instance.
impl PartialEq for ResolverHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for ResolverHook {
    fn default() -> Self {
        Self(Arc::new(DnsResolver))
    }
}
