//! A shutdown whose caller stops waiting still completes: the named pool's tasks end and its
//! name is free for a new start.
mod support;

use std::time::Duration;

use grpc_pool::PoolConfig;
use grpc_pool_testkit::{wait_until, EchoServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_shutdown_still_frees_the_name() {
    support::init_tracing();
    // Calls take 300 ms, so the drain is still waiting when the caller gives up.
    let server = EchoServer::builder()
        .delay(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let config = || {
        PoolConfig::builder()
            .endpoint(&server.uri())
            .size(2)
            .build()
            .unwrap()
    };
    let pool = support::echo::POOL.start(config()).await.unwrap();
    let call = {
        let pool = pool.clone();
        tokio::spawn(async move { support::unary(&pool, support::req("slow")).await })
    };
    assert!(wait_until(|| pool.status().in_flight == 1, Duration::from_secs(2)).await);

    let gave_up = tokio::time::timeout(Duration::from_millis(20), pool.shutdown()).await;
    assert!(
        gave_up.is_err(),
        "the drain should have outlasted the caller's patience"
    );
    assert!(call.await.unwrap().is_ok(), "the call in flight was cut");
    // The teardown finishes the drain (the call above), stops the tasks and frees the name.
    let began = tokio::time::Instant::now();
    let again = loop {
        match support::echo::POOL.start(config()).await {
            Err(grpc_pool::PoolError::AlreadyRunning { .. })
                if began.elapsed() < Duration::from_secs(3) =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other,
        }
    };
    assert!(
        again.is_ok(),
        "the name stayed taken after a cancelled shutdown: {:?}",
        again.err()
    );
    again.unwrap().shutdown().await;
}
