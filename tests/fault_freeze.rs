//! Fault matrix: the server freezes (SIGSTOP of its process, or a network blackhole) for longer
//! than the pool's keepalive timeout. In-flight calls end by their deadline or by the keepalive
//! failure, the slots are marked and reconnected, new calls do not queue behind the dead
//! connection, and the pool serves again after SIGCONT / pass-through.
mod support;

use std::sync::Arc;
use std::time::Duration;

use grpc_pool::Pool;
use grpc_pool_testkit::{wait_until, ChildServer, EchoServer, FaultMode, FaultProxy, Tally};
use support::{fast, start, unary_load};
use tonic::Code;

/// Longer than keepalive + keepalive_timeout (150 ms) several times over.
const FREEZE: Duration = Duration::from_millis(700);

/// Runs load, freezes with `freeze`, waits until no channel is ready (the pool noticed) and at
/// least [`FREEZE`], thaws with `thaw`, and waits for recovery. Returns (tally, noticed, recovered).
async fn frozen_scenario(
    name: &str,
    pool: &Pool,
    freeze: impl FnOnce(),
    thaw: impl FnOnce(),
) -> (Arc<Tally>, bool, bool) {
    let size = pool.status().size;
    let tally = Arc::new(Tally::new());
    let load = unary_load(pool, &tally, 8);
    assert!(
        wait_until(|| tally.ok() >= 50, Duration::from_secs(5)).await,
        "no calls before the fault"
    );

    freeze();
    tally.fault_started();
    let frozen_at = std::time::Instant::now();
    let noticed = wait_until(|| pool.status().ready == 0, Duration::from_secs(3)).await;
    if let Some(rest) = FREEZE.checked_sub(frozen_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    thaw();
    tally.fault_ended();

    let recovered = wait_until(|| tally.recovery().is_some(), Duration::from_secs(5)).await;
    let ok_after = tally.ok();
    let steady = wait_until(|| tally.ok() >= ok_after + 100, Duration::from_secs(5)).await;
    load.stop().await;
    tally.print(name);
    assert!(
        wait_until(|| pool.status().ready == size, Duration::from_secs(5)).await,
        "not every slot came back: {:?}",
        pool.status()
    );
    (tally, noticed, recovered && steady)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_frozen_by_sigstop_longer_than_keepalive_timeout() {
    support::init_tracing();
    let mut server = ChildServer::spawn(0, support::child()).await.unwrap();
    let pool = start(fast("fault-sigstop", &server.uri(), 4).build().unwrap()).await;
    let server = std::sync::Mutex::new(&mut server);
    let (tally, noticed, recovered) = frozen_scenario(
        "server_frozen_sigstop",
        &pool,
        || server.lock().unwrap().freeze().unwrap(),
        || server.lock().unwrap().thaw().unwrap(),
    )
    .await;
    assert_eq!(
        tally.hung(),
        0,
        "calls hung behind the frozen server: {:?}",
        tally.error_kinds()
    );
    assert!(
        noticed,
        "keepalive did not mark the frozen channels: {:?}",
        pool.status()
    );
    assert!(recovered, "the pool did not serve again after SIGCONT");
    support::assert_codes(&tally, &[Code::Unavailable, Code::DeadlineExceeded]);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_blackhole_longer_than_keepalive_timeout() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let pool = start(fast("fault-blackhole", &proxy.uri(), 4).build().unwrap()).await;
    let (tally, noticed, recovered) = frozen_scenario(
        "network_blackhole",
        &pool,
        || proxy.set_mode(FaultMode::Blackhole),
        || proxy.set_mode(FaultMode::PassThrough),
    )
    .await;
    assert_eq!(
        tally.hung(),
        0,
        "calls hung behind the blackhole: {:?}",
        tally.error_kinds()
    );
    assert!(
        noticed,
        "keepalive did not mark the blackholed channels: {:?}",
        pool.status()
    );
    assert!(
        recovered,
        "the pool did not serve again after the blackhole"
    );
    support::assert_codes(&tally, &[Code::Unavailable, Code::DeadlineExceeded]);
    pool.shutdown().await;
}

/// Two backends, one blackholed: once its channels are marked, every new call goes to the
/// healthy backend and succeeds (no call queues behind the dead connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_calls_avoid_a_blackholed_backend() {
    support::init_tracing();
    let a = EchoServer::start().await.unwrap();
    let b = EchoServer::start().await.unwrap();
    let proxy = FaultProxy::start(a.addr()).await.unwrap();
    let config = fast("fault-one-backend", &proxy.uri(), 4)
        .endpoint(&b.uri())
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 4, Duration::from_secs(5)).await,
        "{:?}",
        pool.status()
    );

    let during = Arc::new(Tally::new());
    let load = unary_load(&pool, &during, 8);
    assert!(
        wait_until(
            || during.ok() >= 50 && a.stats().calls() > 0,
            Duration::from_secs(5)
        )
        .await
    );
    proxy.set_mode(FaultMode::Blackhole);
    during.fault_started();
    let noticed = wait_until(|| pool.status().ready == 2, Duration::from_secs(3)).await;
    // From here on the blackholed channels are marked: every call must succeed on `b`.
    let after = Arc::new(Tally::new());
    let load_after = unary_load(&pool, &after, 8);
    let b_before = b.stats().calls();
    assert!(
        wait_until(|| after.total() >= 200, Duration::from_secs(5)).await,
        "calls stalled"
    );
    load_after.stop().await;
    proxy.set_mode(FaultMode::PassThrough);
    during.fault_ended();
    assert!(
        wait_until(|| pool.status().ready == 4, Duration::from_secs(5)).await,
        "{:?}",
        pool.status()
    );
    load.stop().await;
    during.print("one_of_two_backends_blackholed.during");
    after.print("one_of_two_backends_blackholed.after_marked");

    assert!(
        noticed,
        "keepalive did not mark the blackholed backend's channels: {:?}",
        pool.status()
    );
    assert_eq!(
        during.hung() + after.hung(),
        0,
        "calls hung: {:?}",
        during.error_kinds()
    );
    assert_eq!(
        after.errors(),
        0,
        "calls failed with a healthy backend available: {:?}",
        after.error_kinds()
    );
    assert!(b.stats().calls() > b_before);
    pool.shutdown().await;
}
