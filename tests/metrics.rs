//! The `metrics` feature: a test recorder sees the pool's counters, gauges and
//! histograms move, labelled by pool name. One test per binary: the recorder is global.
mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use grpc_pool_testkit::{wait_until, EchoServer};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use support::{fast, req, start, unary};

/// Every metric seen so far. The debugging recorder's snapshots reset what they read
/// (counters and gauges to 0, histograms emptied), so values are accumulated here: the
/// pool moves gauges by increments only, so their sum is the current value.
struct Seen {
    snapshotter: Snapshotter,
    values: Mutex<HashMap<MetricId, Vec<f64>>>,
}

/// Kind, name and sorted labels of a metric.
type MetricId = (MetricKind, String, Vec<(String, String)>);

impl Seen {
    fn take(&self) {
        let mut values = self.values.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let k = key.key();
            let mut labels: Vec<(String, String)> = k
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let entry = values
                .entry((key.kind(), k.name().to_owned(), labels))
                .or_default();
            match value {
                DebugValue::Counter(n) => entry.push(n as f64),
                DebugValue::Gauge(v) => entry.push(v.0),
                DebugValue::Histogram(v) => entry.extend(v.iter().map(|x| x.0)),
            }
        }
    }

    /// All values recorded for metric `name` of pool `pool` with the extra `label`, if any.
    fn values(
        &self,
        kind: MetricKind,
        name: &str,
        pool: &str,
        label: Option<(&str, &str)>,
    ) -> Vec<f64> {
        self.take();
        let values = self.values.lock().unwrap();
        values
            .iter()
            .filter(|((k, n, labels), _)| {
                let has = |(a, b): (&str, &str)| labels.iter().any(|(x, y)| x == a && y == b);
                *k == kind && n == name && has(("pool", pool)) && label.is_none_or(has)
            })
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    }

    fn counter(&self, name: &str, pool: &str, label: Option<(&str, &str)>) -> f64 {
        self.values(MetricKind::Counter, name, pool, label)
            .iter()
            .sum()
    }

    fn gauge(&self, name: &str, pool: &str) -> f64 {
        self.values(MetricKind::Gauge, name, pool, None)
            .iter()
            .sum()
    }

    fn histogram_count(&self, name: &str, pool: &str) -> usize {
        self.values(MetricKind::Histogram, name, pool, None).len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_recorder_sees_the_pool_metrics_move() {
    let recorder = DebuggingRecorder::new();
    let seen = Seen {
        snapshotter: recorder.snapshotter(),
        values: Mutex::default(),
    };
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let server = EchoServer::start().await.unwrap();
    let pool = start(fast("metrics-test", &server.uri(), 2).build().unwrap()).await;
    let p = "metrics-test";
    assert!(wait_until(|| pool.status().ready == 2, Duration::from_secs(3)).await);
    assert_eq!(seen.gauge("grpc_pool_size", p), 2.0);
    assert_eq!(seen.gauge("grpc_pool_channels_ready", p), 2.0);

    for i in 0..20 {
        unary(&pool, req(format!("ok {i}"))).await.unwrap();
    }
    server.set_failing(true);
    for i in 0..5 {
        let err = unary(&pool, req(format!("fail {i}"))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
    }
    server.set_failing(false);

    assert_eq!(seen.counter("grpc_pool_calls_total", p, None), 25.0);
    assert_eq!(
        seen.counter(
            "grpc_pool_call_failures_total",
            p,
            Some(("code", "UNAVAILABLE"))
        ),
        5.0
    );
    assert_eq!(
        seen.histogram_count("grpc_pool_call_duration_seconds", p),
        25,
        "one duration per call"
    );
    assert_eq!(seen.gauge("grpc_pool_in_flight", p), 0.0);

    // Backpressure on a second pool (one channel, one call at a time): a checkout that waits
    // for a call to end is timed; one that waits past `checkout_timeout` is counted.
    let q = "metrics-test-cap";
    let capped = start(
        fast(q, &server.uri(), 1)
            .max_in_flight_per_channel(1)
            .checkout_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await;
    let slow = |ms: u32| {
        let mut r = req("slow");
        r.delay_ms = ms;
        r
    };
    let (a, b) = tokio::join!(unary(&capped, slow(100)), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        unary(&capped, req("waits")).await
    });
    a.unwrap();
    b.unwrap();
    assert_eq!(
        seen.histogram_count("grpc_pool_checkout_wait_seconds", q),
        1
    );
    let (a, b) = tokio::join!(unary(&capped, slow(600)), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        unary(&capped, req("times out")).await
    });
    a.unwrap();
    assert_eq!(b.unwrap_err().code(), tonic::Code::DeadlineExceeded);
    assert_eq!(
        seen.counter("grpc_pool_checkout_timeouts_total", q, None),
        1.0
    );
    assert_eq!(seen.gauge("grpc_pool_in_flight", q), 0.0);
    capped.shutdown().await;

    // A retry policy: a call failing twice then answering counts 2 policy retries and one
    // call of 3 attempts.
    let r = "metrics-test-retry";
    let retrying = start(
        fast(r, &server.uri(), 2)
            .service_config_json(
                r#"{"methodConfig": [{"name": [{"service": "grpcpool.test.v1.Echo"}],
                  "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s",
                  "maxBackoff": "0.02s", "backoffMultiplier": 2,
                  "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
            )
            .build()
            .unwrap(),
    )
    .await;
    let mut flaky = req("flaky");
    flaky.fail_code = tonic::Code::Unavailable as i32;
    flaky.fail_attempts = 2;
    unary(&retrying, flaky).await.unwrap();
    assert_eq!(
        seen.counter("grpc_pool_retries_total", r, Some(("reason", "policy"))),
        2.0
    );
    assert_eq!(
        seen.values(MetricKind::Histogram, "grpc_pool_call_attempts", r, None),
        [3.0]
    );
    retrying.shutdown().await;

    // The server dies: reconnects and failed connection attempts count, READY drops to 0.
    server.kill().await;
    assert!(
        wait_until(
            || seen.counter("grpc_pool_connect_failures_total", p, None) >= 2.0,
            Duration::from_secs(5)
        )
        .await
    );
    assert!(seen.counter("grpc_pool_reconnects_total", p, None) >= 2.0);
    assert_eq!(seen.gauge("grpc_pool_channels_ready", p), 0.0);
    pool.shutdown().await;
    // Shut down: every slot is counted out.
    assert_eq!(seen.gauge("grpc_pool_size", p), 0.0);
}
