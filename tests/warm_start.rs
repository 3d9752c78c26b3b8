//! Warm means warm: `Pool::start` returns once every slot is READY or has finished its first
//! attempt, so a burst of calls right after start is spread over every channel.
mod support;

use std::time::Duration;

use grpc_pool::PoolConfig;
use grpc_pool_testkit::{EchoServer, FaultMode, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_returns_with_every_reachable_channel_ready() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    // One slot connects directly, the other through 100 ms of added latency: it is READY a
    // few round trips later than the first.
    let slow = FaultProxy::start(server.addr()).await.unwrap();
    slow.set_mode(FaultMode::Latency(Duration::from_millis(100)));
    let config = PoolConfig::builder()
        .name("warm-start")
        .endpoint(&server.uri())
        .endpoint(&slow.uri())
        .size(2)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    let status = pool.status();
    assert_eq!(
        status.ready, 2,
        "start returned before every channel was warm\n{status}"
    );
    pool.shutdown().await;
}
