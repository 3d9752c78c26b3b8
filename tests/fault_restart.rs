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
