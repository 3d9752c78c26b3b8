//! Fault matrix: the server reports NOT_SERVING on its health service, so every channel is
//! unhealthy. Calls fail quickly with an error naming the pool (no hang, no queueing until a
//! deadline), and the pool serves again once the server is SERVING.
mod support;

use std::sync::Arc;
use std::time::Duration;

use grpc_pool::{PoolError, PoolStatus};
use grpc_pool_testkit::{wait_until, EchoServer, Tally};
use support::{fast, req, start, unary, unary_load, HANG_GUARD};

fn unhealthy(s: &PoolStatus) -> bool {
    s.ready == 0 && s.unhealthy == s.size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_serving_on_all_channels_fails_calls_naming_the_pool_then_recovers() {
    support::init_tracing();
    let server = EchoServer::builder().health(true).start().await.unwrap();
    let config = fast("health-pool", &server.uri(), 3)
        .health_check(true)
        .ping_interval(Some(Duration::from_millis(30)))
        .build()
        .unwrap();
    let pool = start(config).await;
    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 4);
    assert!(
        wait_until(|| tally.ok() >= 20, Duration::from_secs(5)).await,
        "no calls before the fault"
    );

    server.set_serving(false).await;
    tally.fault_started();
    let marked = wait_until(|| unhealthy(&pool.status()), Duration::from_secs(3)).await;
    let status = pool.status();

    // With every channel unhealthy, a checkout fails with an error naming the pool.
    let checkout = tokio::time::timeout(HANG_GUARD, pool.checkout())
        .await
        .expect("checkout hung");
    let Err(err) = checkout else {
        panic!("checkout must fail when every channel is NOT_SERVING");
    };
    assert!(
        matches!(
            err,
            PoolError::NoReadyChannel { .. } | PoolError::CheckoutTimeout { .. }
        ),
        "unexpected error: {err:?}"
    );
    assert!(
        err.to_string().contains("health-pool"),
        "the error must name the pool: {err}"
    );
    // The call path says the same through tonic::Status.
    let call = tokio::time::timeout(HANG_GUARD, unary(&pool, req("down")))
        .await
        .expect("call hung");
    let status_err = call.expect_err("a call must fail when every channel is NOT_SERVING");
    assert_eq!(status_err.code(), tonic::Code::Unavailable, "{status_err}");
    assert!(
        support::chain(&status_err).contains("health-pool"),
        "the error must name the pool: {status_err}"
    );
    let calls_while_down = server.stats().calls();

    tokio::time::sleep(Duration::from_millis(200)).await;
    server.set_serving(true).await;
    tally.fault_ended();
    let recovered = wait_until(|| tally.recovery().is_some(), Duration::from_secs(5)).await;
    let all_ready = wait_until(|| pool.status().ready == 3, Duration::from_secs(5)).await;
    load.stop().await;
    tally.print("health_not_serving");

    assert!(
        marked,
        "NOT_SERVING did not mark every channel unhealthy: {status:?}"
    );
    assert_eq!(
        tally.hung(),
        0,
        "calls hung while NOT_SERVING: {:?}",
        tally.error_kinds()
    );
    assert!(
        tally.errors() > 0,
        "calls should fail while every channel is NOT_SERVING"
    );
    for kind in tally.error_kinds().keys() {
        assert!(
            kind.contains("health-pool"),
            "error does not name the pool: {kind}"
        );
    }
    assert!(
        recovered && all_ready,
        "no recovery after SERVING: {:?}",
        pool.status()
    );
    assert!(server.stats().calls() > calls_while_down);
    pool.shutdown().await;
}
