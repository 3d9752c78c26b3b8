//! Connection refresh (issue 7): `max_connection_age` replaces each healthy connection after
//! its age (±10 %): the slot opens the replacement, waits until it is READY, switches new
//! calls to it and lets the old one drain. Under steady load no call may fail.
mod support;

use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::{wait_until, EchoServer, Tally};
use support::{fast, start, unary_load};

/// `max_connection_age` 300 ms on 4 channels under load for 5 s: many refreshes, zero failed
/// calls, and the server saw one connection per refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connection_age_refreshes_under_load_without_failed_calls() {
    support::init_tracing();
    let server = EchoServer::builder()
        .delay(Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    let config = fast("refresh-age", &server.uri(), 4)
        .max_connection_age(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(wait_until(|| pool.status().ready == 4, Duration::from_secs(3)).await);

    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 8);
    tokio::time::sleep(Duration::from_secs(5)).await; // the load's duration, not a wait for a condition
    load.stop().await;
    let status = pool.status();
    tally.print("refresh_max_age_300ms_5s");
    grpc_pool_testkit::report(format!(
        "scenario=refresh_max_age_300ms_5s refreshes={} reconnects={} server_connections={}",
        status.refreshes,
        status.reconnects,
        server.stats().connections().len()
    ));

    assert_eq!(tally.hung(), 0, "{:?}", tally.error_kinds());
    assert_eq!(
        tally.errors(),
        0,
        "calls failed across refreshes: {:?}",
        tally.error_kinds()
    );
    assert!(tally.ok() > 500, "too little load: {}", tally.ok());
    // 4 slots, 5 s, one refresh per 270..330 ms: about 60; allow a loaded machine half.
    assert!(
        status.refreshes >= 30,
        "expected many refreshes, got {}\n{status}",
        status.refreshes
    );
    assert_eq!(
        status.reconnects, 0,
        "a refresh must not go through a lost connection\n{status}"
    );
    // Every refresh opened a new connection (plus the 4 initial ones).
    assert!(server.stats().connections().len() as u64 >= status.refreshes + 4);
    assert_eq!(status.ready, 4, "{status}");
    pool.shutdown().await;
}

/// Refreshes are spread out by the ±10 % jitter: with 8 slots started together, the first
/// refreshes do not all happen in the same instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_are_jittered() {
    let server = EchoServer::start().await.unwrap();
    let config = fast("refresh-jitter", &server.uri(), 8)
        .max_connection_age(Some(Duration::from_millis(500)))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(wait_until(|| pool.status().ready == 8, Duration::from_secs(3)).await);
    // Sample which slots have refreshed while the first round happens (450..550 ms after
    // the connections were made): a jittered round is seen partly done.
    let mut partial = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let done = pool
            .status()
            .channels
            .iter()
            .filter(|c| c.refreshes > 0)
            .count();
        if done > 0 && done < 8 {
            partial = true;
            break;
        }
        if done == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        partial,
        "all 8 slots refreshed at once: no jitter\n{}",
        pool.status()
    );
    pool.shutdown().await;
}

/// A server's own `max_connection_age` sends GOAWAY to each connection: the slot replaces it
/// at once, and no call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_goaway_replaces_the_connection_without_failed_calls() {
    support::init_tracing();
    let server = EchoServer::builder()
        .max_connection_age(Duration::from_millis(250))
        .delay(Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    let pool = start(fast("refresh-goaway", &server.uri(), 4).build().unwrap()).await;
    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 8);
    let replaced = wait_until(
        || pool.status().reconnects + pool.status().refreshes >= 12,
        Duration::from_secs(6),
    )
    .await;
    load.stop().await;
    let status = pool.status();
    tally.print("refresh_server_goaway_250ms");
    assert_eq!(tally.hung(), 0, "{:?}", tally.error_kinds());
    assert_eq!(tally.errors(), 0, "{:?}", tally.error_kinds());
    assert!(replaced, "connections were not replaced\n{status}");
    assert!(
        wait_until(|| pool.status().ready == 4, Duration::from_secs(3)).await,
        "{}",
        pool.status()
    );
    pool.shutdown().await;
}
