//! The pool against grpcio's stream limit: `grpc.max_concurrent_streams = 4`, twice and eight
//! times more callers than the server takes at once. gRPC C-core counts a stream as open
//! until it has processed its end, so a client that opens the next stream as soon as it has
//! the previous response finds the server still full and gets `REFUSED_STREAM`. The pool must
//! queue such calls (and send refused ones again), never fail them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grpc_pool::{Pool, PoolConfig, Preset};
use python_interop_tests::pb::{EchoRequest, PooledEchoClient};
use python_interop_tests::{wait_until, PyEchoServer, ServerOptions, Tally};

const STREAMS: u32 = 4;
const CHANNELS: usize = 8;
const HANDLER: Duration = Duration::from_millis(20);
/// Each caller's deadline: the queue ahead of a call is at most callers / (8 × 4) handler
/// times, well under this even on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(5);
/// How long the callers keep calling.
const RUN: Duration = Duration::from_secs(2);

async fn run(callers: usize) {
    let test = format!("python_stream_limit_{callers}_callers");
    let options = ServerOptions {
        max_concurrent_streams: Some(STREAMS),
        delay: Some(HANDLER),
        ..ServerOptions::default()
    };
    let Some(server) = PyEchoServer::start_or_skip(&test, options).await else {
        return;
    };
    let config = PoolConfig::builder()
        .preset(Preset::Test)
        .endpoint(&server.uri())
        .name(&test)
        .size(CHANNELS)
        .checkout_timeout(DEADLINE)
        .build()
        .expect("valid config");
    let pool = Pool::start(config).await.expect("pool starts");
    let client = PooledEchoClient::new(pool.clone());
    let tally = Arc::new(Tally::new());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let (client, tally) = (client.clone(), tally.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < RUN {
                let message = format!("{caller}-{n}");
                let mut req = tonic::Request::new(EchoRequest {
                    message: message.clone(),
                    ..Default::default()
                });
                req.set_timeout(DEADLINE);
                if let Some(reply) = tally.call(DEADLINE, client.unary(req)).await.ok() {
                    if reply.into_inner().message != message {
                        tally.fail(format!("call {message}: wrong reply"));
                    }
                }
                n += 1;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("caller panicked");
    }
    let elapsed = started.elapsed();
    let status = pool.status();
    let calls_per_s = tally.ok() as f64 / elapsed.as_secs_f64();
    let ideal = CHANNELS as f64 * f64::from(STREAMS) / HANDLER.as_secs_f64();
    println!(
        "scenario=python-stream-limit-{STREAMS}x{CHANNELS}-{callers}-callers ok={} error={} hung={} \
         refused_streams={} calls_per_s={calls_per_s:.0} ideal_per_s={ideal:.0} stream_limits={:?}",
        tally.ok(),
        tally.errors(),
        tally.hung(),
        status.refused_streams,
        status
            .channels
            .iter()
            .map(|c| c.stream_limit)
            .collect::<Vec<_>>(),
    );
    assert_eq!(tally.hung(), 0, "hung calls: {:?}", tally.first_errors());
    assert_eq!(
        tally.errors(),
        0,
        "failed calls: {:?}",
        tally.first_errors()
    );
    assert!(tally.ok() > 0);
    // The server's SETTINGS were read: every connection knows the limit of 4 (a refusal may
    // have lowered one below it for a while).
    for channel in &status.channels {
        assert!(
            channel
                .stream_limit
                .is_some_and(|l| (1..=STREAMS as usize).contains(&l)),
            "slot {} stream limit {:?}",
            channel.index,
            channel.stream_limit
        );
    }
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(3)).await,
        "in-flight back to 0"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stream_limit_64_callers_no_call_fails() {
    run(64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stream_limit_256_callers_no_call_fails() {
    run(256).await;
}
