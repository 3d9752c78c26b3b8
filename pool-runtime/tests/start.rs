//! Start: eager connects, `Connect` errors, partial and late success.

mod support;

use std::time::Duration;

use grpc_pool::{ChannelState, Pool, PoolConfig, PoolError, RetryConfig};
use grpc_pool_testkit::EchoServer;
use support::*;

fn fast_retry(attempts: u32) -> RetryConfig {
    RetryConfig::new(
        attempts,
        Duration::from_millis(10),
        Duration::from_millis(40),
    )
}

#[tokio::test]
async fn start_against_a_closed_port_fails_with_connect_after_the_configured_attempts() {
    let port = closed_port().await;
    let config = PoolConfig::test("127.0.0.1", port)
        .size(2)
        .retry(fast_retry(2))
        .build()
        .unwrap();
    let err = Pool::start(config).await.unwrap_err();
    match &err {
        PoolError::Connect {
            endpoint,
            attempts,
            source,
            ..
        } => {
            assert_eq!(endpoint, &format!("http://127.0.0.1:{port}"));
            assert_eq!(*attempts, 2);
            assert!(source.message().contains("refused"), "{source}");
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&port.to_string()) && text.contains("2 attempt"),
        "{text}"
    );
}

#[tokio::test]
async fn start_succeeds_with_one_good_endpoint_among_failing_ones() {
    let server = EchoServer::start().await.unwrap();
    let dead = format!("http://127.0.0.1:{}", closed_port().await);
    let config = PoolConfig::builder()
        .endpoint(&dead)
        .endpoint(&server.uri())
        .preset(grpc_pool::Preset::Test)
        .size(4)
        .retry(fast_retry(2))
        .build()
        .unwrap();
    let pool = Pool::start(config)
        .await
        .expect("one good endpoint is enough");
    let status = pool.status();
    let good: Vec<_> = status
        .channels
        .iter()
        .filter(|c| c.endpoint == server.uri())
        .collect();
    assert_eq!(
        good.len(),
        2,
        "slots are spread over both endpoints: {status}"
    );
    assert!(wait_until(|| pool.status().ready == 2, SOON).await);
    // Calls go only to the live endpoint, and the dead one keeps retrying.
    for _ in 0..10 {
        unary(&pool, echo("x", 0)).await.unwrap();
    }
    let status = pool.status();
    for c in status.channels.iter().filter(|c| c.endpoint == dead) {
        assert_ne!(c.state, ChannelState::Ready);
        assert!(c.last_error.is_some());
    }
}

#[tokio::test]
async fn start_succeeds_when_the_server_comes_up_late() {
    let port = closed_port().await;
    let config = PoolConfig::test("127.0.0.1", port)
        .size(2)
        .retry(RetryConfig::new(
            100,
            Duration::from_millis(20),
            Duration::from_millis(50),
        ))
        .build()
        .unwrap();
    let starting = tokio::spawn(Pool::start(config));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = EchoServer::builder()
        .bind(([127, 0, 0, 1], port).into())
        .start()
        .await
        .unwrap();
    let pool = starting
        .await
        .unwrap()
        .expect("start waits for the late server");
    unary(&pool, echo("late", 0)).await.unwrap();
    drop(server);
}

#[tokio::test]
async fn start_rejects_an_invalid_config() {
    let err = Pool::start(PoolConfig::builder().size(2).build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Config(_)), "{err:?}");
}
