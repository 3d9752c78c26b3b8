//! grpc-pool against a real etcd 3.4 (a Go gRPC server nobody here wrote).
//!
//! etcd's own v3 API protos are compiled by `grpc-pool-build` in `build.rs`, so the tests call
//! etcd through the generated `PooledKvClient`, `PooledWatchClient` and `PooledLeaseClient`, as
//! a user crate would. The protos are not in this repository: `build.rs` takes them from Debian's
//! `golang-etcd-server-dev` (installed, or unpacked into `<repo>/.deps/` by
//! `scripts/install-deps.sh`; see `etcd_protos.rs`) and then sets `cfg(etcd_protos)`. Without
//! them the generated modules below are absent and every test skips loudly
//! ([`skip::protos_missing`]), or fails under `CI=true`.
//!
//! Run: `bash scripts/install-deps.sh` once, then `cargo test -p etcd-tests`. Tests use the etcd
//! started by `scripts/start-servers.sh` (`GRPC_POOL_ETCD_ENDPOINT`) or start their own; the
//! fault tests (SIGKILL, SIGSTOP) always start their own. Without etcd they skip loudly, and
//! fail under `CI=true`.

/// etcd's `mvccpb` package (`KeyValue`, `Event`).
#[cfg(etcd_protos)]
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    grpc_pool::include_proto!("mvccpb");
}

/// etcd's `authpb` package.
#[cfg(etcd_protos)]
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod authpb {
    grpc_pool::include_proto!("authpb");
}

/// etcd's `etcdserverpb` package: KV, Watch, Lease, ... and their pooled clients.
#[cfg(etcd_protos)]
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    grpc_pool::include_proto!("etcdserverpb");
}

pub mod report;
pub mod server;
pub mod skip;

use std::time::Duration;

use grpc_pool::{Pool, PoolConfig, PoolError, Preset};

pub use report::{summary_of, wait_until, Load, Outcome, Tally, HANG_SLACK};
pub use server::{Etcd, EtcdProcess};

/// The gRPC deadline of every call the tests make.
pub const CALL_DEADLINE: Duration = Duration::from_secs(2);

/// Timings of a pool under test: keepalive pings every 250 ms, a connection dead after 500 ms
/// without a PING ack, connects bounded at 500 ms, a health check every 500 ms. etcd must run with
/// `--grpc-keepalive-min-time` below 250 ms (see [`EtcdProcess`]).
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// HTTP/2 keepalive interval.
    pub keepalive: Duration,
    /// How long to wait for a PING ack.
    pub keepalive_timeout: Duration,
    /// TCP + HTTP/2 handshake bound.
    pub connect_timeout: Duration,
    /// Per-call bound applied by the pool.
    pub request_timeout: Duration,
    /// How often each channel calls `grpc.health.v1.Health/Check` (service "", the only
    /// one etcd answers).
    pub health_interval: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_millis(250),
            keepalive_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            request_timeout: CALL_DEADLINE,
            health_interval: Duration::from_millis(500),
        }
    }
}

/// Starts a pool of `size` channels named `name` to `endpoint` (`http://127.0.0.1:PORT`),
/// plaintext, with the test preset (fast reconnect backoff), health checks and `timings`.
pub async fn start_pool(
    name: &str,
    endpoint: &str,
    size: usize,
    timings: Timings,
) -> Result<Pool, PoolError> {
    let config = PoolConfig::builder()
        .preset(Preset::Test)
        .endpoint(endpoint)
        .name(name)
        .size(size)
        .keepalive(timings.keepalive)
        .keepalive_timeout(timings.keepalive_timeout)
        .connect_timeout(timings.connect_timeout)
        .request_timeout(timings.request_timeout)
        .health_check(true)
        .ping_interval(Some(timings.health_interval))
        .build()
        .map_err(PoolError::Config)?;
    Pool::start(config).await
}

/// A key prefix no other test (or earlier run against the same etcd) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("/grpc-pool-test/{test}/{}-{nanos}/", std::process::id())
}

/// The `range_end` that makes a Range or Watch cover every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// A request with the test deadline set as its gRPC timeout.
pub fn request<T>(message: T) -> tonic::Request<T> {
    request_within(message, CALL_DEADLINE)
}

/// A request with `deadline` as its gRPC timeout.
pub fn request_within<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(deadline);
    req
}
