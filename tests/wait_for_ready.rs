//! A call that finds every channel backing off fails at once with UNAVAILABLE, like a gRPC
//! channel in TRANSIENT_FAILURE; with `wait_for_ready` (the pool's setting, or a generated
//! client's `with_wait_for_ready`) it waits for a READY channel within its deadline instead.
mod support;

use std::time::Duration;

use grpc_pool::{ChannelState, RetryConfig};
use grpc_pool_testkit::{wait_until, EchoServer};
use support::echo::PooledEchoClient;
use support::{fast, req};
use tokio::time::Instant;

fn with_timeout(message: &str, timeout: Duration) -> tonic::Request<support::echo::EchoRequest> {
    let mut request = tonic::Request::new(req(message));
    request.set_timeout(timeout);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_every_channel_backs_off_unless_they_wait_for_ready() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let addr = server.addr();
    // A slow backoff keeps the slots in Backoff between attempts once the server is gone.
    let config = fast("wait-for-ready", &server.uri(), 2)
        .retry(RetryConfig::new(
            1000,
            Duration::from_millis(400),
            Duration::from_millis(800),
        ))
        .checkout_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    server.kill().await;
    assert!(
        wait_until(
            || pool
                .status()
                .channels
                .iter()
                .all(|c| c.state == ChannelState::Backoff),
            Duration::from_secs(3)
        )
        .await,
        "every slot backs off: {}",
        pool.status()
    );

    // Fail fast: UNAVAILABLE at once, not after the 5 s deadline.
    let client = PooledEchoClient::new(pool.clone());
    let started = Instant::now();
    let status = client
        .unary(req("now"))
        .await
        .expect_err("nothing is ready");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Waiting for ready: the call waits, and ends at its deadline while the server is down.
    let waiting = client.clone().with_wait_for_ready(true);
    let started = Instant::now();
    let status = waiting
        .unary(with_timeout("soon", Duration::from_millis(300)))
        .await
        .expect_err("the server is down");
    let took = started.elapsed();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "ended after {took:?}"
    );

    // ... and succeeds once the server is back.
    let call = tokio::spawn({
        let waiting = waiting.clone();
        async move {
            waiting
                .unary(with_timeout("later", Duration::from_secs(5)))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!call.is_finished(), "the call waits instead of failing");
    let _server = EchoServer::builder().bind(addr).start().await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(6), call)
        .await
        .expect("the call ended within its deadline")
        .unwrap()
        .expect("served once the server is back");
    assert_eq!(reply.into_inner().message, "later");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_setting_applies_and_a_client_can_override_it() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let config = fast("wait-for-ready-pool", &server.uri(), 1)
        .wait_for_ready(true)
        .retry(RetryConfig::new(
            1000,
            Duration::from_millis(400),
            Duration::from_millis(800),
        ))
        .checkout_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    server.kill().await;
    assert!(
        wait_until(
            || pool.status().channels[0].state == ChannelState::Backoff,
            Duration::from_secs(3)
        )
        .await
    );
    let client = PooledEchoClient::new(pool.clone());
    let status = client
        .unary(with_timeout("waits", Duration::from_millis(200)))
        .await
        .expect_err("the server is down");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    let status = client
        .with_wait_for_ready(false)
        .unary(with_timeout("fails fast", Duration::from_secs(5)))
        .await
        .expect_err("the server is down");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    pool.shutdown().await;
}
