//! Helpers shared by the integration tests (servers come from grpc-pool-testkit).
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use grpc_pool::{Pool, PoolConfig, PoolConfigBuilder, RetryConfig};
use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::{EchoReply, EchoRequest, StreamRequest};
use grpc_pool_testkit::EchoServer;
use tonic::{Request, Status};

pub use grpc_pool_testkit::wait_until;

/// Generous deadline for conditions that should hold quickly.
pub const SOON: Duration = Duration::from_secs(5);

/// `test` preset against `server` with `size` channels.
pub fn config(server: &EchoServer, size: usize) -> PoolConfigBuilder {
    PoolConfig::test("127.0.0.1", server.addr().port())
        .size(size)
        .retry(RetryConfig::new(
            3,
            Duration::from_millis(20),
            Duration::from_millis(100),
        ))
}

pub async fn start(config: PoolConfigBuilder) -> Pool {
    Pool::start(config.build().expect("valid config"))
        .await
        .expect("pool starts")
}

pub fn echo(message: &str, delay_ms: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        delay_ms,
        ..Default::default()
    }
}

/// A unary Echo call through the pool with transparent retry, as generated code makes it.
pub async fn unary(pool: &Pool, request: EchoRequest) -> Result<EchoReply, Status> {
    let options = grpc_pool::__private::ClientOptions::new();
    grpc_pool::__private::unary(
        pool,
        &options,
        "/grpcpool.test.v1.Echo/Unary",
        None,
        Request::new(request),
        |channel, request| async move { EchoClient::new(channel).unary(request).await },
    )
    .await
    .map(|r| r.into_inner())
}

pub fn stream_request(count: u32, interval_ms: u32) -> StreamRequest {
    StreamRequest {
        message: "s".to_owned(),
        count,
        interval_ms,
    }
}

/// Waits until the pool reports no call in flight.
pub async fn drained(pool: &Pool) -> bool {
    wait_until(|| pool.status().in_flight == 0, SOON).await
}

/// A port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// Tasks alive on the current runtime.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}
