//! Health checks: NOT_SERVING channels get no calls; no health service means healthy.

mod support;

use std::time::Duration;

use grpc_pool::{ChannelState, PoolConfig, PoolError, Preset};
use grpc_pool_testkit::EchoServer;
use support::*;

#[tokio::test]
async fn not_serving_backend_gets_no_calls_and_reports_unhealthy_until_serving_again() {
    let sick = EchoServer::start().await.unwrap();
    let fine = EchoServer::start().await.unwrap();
    let config = PoolConfig::builder()
        .endpoint(&sick.uri())
        .endpoint(&fine.uri())
        .preset(Preset::Test)
        .size(4)
        .health_check(true)
        .ping_interval(Some(Duration::from_millis(50)));
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 4, SOON).await,
        "{}",
        pool.status()
    );

    sick.set_serving(false).await;
    assert!(
        wait_until(|| pool.status().unhealthy == 2, SOON).await,
        "{}",
        pool.status()
    );
    let status = pool.status();
    for c in status.channels.iter().filter(|c| c.endpoint == sick.uri()) {
        assert_eq!(c.state, ChannelState::Unhealthy);
        assert!(
            c.last_error
                .as_deref()
                .unwrap_or("")
                .contains("NOT_SERVING"),
            "{status}"
        );
    }
    let before = sick.stats().calls();
    for _ in 0..20 {
        unary(&pool, echo("x", 0)).await.unwrap();
    }
    assert_eq!(
        sick.stats().calls(),
        before,
        "nothing routed to the NOT_SERVING backend"
    );

    sick.set_serving(true).await;
    assert!(
        wait_until(|| pool.status().ready == 4, SOON).await,
        "{}",
        pool.status()
    );
}

#[tokio::test]
async fn all_channels_unhealthy_fails_calls_fast_with_a_clear_error() {
    let server = EchoServer::start().await.unwrap();
    let pool = start(
        config(&server, 2)
            .health_check(true)
            .ping_interval(Some(Duration::from_millis(50))),
    )
    .await;
    server.set_serving(false).await;
    assert!(
        wait_until(|| pool.status().unhealthy == 2, SOON).await,
        "{}",
        pool.status()
    );
    match pool.checkout().await {
        Err(PoolError::NoReadyChannel {
            pool: name,
            last_error,
        }) => {
            assert_eq!(name, pool.name());
            assert!(last_error.unwrap_or_default().contains("NOT_SERVING"));
        }
        other => panic!("expected NoReadyChannel, got {other:?}"),
    }
    let status = unary(&pool, echo("x", 0)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains(pool.name()), "{status:?}");

    server.set_serving(true).await;
    assert!(
        wait_until(|| pool.status().ready == 2, SOON).await,
        "{}",
        pool.status()
    );
    unary(&pool, echo("x", 0)).await.unwrap();
}

#[tokio::test]
async fn server_without_health_service_is_treated_as_healthy() {
    let server = EchoServer::builder().health(false).start().await.unwrap();
    let pool = start(
        config(&server, 2)
            .health_check(true)
            .ping_interval(Some(Duration::from_millis(50))),
    )
    .await;
    assert!(
        wait_until(|| pool.status().ready == 2, SOON).await,
        "{}",
        pool.status()
    );
    // Several health rounds later it is still ready, and calls work.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pool.status().ready, 2, "{}", pool.status());
    unary(&pool, echo("x", 0)).await.unwrap();
}
