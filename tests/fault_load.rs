//! Fault matrix: 10,000 concurrent calls over a pool of 8 against a server that allows 100
//! concurrent streams per connection. Every call completes, nothing deadlocks, and the pool's
//! in-flight count returns to 0.
mod support;

use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::{wait_until, EchoServer, Tally};
use support::{fast, req, start, unary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_over_eight_channels_all_complete() {
    support::init_tracing();
    const CALLS: u64 = 10_000;
    let server = EchoServer::builder()
        .max_concurrent_streams(100)
        .delay(Duration::from_millis(1))
        .start()
        .await
        .unwrap();
    let config = fast("load-10k", &server.uri(), 8)
        // This scenario is about stream limits, not dead peers: with 10,000 calls on 2 shared
        // cores a 100 ms PING deadline can pass while the client itself is starved of CPU.
        .keepalive(Duration::from_secs(5))
        .keepalive_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(8))
        .checkout_timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 8, Duration::from_secs(5)).await,
        "{:?}",
        pool.status()
    );

    let tally = Arc::new(Tally::new());
    let mut tasks = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Barrier::new(CALLS as usize + 1));
    for i in 0..CALLS {
        let (pool, tally, gate) = (pool.clone(), tally.clone(), gate.clone());
        tasks.spawn(async move {
            gate.wait().await;
            tally
                .call(Duration::from_secs(9), unary(&pool, req(format!("c{i}"))))
                .await;
        });
    }
    gate.wait().await;
    while let Some(joined) = tasks.join_next().await {
        joined.expect("call task panicked");
    }
    tally.print("ten_thousand_concurrent");

    assert_eq!(tally.hung(), 0, "calls hung: {:?}", tally.error_kinds());
    assert_eq!(tally.ok(), CALLS, "calls failed: {:?}", tally.error_kinds());
    assert_eq!(server.stats().completed(), CALLS);
    assert!(server.stats().max_concurrent_per_connection() <= 100);
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(5)).await,
        "in-flight did not return to 0: {:?}",
        pool.status()
    );
    let per_conn = server.stats().connections();
    assert!(
        per_conn.len() >= 2,
        "calls should spread over the channels: {per_conn:?}"
    );
    pool.shutdown().await;
}
