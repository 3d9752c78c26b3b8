//! Shutdown and drop: calls in flight finish, new ones get `Closed`, no task remains.

mod support;

use std::time::Duration;

use grpc_pool::{registry, PoolError};
use grpc_pool_testkit::EchoServer;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_finishes_in_flight_calls_refuses_new_ones_and_ends_every_task() {
    let server = EchoServer::start().await.unwrap();
    let baseline = alive_tasks();
    let pool = start(config(&server, 3).name("shutdown-under-load")).await;
    assert!(registry::get("shutdown-under-load").is_some());

    let calls: Vec<_> = (0..12)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { unary(&pool, echo(&i.to_string(), 300)).await })
        })
        .collect();
    assert!(wait_until(|| server.stats().in_progress() == 12, SOON).await);

    let shutting_down = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown().await })
    };
    assert!(wait_until(|| pool.status().closed, SOON).await);
    assert!(matches!(
        pool.checkout().await,
        Err(PoolError::Closed { .. })
    ));

    for call in calls {
        call.await
            .unwrap()
            .expect("in-flight call completes during shutdown");
    }
    shutting_down.await.unwrap();
    assert!(
        registry::get("shutdown-under-load").is_none(),
        "left the registry"
    );
    assert!(!registry::names().contains(&"shutdown-under-load".to_owned()));
    drop(pool);
    assert!(
        wait_until(|| alive_tasks() <= baseline, SOON).await,
        "tasks left: {} > {baseline}",
        alive_tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_calls_after_the_drain_timeout() {
    let server = EchoServer::start().await.unwrap();
    let pool = start(config(&server, 1).drain_timeout(Duration::from_millis(100))).await;
    let call = {
        let pool = pool.clone();
        tokio::spawn(async move { unary(&pool, echo("slow", 5_000)).await })
    };
    assert!(wait_until(|| server.stats().in_progress() == 1, SOON).await);
    tokio::time::timeout(Duration::from_secs(3), pool.shutdown())
        .await
        .expect("shutdown is bounded by the drain timeout");
    let result = tokio::time::timeout(Duration::from_secs(3), call).await;
    assert!(result
        .expect("the call ends, it does not hang")
        .unwrap()
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_pools_tasks() {
    let server = EchoServer::start().await.unwrap();
    let baseline = alive_tasks();
    let pool = start(config(&server, 4).name("dropped-pool")).await;
    unary(&pool, echo("x", 0)).await.unwrap();
    assert!(alive_tasks() > baseline);
    drop(pool);
    assert!(registry::get("dropped-pool").is_none());
    assert!(
        wait_until(|| alive_tasks() <= baseline, SOON).await,
        "tasks left: {} > {baseline}",
        alive_tasks()
    );
}
