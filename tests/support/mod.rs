//! Shared helpers of the root integration tests (fault matrix, TLS, config errors).
#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::sync::Arc;
use std::time::Duration;

use echo::{EchoReply, EchoRequest, PooledEchoClient};
use grpc_pool::{Pool, PoolConfig, PoolConfigBuilder, RetryConfig};
use grpc_pool_testkit::load::Load;
use grpc_pool_testkit::{ChildOptions, Tally};

/// Bound of every call in the fault tests: a call still running after this is counted hung.
/// Well above the pool's own deadlines (`REQUEST_TIMEOUT`, keepalive), so only a call the pool
/// lost reaches it.
pub const HANG_GUARD: Duration = Duration::from_secs(4);
/// The per-call deadline the pools are configured with.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 keepalive interval and timeout of the fault-test pools.
pub const KEEPALIVE: Duration = Duration::from_millis(50);
/// See [`KEEPALIVE`].
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(100);

/// Child-process server options with the root package's `echo-server` binary.
pub fn child() -> ChildOptions {
    ChildOptions::new().binary(env!("CARGO_BIN_EXE_echo-server"))
}

/// A pool config with short intervals for fault tests: `size` channels to `uri`, keepalive
/// 50 ms / 100 ms, connect timeout 250 ms, reconnect backoff 20..200 ms.
pub fn fast(name: &str, uri: &str, size: usize) -> PoolConfigBuilder {
    PoolConfig::builder()
        .name(name)
        .endpoint(uri)
        .size(size)
        .connect_timeout(Duration::from_millis(250))
        .request_timeout(REQUEST_TIMEOUT)
        .checkout_timeout(Duration::from_millis(500))
        .keepalive(KEEPALIVE)
        .keepalive_timeout(KEEPALIVE_TIMEOUT)
        .retry(RetryConfig::new(
            5,
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
}

/// Starts a pool, bounded so a start that never returns fails the test instead of hanging it.
pub async fn start(config: PoolConfig) -> Pool {
    tokio::time::timeout(Duration::from_secs(8), Pool::start(config))
        .await
        .expect("Pool::start hung")
        .expect("Pool::start failed")
}

/// `grpcpool.test.v1.Echo` compiled by this package's build script through grpc-pool-build:
/// messages, tonic's `EchoClient`, and the generated `PooledEchoClient`.
#[grpc_pool::grpc_pool(name = "echo-tests")]
pub mod echo {
    grpc_pool::include_proto!("grpcpool.test.v1");
}

/// An `EchoRequest` with this message.
pub fn req(message: impl Into<String>) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        ..Default::default()
    }
}

/// One unary Echo call through the pool, as users make it: the generated `PooledEchoClient`
/// (least-loaded channel, transparent retry of calls the server never saw).
pub async fn unary(pool: &Pool, request: EchoRequest) -> Result<EchoReply, tonic::Status> {
    Ok(PooledEchoClient::new(pool.clone())
        .unary(request)
        .await?
        .into_inner())
}

/// Whether an error kind recorded by a `Tally` (a `tonic::Status` Display) has this code.
pub fn is_code(kind: &str, code: tonic::Code) -> bool {
    kind.starts_with(&format!("code: '{code}'"))
}

/// `workers` tasks calling Unary through `pool` in a loop (5 ms apart), each call bounded by
/// [`HANG_GUARD`] and counted in `tally`.
pub fn unary_load(pool: &Pool, tally: &Arc<Tally>, workers: usize) -> Load {
    let pool = pool.clone();
    Load::spawn(
        tally.clone(),
        workers,
        Duration::from_millis(5),
        HANG_GUARD,
        move |i| {
            let pool = pool.clone();
            async move { unary(&pool, req(format!("w{i}"))).await }
        },
    )
}

/// Asserts every error kind in `tally` has one of `codes`.
pub fn assert_codes(tally: &Tally, codes: &[tonic::Code]) {
    for kind in tally.error_kinds().keys() {
        assert!(
            codes.iter().any(|c| is_code(kind, *c)),
            "unexpected error (allowed: {codes:?}): {kind}"
        );
    }
}

/// `err` and its `source()` chain joined with ": ".
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Logs of the pool to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A `StreamRequest` for `count` replies, `interval_ms` apart.
pub fn stream_req(count: u32, interval_ms: u32) -> echo::StreamRequest {
    echo::StreamRequest {
        message: "s".into(),
        count,
        interval_ms,
    }
}

/// Reads a server stream of `count` replies `interval_ms` apart to its end, in a task; the
/// task returns how many replies came. Holds its connection open that long.
pub fn spawn_server_stream(
    pool: &Pool,
    count: u32,
    interval_ms: u32,
) -> tokio::task::JoinHandle<Result<u32, tonic::Status>> {
    let client = PooledEchoClient::new(pool.clone());
    tokio::spawn(async move {
        let mut s = client
            .server_stream(stream_req(count, interval_ms))
            .await?
            .into_inner();
        let mut n = 0;
        while s.message().await?.is_some() {
            n += 1;
        }
        Ok(n)
    })
}
