//! Fault matrix: `Pool::shutdown` under load. In-flight calls complete, new checkouts get
//! `PoolError::Closed`, and no task of the pool remains afterwards.
mod support;

use std::sync::Arc;
use std::time::Duration;

use grpc_pool::PoolError;
use grpc_pool_testkit::{wait_until, EchoServer, Tally};
use support::{fast, req, start, unary, HANG_GUARD};

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_completes_in_flight_and_refuses_new_calls() {
    support::init_tracing();
    let server = EchoServer::builder()
        .delay(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let baseline = alive_tasks();
    let pool = start(fast("shutdown-pool", &server.uri(), 4).build().unwrap()).await;
    assert!(wait_until(|| pool.status().ready == 4, Duration::from_secs(5)).await);

    let tally = Arc::new(Tally::new());
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (pool, tally) = (pool.clone(), tally.clone());
        calls.spawn(async move {
            tally
                .call(HANG_GUARD, unary(&pool, req(format!("s{i}"))))
                .await
        });
    }
    assert!(
        wait_until(
            || server.stats().in_progress() == 40,
            Duration::from_secs(5)
        )
        .await,
        "calls did not reach the server"
    );
    tally.fault_started();
    let shutdown = tokio::spawn({
        let pool = pool.clone();
        async move { pool.shutdown().await }
    });
    // New checkouts are refused while the in-flight calls drain.
    assert!(wait_until(|| pool.status().in_flight == 40, Duration::from_secs(1)).await);
    let refused = wait_until(
        || {
            let p = pool.clone();
            matches!(
                futures_util::FutureExt::now_or_never(p.checkout()),
                Some(Err(PoolError::Closed { .. }))
            )
        },
        Duration::from_secs(2),
    )
    .await;
    while let Some(joined) = calls.join_next().await {
        joined.unwrap();
    }
    tokio::time::timeout(HANG_GUARD, shutdown)
        .await
        .expect("shutdown hung")
        .unwrap();
    tally.fault_ended();
    let after = tokio::time::timeout(HANG_GUARD, pool.checkout())
        .await
        .expect("checkout after shutdown hung");
    tally.print("shutdown_under_load");

    assert_eq!(tally.hung(), 0);
    assert_eq!(
        tally.ok(),
        40,
        "in-flight calls must complete across shutdown: {:?}",
        tally.error_kinds()
    );
    assert!(refused, "checkout during shutdown must fail with Closed");
    match after {
        Err(PoolError::Closed { pool: name }) => assert_eq!(name, "shutdown-pool"),
        other => panic!("checkout after shutdown must be Closed, got {other:?}"),
    }
    let call = unary(&pool, req("late"))
        .await
        .expect_err("a call after shutdown must fail");
    assert!(support::chain(&call).contains("shutdown-pool"), "{call}");
    assert!(
        grpc_pool::registry::get("shutdown-pool").is_none(),
        "a shut down pool must leave the registry"
    );
    drop(pool);
    let settled = wait_until(|| alive_tasks() <= baseline, Duration::from_secs(5)).await;
    assert!(
        settled,
        "tasks remain after shutdown: {} alive, {baseline} before the pool",
        alive_tasks()
    );
}
