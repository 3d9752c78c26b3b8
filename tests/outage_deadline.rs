//! During an outage (the server process killed, then restarted on the same port), no call
//! lasts past its deadline by more than a small margin, none hangs, and service resumes by
//! itself: for callers that fail fast while every channel backs off, and for callers that
//! wait for ready.
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::{wait_until, ChildServer};
use support::echo::PooledEchoClient;
use support::{fast, req, start};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_millis(300);
/// How far past its deadline a call may end: scheduling on a loaded 2-core machine, not a
/// wait the pool adds.
const MARGIN: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    errors: AtomicU64,
    /// The longest time a call ran past its deadline, in microseconds.
    worst_overshoot_us: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_end_by_their_deadline_during_a_restart_and_service_resumes() {
    support::init_tracing();
    let mut server = ChildServer::spawn(0, support::child()).await.unwrap();
    let config = fast("outage-deadline", &server.uri(), 4)
        .checkout_timeout(Duration::from_secs(15))
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool = start(config).await;
    let outcomes = Arc::new(Outcomes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let client = PooledEchoClient::new(pool.clone()).with_wait_for_ready(i % 2 == 0);
            let (outcomes, stop) = (outcomes.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let mut request = tonic::Request::new(req("x"));
                    request.set_timeout(DEADLINE);
                    let started = Instant::now();
                    // The hang guard is far beyond the deadline: a call it catches failed.
                    let result = tokio::time::timeout(DEADLINE * 20, client.unary(request)).await;
                    let took = started.elapsed();
                    let overshoot = took.saturating_sub(DEADLINE).as_micros() as u64;
                    outcomes
                        .worst_overshoot_us
                        .fetch_max(overshoot, Ordering::Relaxed);
                    match result {
                        Ok(Ok(_)) => outcomes.ok.fetch_add(1, Ordering::Relaxed),
                        _ => outcomes.errors.fetch_add(1, Ordering::Relaxed),
                    };
                    if result.is_ok_and(|r| r.is_err()) {
                        // Failing fast: do not spin.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    assert!(
        wait_until(
            || outcomes.ok.load(Ordering::Relaxed) >= 50,
            Duration::from_secs(5)
        )
        .await,
        "no calls before the outage"
    );
    server.kill().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart().await.unwrap();
    let ok_at_restart = outcomes.ok.load(Ordering::Relaxed);
    let resumed = wait_until(
        || outcomes.ok.load(Ordering::Relaxed) >= ok_at_restart + 100,
        Duration::from_secs(5),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let worst = Duration::from_micros(outcomes.worst_overshoot_us.load(Ordering::Relaxed));
    println!(
        "scenario=outage-deadline ok={} error={} worst_past_deadline_ms={}",
        outcomes.ok.load(Ordering::Relaxed),
        outcomes.errors.load(Ordering::Relaxed),
        worst.as_millis()
    );
    assert!(
        resumed,
        "service did not resume within 5 s:\n{}",
        pool.status()
    );
    assert!(
        outcomes.errors.load(Ordering::Relaxed) > 0,
        "the outage was not observed"
    );
    assert!(
        worst <= MARGIN,
        "a call ended {worst:?} past its {DEADLINE:?} deadline"
    );
    pool.shutdown().await;
}
