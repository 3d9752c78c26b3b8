//! Elastic size: a pool with `min_size`/`max_size` grows while the calls in flight
//! per READY channel stay above the threshold (`max_in_flight_per_channel / 2` here), up to
//! `max_size`, and shrinks back to `min_size` when idle, at most `resize_step` slots per
//! `resize_interval`.
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpc_pool_testkit::{wait_until, EchoServer, Tally};
use support::{fast, start, unary_load};
use tokio::time::Instant;

/// An elastic pool of 1 to `max` slots on `server` that reconsiders its size every 100 ms, one
/// slot at a time.
fn elastic(name: &str, server: &EchoServer, max: usize) -> grpc_pool::PoolConfigBuilder {
    fast(name, &server.uri(), 1)
        .min_size(1)
        .max_size(max)
        .resize_interval(Duration::from_millis(100))
        .resize_step(1)
        .checkout_timeout(Duration::from_secs(3))
}

/// `(ms since start, size)` at every change of the pool's size.
type SizeTrace = Arc<Mutex<Vec<(u128, usize)>>>;

/// Records a [`SizeTrace`] until the returned task is aborted.
fn trace_sizes(pool: &grpc_pool::Pool) -> (SizeTrace, tokio::task::JoinHandle<()>) {
    let trace = Arc::new(Mutex::new(vec![(0, pool.status().size)]));
    let pool = pool.clone();
    let t = trace.clone();
    let started = Instant::now();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let size = pool.status().size;
            let mut t = t.lock().unwrap();
            if t.last().map(|l| l.1) != Some(size) {
                t.push((started.elapsed().as_millis(), size));
            }
        }
    });
    (trace, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grows_to_max_under_load_and_shrinks_to_min_when_idle() {
    support::init_tracing();
    let server = EchoServer::builder()
        .delay(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    // Cap 4 per channel: threshold 2 in flight per READY channel.
    let config = elastic("elastic", &server, 4)
        .max_in_flight_per_channel(4)
        .build()
        .unwrap();
    let pool = start(config).await;
    assert_eq!(pool.status().size, 1);
    let (trace, tracer) = trace_sizes(&pool);

    // 16 concurrent callers, 20 ms per call: far above 2 per channel even at 4 channels.
    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 16);
    let grew = wait_until(
        || {
            let s = pool.status();
            s.size == 4 && s.ready == 4
        },
        Duration::from_secs(4),
    )
    .await;
    // Hold the load a little longer: the pool must not pass max_size.
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.stop().await;
    let grown = pool.status();

    let shrank = wait_until(|| pool.status().size == 1, Duration::from_secs(4)).await;
    // Let the tracer record the last change too.
    wait_until(
        || trace.lock().unwrap().last().map(|l| l.1) == Some(pool.status().size),
        Duration::from_secs(1),
    )
    .await;
    tracer.abort();
    let trace = trace.lock().unwrap().clone();
    let shown: Vec<String> = trace.iter().map(|(ms, n)| format!("{ms}ms:{n}")).collect();
    tally.print("elastic_1_to_4");
    grpc_pool_testkit::report(format!(
        "scenario=elastic_1_to_4 size_trace={}",
        shown.join(",")
    ));

    assert!(
        grew,
        "did not grow to 4 READY channels\n{grown}\ntrace: {shown:?}"
    );
    assert!(
        shrank,
        "did not shrink to 1 when idle\n{}\ntrace: {shown:?}",
        pool.status()
    );
    assert!(
        trace.iter().all(|(_, n)| (1..=4).contains(n)),
        "size left 1..=4: {shown:?}"
    );
    // One slot per interval at most: every step of the trace is ±1.
    for pair in trace.windows(2) {
        assert_eq!(
            pair[0].1.abs_diff(pair[1].1),
            1,
            "more than resize_step at once: {shown:?}"
        );
    }
    assert_eq!(tally.hung(), 0, "{:?}", tally.error_kinds());
    assert_eq!(tally.errors(), 0, "{:?}", tally.error_kinds());
    // Every change counted: 1 -> 4 -> 1.
    let status = pool.status();
    assert_eq!((status.grown, status.shrunk), (3, 3), "{status}");
    // Removed slots took their calls in flight to the end; the pool still serves.
    assert_eq!(pool.status().in_flight, 0);
    support::unary(&pool, support::req("after")).await.unwrap();
    pool.shutdown().await;
}

/// Idle at start: an elastic pool started above `min_size` (`size` = initial) shrinks to
/// `min_size` and never below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pool_shrinks_to_min_and_stays() {
    let server = EchoServer::start().await.unwrap();
    let config = fast("elastic-idle", &server.uri(), 5)
        .min_size(2)
        .max_size(6)
        .resize_interval(Duration::from_millis(40))
        .resize_step(2)
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().size == 2, Duration::from_secs(3)).await,
        "{}",
        pool.status()
    );
    // Several more intervals: still 2, both READY.
    let deadline = Instant::now() + Duration::from_millis(400);
    while Instant::now() < deadline {
        assert_eq!(pool.status().size, 2, "{}", pool.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(wait_until(|| pool.status().ready == 2, Duration::from_secs(2)).await);
    pool.shutdown().await;
}

/// Elastic bounds and the maximum connection age from `#[grpc_pool]`: the named pool starts
/// at `min_size`, and its connections are refreshed at the attribute's age.
#[grpc_pool::grpc_pool(
    name = "elastic-attribute",
    min_size = 1,
    max_size = 3,
    max_connection_age = "200ms"
)]
mod from_attribute {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_bounds_and_max_age_from_the_attribute() {
    let server = EchoServer::start().await.unwrap();
    let config = grpc_pool::PoolConfig::builder()
        .endpoint(&server.uri())
        .resize_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let pool = tokio::time::timeout(Duration::from_secs(5), from_attribute::POOL.start(config))
        .await
        .expect("start hung")
        .unwrap();
    assert_eq!(
        pool.status().size,
        1,
        "starts at min_size\n{}",
        pool.status()
    );
    assert!(
        wait_until(|| pool.status().refreshes >= 2, Duration::from_secs(3)).await,
        "the attribute's max_connection_age did not apply\n{}",
        pool.status()
    );
    // Idle: stays at min_size.
    assert_eq!(pool.status().size, 1);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grows_with_one_call_per_channel_when_calls_wait() {
    support::init_tracing();
    let server = EchoServer::builder()
        .delay(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    // Cap 1 per channel: every READY channel is exactly full under load, so only the calls
    // waiting for a channel show that more are needed.
    let config = elastic("elastic-cap-1", &server, 4)
        .max_in_flight_per_channel(1)
        .build()
        .unwrap();
    let pool = start(config).await;
    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 8);
    let grew = wait_until(|| pool.status().size == 4, Duration::from_secs(4)).await;
    load.stop().await;
    let status = pool.status();
    assert!(
        grew,
        "did not grow to 4 with 8 callers and one call per channel\n{status}"
    );
    assert_eq!(tally.errors(), 0, "{:?}", tally.error_kinds());
    pool.shutdown().await;
}

/// A server that takes 2 calls at once per connection (its `SETTINGS_MAX_CONCURRENT_STREAMS`)
/// and no cap configured: once every connection is at the server's limit and calls queue,
/// the pool grows, although the calls per channel stay far below the default threshold of 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grows_when_every_connection_is_at_the_servers_stream_limit() {
    support::init_tracing();
    let server = EchoServer::builder()
        .max_concurrent_streams(2)
        .delay(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let config = elastic("elastic-stream-limit", &server, 3).build().unwrap();
    let pool = start(config).await;
    assert_eq!(pool.status().size, 1);
    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 8);
    let grew = wait_until(
        || {
            let s = pool.status();
            s.size == 3 && s.ready == 3
        },
        Duration::from_secs(4),
    )
    .await;
    load.stop().await;
    let status = pool.status();
    tally.print("elastic_stream_limit");
    assert!(grew, "the pool did not grow to 3\n{status}");
    assert_eq!(tally.errors(), 0, "{:?}", tally.error_kinds());
    assert_eq!(status.refused_streams, 0, "{status}");
    pool.shutdown().await;
}
