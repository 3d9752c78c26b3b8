//! `max_in_flight_per_channel`: the cap holds, waiters are woken, and time out.

mod support;

use std::time::Duration;

use grpc_pool::PoolError;
use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::EchoServer;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_is_never_exceeded_on_any_connection() {
    let server = EchoServer::builder()
        .delay(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let pool = start(config(&server, 2).max_in_flight_per_channel(3)).await;
    assert!(wait_until(|| pool.status().ready == 2, SOON).await);

    let calls: Vec<_> = (0..40)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { unary(&pool, echo(&i.to_string(), 0)).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("every call completes");
    }
    let stats = server.stats();
    assert_eq!(stats.calls(), 40);
    assert!(
        stats.max_concurrent_per_connection() <= 3,
        "{:?}",
        stats.connections()
    );
    assert_eq!(
        stats.max_concurrent_per_connection(),
        3,
        "the cap was reached"
    );
    assert!(drained(&pool).await);
}

#[tokio::test]
async fn waiting_checkout_proceeds_when_a_call_finishes() {
    let server = EchoServer::start().await.unwrap();
    let pool = start(
        config(&server, 1)
            .max_in_flight_per_channel(1)
            .checkout_timeout(Duration::from_secs(5)),
    )
    .await;
    let held = pool.checkout().await.unwrap();
    let mut stream = EchoClient::new(held)
        .server_stream(stream_request(2, 200))
        .await
        .unwrap()
        .into_inner();

    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { unary(&pool, echo("after", 0)).await })
    };
    // The stream ends after its second message; its slot goes to the waiter.
    while stream.message().await.unwrap().is_some() {}
    let reply = waiter.await.unwrap().expect("waiter got the channel");
    assert_eq!(reply.message, "after");
    assert!(drained(&pool).await);
}

#[tokio::test]
async fn checkout_times_out_while_every_channel_is_full() {
    let server = EchoServer::start().await.unwrap();
    let pool = start(
        config(&server, 1)
            .max_in_flight_per_channel(1)
            .checkout_timeout(Duration::from_millis(200)),
    )
    .await;
    let _held = pool.checkout().await.unwrap();
    match pool.checkout().await {
        Err(PoolError::CheckoutTimeout { pool: name, waited }) => {
            assert_eq!(name, pool.name());
            assert!(waited >= Duration::from_millis(200));
        }
        other => panic!("expected CheckoutTimeout, got {other:?}"),
    }
    let status = tonic::Status::from(pool.checkout().await.unwrap_err());
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
}

#[tokio::test]
async fn dropping_an_unused_checkout_frees_its_reservation() {
    let server = EchoServer::start().await.unwrap();
    let pool = start(config(&server, 1).max_in_flight_per_channel(1)).await;
    let first = pool.checkout().await.unwrap();
    assert_eq!(pool.status().in_flight, 1);
    drop(first);
    assert_eq!(pool.status().in_flight, 0);
    unary(&pool, echo("x", 0)).await.unwrap();
}
