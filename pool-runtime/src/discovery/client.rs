//! [`Etcd`]: the few etcd v3 calls discovery makes, over a grpc-pool [`Pool`] of its own.
//!
//! The connection to etcd is itself a pool (named `<pool>.etcd`, listed by
//! [`registry::status_all`](crate::registry::status_all)): one channel per etcd member,
//! connected eagerly, kept alive and reconnected with backoff like any other, so a watch that
//! breaks finds a live connection to resume on.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tonic::codec::Streaming;
use tonic::metadata::AsciiMetadataValue;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

use super::wire::{
    AuthenticateRequest, AuthenticateResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, WatchRequest, WatchResponse,
};
use super::DiscoveryError;
use crate::config::Naming;
use crate::{EtcdConfig, Pool, PoolConfig, PoolStatus};

/// The deadline of each unary call to etcd.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for a connection to etcd while it reconnects.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one etcd cluster. Cheap to clone; the connections close when the last clone
/// is dropped or on [`shutdown`](Self::shutdown).
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The endpoints, joined, for errors and status.
    endpoints: String,
    credentials: Option<(String, String)>,
    /// The token from `Auth/Authenticate`, sent as `token` metadata; cleared when etcd
    /// rejects it (tokens expire), so the next call logs in again.
    token: Mutex<Option<AsciiMetadataValue>>,
}

impl fmt::Debug for Etcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.inner.endpoints)
            .field("user", &self.inner.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

impl Etcd {
    /// Connects to the cluster (every endpoint, eagerly) and logs in when a user is set.
    ///
    /// Fails with [`DiscoveryError::Config`] for a bad configuration (naming the field and value),
    /// [`DiscoveryError::Connect`] when no endpoint could be reached, and [`DiscoveryError::Rpc`] when
    /// the login is refused.
    pub async fn connect(config: &EtcdConfig) -> Result<Etcd, DiscoveryError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!("etcd-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        Self::connect_named(config, name).await
    }

    /// [`Etcd::connect`], with the connection pool named `name`.
    pub(crate) async fn connect_named(
        config: &EtcdConfig,
        name: String,
    ) -> Result<Etcd, DiscoveryError> {
        config.check(&Naming::Toml)?;
        let uris = config.endpoint_uris(&Naming::Toml)?;
        if uris.is_empty() {
            return Err(DiscoveryError::Config(crate::ConfigError::Missing {
                field: "discovery.etcd.endpoints".into(),
                hint: "give the etcd cluster's client endpoints".into(),
            }));
        }
        let endpoints = uris.join(", ");
        let mut builder = PoolConfig::builder()
            .name(&name)
            .size(uris.len())
            .wait_for_ready(true)
            .checkout_timeout(CHECKOUT_TIMEOUT);
        for uri in &uris {
            builder = builder.endpoint(uri);
        }
        if let Some(tls) = &config.tls {
            builder = builder.tls(tls.clone());
        }
        let pool_config = builder.build()?;
        let pool = Pool::start(pool_config)
            .await
            .map_err(|source| DiscoveryError::Connect {
                endpoints: endpoints.clone(),
                source,
            })?;
        let etcd = Etcd {
            inner: Arc::new(Inner {
                pool,
                endpoints,
                credentials: config.user.clone().zip(config.password.clone()),
                token: Mutex::new(None),
            }),
        };
        if etcd.inner.credentials.is_some() {
            etcd.token().await.map_err(|status| DiscoveryError::Rpc {
                op: "Auth/Authenticate",
                status,
            })?;
        }
        Ok(etcd)
    }

    /// The endpoints, as `http(s)://host:port`, joined by `, `.
    pub fn endpoints(&self) -> &str {
        &self.inner.endpoints
    }

    /// The state of the connections to etcd.
    pub fn status(&self) -> PoolStatus {
        self.inner.pool.status()
    }

    /// Closes the connections (calls in flight, watches included, end).
    pub async fn shutdown(&self) {
        self.inner.pool.shutdown().await;
    }

    /// The keys under `prefix` (every key starting with it) and the store's revision.
    pub(crate) async fn range_prefix(&self, prefix: &[u8]) -> Result<RangeResponse, Status> {
        let request = RangeRequest {
            key: prefix.to_vec(),
            range_end: super::wire::prefix_end(prefix),
        };
        self.unary("/etcdserverpb.KV/Range", request).await
    }

    pub(crate) async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<(), Status> {
        let request = PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
        };
        self.unary::<_, PutResponse>("/etcdserverpb.KV/Put", request)
            .await
            .map(drop)
    }

    pub(crate) async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Status> {
        let response: LeaseGrantResponse = self
            .unary("/etcdserverpb.Lease/LeaseGrant", LeaseGrantRequest { ttl })
            .await?;
        if !response.error.is_empty() {
            return Err(Status::unknown(format!(
                "etcd refused the lease: {}",
                response.error
            )));
        }
        Ok(response)
    }

    pub(crate) async fn lease_revoke(&self, id: i64) -> Result<(), Status> {
        self.unary::<_, LeaseRevokeResponse>(
            "/etcdserverpb.Lease/LeaseRevoke",
            LeaseRevokeRequest { id },
        )
        .await
        .map(drop)
    }

    /// Opens a `LeaseKeepAlive` stream renewing lease `id` once; each message sent on the
    /// returned sender renews it again.
    pub(crate) async fn lease_keep_alive(
        &self,
        id: i64,
    ) -> Result<
        (
            Sender<LeaseKeepAliveRequest>,
            Streaming<LeaseKeepAliveResponse>,
        ),
        Status,
    > {
        let first = LeaseKeepAliveRequest { id };
        self.streaming("/etcdserverpb.Lease/LeaseKeepAlive", first)
            .await
    }

    /// Opens a `Watch` stream with its create request. Keep the returned sender: dropping it
    /// ends the stream.
    pub(crate) async fn watch(
        &self,
        create: WatchRequest,
    ) -> Result<(Sender<WatchRequest>, Streaming<WatchResponse>), Status> {
        self.streaming("/etcdserverpb.Watch/Watch", create).await
    }

    async fn unary<Q, R>(&self, path: &'static str, message: Q) -> Result<R, Status>
    where
        Q: prost::Message + Clone + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut relogged = false;
        loop {
            let mut grpc = self.ready().await?;
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(CALL_TIMEOUT);
            self.authorize(&mut request).await?;
            let path = PathAndQuery::from_static(path);
            match grpc.unary(request, path, ProstCodec::default()).await {
                Err(status) if !relogged && self.expired(&status) => relogged = true,
                result => return result.map(tonic::Response::into_inner),
            }
        }
    }

    /// Opens a bidirectional stream whose first message is `first`. It is queued before the
    /// call starts: etcd (like any grpc-go server) sends its response headers only with the
    /// first response, and the call waits for them.
    async fn streaming<Q, R>(
        &self,
        path: &'static str,
        first: Q,
    ) -> Result<(Sender<Q>, Streaming<R>), Status>
    where
        Q: prost::Message + Clone + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut relogged = false;
        loop {
            let mut grpc = self.ready().await?;
            let (tx, rx) = mpsc::unbounded_channel::<Q>();
            let _ = tx.send(first.clone());
            let outbound = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|m| (m, rx))
            })
            .boxed();
            let mut request = tonic::Request::new(outbound);
            self.authorize(&mut request).await?;
            let path = PathAndQuery::from_static(path);
            match grpc.streaming(request, path, ProstCodec::default()).await {
                Err(status) if !relogged && self.expired(&status) => relogged = true,
                Err(status) => return Err(status),
                Ok(response) => return Ok((Sender(tx), response.into_inner())),
            }
        }
    }

    async fn ready(&self) -> Result<tonic::client::Grpc<crate::PooledChannel>, Status> {
        let channel = self.inner.pool.checkout().await?;
        Ok(tonic::client::Grpc::new(channel))
    }

    /// Adds the login token, logging in first if there is none.
    async fn authorize<T>(&self, request: &mut tonic::Request<T>) -> Result<(), Status> {
        if self.inner.credentials.is_some() {
            let token = self.token().await?;
            request.metadata_mut().insert("token", token);
        }
        Ok(())
    }

    async fn token(&self) -> Result<AsciiMetadataValue, Status> {
        if let Some(token) = self.lock_token().clone() {
            return Ok(token);
        }
        let Some((name, password)) = self.inner.credentials.clone() else {
            return Err(Status::internal("no etcd credentials"));
        };
        let mut grpc = self.ready().await?;
        let mut request = tonic::Request::new(AuthenticateRequest { name, password });
        request.set_timeout(CALL_TIMEOUT);
        let path = PathAndQuery::from_static("/etcdserverpb.Auth/Authenticate");
        let response: tonic::Response<AuthenticateResponse> =
            grpc.unary(request, path, ProstCodec::default()).await?;
        let token = AsciiMetadataValue::try_from(response.into_inner().token)
            .map_err(|_| Status::internal("etcd sent a token that is not valid metadata"))?;
        *self.lock_token() = Some(token.clone());
        Ok(token)
    }

    /// Whether etcd rejected the token (it expired: etcd's simple tokens live 5 minutes
    /// by default); the token is then forgotten so the retry logs in again.
    fn expired(&self, status: &Status) -> bool {
        let rejected = self.inner.credentials.is_some()
            && status.code() == Code::Unauthenticated
            && status.message().contains("invalid auth token");
        if rejected {
            *self.lock_token() = None;
        }
        rejected
    }

    fn lock_token(&self) -> std::sync::MutexGuard<'_, Option<AsciiMetadataValue>> {
        self.inner.token.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half of a request stream; dropping it ends the stream.
#[derive(Debug)]
pub(crate) struct Sender<T>(mpsc::UnboundedSender<T>);

impl<T> Sender<T> {
    /// Queues `message`; `false` when the call has ended.
    pub(crate) fn send(&self, message: T) -> bool {
        self.0.send(message).is_ok()
    }
}
