//! Call policies from a gRPC service config (gRFC A2, A6) against a real server: per-method
//! retries (attempts, retryable codes, pushback, throttling, `grpc-previous-rpc-attempts`),
//! per-method timeouts and `waitForReady`.
mod support;

use std::time::Duration;

use grpc_pool::{ChannelState, Pool, RetryConfig};
use grpc_pool_testkit::{wait_until, EchoServer};
use support::echo::{EchoRequest, PooledEchoClient, StreamRequest};
use support::fast;
use tokio::time::Instant;
use tonic::Code;

const UNARY: &str = r#"{"service": "grpcpool.test.v1.Echo", "method": "Unary"}"#;

/// A service config giving Unary a retry policy of `attempts` on `codes`, backoff 10..50 ms.
fn retry_config(attempts: u32, codes: &str, extra: &str) -> String {
    format!(
        r#"{{
          "methodConfig": [{{
            "name": [{UNARY}],
            "retryPolicy": {{
              "maxAttempts": {attempts},
              "initialBackoff": "0.01s",
              "maxBackoff": "0.05s",
              "backoffMultiplier": 2,
              "retryableStatusCodes": [{codes}]
            }}
          }}]{extra}
        }}"#
    )
}

async fn pool(server: &EchoServer, name: &str, service_config: &str) -> Pool {
    let config = fast(name, &server.uri(), 3)
        .service_config_json(service_config)
        .build()
        .unwrap();
    support::start(config).await
}

/// The `grpc-previous-rpc-attempts` the server saw, call by call ("" for none).
fn attempts_seen(server: &EchoServer) -> Vec<String> {
    server
        .stats()
        .headers()
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// A request the server fails with `code` the first `fails` times it sees `message`.
fn failing(message: &str, code: Code, fails: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        fail_code: code as i32,
        fail_attempts: fails,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_failing_twice_succeeds_on_the_third_attempt_and_the_server_sees_the_count() {
    let server = EchoServer::start().await.unwrap();
    server.stats().record_header("grpc-previous-rpc-attempts");
    let pool = pool(&server, "policy-3", &retry_config(3, "\"UNAVAILABLE\"", "")).await;
    let client = PooledEchoClient::new(pool.clone());

    let reply = client
        .unary(failing("three", Code::Unavailable, 2))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(reply.into_inner().message, "three");
    assert_eq!(server.stats().calls(), 3);
    assert_eq!(pool.status().retries.policy, 2, "{}", pool.status());
    // Status counts the call by the attempts it made.
    assert_eq!(
        pool.status().retries.calls_by_attempts,
        [0, 0, 1, 0, 0],
        "{}",
        pool.status()
    );
    let attempts = attempts_seen(&server);
    assert_eq!(attempts, ["", "1", "2"], "the first attempt carries none");
    // Each attempt went to another connection (3 channels, all READY).
    let connections = server.stats().connections();
    assert!(
        connections.len() == 3 && connections.values().all(|c| c.calls == 1),
        "{connections:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_attempts_the_same_call_fails() {
    let server = EchoServer::start().await.unwrap();
    let pool = pool(&server, "policy-2", &retry_config(2, "\"UNAVAILABLE\"", "")).await;
    let status = PooledEchoClient::new(pool.clone())
        .unary(failing("two", Code::Unavailable, 2))
        .await
        .expect_err("two attempts both fail");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.stats().calls(), 2);
    assert_eq!(pool.status().retries.calls_by_attempts, [0, 1, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_not_listed_is_not_retried() {
    let server = EchoServer::start().await.unwrap();
    let pool = pool(
        &server,
        "policy-code",
        &retry_config(5, "\"UNAVAILABLE\"", ""),
    )
    .await;
    let status = PooledEchoClient::new(pool.clone())
        .unary(failing("internal", Code::Internal, 1))
        .await
        .expect_err("INTERNAL is not retryable here");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(server.stats().calls(), 1);
    assert_eq!(pool.status().retries.calls_by_attempts, [1, 0, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pushback_sets_the_pause_and_a_negative_one_stops_retries() {
    let server = EchoServer::start().await.unwrap();
    let pool = pool(
        &server,
        "policy-pushback",
        &retry_config(3, "\"UNAVAILABLE\"", ""),
    )
    .await;
    let client = PooledEchoClient::new(pool);

    // Pushback 300 ms: the retry waits that long, not the policy's 10..50 ms backoff.
    let mut request = failing("pushed", Code::Unavailable, 1);
    request.pushback_ms = "300".into();
    let started = Instant::now();
    client.unary(request).await.expect("the retry succeeds");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "retried after {took:?}");
    assert_eq!(server.stats().calls(), 2);

    // A negative pushback: the server says do not retry.
    let mut request = failing("stop", Code::Unavailable, 1);
    request.pushback_ms = "-1".into();
    let status = client.unary(request).await.expect_err("not retried");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.stats().calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_stops_retries_when_the_server_fails_everything() {
    let server = EchoServer::start().await.unwrap();
    let throttling = r#", "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}"#;
    let pool = pool(
        &server,
        "policy-throttle",
        &retry_config(5, "\"UNAVAILABLE\"", throttling),
    )
    .await;
    let client = PooledEchoClient::new(pool.clone());
    server.set_failing(true);
    for i in 0..20 {
        let status = client
            .unary(failing(&format!("t{i}"), Code::Unavailable, 0))
            .await
            .expect_err("the server fails every call");
        assert_eq!(status.code(), Code::Unavailable);
    }
    // Tokens start at 10, each failure takes one, retries need more than 5 left: the first
    // call makes its 5 attempts (tokens 9, 8, 7, 6 allow a retry, 5 does not), every later
    // call one. Without throttling: 100.
    assert_eq!(server.stats().calls(), 5 + 19);
    let retries = pool.status().retries;
    assert_eq!((retries.policy, retries.throttled), (4, 19), "{retries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_timeout_bounds_calls_that_set_none() {
    let server = EchoServer::start().await.unwrap();
    let config = format!(
        r#"{{"methodConfig": [
            {{"name": [{UNARY}], "timeout": "0.1s"}},
            {{"name": [{{"service": "grpcpool.test.v1.Echo"}}], "timeout": "5s"}}
        ]}}"#
    );
    let pool = pool(&server, "policy-timeout", &config).await;
    let client = PooledEchoClient::new(pool);
    let slow = EchoRequest {
        message: "slow".into(),
        delay_ms: 2_000,
        ..Default::default()
    };
    let started = Instant::now();
    let status = client
        .unary(slow.clone())
        .await
        .expect_err("0.1 s is too short");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The call's own, shorter deadline still wins.
    let mut request = tonic::Request::new(slow);
    request.set_timeout(Duration::from_millis(20));
    let started = Instant::now();
    let status = client.unary(request).await.expect_err("20 ms");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_millis(90),
        "{:?}",
        started.elapsed()
    );
    // A fast call is untouched.
    client
        .unary(EchoRequest {
            message: "fast".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// `waitForReady` from the service config, both ways, while every channel backs off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ready_from_the_service_config_both_ways() {
    let server = EchoServer::start().await.unwrap();
    let addr = server.addr();
    let config = format!(
        r#"{{"methodConfig": [
            {{"name": [{UNARY}], "waitForReady": true}},
            {{"name": [{{}}], "waitForReady": false}}
        ]}}"#
    );
    let pool_config = fast("policy-wfr", &server.uri(), 2)
        .retry(RetryConfig::new(
            1000,
            Duration::from_millis(400),
            Duration::from_millis(800),
        ))
        .checkout_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5))
        // The pool says wait; the service config's default entry overrides it.
        .wait_for_ready(true)
        .service_config_json(&config)
        .build()
        .unwrap();
    let pool = support::start(pool_config).await;
    server.kill().await;
    let backing_off = wait_until(
        || {
            pool.status()
                .channels
                .iter()
                .all(|c| c.state == ChannelState::Backoff)
        },
        Duration::from_secs(3),
    )
    .await;
    assert!(backing_off, "{}", pool.status());
    let client = PooledEchoClient::new(pool.clone());

    // The default entry says false: a server-streaming call fails at once.
    let started = Instant::now();
    let status = client
        .server_stream(StreamRequest {
            message: "stream".into(),
            count: 1,
            interval_ms: 0,
        })
        .await
        .expect_err("nothing is ready");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // Unary says true: the call waits, and succeeds once the server is back.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .unary(EchoRequest {
                    message: "waited".into(),
                    ..Default::default()
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "the call must wait for a READY channel"
    );
    let _server = EchoServer::builder().bind(addr).start().await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(4), waiting)
        .await
        .expect("the waiting call ends")
        .unwrap()
        .expect("and succeeds");
    assert_eq!(reply.into_inner().message, "waited");
}

#[test]
fn a_bad_service_config_is_a_config_error_naming_the_json_path() {
    let err = grpc_pool::PoolConfig::builder()
        .endpoint("http://127.0.0.1:1")
        .service_config_json(&retry_config(1, "\"UNAVAILABLE\"", ""))
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("methodConfig[0].retryPolicy.maxAttempts") && text.contains("at least 2"),
        "{text}"
    );
}

/// The service config named in the attribute is compiled in and applies to the named pool.
#[allow(missing_docs, clippy::all)]
#[grpc_pool::grpc_pool(
    name = "policy-attribute",
    service_config = "tests/data/call_policies.json"
)]
pub mod echo_with_policies {
    grpc_pool::include_proto!("grpcpool.test.v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attributes_service_config_applies_to_its_pool() {
    let server = EchoServer::start().await.unwrap();
    let client = echo_with_policies::PooledEchoClient::connect(&server.uri())
        .await
        .unwrap();
    let request = echo_with_policies::EchoRequest {
        message: "attr".into(),
        fail_code: Code::ResourceExhausted as i32,
        fail_attempts: 3,
        ..Default::default()
    };
    let reply = client
        .unary(request)
        .await
        .expect("the 4th attempt succeeds");
    assert_eq!(reply.into_inner().message, "attr");
    assert_eq!(server.stats().calls(), 4);
    client.pool().shutdown().await;
}

/// A service config hedging Unary: `attempts` in all, a hedge every `delay`.
fn hedging_config(attempts: u32, delay: &str, non_fatal: &str) -> String {
    format!(
        r#"{{"methodConfig": [{{
            "name": [{UNARY}],
            "hedgingPolicy": {{
              "maxAttempts": {attempts},
              "hedgingDelay": "{delay}",
              "nonFatalStatusCodes": [{non_fatal}]
            }}
        }}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedge_answers_when_the_first_attempt_stalls_and_the_stalled_one_is_cancelled() {
    let server = EchoServer::start().await.unwrap();
    server.stats().record_header("grpc-previous-rpc-attempts");
    let pool = pool(
        &server,
        "hedge-slow",
        &hedging_config(3, "0.05s", "\"UNAVAILABLE\""),
    )
    .await;
    let client = PooledEchoClient::new(pool.clone());
    // The first attempt stalls 3 s; the hedge sent 50 ms later answers at once.
    let request = EchoRequest {
        message: "hedged".into(),
        delay_ms: 3_000,
        slow_attempts: 1,
        ..Default::default()
    };
    let started = Instant::now();
    let reply = client.unary(request).await.expect("the hedge answers");
    let took = started.elapsed();
    assert_eq!(reply.into_inner().message, "hedged");
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert_eq!(server.stats().calls(), 2);
    assert_eq!(pool.status().retries.hedges, 1, "{}", pool.status());
    assert_eq!(pool.status().retries.calls_by_attempts, [0, 1, 0, 0, 0]);
    let attempts = attempts_seen(&server);
    assert_eq!(attempts, ["", "1"]);
    // The stalled attempt is cancelled, not left running.
    let cancelled = wait_until(|| server.stats().cancelled() >= 1, Duration::from_secs(2)).await;
    assert!(cancelled, "the losing attempt was not cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_fatal_failure_sends_the_next_hedge_at_once_and_a_fatal_one_ends_the_call() {
    let server = EchoServer::start().await.unwrap();
    // A delay of 1 s: only a non-fatal failure can bring the second attempt sooner.
    let pool = pool(
        &server,
        "hedge-fail",
        &hedging_config(3, "1s", "\"UNAVAILABLE\""),
    )
    .await;
    let client = PooledEchoClient::new(pool);
    let started = Instant::now();
    client
        .unary(failing("non-fatal", Code::Unavailable, 1))
        .await
        .expect("the second attempt answers");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.stats().calls(), 2);

    let status = client
        .unary(failing("fatal", Code::Internal, 1))
        .await
        .expect_err("INTERNAL is fatal");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(server.stats().calls(), 3, "no hedge after a fatal status");
}

/// Outlier detection (gRFC A50) from the service config, over 3 backends: see
/// [`outlier_backend_ejected_and_readmitted`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outlier_backend_is_ejected_and_readmitted() {
    // Short intervals for the test; A50's defaults are 10 s, 30 s and 5 hosts.
    let config = r#"{"loadBalancingConfig": [{"outlier_detection_experimental": {
        "interval": "0.2s",
        "baseEjectionTime": "0.6s",
        "maxEjectionTime": "5s",
        "maxEjectionPercent": 50,
        "failurePercentageEjection": {"threshold": 30, "minimumHosts": 3, "requestVolume": 10}
    }}]}"#;
    outlier_backend_ejected_and_readmitted("outlier", |b| b.service_config_json(config)).await;
}

/// The same detection set from the builder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_from_the_builder_ejects_and_readmits() {
    use grpc_pool::config::{FailurePercentageEjection, OutlierDetection};
    let detection = OutlierDetection::default()
        .interval(Duration::from_millis(200))
        .base_ejection_time(Duration::from_millis(600))
        .max_ejection_time(Duration::from_secs(5))
        .max_ejection_percent(50)
        .failure_percentage(
            FailurePercentageEjection::default()
                .threshold(30)
                .minimum_hosts(3)
                .request_volume(10),
        );
    outlier_backend_ejected_and_readmitted("outlier-builder", |b| b.outlier_detection(detection))
        .await;
}

/// Bad detection settings from the builder are errors naming the field and the value.
#[test]
fn bad_outlier_detection_from_the_builder_names_the_field() {
    use grpc_pool::config::{FailurePercentageEjection, OutlierDetection};
    let build = |detection: OutlierDetection| {
        grpc_pool::PoolConfig::builder()
            .endpoint("http://127.0.0.1:1")
            .outlier_detection(detection)
            .build()
            .unwrap_err()
            .to_string()
    };
    let on =
        || OutlierDetection::default().failure_percentage(FailurePercentageEjection::default());
    assert_eq!(
        build(on().max_ejection_percent(101)),
        "outlier_detection.max_ejection_percent must be a percentage from 0 to 100 (got 101)"
    );
    assert_eq!(
        build(on().interval(Duration::ZERO)),
        "outlier_detection.interval must be more than zero (got 0s)"
    );
    assert_eq!(
        build(OutlierDetection::default().failure_percentage(
            FailurePercentageEjection::default().threshold(150)
        )),
        "outlier_detection.failure_percentage.threshold must be a percentage from 0 to 100 (got 150)"
    );
    let none = build(OutlierDetection::default());
    assert!(
        none.contains("outlier_detection.success_rate or outlier_detection.failure_percentage"),
        "{none}"
    );
}

/// Over 3 backends, the one failing half its calls is ejected (its channels show `Ejected`
/// and take no calls), and re-admitted when its time is up.
async fn outlier_backend_ejected_and_readmitted(
    name: &str,
    detection: impl FnOnce(grpc_pool::PoolConfigBuilder) -> grpc_pool::PoolConfigBuilder,
) {
    let servers = [
        EchoServer::start().await.unwrap(),
        EchoServer::start().await.unwrap(),
        EchoServer::start().await.unwrap(),
    ];
    let bad = &servers[2];
    bad.set_fail_percent(50);
    let mut builder = fast(name, &servers[0].uri(), 6);
    for server in &servers[1..] {
        builder = builder.endpoint(&server.uri());
    }
    let pool = support::start(detection(builder).build().unwrap()).await;
    let client = PooledEchoClient::new(pool.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (client, stop) = (client.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let _ = client
                    .unary(EchoRequest {
                        message: format!("w{w}-{i}"),
                        ..Default::default()
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    let bad_addr = bad.addr();
    let bad_state = |state: ChannelState| {
        let status = pool.status();
        let mine: Vec<_> = status
            .channels
            .iter()
            .filter(|c| c.address == Some(bad_addr))
            .collect();
        !mine.is_empty() && mine.iter().all(|c| c.state == state)
    };
    let ejected = wait_until(|| bad_state(ChannelState::Ejected), Duration::from_secs(3)).await;
    assert!(
        ejected,
        "the failing backend was not ejected:\n{}",
        pool.status()
    );
    let status = pool.status();
    assert!(status.ejections >= 1);
    assert!(
        status
            .channels
            .iter()
            .filter(|c| c.state == ChannelState::Ejected)
            .all(|c| c.ejected_until.is_some()),
        "{status}"
    );
    // Ejected: once its calls in flight are done, it gets no more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = bad.stats().calls();
    tokio::time::sleep(Duration::from_millis(150)).await;
    if bad_state(ChannelState::Ejected) {
        assert_eq!(bad.stats().calls(), before, "an ejected backend got calls");
    }
    // Healthy again: re-admitted when its ejection time is up, and it gets calls.
    bad.set_fail_percent(0);
    let back = wait_until(|| bad_state(ChannelState::Ready), Duration::from_secs(4)).await;
    assert!(back, "the backend was not re-admitted:\n{}", pool.status());
    let calls = bad.stats().calls();
    let serving = wait_until(|| bad.stats().calls() > calls + 10, Duration::from_secs(2)).await;
    assert!(serving, "the re-admitted backend gets no calls");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
}

/// A client-streaming call under a retry policy: retried (its messages sent again) while they
/// fit the 256 KiB retry buffer, committed once they outgrow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_is_retried_within_the_buffer_and_committed_past_it() {
    let server = EchoServer::start().await.unwrap();
    let config = r#"{"methodConfig": [{
        "name": [{"service": "grpcpool.test.v1.Echo", "method": "ClientStream"}],
        "retryPolicy": {
          "maxAttempts": 3,
          "initialBackoff": "0.01s",
          "maxBackoff": "0.05s",
          "backoffMultiplier": 2,
          "retryableStatusCodes": ["UNAVAILABLE"]
        }
    }]}"#;
    let pool = pool(&server, "policy-client-stream", config).await;
    let client = PooledEchoClient::new(pool.clone());
    // The server reads the whole stream, then fails the first time it sees "small".
    let messages = |key: &str, size: usize| {
        let first = EchoRequest {
            message: key.to_owned(),
            fail_code: Code::Unavailable as i32,
            fail_attempts: 1,
            ..Default::default()
        };
        let rest = (0..2).map(move |_| EchoRequest {
            message: "x".repeat(size),
            ..Default::default()
        });
        tokio_stream::iter(std::iter::once(first).chain(rest))
    };
    let reply = client
        .client_stream(messages("small", 10))
        .await
        .expect("retried with the same three messages");
    assert_eq!(reply.into_inner().count, 3, "all three messages sent again");
    assert_eq!(server.stats().calls(), 2);
    assert_eq!(pool.status().retries.policy, 1);

    // 2 x 200 KiB: past the buffer, the call is committed and its failure comes back.
    let status = client
        .client_stream(messages("large", 200 * 1024))
        .await
        .expect_err("not retried past the buffer limit");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.stats().calls(), 3);
    assert_eq!(pool.status().retries.policy, 1);
}

/// A hedged client stream: the messages come one every 20 ms, and the first attempt stalls
/// once it has read them all. The hedge, sent 50 ms in (mid-stream), gets every message too:
/// those already sent, from the retry buffer, and the rest as they come, at the same time as
/// the first attempt. It answers first, and the stalled attempt is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_client_stream_sends_every_message_to_each_attempt() {
    let server = EchoServer::start().await.unwrap();
    let config = r#"{"methodConfig": [{
        "name": [{"service": "grpcpool.test.v1.Echo", "method": "ClientStream"}],
        "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.05s",
                          "nonFatalStatusCodes": ["UNAVAILABLE"]}
    }]}"#;
    let pool = pool(&server, "hedge-client-stream", config).await;
    let client = PooledEchoClient::new(pool.clone());
    let messages = futures_util::stream::unfold(0u32, |i| async move {
        if i == 6 {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The first message makes the server stall the first attempt 3 s at the end.
        let (delay_ms, slow_attempts) = if i == 0 { (3_000, 1) } else { (0, 0) };
        let message = EchoRequest {
            message: format!("m{i}"),
            delay_ms,
            slow_attempts,
            ..Default::default()
        };
        Some((message, i + 1))
    });
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(4), client.client_stream(messages))
        .await
        .expect("the hedged call hung")
        .expect("the hedge answers")
        .into_inner();
    let took = started.elapsed();
    assert_eq!(
        (reply.count, reply.message.as_str()),
        (6, "m5"),
        "every message, in order"
    );
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert_eq!(server.stats().calls(), 2);
    let status = pool.status();
    assert_eq!(status.retries.hedges, 1, "{status}");
    assert_eq!(status.retries.calls_by_attempts, [0, 1, 0, 0, 0]);
    let cancelled = wait_until(|| server.stats().cancelled() >= 1, Duration::from_secs(2)).await;
    assert!(cancelled, "the stalled attempt was not cancelled");
}

/// `Lookup` is marked `idempotency_level = IDEMPOTENT` in echo.proto, and the root build
/// script gives such methods a default retry policy (3 attempts on UNAVAILABLE): it is
/// retried in a pool without any service config, while `Unary` is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_method_is_retried_by_the_policy_compiled_in() {
    let server = EchoServer::start().await.unwrap();
    server.stats().record_header("grpc-previous-rpc-attempts");
    let pool = support::start(fast("idempotent", &server.uri(), 3).build().unwrap()).await;
    let client = PooledEchoClient::new(pool.clone());
    let reply = client
        .lookup(failing("idempotent", Code::Unavailable, 2))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(reply.into_inner().message, "idempotent");
    assert_eq!(server.stats().calls(), 3);
    let attempts = attempts_seen(&server);
    assert_eq!(attempts, ["", "1", "2"]);
    assert_eq!(pool.status().retries.calls_by_attempts, [0, 0, 1, 0, 0]);

    let status = client
        .unary(failing("not idempotent", Code::Unavailable, 1))
        .await
        .expect_err("Unary has no default policy");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.stats().calls(), 4);
}

/// The pool's service config decides over the compiled-in default: a retry policy for the
/// whole service replaces it, while an entry with a timeout only leaves it in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_service_config_replaces_the_compiled_in_default() {
    let server = EchoServer::start().await.unwrap();
    let two_attempts = r#"{"methodConfig": [{
        "name": [{"service": "grpcpool.test.v1.Echo"}],
        "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
    }]}"#;
    let replaced = PooledEchoClient::new(pool(&server, "idempotent-replaced", two_attempts).await);
    let status = replaced
        .lookup(failing("replaced", Code::Unavailable, 2))
        .await
        .expect_err("two attempts, both failed");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.stats().calls(), 2);

    let timeout_only = r#"{"methodConfig": [{"name": [{}], "timeout": "5s"}]}"#;
    let kept = PooledEchoClient::new(pool(&server, "idempotent-kept", timeout_only).await);
    kept.lookup(failing("kept", Code::Unavailable, 2))
        .await
        .expect("the default's third attempt succeeds");
    assert_eq!(server.stats().calls(), 5);
}
