//! The pool against grpcio (gRPC C-core): health, GOAWAY from max connection age, and a low
//! stream limit. One server process per test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grpc_pool::{Pool, PoolConfig, Preset};
use python_interop_tests::pb::{EchoRequest, PooledEchoClient};
use python_interop_tests::{
    summary_of, wait_until, Load, Outcome, PyEchoServer, ServerOptions, Tally,
};

const DEADLINE: Duration = Duration::from_secs(2);
/// Deadline of the calls that queue behind a low stream limit.
const LONG: Duration = Duration::from_secs(8);

fn echo(message: &str) -> tonic::Request<EchoRequest> {
    let mut req = tonic::Request::new(EchoRequest {
        message: message.to_owned(),
        ..Default::default()
    });
    req.set_timeout(DEADLINE);
    req
}

async fn call(client: PooledEchoClient, message: &'static str) -> Result<(), tonic::Status> {
    let reply = client.unary(echo(message)).await?.into_inner();
    if reply.message == message {
        Ok(())
    } else {
        Err(tonic::Status::internal(format!(
            "echoed {:?} for {message:?}",
            reply.message
        )))
    }
}

/// A pool with the test preset, fast keepalive, and `request_timeout` on every call.
async fn start_pool(
    name: &str,
    uri: &str,
    size: usize,
    health_check: bool,
    request_timeout: Duration,
) -> Pool {
    let config = PoolConfig::builder()
        .preset(Preset::Test)
        .endpoint(uri)
        .name(name)
        .size(size)
        .request_timeout(request_timeout)
        .connect_timeout(Duration::from_millis(500))
        .keepalive(Duration::from_millis(250))
        .keepalive_timeout(Duration::from_millis(500))
        .health_check(health_check)
        .ping_interval(health_check.then_some(Duration::from_millis(100)))
        .build()
        .expect("valid config");
    Pool::start(config).await.expect("pool starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_not_serving_marks_pool_unhealthy_then_recovers() {
    const TEST: &str = "python_not_serving_marks_pool_unhealthy_then_recovers";
    let Some(mut server) = PyEchoServer::start_or_skip(TEST, ServerOptions::default()).await else {
        return;
    };
    let pool = start_pool("python-health", &server.uri(), 2, true, DEADLINE).await;
    let client = PooledEchoClient::new(pool.clone());
    let tally = Tally::new();
    for _ in 0..20 {
        tally.call(DEADLINE, call(client.clone(), "serving")).await;
    }
    assert_eq!(
        tally.ok(),
        20,
        "calls before NOT_SERVING: {:?}",
        tally.first_errors()
    );

    server.set_serving(false).await.expect("NOT_SERVING");
    let marked = wait_until(|| pool.status().unhealthy == 2, Duration::from_secs(3)).await;
    assert!(
        marked,
        "both channels marked unhealthy within 3 s: {:?}",
        pool.status().channels
    );
    let refused = Tally::new();
    for _ in 0..20 {
        if let Outcome::Err(status) = refused
            .call(DEADLINE, call(client.clone(), "not serving"))
            .await
        {
            assert!(
                status.message().contains("python-health"),
                "the error names the pool: {:?}: {}",
                status.code(),
                status.message()
            );
        }
    }

    server.set_serving(true).await.expect("SERVING");
    let back = Instant::now();
    // Calls until the first success: errors allowed (the pool has yet to see SERVING).
    let recovering = Tally::new();
    let mut recovery = None;
    while recovery.is_none() && back.elapsed() < Duration::from_secs(3) {
        match recovering
            .call(DEADLINE, call(client.clone(), "serving again"))
            .await
        {
            Outcome::Ok(()) => recovery = Some(back.elapsed()),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let ok_before = tally.ok();
    for _ in 0..20 {
        tally.call(DEADLINE, call(client.clone(), "serving")).await;
    }

    summary_of(
        "python-health-not-serving-then-serving",
        &[&tally, &refused, &recovering],
        recovery,
    );
    eprintln!("NOT_SERVING errors: {:#?}", refused.error_kinds());
    assert_eq!(
        tally.hung() + refused.hung() + recovering.hung(),
        0,
        "hung calls"
    );
    assert_eq!(
        refused.ok(),
        0,
        "calls routed to NOT_SERVING channels succeeded"
    );
    assert!(
        recovery.is_some(),
        "no successful call within 3 s of SERVING: {:?}",
        pool.status().channels
    );
    assert_eq!(
        tally.ok(),
        ok_before + 20,
        "calls after recovery: {:?}",
        tally.first_errors()
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_goaway_from_max_connection_age_loses_no_call() {
    const TEST: &str = "python_goaway_from_max_connection_age_loses_no_call";
    let options = ServerOptions {
        max_connection_age: Some(Duration::from_millis(300)),
        max_connection_age_grace: Some(Duration::from_secs(5)),
        ..ServerOptions::default()
    };
    let Some(server) = PyEchoServer::start_or_skip(TEST, options).await else {
        return;
    };
    let pool = start_pool("python-goaway", &server.uri(), 4, false, DEADLINE).await;
    let client = PooledEchoClient::new(pool.clone());
    let started = Instant::now();
    let load = Load::start(16, DEADLINE, Duration::from_millis(2), move || {
        call(client.clone(), "steady")
    });
    // ~3 s of steady load: each of the 4 connections is GOAWAYed about every 300 ms (10 times).
    wait_until(
        || started.elapsed() >= Duration::from_secs(3),
        Duration::from_secs(4),
    )
    .await;
    let tally = load.stop().await;

    tally.summary("python-goaway-max-connection-age", None);
    assert_eq!(tally.hung(), 0, "hung calls: {:?}", tally.first_errors());
    assert!(tally.ok() > 100, "the load ran: {} calls", tally.ok());
    assert_eq!(
        tally.errors(),
        0,
        "calls failed across GOAWAYs: {:?}",
        tally.first_errors()
    );
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(3)).await,
        "in-flight back to 0"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_low_stream_limit_all_concurrent_calls_complete() {
    const TEST: &str = "python_low_stream_limit_all_concurrent_calls_complete";
    const CALLS: usize = 400;
    let options = ServerOptions {
        max_concurrent_streams: Some(4),
        delay: Some(Duration::from_millis(20)),
        ..ServerOptions::default()
    };
    let Some(server) = PyEchoServer::start_or_skip(TEST, options).await else {
        return;
    };
    let pool = start_pool("python-streams", &server.uri(), 2, false, LONG).await;
    let client = PooledEchoClient::new(pool.clone());
    let tally = Arc::new(Tally::new());
    // 400 calls at once over 2 connections x 4 streams, 20 ms each: ~1 s of queueing when
    // the machine is idle, so the calls (and the pool's request timeout) get 8 s.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let (client, tally) = (client.clone(), tally.clone());
        calls.spawn(async move {
            let mut req = tonic::Request::new(EchoRequest {
                message: i.to_string(),
                ..Default::default()
            });
            req.set_timeout(LONG);
            let res = tally.call(LONG, client.unary(req)).await;
            if let Outcome::Ok(reply) = res {
                if reply.into_inner().message != i.to_string() {
                    tally.fail(format!("call {i}: wrong reply"));
                }
            }
        });
    }
    while let Some(r) = calls.join_next().await {
        r.expect("call task panicked");
    }

    tally.summary("python-stream-limit-4x2-400-calls", None);
    assert_eq!(tally.hung(), 0, "hung calls: {:?}", tally.first_errors());
    assert_eq!(
        tally.errors(),
        0,
        "failed calls: {:?}",
        tally.first_errors()
    );
    assert_eq!(tally.ok(), CALLS as u64);
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(3)).await,
        "in-flight back to 0"
    );
    pool.shutdown().await;
}
