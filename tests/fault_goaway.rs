//! Fault matrix: GOAWAY under steady load. A server with `max_connection_age` sends GOAWAY to
//! every connection again and again; a server doing graceful shutdowns (and coming back on its
//! port) does too. The target is zero failed calls: in-flight calls finish on the old
//! connection, new ones go to a replacement or another channel, and a call the server never
//! saw is retried transparently.
mod support;

use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::{wait_until, EchoServer, Tally};
use support::{fast, start, unary_load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_by_max_connection_age_under_steady_load_fails_no_call() {
    support::init_tracing();
    let server = EchoServer::builder()
        .max_connection_age(Duration::from_millis(200))
        .delay(Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    let pool = start(fast("goaway-age", &server.uri(), 4).build().unwrap()).await;
    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 8);
    // Run until the server has aged out (GOAWAY) at least 3 generations of the 4 connections.
    let many = wait_until(
        || server.stats().connections().len() >= 16,
        Duration::from_secs(6),
    )
    .await;
    load.stop().await;
    tally.print("goaway_max_connection_age");

    let conns = server.stats().connections().len();
    assert_eq!(
        tally.hung(),
        0,
        "calls hung across GOAWAY: {:?}",
        tally.error_kinds()
    );
    assert!(many, "expected many GOAWAYs (connections seen: {conns})");
    assert!(tally.ok() > 0);
    assert_eq!(
        tally.errors(),
        0,
        "calls failed across GOAWAY ({conns} connections): {:?}",
        tally.error_kinds()
    );
    assert!(
        wait_until(|| pool.status().ready == 4, Duration::from_secs(5)).await,
        "{:?}",
        pool.status()
    );
    pool.shutdown().await;
}

/// Two backends; `a` shuts down gracefully (GOAWAY, drains) and restarts on its port five times
/// while `b` keeps serving. No call may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_by_graceful_shutdown_under_steady_load_fails_no_call() {
    support::init_tracing();
    let slow = Duration::from_millis(20);
    let mut a = EchoServer::builder().delay(slow).start().await.unwrap();
    let addr = a.addr();
    let b = EchoServer::builder().delay(slow).start().await.unwrap();
    let config = fast("goaway-shutdown", &a.uri(), 4)
        .endpoint(&b.uri())
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 4, Duration::from_secs(5)).await,
        "{:?}",
        pool.status()
    );
    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 8);
    let mut restarted = 0;
    for _ in 0..5 {
        let before = tally.ok();
        assert!(
            wait_until(|| tally.ok() >= before + 40, Duration::from_secs(5)).await,
            "calls stalled"
        );
        assert!(wait_until(|| a.stats().in_progress() > 0, Duration::from_secs(2)).await);
        // Graceful: GOAWAY to every connection, in-flight calls finish, then the server exits.
        tokio::time::timeout(Duration::from_secs(5), a.shutdown())
            .await
            .expect("graceful shutdown hung");
        tally.fault_started();
        a = EchoServer::builder()
            .delay(slow)
            .bind(addr)
            .start()
            .await
            .unwrap();
        tally.fault_ended();
        restarted += 1;
        assert!(
            wait_until(|| pool.status().ready == 4, Duration::from_secs(5)).await,
            "{:?}",
            pool.status()
        );
    }
    load.stop().await;
    tally.print("goaway_graceful_shutdown");

    assert_eq!(restarted, 5);
    assert_eq!(
        tally.hung(),
        0,
        "calls hung across graceful shutdowns: {:?}",
        tally.error_kinds()
    );
    assert_eq!(
        tally.errors(),
        0,
        "calls failed across graceful shutdowns: {:?}",
        tally.error_kinds()
    );
    pool.shutdown().await;
}
