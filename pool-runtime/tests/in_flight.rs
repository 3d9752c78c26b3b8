//! In-flight accounting: every kind of call gives its slot back when it ends.

mod support;

use std::time::Duration;

use grpc_pool::Pool;
use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::EchoRequest;
use grpc_pool_testkit::EchoServer;
use support::*;

async fn setup() -> (EchoServer, Pool) {
    let server = EchoServer::start().await.unwrap();
    let pool = start(config(&server, 2)).await;
    (server, pool)
}

async fn client(pool: &Pool) -> EchoClient<grpc_pool::PooledChannel> {
    EchoClient::new(pool.checkout().await.unwrap())
}

#[tokio::test]
async fn in_flight_returns_to_zero_after_unary_ok() {
    let (_server, pool) = setup().await;
    unary(&pool, echo("a", 0)).await.unwrap();
    assert!(drained(&pool).await, "{}", pool.status());
    assert_eq!(pool.status().calls, 1);
}

#[tokio::test]
async fn in_flight_returns_to_zero_after_unary_error_status() {
    let (_server, pool) = setup().await;
    let mut request = echo("a", 0);
    request.fail_code = tonic::Code::NotFound as i32;
    let status = unary(&pool, request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(drained(&pool).await, "{}", pool.status());
}

#[tokio::test]
async fn in_flight_counts_a_server_stream_until_read_to_the_end() {
    let (_server, pool) = setup().await;
    let mut stream = client(&pool)
        .await
        .server_stream(stream_request(5, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pool.status().in_flight, 1, "an open stream counts");
    let mut n = 0;
    while let Some(reply) = stream.message().await.unwrap() {
        assert_eq!(reply.count, n);
        n += 1;
    }
    assert_eq!(n, 5);
    assert!(drained(&pool).await, "{}", pool.status());
}

#[tokio::test]
async fn in_flight_returns_to_zero_when_a_server_stream_is_dropped_halfway() {
    let (server, pool) = setup().await;
    let mut stream = client(&pool)
        .await
        .server_stream(stream_request(1000, 10))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        stream.message().await.unwrap().unwrap();
    }
    assert_eq!(pool.status().in_flight, 1);
    drop(stream);
    assert!(drained(&pool).await, "{}", pool.status());
    assert!(
        wait_until(|| server.stats().cancelled() == 1, SOON).await,
        "server saw the cancel"
    );
}

#[tokio::test]
async fn in_flight_returns_to_zero_after_a_client_stream() {
    let (_server, pool) = setup().await;
    let requests = tokio_stream::iter((0..5).map(|i| echo(&i.to_string(), 0)));
    let reply = client(&pool)
        .await
        .client_stream(requests)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.count, 5);
    assert_eq!(reply.message, "4");
    assert!(drained(&pool).await, "{}", pool.status());
}

#[tokio::test]
async fn in_flight_returns_to_zero_after_a_bidi_stream() {
    let (_server, pool) = setup().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(4);
    let mut replies = client(&pool)
        .await
        .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for i in 0..3 {
        tx.send(echo(&i.to_string(), 0)).await.unwrap();
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!(reply.message, i.to_string());
    }
    assert_eq!(pool.status().in_flight, 1, "an open bidi stream counts");
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());
    assert!(drained(&pool).await, "{}", pool.status());
}

#[tokio::test]
async fn in_flight_returns_to_zero_after_a_call_hits_its_deadline() {
    let (_server, pool) = setup().await;
    let mut request = tonic::Request::new(echo("slow", 2_000));
    request.set_timeout(Duration::from_millis(50));
    let options = grpc_pool::__private::ClientOptions::new();
    let status = grpc_pool::__private::unary(
        &pool,
        &options,
        "/grpcpool.test.v1.Echo/Unary",
        None,
        request,
        |ch, req| async move { EchoClient::new(ch).unary(req).await },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    assert!(drained(&pool).await, "{}", pool.status());
}

#[tokio::test]
async fn in_flight_returns_to_zero_when_a_call_future_is_dropped() {
    let (server, pool) = setup().await;
    let call = unary(&pool, echo("slow", 2_000));
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    assert!(drained(&pool).await, "{}", pool.status());
    assert!(
        wait_until(|| server.stats().cancelled() == 1, SOON).await,
        "server saw the cancel"
    );
}
