//! Many backends: a pool over several endpoints spreads its slots evenly,
//! skips a dead or NOT_SERVING backend, and keeps duplicated addresses as distinct slots.
//! Every server is an in-process `EchoServer` on `127.0.0.1:0`.
mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grpc_pool::{ChannelState, Pool, PoolStatus};
use grpc_pool_testkit::load::Load;
use grpc_pool_testkit::{wait_until, wait_until_async, EchoServer, Tally};
use support::{fast, req, start, unary, HANG_GUARD};

/// Writes `text` to the process' stderr, past libtest's capture (like `Tally::print`).
fn report(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The slots of `status` that connect to `server`.
fn slots_of<'a>(
    status: &'a PoolStatus,
    server: &'a EchoServer,
) -> impl Iterator<Item = &'a grpc_pool::ChannelStatus> + 'a {
    let uri = server.uri();
    status
        .channels
        .iter()
        .filter(move |c| c.endpoint.trim_end_matches('/') == uri)
}

/// Whether every slot of `server` in `status` is in `state` (and there is at least one).
fn all_in(status: &PoolStatus, server: &EchoServer, state: ChannelState) -> bool {
    let mut slots = slots_of(status, server).peekable();
    slots.peek().is_some() && slots.all(|c| c.state == state)
}

async fn servers(n: usize, delay: Duration) -> Vec<EchoServer> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let server = EchoServer::builder()
            .health(true)
            .delay(delay)
            .start()
            .await
            .unwrap();
        out.push(server);
    }
    out
}

/// `size` slots over `servers`, with the fault tests' short intervals.
fn over(name: &str, servers: &[EchoServer], size: usize) -> grpc_pool::PoolConfigBuilder {
    servers[1..]
        .iter()
        .fold(fast(name, &servers[0].uri(), size), |b, s| {
            b.endpoint(&s.uri())
        })
}

/// `n` concurrent unary calls; the errors, if any.
async fn burst(pool: &Pool, n: usize) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let pool = pool.clone();
        tasks.spawn(async move {
            match tokio::time::timeout(HANG_GUARD, unary(&pool, req(format!("b{i}")))).await {
                Ok(Ok(_)) => None,
                Ok(Err(status)) => Some(status.to_string()),
                Err(_) => Some("hung".to_owned()),
            }
        });
    }
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        errors.extend(joined.expect("call task panicked"));
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_of_three_under_load() {
    support::init_tracing();
    let mut backends = servers(3, Duration::from_millis(10)).await;
    let config = over("backends-kill", &backends, 6)
        .keepalive(Duration::from_millis(100))
        .keepalive_timeout(Duration::from_millis(100))
        .health_check(true)
        .ping_interval(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 6, Duration::from_secs(5)).await,
        "{}",
        pool.status()
    );

    // 32 workers; every call bounded by HANG_GUARD (a call past it counts as hung) and every
    // failed call logged with its start time.
    let tally = Arc::new(Tally::new());
    let failed: Arc<Mutex<Vec<(Instant, tonic::Code, String)>>> = Arc::default();
    let load = {
        let (pool, failed) = (pool.clone(), failed.clone());
        Load::spawn(
            tally.clone(),
            32,
            Duration::from_millis(5),
            HANG_GUARD,
            move |i| {
                let (pool, failed) = (pool.clone(), failed.clone());
                async move {
                    let started = Instant::now();
                    let result = unary(&pool, req(format!("w{i}"))).await;
                    if let Err(status) = &result {
                        let entry = (started, status.code(), status.to_string());
                        failed.lock().unwrap().push(entry);
                    }
                    result
                }
            },
        )
    };
    tokio::time::sleep(Duration::from_secs(1)).await; // steady load before the fault
    assert!(
        tally.ok() > 100,
        "too few calls before the kill: {}",
        tally.summary("warmup")
    );
    assert_eq!(
        tally.errors(),
        0,
        "errors before the kill: {:?}",
        tally.error_kinds()
    );

    // Kill the second backend: every connection to it is dropped at once. Just before, how
    // many calls it has (`calls` is read first, so calls placed between the two reads are
    // counted, if anything, twice rather than never).
    let victim = backends.remove(1);
    let victim_uri = victim.uri();
    let on_victim = move |s: &PoolStatus| -> Vec<grpc_pool::ChannelStatus> {
        s.channels
            .iter()
            .filter(|c| c.endpoint.trim_end_matches('/') == victim_uri)
            .cloned()
            .collect()
    };
    let sent_before: u64 = on_victim(&pool.status()).iter().map(|c| c.calls).sum();
    let in_flight_at_kill: usize = on_victim(&pool.status()).iter().map(|c| c.in_flight).sum();
    let kill_at = Instant::now();
    victim.kill().await;
    tally.fault_started();

    let left_ready = wait_until(
        || {
            let slots = on_victim(&pool.status());
            !slots.is_empty() && slots.iter().all(|c| c.state != ChannelState::Ready)
        },
        Duration::from_secs(2),
    )
    .await;
    let left_ready_at = Instant::now();
    let survivors_calls = |s: &PoolStatus| -> u64 {
        backends
            .iter()
            .flat_map(|b| slots_of(s, b))
            .map(|c| c.calls)
            .sum()
    };
    let calls_at_left = survivors_calls(&pool.status());

    // Observe the load until 3 s after the kill: nothing may fail once 2 s have passed.
    tokio::time::sleep(
        (kill_at + Duration::from_secs(3)).saturating_duration_since(Instant::now()),
    )
    .await;
    let after = pool.status();
    load.stop().await;

    // Calls placed on the killed backend's slots after the kill, before its slots left READY.
    let sent_after = on_victim(&pool.status())
        .iter()
        .map(|c| c.calls)
        .sum::<u64>()
        .saturating_sub(sent_before);
    let failed = failed.lock().unwrap().clone();
    let started_after = |t: Instant| failed.iter().filter(|(s, ..)| *s > t).count();
    let after_2s = started_after(kill_at + Duration::from_secs(2));
    let after_kill = started_after(kill_at);
    let after_left_ready = started_after(left_ready_at);
    let mut line = format!(
        "scenario=kill_one_of_three ok={} error={} hung={} errors_after_2s={after_2s} \
         in_flight_on_killed_at_kill={in_flight_at_kill} sent_to_killed_after_kill={sent_after} \
         errors_started_after_kill={after_kill} errors_started_after_left_ready={after_left_ready} \
         left_ready_ms={}\n",
        tally.ok(),
        tally.errors(),
        tally.hung(),
        (left_ready_at - kill_at).as_millis(),
    );
    for (kind, n) in tally.error_kinds() {
        line.push_str(&format!("    {n:>6} x {kind}\n"));
    }
    report(&line);

    assert!(
        left_ready,
        "the killed backend's slots stayed READY:\n{after}"
    );
    assert_eq!(tally.hung(), 0, "hung calls: {line}");
    assert_eq!(
        after_2s, 0,
        "errors more than 2 s after the kill: {failed:?}"
    );
    // Every failed call was on the killed backend: in flight there at the kill, or placed
    // there in the moment before the pool saw the connection drop.
    assert!(
        tally.errors() <= in_flight_at_kill as u64 + sent_after,
        "more errors than calls on the killed backend: {line}"
    );
    // Once the killed backend's slots left READY, no new call failed.
    assert_eq!(after_left_ready, 0, "{line}{failed:?}");
    for (_, code, message) in &failed {
        assert_eq!(
            *code,
            tonic::Code::Unavailable,
            "unexpected error: {message}"
        );
    }
    // The other backends kept every slot READY and kept serving after the kill.
    for b in &backends {
        assert!(all_in(&after, b, ChannelState::Ready), "{after}");
    }
    assert!(
        survivors_calls(&after) > calls_at_left + 100,
        "the surviving backends did not serve after the kill:\n{after}"
    );
    assert!(
        on_victim(&after)
            .iter()
            .all(|c| c.state != ChannelState::Ready),
        "{after}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_serving_backend_gets_no_calls() {
    support::init_tracing();
    let backends = servers(3, Duration::from_millis(2)).await;
    let config = over("backends-not-serving", &backends, 6)
        .health_check(true)
        .ping_interval(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 6, Duration::from_secs(5)).await,
        "{}",
        pool.status()
    );
    let sick = &backends[2];

    sick.set_serving(false).await;
    assert!(
        wait_until(
            || all_in(&pool.status(), sick, ChannelState::Unhealthy),
            Duration::from_secs(3)
        )
        .await,
        "the NOT_SERVING backend's slots did not turn unhealthy:\n{}",
        pool.status()
    );
    let sick_calls = sick.stats().calls();
    let mut errors = Vec::new();
    for _ in 0..5 {
        errors.extend(burst(&pool, 20).await);
    }
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    assert_eq!(
        sick.stats().calls(),
        sick_calls,
        "the NOT_SERVING backend got calls"
    );
    for b in &backends[..2] {
        assert!(
            all_in(&pool.status(), b, ChannelState::Ready),
            "{}",
            pool.status()
        );
    }

    sick.set_serving(true).await;
    assert!(
        wait_until(
            || all_in(&pool.status(), sick, ChannelState::Ready),
            Duration::from_secs(3)
        )
        .await,
        "the backend's slots did not come back after SERVING:\n{}",
        pool.status()
    );
    let served_again = wait_until_async(
        || {
            let pool = pool.clone();
            async move {
                let errors = burst(&pool, 12).await;
                assert!(errors.is_empty(), "calls failed: {errors:?}");
                sick.stats().calls() > sick_calls
            }
        },
        Duration::from_secs(3),
    )
    .await;
    assert!(served_again, "the backend got no calls after SERVING");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_addresses_stay_distinct_slots() {
    support::init_tracing();
    let server = EchoServer::builder()
        .delay(Duration::from_millis(30))
        .start()
        .await
        .unwrap();
    let uri = server.uri();
    let config = fast("backends-duplicated", &uri, 3)
        .endpoint(&uri)
        .endpoint(&uri)
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 3, Duration::from_secs(5)).await,
        "{}",
        pool.status()
    );
    let status = pool.status();
    assert_eq!(status.channels.len(), 3, "{status}");
    for c in &status.channels {
        assert_eq!(c.endpoint.trim_end_matches('/'), uri, "{status}");
        assert_eq!(c.state, ChannelState::Ready, "{status}");
    }
    assert_eq!(
        server.stats().accepted(),
        3,
        "one connection per slot expected:\n{status}"
    );

    // Concurrent calls that overlap (30 ms each) spread over the three slots.
    let errors = burst(&pool, 30).await;
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    let status = pool.status();
    for c in &status.channels {
        assert!(c.calls > 0, "slot {} got no calls:\n{status}", c.index);
    }
    assert_eq!(server.stats().connections().len(), 3, "{status}");
    assert_eq!(server.stats().accepted(), 3, "{status}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_spread_evenly() {
    let backends = servers(3, Duration::ZERO).await;
    let pool = start(over("backends-spread", &backends, 7).build().unwrap()).await;
    let status = pool.status();
    let mut per_endpoint: HashMap<String, usize> = HashMap::new();
    for c in &status.channels {
        *per_endpoint
            .entry(c.endpoint.trim_end_matches('/').to_owned())
            .or_default() += 1;
    }
    let counts: Vec<usize> = backends
        .iter()
        .map(|b| per_endpoint.get(&b.uri()).copied().unwrap_or(0))
        .collect();
    assert_eq!(counts, [3, 2, 2], "{status}");
    // Each slot holds its own connection to its backend.
    assert!(
        wait_until(
            || backends.iter().map(|b| b.stats().accepted()).eq([3, 2, 2]),
            Duration::from_secs(5)
        )
        .await,
        "accepted connections per backend: {:?}\n{}",
        backends
            .iter()
            .map(|b| b.stats().accepted())
            .collect::<Vec<_>>(),
        pool.status()
    );
    pool.shutdown().await;
}
