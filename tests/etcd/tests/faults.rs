//! etcd crashing (SIGKILL, restart on the same data dir) and freezing (SIGSTOP/SIGCONT) under
//! load. Each test runs its own etcd process, so the shared one is never disturbed.
//!
//! Every call carries a 1 s deadline; one without a result 2 s after it counts as hung, and
//! there must be none. After the fault the pool must serve again without user action.

// Everything below that uses the generated clients needs `cfg(etcd_protos)` (set by build.rs
// when it found the protos); without it the remaining helpers are unused.
#![cfg_attr(not(etcd_protos), allow(dead_code, unused_imports))]

use std::time::{Duration, Instant};

#[cfg(etcd_protos)]
use etcd_tests::etcdserverpb::{PooledKvClient, PutRequest, RangeRequest};
use etcd_tests::{
    request_within, start_pool, summary_of, wait_until, EtcdProcess, Load, Outcome, Tally, Timings,
};

const DEADLINE: Duration = Duration::from_secs(1);
const WORKERS: usize = 8;
const PACE: Duration = Duration::from_millis(5);
/// How soon etcd must serve again through the pool after a fault: within 3 s.
const RECOVERY_BOUND: Duration = Duration::from_secs(3);

fn timings() -> Timings {
    Timings {
        request_timeout: DEADLINE,
        ..Timings::default()
    }
}

/// Without the protos the tests below do not exist: say so loudly (fail with `CI=true`).
#[cfg(not(etcd_protos))]
#[test]
fn etcd_protos_missing() {
    etcd_tests::skip::protos_missing("tests/faults.rs (SIGKILL, SIGSTOP)");
}

/// Reads `key` and checks its value: a call that proves etcd (and its data) is there.
#[cfg(etcd_protos)]
async fn read(kv: PooledKvClient, key: Vec<u8>, want: Vec<u8>) -> Result<(), String> {
    let resp = kv
        .range(request_within(
            RangeRequest {
                key,
                ..Default::default()
            },
            DEADLINE,
        ))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    match resp.into_inner().kvs.first() {
        Some(kv) if kv.value == want => Ok(()),
        other => Err(format!("wrong value: {other:?}")),
    }
}

/// 100 reads after recovery: all must succeed.
#[cfg(etcd_protos)]
async fn check_after(kv: &PooledKvClient, key: &[u8], want: &[u8]) -> Tally {
    let after = Tally::new();
    for _ in 0..100 {
        after
            .call(DEADLINE, read(kv.clone(), key.to_vec(), want.to_vec()))
            .await;
    }
    after
}

#[cfg(etcd_protos)]
async fn put(kv: &PooledKvClient, key: &[u8], value: &[u8]) {
    let req = PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    };
    match Tally::new()
        .call(DEADLINE, kv.put(request_within(req, DEADLINE)))
        .await
    {
        Outcome::Ok(_) => {}
        other => panic!("initial put failed: {other:?}"),
    }
}

/// A pool of 4 channels to `etcd`, `key` written with `value`, and a read load of `WORKERS`
/// tasks checking that value, already serving (50 reads) when this returns.
#[cfg(etcd_protos)]
async fn pool_with_read_load(
    name: &str,
    etcd: &EtcdProcess,
    key: &[u8],
    value: &[u8],
) -> (grpc_pool::Pool, PooledKvClient, Load) {
    let pool = start_pool(name, &etcd.endpoint(), 4, timings())
        .await
        .expect("pool starts");
    let kv = PooledKvClient::new(pool.clone());
    put(&kv, key, value).await;
    let load = {
        let (kv, key, value) = (kv.clone(), key.to_vec(), value.to_vec());
        Load::start(WORKERS, DEADLINE, PACE, move || {
            read(kv.clone(), key.clone(), value.clone())
        })
    };
    assert!(
        wait_until(|| load.tally().ok() >= 50, Duration::from_secs(3)).await,
        "load runs before the fault"
    );
    (pool, kv, load)
}

#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_sigkill_and_restart_on_same_data_dir() {
    let Some(mut etcd) =
        EtcdProcess::start_or_skip("etcd_sigkill_and_restart_on_same_data_dir").await
    else {
        return;
    };
    let (key, value) = (
        b"/grpc-pool-test/sigkill".to_vec(),
        b"written before the crash".to_vec(),
    );
    let (pool, kv, load) = pool_with_read_load("etcd-sigkill", &etcd, &key, &value).await;

    etcd.kill().expect("SIGKILL etcd");
    let killed = Instant::now();
    // Outage of 1 s, during which the workers keep calling (and must fail, not hang).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart = load.mark();
    let etcd_up = etcd
        .restart()
        .await
        .expect("etcd restarts on the same data dir");
    let serving = wait_until(|| load.ok_since_mark().is_some(), RECOVERY_BOUND).await;
    let recovery = load.ok_since_mark();
    // Steady state again for a moment, then stop and count.
    let more = load.tally().ok();
    wait_until(|| load.tally().ok() >= more + 50, Duration::from_secs(2)).await;
    let during = load.stop().await;
    let after = check_after(&kv, &key, &value).await;

    eprintln!(
        "etcd SIGKILL: outage {:?}, etcd healthy {:?} after restart, pool serving {:?} after restart",
        restart.duration_since(killed),
        etcd_up,
        recovery
    );
    eprintln!("errors during the outage: {:#?}", during.error_kinds());
    summary_of("etcd-sigkill-restart", &[&during, &after], recovery);
    assert_eq!(
        during.hung() + after.hung(),
        0,
        "hung calls: {:?} {:?}",
        during.first_errors(),
        after.first_errors()
    );
    assert!(
        serving,
        "the pool did not serve within {RECOVERY_BOUND:?} of etcd's restart (etcd itself was healthy after {etcd_up:?}); status: {:?}\nerrors: {:#?}\netcd log:\n{}",
        pool.status().channels,
        during.error_kinds(),
        etcd.log_tail()
    );
    assert_eq!(
        after.errors(),
        0,
        "calls failing after recovery: {:?}",
        after.first_errors()
    );
    pool.shutdown().await;
}

#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_sigstop_and_sigcont() {
    let Some(mut etcd) = EtcdProcess::start_or_skip("etcd_sigstop_and_sigcont").await else {
        return;
    };
    let (key, value) = (
        b"/grpc-pool-test/sigstop".to_vec(),
        b"written before the freeze".to_vec(),
    );
    let (pool, kv, load) = pool_with_read_load("etcd-sigstop", &etcd, &key, &value).await;

    etcd.freeze().expect("SIGSTOP etcd");
    let frozen_at = Instant::now();
    let frozen = load.tally().errors();
    // Frozen for 2 s: longer than keepalive + keepalive_timeout (750 ms) and than the call
    // deadline, so in-flight calls must end by their deadline or by the keepalive failure.
    let deadline_errors =
        wait_until(|| load.tally().errors() > frozen, Duration::from_secs(2)).await;
    tokio::time::sleep(
        (frozen_at + Duration::from_secs(2)).saturating_duration_since(Instant::now()),
    )
    .await;
    let thaw = load.mark();
    etcd.thaw().expect("SIGCONT etcd");
    let serving = wait_until(|| load.ok_since_mark().is_some(), RECOVERY_BOUND).await;
    let recovery = load.ok_since_mark();
    let more = load.tally().ok();
    wait_until(|| load.tally().ok() >= more + 50, Duration::from_secs(2)).await;
    let during = load.stop().await;
    let after = check_after(&kv, &key, &value).await;

    eprintln!(
        "etcd SIGSTOP for {:?}: pool serving {recovery:?} after SIGCONT",
        thaw.duration_since(frozen_at)
    );
    eprintln!("errors during the freeze: {:#?}", during.error_kinds());
    summary_of("etcd-sigstop-sigcont", &[&during, &after], recovery);
    assert_eq!(
        during.hung() + after.hung(),
        0,
        "hung calls: {:?} {:?}",
        during.first_errors(),
        after.first_errors()
    );
    assert!(
        deadline_errors,
        "calls to the frozen etcd must end with an error by their deadline"
    );
    assert!(
        serving,
        "the pool did not serve within {RECOVERY_BOUND:?} of SIGCONT; status: {:?}\nerrors: {:#?}\netcd log:\n{}",
        pool.status().channels,
        during.error_kinds(),
        etcd.log_tail()
    );
    assert_eq!(
        after.errors(),
        0,
        "calls failing after recovery: {:?}",
        after.first_errors()
    );
    pool.shutdown().await;
}
