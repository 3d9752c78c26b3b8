//! Fault matrix: the server process dies (SIGKILL) under load and comes back on the same port
//! after 1 s. Calls during the outage end with an error (or succeed on another channel), none
//! hangs, and the pool serves again without user action.
mod support;

use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::{wait_until, ChildServer, Tally};
use support::{fast, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_on_same_port_under_load() {
    support::init_tracing();
    let mut server = ChildServer::spawn(0, support::child()).await.unwrap();
    let pool = start(fast("fault-restart", &server.uri(), 4).build().unwrap()).await;
    let tally = Arc::new(Tally::new());
    let load = support::unary_load(&pool, &tally, 8);
    assert!(
        wait_until(|| tally.ok() >= 50, Duration::from_secs(5)).await,
        "no calls before the fault"
    );

    server.kill().await.unwrap();
    tally.fault_started();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ok_during_outage = tally.ok();
    server.restart().await.unwrap();
    tally.fault_ended();

    let recovered = wait_until(|| tally.recovery().is_some(), Duration::from_secs(5)).await;
    // Keep the load on a little longer: the pool must stay healthy after recovering.
    let ok_after = tally.ok();
    let steady = wait_until(|| tally.ok() >= ok_after + 100, Duration::from_secs(5)).await;
    load.stop().await;
    tally.print("server_restart_same_port");

    assert_eq!(
        tally.hung(),
        0,
        "calls hung across the restart: {:?}",
        tally.error_kinds()
    );
    assert!(
        recovered,
        "the pool did not serve again within 5 s of the restart"
    );
    assert!(steady, "the pool did not keep serving after the restart");
    assert!(
        tally.errors() > 0 || tally.ok() > ok_during_outage,
        "the outage was not observed"
    );
    // Calls started during the outage fail with Unavailable (no ready channel). Only a call in
    // flight at the moment of the SIGKILL (at most one per worker) may end otherwise: tonic
    // reports a connection cut mid-call as `Unknown: transport error`, and such a call may
    // have executed, so it must not be retried.
    let mut cut_mid_call = 0;
    for (kind, n) in tally.error_kinds() {
        if !support::is_code(&kind, tonic::Code::Unavailable) {
            assert!(
                kind.contains("transport error"),
                "unexpected error during the outage: {kind}"
            );
            cut_mid_call += n;
        }
    }
    assert!(
        cut_mid_call <= 8,
        "{cut_mid_call} calls failed mid-call; at most 8 were in flight"
    );
    let status = pool.status();
    assert!(
        wait_until(|| pool.status().ready == 4, Duration::from_secs(5)).await,
        "{status:?}"
    );
    pool.shutdown().await;
}

/// Demand-driven reconnect: channels backing off after an outage try again as soon as a
/// checkout finds no channel (at most once per `min(retry.base_delay, 1 s)`), instead of
/// sleeping out a backoff delay that may have grown long. Here the backoff is 2.4..3.6 s and
/// a call made right after the server returns succeeds after about 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cuts_a_long_backoff_short_once_the_server_is_back() {
    use grpc_pool::{ChannelState, RetryConfig};
    use grpc_pool_testkit::EchoServer;
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let addr = server.addr();
    let config = fast("fault-demand", &server.uri(), 2)
        .retry(RetryConfig::new(
            3,
            Duration::from_secs(3),
            Duration::from_secs(6),
        ))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(wait_until(|| pool.status().ready == 2, Duration::from_secs(3)).await);

    server.kill().await;
    let backing_off = || {
        pool.status()
            .channels
            .iter()
            .all(|c| c.state == ChannelState::Backoff)
    };
    assert!(
        wait_until(backing_off, Duration::from_secs(3)).await,
        "{}",
        pool.status()
    );
    let server = EchoServer::builder().bind(addr).start().await.unwrap();
    let back = tokio::time::Instant::now();
    let mut failed = 0;
    let recovered = loop {
        match support::unary(&pool, support::req("again")).await {
            Ok(_) => break back.elapsed(),
            Err(_) if back.elapsed() < Duration::from_secs(5) => failed += 1,
            Err(e) => panic!("not recovered after 5 s: {e}\n{}", pool.status()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    grpc_pool_testkit::report(format!(
        "scenario=demand_reconnect_after_outage recovery_ms={} failed_calls={failed}",
        recovered.as_millis()
    ));
    // Without demand the first attempt comes after the 2.4..3.6 s backoff.
    assert!(
        recovered < Duration::from_millis(2000),
        "recovered only after {recovered:?}: the backoff was not cut short"
    );
    pool.shutdown().await;
    drop(server);
}
