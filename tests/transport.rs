//! The pool's own HTTP/2 transport, seen from a server: what every request carries (origin,
//! `user-agent`, the deadline), that the deadline is enforced by the client when the server
//! never answers, and that the end of a connection reaches its slot at once.
mod support;

use std::time::Duration;

use grpc_pool::ChannelState;
use grpc_pool_testkit::{wait_until, EchoServer, FaultMode, FaultProxy, AUTHORITY_HEADER};
use support::echo::echo_client::EchoClient;
use support::{fast, req};
use tokio::time::Instant;

/// Bound of every await here: a call still running after this is a hang.
const GUARD: Duration = Duration::from_secs(5);

/// The values of `key` one call delivered to the server.
async fn seen(server: &EchoServer, pool: &grpc_pool::Pool, key: &str) -> Vec<String> {
    server.stats().record_header(key);
    let before = server.stats().headers().len();
    let channel = pool.checkout().await.expect("checkout");
    let reply = tokio::time::timeout(GUARD, EchoClient::new(channel).unary(req("x")))
        .await
        .expect("call hung");
    reply.expect("call ok");
    let headers = server.stats().headers();
    headers[before..].iter().map(|(_, v)| v.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_origin_and_user_agent() {
    let server = EchoServer::start().await.unwrap();
    let pool = support::start(fast("transport-origin", &server.uri(), 1).build().unwrap()).await;
    let authority = seen(&server, &pool, AUTHORITY_HEADER).await;
    assert_eq!(authority, [server.addr().to_string()]);
    let agent = seen(&server, &pool, "user-agent").await;
    assert_eq!(agent.len(), 1);
    assert!(
        agent[0].starts_with(concat!("grpc-pool/", env!("CARGO_PKG_VERSION"))),
        "user-agent {agent:?}"
    );
    pool.shutdown().await;
}

/// The pool's `request_timeout` is the deadline of a call that sets none: sent to the server
/// as `grpc-timeout` (so it can give up too), and the call's own timeout wins when shorter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_request_timeout_is_sent_as_grpc_timeout() {
    let server = EchoServer::start().await.unwrap();
    let config = fast("transport-timeout-header", &server.uri(), 1)
        .request_timeout(Duration::from_secs(7))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    assert_eq!(seen(&server, &pool, "grpc-timeout").await, ["7000m"]);

    let before = server.stats().headers().len();
    let mut request = tonic::Request::new(req("short"));
    request.set_timeout(Duration::from_millis(1500));
    let channel = pool.checkout().await.unwrap();
    EchoClient::new(channel).unary(request).await.unwrap();
    let sent: Vec<String> = server.stats().headers()[before..]
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].ends_with('u') || sent[0].ends_with('m'), "{sent:?}");
    pool.shutdown().await;
}

/// A server that stops answering (the network holds every byte; the connection stays open):
/// the call's `grpc-timeout` ends it with DEADLINE_EXCEEDED on the client's own timer, with
/// keepalive set far beyond the deadline so that nothing else could end it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_is_enforced_when_the_server_never_answers() {
    let server = EchoServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let config = fast("transport-deadline", &proxy.uri(), 1)
        .keepalive(Duration::from_secs(60))
        .keepalive_timeout(Duration::from_secs(20))
        .request_timeout(Duration::from_secs(30))
        .health_check(false)
        .build()
        .unwrap();
    let pool = support::start(config).await;
    let channel = pool.checkout().await.unwrap();
    proxy.set_mode(FaultMode::Blackhole);
    let mut request = tonic::Request::new(req("lost in the network"));
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let reply = tokio::time::timeout(GUARD, EchoClient::new(channel).unary(request))
        .await
        .expect("the call outlived its deadline by seconds");
    let took = started.elapsed();
    let status = reply.expect_err("the server never answered");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(took >= Duration::from_millis(300), "ended after {took:?}");
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    proxy.set_mode(FaultMode::PassThrough);
    pool.shutdown().await;
}

/// The server closes the connection while no call is on it: the slot leaves READY at once
/// and says why, without a call or a probe having to fail first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ending_is_seen_by_its_slot_at_once() {
    let server = EchoServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let config = fast("transport-end", &proxy.uri(), 1)
        .keepalive(Duration::from_secs(60))
        .keepalive_timeout(Duration::from_secs(20))
        .health_check(false)
        .build()
        .unwrap();
    let pool = support::start(config).await;
    assert_eq!(pool.status().ready, 1);
    let started = Instant::now();
    proxy.cut_connections();
    let seen = wait_until(
        || pool.status().channels[0].state != ChannelState::Ready || pool.status().reconnects > 0,
        Duration::from_secs(2),
    )
    .await;
    let took = started.elapsed();
    let status = pool.status();
    assert!(seen, "the end of the connection was not seen\n{status}");
    assert!(took < Duration::from_millis(500), "seen after {took:?}");
    let last = status.channels[0].last_error.clone().unwrap_or_default();
    assert!(
        last.contains("connection closed"),
        "last error {last:?}\n{status}"
    );
    // And it comes back.
    assert!(wait_until(|| pool.status().ready == 1, Duration::from_secs(3)).await);
    pool.shutdown().await;
}
