//! A call's deadline bounds the whole call: waiting for a channel on a saturated pool ends
//! at the deadline with DEADLINE_EXCEEDED, not after `checkout_timeout`, for calls with one
//! request message and for request streams alike.
mod support;

use std::time::Duration;

use grpc_pool_testkit::{wait_until, EchoServer};
use support::echo::PooledEchoClient;
use support::{fast, req};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_a_channel_ends_at_its_deadline() {
    support::init_tracing();
    // Calls take 2 s; one channel with room for one call: the second call must wait.
    let server = EchoServer::builder()
        .delay(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let config = fast("deadline-saturated", &server.uri(), 1)
        .max_in_flight_per_channel(1)
        .checkout_timeout(Duration::from_secs(15))
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    let client = PooledEchoClient::new(pool.clone());
    let busy = {
        let client = client.clone();
        tokio::spawn(async move { client.unary(req("busy")).await })
    };
    assert!(wait_until(|| pool.status().in_flight == 1, Duration::from_secs(2)).await);

    let mut request = tonic::Request::new(req("hurry"));
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(5), client.unary(request))
        .await
        .expect("the call outlived its deadline by seconds");
    let took = started.elapsed();
    let status = reply.expect_err("no channel was free before the deadline");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(took < Duration::from_millis(1000), "ended after {took:?}");
    assert!(busy.await.unwrap().is_ok());
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_waiting_for_a_channel_ends_at_its_deadline() {
    support::init_tracing();
    let server = EchoServer::builder()
        .delay(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let config = fast("deadline-saturated-stream", &server.uri(), 1)
        .max_in_flight_per_channel(1)
        .checkout_timeout(Duration::from_secs(15))
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    let client = PooledEchoClient::new(pool.clone());
    let busy = {
        let client = client.clone();
        tokio::spawn(async move { client.unary(req("busy")).await })
    };
    assert!(wait_until(|| pool.status().in_flight == 1, Duration::from_secs(2)).await);

    for bidi in [false, true] {
        let messages = tokio_stream::iter(vec![req("a"), req("b")]);
        let mut request = tonic::Request::new(messages);
        request.set_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let code = if bidi {
            tokio::time::timeout(Duration::from_secs(5), client.bidi(request))
                .await
                .expect("the stream outlived its deadline by seconds")
                .map(drop)
        } else {
            tokio::time::timeout(Duration::from_secs(5), client.client_stream(request))
                .await
                .expect("the stream outlived its deadline by seconds")
                .map(drop)
        }
        .expect_err("no channel was free before the deadline")
        .code();
        let took = started.elapsed();
        assert_eq!(code, tonic::Code::DeadlineExceeded, "bidi: {bidi}");
        assert!(
            took < Duration::from_millis(1000),
            "bidi: {bidi}: ended after {took:?}"
        );
    }
    assert!(busy.await.unwrap().is_ok());
    pool.shutdown().await;
}
