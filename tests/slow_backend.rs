//! A backend that answers much slower than its peers (a degraded server) takes calls only
//! when the faster ones are full, and is tried again once its measure goes stale. Every
//! server is an in-process `EchoServer` on `127.0.0.1:0`, with tonic's defaults.
mod support;

use std::time::{Duration, Instant};

use grpc_pool::{Pool, PoolStatus};
use grpc_pool_testkit::EchoServer;
use support::{fast, req, start, unary, HANG_GUARD};

/// The slot of `status` that connects to `server`.
fn slot_of<'a>(status: &'a PoolStatus, server: &EchoServer) -> &'a grpc_pool::ChannelStatus {
    let uri = server.uri();
    status
        .channels
        .iter()
        .find(|c| c.endpoint.trim_end_matches('/') == uri)
        .expect("a slot per server")
}

/// One call, which must succeed within the hang guard.
async fn call(pool: &Pool, i: usize) {
    tokio::time::timeout(HANG_GUARD, unary(pool, req(format!("c{i}"))))
        .await
        .expect("call hung")
        .expect("call failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_takes_calls_only_when_the_fast_ones_are_full() {
    let quick = Duration::from_millis(2);
    let a = EchoServer::builder().delay(quick).start().await.unwrap();
    let b = EchoServer::builder().delay(quick).start().await.unwrap();
    // Fifteen times slower: far past twice the others and the 3 ms slack.
    let slow = EchoServer::builder()
        .delay(Duration::from_millis(30))
        .start()
        .await
        .unwrap();
    // One slot per backend; 4 calls per channel at most, so the fast ones can be full.
    let pool = start(
        fast("slow-backend", &a.uri(), 3)
            .endpoint(&b.uri())
            .endpoint(&slow.uri())
            .max_in_flight_per_channel(4)
            .build()
            .unwrap(),
    )
    .await;

    // Calls one at a time spread over the slots until every connection has been measured.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut i = 0;
    while pool.status().channels.iter().any(|c| c.latency.is_none()) {
        assert!(
            Instant::now() < deadline,
            "not every slot measured:\n{}",
            pool.status()
        );
        call(&pool, i).await;
        i += 1;
    }
    let status = pool.status();
    let slow_latency = slot_of(&status, &slow).latency.unwrap();
    for server in [&a, &b] {
        assert!(
            slot_of(&status, server).latency.unwrap() * 2 < slow_latency,
            "{status}"
        );
    }

    // One call at a time, the fast backends always have room: the slow one gets none.
    // (Least-loaded alone gives it a third of them: every slot is idle between calls.)
    let before = slow.stats().calls();
    for i in 0..100 {
        call(&pool, i).await;
    }
    assert_eq!(
        slow.stats().calls() - before,
        0,
        "calls reached the slow backend while the fast ones had room\n{}",
        pool.status()
    );

    // 16 callers at once: the fast channels (4 calls each) are full, so the slow one takes
    // the overflow rather than making calls wait.
    let before = slow.stats().calls();
    let mut callers = tokio::task::JoinSet::new();
    for c in 0..16 {
        let pool = pool.clone();
        callers.spawn(async move {
            for i in 0..20 {
                call(&pool, c * 100 + i).await;
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.expect("caller panicked");
    }
    assert!(
        slow.stats().calls() > before,
        "the slow backend took no overflow\n{}",
        pool.status()
    );

    // Untouched, its measure decays (halving every second) until it counts as fast again
    // and a call goes there to measure it anew: a backend that recovered is not shunned.
    let before = slow.stats().calls();
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut i = 0;
    while slow.stats().calls() == before {
        assert!(
            Instant::now() < deadline,
            "the slow backend was never tried again\n{}",
            pool.status()
        );
        call(&pool, i).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool.shutdown().await;
}
