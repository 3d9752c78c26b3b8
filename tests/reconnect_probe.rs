//! Reconnecting to a server that restarted: while calls want a channel, the slots of an
//! address that is down probe it one at a time, once per `reconnect_probe_interval` (50 ms by
//! default), whatever their backoff; the first slot that connects wakes its siblings.
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_pool::{ChannelState, RetryConfig};
use grpc_pool_testkit::{wait_until, EchoServer};
use tokio::time::Instant;

/// Keeps the port of a stopped server bound and counts the connections made to it (each one
/// a connect attempt), closing each at once, as a port with nothing behind it would refuse it.
async fn count_connects(
    addr: std::net::SocketAddr,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    let listener = socket.listen(1024).unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (count, task)
}

/// Callers that call in a loop (failing fast while nothing is ready) until stopped.
fn callers(
    pool: &grpc_pool::Pool,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if support::unary(&pool, support::req("p")).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_found_within_a_probe_interval_despite_a_long_backoff() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let addr = server.addr();
    // A 3 s backoff: without probes, the first attempt after the outage comes seconds late.
    let config = support::fast("probe-recovery", &server.uri(), 4)
        .retry(RetryConfig::new(
            3,
            Duration::from_secs(3),
            Duration::from_secs(6),
        ))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    assert!(wait_until(|| pool.status().ready == 4, Duration::from_secs(3)).await);

    server.kill().await;
    let all_backing_off = || {
        let status = pool.status();
        status
            .channels
            .iter()
            .all(|c| c.state == ChannelState::Backoff)
    };
    assert!(
        wait_until(all_backing_off, Duration::from_secs(3)).await,
        "{}",
        pool.status()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let load = callers(&pool, 4, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let server = EchoServer::builder().bind(addr).start().await.unwrap();
    let back = Instant::now();
    let mut first = None;
    let mut all = None;
    while back.elapsed() < Duration::from_secs(5) && all.is_none() {
        let ready = pool.status().ready;
        if ready > 0 && first.is_none() {
            first = Some(back.elapsed());
        }
        if ready == 4 {
            all = Some(back.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    let status = pool.status();
    grpc_pool_testkit::report(format!(
        "scenario=probe_recovery first_ready_ms={:?} all_ready_ms={:?} connect_attempts={} probes={}",
        first.map(|d| d.as_millis()),
        all.map(|d| d.as_millis()),
        status.connect_attempts,
        status.probe_attempts
    ));
    let first = first.expect("no channel came back within 5 s");
    let all = all.expect("not every channel came back within 5 s");
    assert!(
        first <= Duration::from_millis(200),
        "first channel back after {first:?}\n{status}"
    );
    // The siblings follow the first at once, not after their own backoff.
    assert!(
        all - first <= Duration::from_millis(150),
        "siblings back {:?} after the first\n{status}",
        all - first
    );
    assert!(status.probe_attempts > 0, "{status}");
    pool.shutdown().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_attempts_while_down_stay_at_the_probe_rate_whatever_the_callers() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let addr = server.addr();
    // A short backoff (20..200 ms) and 8 slots: without a per-address turn, the slots would
    // try many times a second each.
    let pool = support::start(
        support::fast("probe-rate", &server.uri(), 8)
            .build()
            .unwrap(),
    )
    .await;
    assert!(wait_until(|| pool.status().ready == 8, Duration::from_secs(3)).await);

    server.kill().await;
    let (connects, listener) = count_connects(addr).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = callers(&pool, 256, &stop);
    // Skip the first moments: every slot tries once at once when its connection is lost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (from, start) = (connects.load(Ordering::SeqCst), Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (to, window) = (connects.load(Ordering::SeqCst), start.elapsed());
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    listener.abort();
    let per_second = (to - from) as f64 / window.as_secs_f64();
    let status = pool.status();
    grpc_pool_testkit::report(format!(
        "scenario=probe_rate callers=256 slots=8 connects_per_s={per_second:.1} probes={}",
        status.probe_attempts
    ));
    // One turn per 50 ms: 20 a second, with room for timer slack.
    assert!(
        per_second <= 25.0,
        "{per_second:.1} connect attempts/s while down\n{status}"
    );
    assert!(
        to > from,
        "no attempt at all while down: the address was not probed\n{status}"
    );
    pool.shutdown().await;
}
