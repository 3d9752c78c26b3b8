//! The pool against grpcio run the way real servers run: its stock keepalive enforcement
//! (GOAWAY `too_many_pings` for pings it did not ask for), and authentication on every
//! method, health included. One server process per test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grpc_pool::{Pool, PoolConfig, PoolConfigBuilder, Preset};
use python_interop_tests::pb::{EchoRequest, PooledEchoClient};
use python_interop_tests::{summary_of, wait_until, Outcome, PyEchoServer, ServerOptions, Tally};

const DEADLINE: Duration = Duration::from_secs(2);
const TOKEN: &str = "s3cret";
/// Calls per burst of the keepalive scenarios.
const BURST: usize = 50;
/// The keepalive interval of the keepalive scenarios.
const KEEPALIVE: Duration = Duration::from_millis(250);
/// Idle time between bursts: long enough for a pool pinging every 250 ms while idle to send
/// the 4 pings that draw grpcio's GOAWAY (the first ping after the server's last reply is
/// free, the next 3 are strikes), with room to spare.
const GAP: Duration = Duration::from_millis(1500);

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

/// `BURST` calls, 10 at a time, into `tally`.
async fn burst(client: &PooledEchoClient, tally: &Arc<Tally>) {
    for _ in 0..BURST / 10 {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (client, tally) = (client.clone(), tally.clone());
            calls.spawn(async move { tally.call(DEADLINE, call(client, "burst")).await });
        }
        while let Some(r) = calls.join_next().await {
            r.expect("call task panicked");
        }
    }
}

/// The test preset with a deadline on every call and 500 ms connects.
fn base(name: &str, uri: &str, size: usize) -> PoolConfigBuilder {
    PoolConfig::builder()
        .preset(Preset::Test)
        .endpoint(uri)
        .name(name)
        .size(size)
        .request_timeout(DEADLINE)
        .connect_timeout(Duration::from_millis(500))
}

/// Health checks every 100 ms, and the bearer token on every request when `token`.
async fn auth_pool(name: &str, uri: &str, token: bool) -> Pool {
    let mut config = base(name, uri, 2)
        .health_check(true)
        .ping_interval(Some(Duration::from_millis(100)));
    if token {
        config = config.interceptor(|metadata| {
            metadata.insert(
                "authorization",
                format!("Bearer {TOKEN}").parse().expect("a header value"),
            );
            Ok(())
        });
    }
    Pool::start(config.build().expect("valid config"))
        .await
        .expect("pool starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_auth_health_checks_use_the_token() {
    const TEST: &str = "python_auth_health_checks_use_the_token";
    const CALLS: u64 = 20;
    let options = ServerOptions {
        require_token: Some(TOKEN.to_owned()),
        ..ServerOptions::default()
    };
    let Some(mut server) = PyEchoServer::start_or_skip(TEST, options).await else {
        return;
    };
    let with = auth_pool("python-auth-token", &server.uri(), true).await;
    let without = auth_pool("python-auth-none", &server.uri(), false).await;
    let ready = |pool: &Pool| pool.status().ready == 2;
    assert!(
        wait_until(|| ready(&with) && ready(&without), Duration::from_secs(3)).await,
        "both pools READY within 3 s:\n{}\n{}",
        with.status(),
        without.status()
    );
    // Several rounds of health checks (every 100 ms) before and between the calls.
    tokio::time::sleep(Duration::from_millis(350)).await;

    let served = Tally::new();
    let client = PooledEchoClient::new(with.clone());
    for _ in 0..CALLS {
        served.call(DEADLINE, call(client.clone(), "token")).await;
    }
    let refused = Tally::new();
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    let client = PooledEchoClient::new(without.clone());
    for _ in 0..CALLS {
        if let Outcome::Err(status) = refused.call(DEADLINE, call(client.clone(), "none")).await {
            *codes.entry(format!("{:?}", status.code())).or_default() += 1;
        }
    }
    let (with_status, without_status) = (with.status(), without.status());

    // The health service itself: probes with the token see the real status (and take the
    // channels out of rotation on NOT_SERVING); probes without it only ever see
    // UNAUTHENTICATED, so that pool keeps serving (and its calls keep meeting the auth error).
    server.set_serving(false).await.expect("NOT_SERVING");
    let marked = wait_until(|| with.status().unhealthy == 2, Duration::from_secs(3)).await;
    let without_during = without.status();
    server.set_serving(true).await.expect("SERVING");
    let back = wait_until(|| with.status().ready == 2, Duration::from_secs(3)).await;

    summary_of("python-auth-health-token", &[&served], None);
    summary_of("python-auth-health-no-token", &[&refused], None);
    eprintln!("no-token calls by code: {codes:?}");
    assert_eq!(served.hung() + refused.hung(), 0, "hung calls");
    assert_eq!(
        served.ok(),
        CALLS,
        "calls with the token: {:?}\n{with_status}",
        served.first_errors()
    );
    assert_eq!(
        (with_status.ready, with_status.unhealthy),
        (2, 0),
        "with the token every channel READY after rounds of health checks:\n{with_status}"
    );
    assert_eq!(
        codes.get("Unauthenticated").copied(),
        Some(CALLS),
        "calls without the token get the server's UNAUTHENTICATED (not UNAVAILABLE from a \
         pool that took the server out of rotation): {codes:?}\n{without_status}"
    );
    assert_eq!(
        without_status.ready, 2,
        "without the token the health service is unusable and the channels serve anyway:\n{without_status}"
    );
    assert!(
        marked,
        "probes carrying the token see NOT_SERVING within 3 s:\n{}",
        with.status()
    );
    assert_eq!(
        without_during.ready, 2,
        "probes without the token cannot see NOT_SERVING:\n{without_during}"
    );
    assert!(back, "READY again after SERVING:\n{}", with.status());
    with.shutdown().await;
    without.shutdown().await;
}

/// Pool size 2, 250 ms keepalive (1 s timeout), no health checks, `keepalive_while_idle` as
/// given.
async fn keepalive_pool(name: &str, uri: &str, while_idle: bool) -> Pool {
    let config = base(name, uri, 2)
        .keepalive(KEEPALIVE)
        .keepalive_timeout(Duration::from_secs(1))
        .keepalive_while_idle(while_idle)
        .health_check(false)
        .ping_interval(None)
        .build()
        .expect("valid config");
    Pool::start(config).await.expect("pool starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stock_ping_policy_idle_gaps_do_not_churn() {
    const TEST: &str = "python_stock_ping_policy_idle_gaps_do_not_churn";
    let Some(server) = PyEchoServer::start_or_skip(TEST, ServerOptions::default()).await else {
        return;
    };
    let pool = keepalive_pool("python-stock-pings", &server.uri(), false).await;
    let client = PooledEchoClient::new(pool.clone());
    let tally = Arc::new(Tally::new());
    burst(&client, &tally).await;
    for _ in 0..3 {
        // The idle gap is the scenario: keepalive must stay silent through it.
        tokio::time::sleep(GAP).await;
        burst(&client, &tally).await;
    }
    let status = pool.status();

    tally.summary("python-stock-ping-policy-idle-gaps", None);
    eprintln!("{status}");
    assert_eq!(tally.hung(), 0, "hung calls: {:?}", tally.first_errors());
    assert_eq!(
        tally.errors(),
        0,
        "failed calls: {:?}\n{status}",
        tally.first_errors()
    );
    assert_eq!(tally.ok(), 4 * BURST as u64);
    assert_eq!(
        (status.reconnects, status.refreshes, status.too_many_pings),
        (0, 0, 0),
        "connections replaced across idle gaps (GOAWAY too_many_pings?):\n{status}"
    );
    pool.shutdown().await;
}

/// A pool that pings while idle is sent away by a stock server (which also guards that
/// `echo_server.py` stays stock): the pool reads the GOAWAY's `too_many_pings`, counts it,
/// doubles the keepalive interval of its new connections, and serves every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_idle_pings_get_too_many_pings_and_the_pool_doubles_its_keepalive() {
    const TEST: &str = "python_idle_pings_get_too_many_pings_and_the_pool_doubles_its_keepalive";
    let Some(server) = PyEchoServer::start_or_skip(TEST, ServerOptions::default()).await else {
        return;
    };
    let pool = keepalive_pool("python-stock-goaway", &server.uri(), true).await;
    let client = PooledEchoClient::new(pool.clone());
    let tally = Arc::new(Tally::new());
    burst(&client, &tally).await;
    let idle = Instant::now();
    // Pings at ~0.25, 0.5, 0.75 and 1 s of idleness; the 4th draws the GOAWAY. Both connections
    // went idle together and are sent away within moments of each other; a call sent in
    // between can meet the GOAWAY (UNAVAILABLE, "Too many pings"), so the calls below wait
    // until every slot has its new connection.
    let mut sent_away_at: [Option<Duration>; 2] = [None; 2];
    let sent_away = wait_until(
        || {
            for (slot, c) in pool.status().channels.iter().enumerate() {
                if c.reconnects >= 1 && sent_away_at[slot].is_none() {
                    sent_away_at[slot] = Some(idle.elapsed());
                }
            }
            sent_away_at.iter().all(Option::is_some) && pool.status().ready == 2
        },
        Duration::from_secs(5),
    )
    .await;
    let status = pool.status();
    // The pool replaced the connections: calls are served again.
    burst(&client, &tally).await;

    summary_of("python-stock-idle-pings-goaway", &[&tally], None);
    eprintln!(
        "connections replaced after {:?} ms of idle pings\n{status}",
        sent_away_at
            .iter()
            .map(|d| d.map(|d| d.as_millis()))
            .collect::<Vec<_>>()
    );
    assert!(
        sent_away,
        "not every connection replaced within 5 s of idle pings every 250 ms: is the server \
         still stock (no --permissive-pings)?\n{status}"
    );
    assert!(
        status.too_many_pings >= 2,
        "each connection's GOAWAY is read as too_many_pings:\n{status}"
    );
    assert_eq!(
        status.keepalive,
        2 * KEEPALIVE,
        "new connections ping half as often:\n{status}"
    );
    assert_eq!(tally.hung(), 0, "hung calls: {:?}", tally.first_errors());
    assert_eq!(
        tally.errors(),
        0,
        "failed calls: {:?}\n{}",
        tally.first_errors(),
        pool.status()
    );
    pool.shutdown().await;
}
