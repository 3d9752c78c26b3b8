//! Connection refresh: `max_connection_age` replaces each healthy connection after
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
    // Every refresh opened a new connection (plus the 4 initial ones). Counted as accepted
    // TCP connections: a replacement that was itself replaced before any Echo call reached it
    // is missing from the per-connection call statistics.
    assert!(
        server.stats().accepted() >= status.refreshes + 4,
        "{} connections accepted for {} refreshes",
        server.stats().accepted(),
        status.refreshes
    );
    assert_eq!(status.ready, 4, "{status}");
    pool.shutdown().await;
}

/// Refreshes are spread out by the ±10 % jitter: 8 slots connected together first refresh
/// over a window of up to 200 ms (0.9..1.1 s after connecting), not in one instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_are_jittered() {
    let server = EchoServer::start().await.unwrap();
    let config = fast("refresh-jitter", &server.uri(), 8)
        .max_connection_age(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(wait_until(|| pool.status().ready == 8, Duration::from_secs(3)).await);
    // When each slot first refreshed, sampled every millisecond.
    let started = tokio::time::Instant::now();
    let mut first: Vec<Option<Duration>> = vec![None; 8];
    while first.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(3) {
        for (i, c) in pool.status().channels.iter().enumerate() {
            if c.refreshes > 0 && first[i].is_none() {
                first[i] = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let times: Vec<Duration> = first.iter().flatten().copied().collect();
    assert_eq!(
        times.len(),
        8,
        "not every slot refreshed\n{}",
        pool.status()
    );
    let spread = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    grpc_pool_testkit::report(format!(
        "scenario=refresh_jitter_8_slots_1s first_refresh_spread_ms={}",
        spread.as_millis()
    ));
    // Uniform over a 200 ms window: the 8 first refreshes span under 30 ms with
    // probability about 0.002 %; without jitter they span only the connect times (a few ms).
    assert!(
        spread >= Duration::from_millis(30),
        "first refreshes within {spread:?}: no jitter"
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

/// A GOAWAY on a connection that a long stream keeps open, with no other call to bounce off
/// it: the slot sees the GOAWAY frame itself and replaces the connection at once (about
/// 300 ms in, when the server ages the connection out), not when the long stream ends 3 s in
/// and the server closes the connection (which is all a pool without the frame scanner would
/// see). A client-streaming call (never retried: its messages are not replayable) then goes
/// to the replacement, and the long stream finishes on the old connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_is_noticed_while_a_long_stream_holds_the_connection() {
    use support::echo::PooledEchoClient;
    support::init_tracing();
    let server = EchoServer::builder()
        .max_connection_age(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let pool = start(
        fast("refresh-goaway-streams", &server.uri(), 1)
            .build()
            .unwrap(),
    )
    .await;
    // 3 s of messages: holds the first connection open long past its GOAWAY.
    let long = support::spawn_server_stream(&pool, 60, 50);
    let started = tokio::time::Instant::now();
    let noticed = wait_until(
        || pool.status().reconnects >= 1,
        Duration::from_millis(1500),
    )
    .await;
    let after = started.elapsed();
    grpc_pool_testkit::report(format!(
        "scenario=goaway_noticed_under_a_long_stream noticed={noticed} after_ms={}",
        after.as_millis()
    ));
    assert!(
        noticed,
        "the GOAWAY was not noticed while the stream held the connection\n{}",
        pool.status()
    );
    // The replacement is fresh (its own GOAWAY is ~300 ms away): the call goes there.
    let messages = tokio_stream::iter(vec![support::req("a"), support::req("b")]);
    let reply = PooledEchoClient::new(pool.clone())
        .client_stream(messages)
        .await
        .expect("a call after the GOAWAY was noticed");
    assert_eq!(reply.into_inner().count, 2);
    let long = long.await.unwrap();
    assert_eq!(
        long.map_err(|e| e.to_string()),
        Ok(60),
        "the long stream must finish on the old connection"
    );
    pool.shutdown().await;
}
