//! The `pool` contender: grpc-pool through the generated `PooledBenchClient`, with the
//! `local` preset's defaults and `size` = N. Nothing is tuned for the benchmark.

use std::time::Duration;

use grpc_pool::{Pool, PoolConfig, Preset, TlsConfig};
use tonic::Status;

use crate::contenders::{BoxError, Dest};
use pool_bench::pb::{FeedRequest, PooledBenchClient, WorkReply, WorkRequest};

/// The configuration every `pool` contender uses.
pub(crate) fn config(port: u16, size: usize) -> Result<PoolConfig, BoxError> {
    Ok(PoolConfig::local("127.0.0.1", port).size(size).build()?)
}

/// The configuration of a `pool` contender to a TLS server: the same `local` preset, with the
/// `https://` URI and the test CA as the only trusted root.
pub(crate) fn tls_config(
    uri: &str,
    ca_cert: &std::path::Path,
    size: usize,
) -> Result<PoolConfig, BoxError> {
    Ok(PoolConfig::builder()
        .preset(Preset::Local)
        .endpoint(uri)
        .tls(TlsConfig::new().ca_cert(ca_cert))
        .size(size)
        .build()?)
}

/// The reconnect backoff base delay of that configuration (the library default; reported by
/// the recovery scenario, never tuned for it).
pub(crate) fn base_delay() -> Duration {
    config(1, 1)
        .map(|c| c.retry().base_delay)
        .unwrap_or(Duration::ZERO)
}

pub(crate) struct PoolContender {
    client: PooledBenchClient,
}

impl PoolContender {
    /// `Pool::start` (returns once a channel is READY) and the generated client over it.
    pub(crate) async fn start(dest: &Dest, size: usize) -> Result<PoolContender, BoxError> {
        let uri = &dest.uri;
        let config = match &dest.ca_cert {
            Some(ca_cert) => tls_config(uri, ca_cert, size)?,
            None => {
                let port = uri
                    .parse::<tonic::codegen::http::Uri>()?
                    .port_u16()
                    .ok_or_else(|| format!("no port in {uri}"))?;
                config(port, size)?
            }
        };
        let config = if dest.pool_service_config.is_some() || !dest.more.is_empty() {
            // The same configuration over every backend, with the scenario's call policies.
            let mut builder = PoolConfig::builder().preset(Preset::Local).size(size);
            for uri in dest.uris() {
                builder = builder.endpoint(&uri);
            }
            if let Some(json) = dest.pool_service_config {
                builder = builder.service_config_json(json);
            }
            builder.build()?
        } else {
            config
        };
        let pool = Pool::start(config).await?;
        Ok(PoolContender {
            client: PooledBenchClient::new(pool),
        })
    }

    pub(crate) async fn work(&self, request: WorkRequest) -> Result<WorkReply, Status> {
        Ok(self.client.work(request).await?.into_inner())
    }

    pub(crate) async fn feed(
        &self,
        request: FeedRequest,
    ) -> Result<tonic::Streaming<WorkReply>, Status> {
        Ok(self.client.feed(request).await?.into_inner())
    }

    /// Diagnostic: waits (up to 2 s) until all `size` channels are READY.
    pub(crate) async fn wait_all_ready(&self, size: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while self.client.pool().status().ready < size && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub(crate) async fn shutdown(self) {
        self.client.pool().shutdown().await;
    }
}
