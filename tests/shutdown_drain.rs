//! Shutdown drains every call in flight, including calls on slots that elastic shrinking
//! removed (they finish on their connection after the removal).
mod support;

use std::time::Duration;

use grpc_pool::PoolConfig;
use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::EchoRequest;
use grpc_pool_testkit::{wait_until, EchoServer};
use tokio::time::Instant;

/// An elastic pool (1..2, threshold 4 calls per READY channel) grows under load, then shrinks
/// while a 1.5 s call runs on the slot it removes. `shutdown()` must wait for that call, which
/// must succeed, instead of seeing nothing in flight and cutting its connection.
///
/// The load is made of held checkouts: a checked-out channel counts as a call in flight, the
/// pool's measure of load, and holding them puts every call exactly where the test needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_calls_on_slots_removed_by_shrinking() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let config = PoolConfig::builder()
        .name("shutdown-drain-removed")
        .endpoint(&server.uri())
        .min_size(1)
        .max_size(2)
        .max_in_flight_per_channel(8)
        .resize_interval(Duration::from_millis(50))
        .resize_step(1)
        .checkout_timeout(Duration::from_secs(5))
        .drain_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    assert_eq!(pool.status().size, 1);
    let first = pool.status().channels[0].index;

    // Six calls on the one channel: above the threshold, the pool grows to two.
    let mut load = Vec::new();
    for _ in 0..6 {
        load.push(pool.checkout().await.unwrap());
    }
    assert!(
        wait_until(
            || {
                let s = pool.status();
                s.size == 2 && s.ready == 2
            },
            Duration::from_secs(3)
        )
        .await,
        "did not grow\n{}",
        pool.status()
    );
    let grown = pool
        .status()
        .channels
        .iter()
        .map(|c| c.index)
        .find(|i| *i != first)
        .unwrap();

    // The long call goes to the new, idle channel.
    let channel = pool.checkout().await.unwrap();
    assert_eq!(channel.slot(), grown, "{}", pool.status());
    let call_time = Duration::from_millis(1500);
    let started = Instant::now();
    let call = tokio::spawn(async move {
        let request = EchoRequest {
            message: "long".into(),
            delay_ms: call_time.as_millis() as u32,
            ..Default::default()
        };
        EchoClient::new(channel).unary(request).await
    });
    assert!(wait_until(|| server.stats().in_progress() == 1, Duration::from_secs(2)).await);

    // The load drops to one call per channel: the pool shrinks, and with both channels
    // equally busy it removes the newer one, the long call's.
    load.truncate(1);
    assert!(
        wait_until(|| pool.status().size == 1, Duration::from_secs(2)).await,
        "did not shrink\n{}",
        pool.status()
    );
    let status = pool.status();
    assert_eq!(status.channels[0].index, first, "{status}");
    assert_eq!(status.shrunk, 1, "{status}");
    drop(load);
    assert!(
        !call.is_finished() && started.elapsed() < call_time,
        "the long call ended before the test could shut down ({:?}); the test needs a longer call",
        started.elapsed()
    );

    let completed_before = server.stats().completed();
    let shutdown_began = Instant::now();
    tokio::time::timeout(Duration::from_secs(8), pool.shutdown())
        .await
        .expect("shutdown hung");
    let shutdown_took = shutdown_began.elapsed();
    // Read at once: the call's handler must have run to its end before shutdown returned.
    let completed_after = server.stats().completed();
    let reply = tokio::time::timeout(Duration::from_secs(4), call)
        .await
        .expect("the long call hung")
        .unwrap();
    grpc_pool_testkit::report(format!(
        "scenario=shutdown_drains_removed_slot shutdown_ms={} call_ms={}",
        shutdown_took.as_millis(),
        started.elapsed().as_millis()
    ));
    assert_eq!(
        completed_after,
        completed_before + 1,
        "shutdown returned after {shutdown_took:?}, before the call on the removed slot ended \
         (the call: {:?})",
        reply
            .as_ref()
            .map(|_| "ok")
            .map_err(|status| status.to_string())
    );
    let reply = reply.expect("the call on the removed slot must succeed across shutdown");
    assert_eq!(reply.into_inner().message, "long");
}

/// A call that outlives `drain_timeout` is cut when the pool stops: it ends at once with
/// UNAVAILABLE (its connection was closed under it), not when the server would have
/// answered, and `shutdown()` returns soon after the drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outliving_the_drain_timeout_is_cut_with_unavailable() {
    support::init_tracing();
    let server = EchoServer::builder()
        .delay(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let config = PoolConfig::builder()
        .name("shutdown-drain-cut")
        .endpoint(&server.uri())
        .size(1)
        .drain_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    let channel = pool.checkout().await.unwrap();
    let call = tokio::spawn(async move {
        let request = EchoRequest {
            message: "slow".into(),
            ..Default::default()
        };
        let started = Instant::now();
        let reply = EchoClient::new(channel).unary(request).await;
        (reply, started.elapsed())
    });
    assert!(wait_until(|| server.stats().in_progress() == 1, Duration::from_secs(2)).await);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), pool.shutdown())
        .await
        .expect("shutdown outlived its drain timeout by seconds");
    let shutdown_took = started.elapsed();
    let (reply, call_took) = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("the call outlived the shutdown")
        .unwrap();
    let status = reply.expect_err("the call was cut");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        call_took < Duration::from_secs(2),
        "the call ended after {call_took:?}"
    );
    assert!(
        shutdown_took < Duration::from_secs(1),
        "shutdown took {shutdown_took:?}"
    );
}
