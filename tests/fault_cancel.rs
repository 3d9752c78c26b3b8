//! Fault matrix: cancellation. Dropping a call future or a stream mid-flight gives back its
//! in-flight slot, and the server observes the cancel (its handler is dropped).
mod support;

use std::time::Duration;

use grpc_pool::Pool;
use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::{EchoRequest, StreamRequest};
use grpc_pool_testkit::{wait_until, EchoServer};
use support::{fast, req, start, unary};

async fn pool_and_server(name: &str) -> (Pool, EchoServer) {
    let server = EchoServer::builder()
        .delay(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let pool = start(
        fast(name, &server.uri(), 2)
            .request_timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    )
    .await;
    (pool, server)
}

async fn assert_released(pool: &Pool, server: &EchoServer, cancels: u64) {
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(5)).await,
        "the in-flight slot was not given back: {:?}",
        pool.status()
    );
    assert!(
        wait_until(
            || server.stats().cancelled() == cancels,
            Duration::from_secs(5)
        )
        .await,
        "the server did not observe the cancel (cancelled = {})",
        server.stats().cancelled()
    );
    assert_eq!(server.stats().in_progress(), 0);
}

#[tokio::test]
async fn dropping_a_unary_call_frees_its_slot_and_cancels_it_on_the_server() {
    let (pool, server) = pool_and_server("cancel-unary").await;
    let call = tokio::spawn({
        let pool = pool.clone();
        async move { unary(&pool, req("slow")).await }
    });
    assert!(wait_until(|| server.stats().in_progress() == 1, Duration::from_secs(5)).await);
    assert_eq!(pool.status().in_flight, 1);
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_released(&pool, &server, 1).await;
    println!("scenario=cancel_unary ok=1 error=0 hung=0 recovery_ms=0");

    // A call future dropped by a timeout, without a task of its own.
    let timed_out =
        tokio::time::timeout(Duration::from_millis(100), unary(&pool, req("slow"))).await;
    assert!(timed_out.is_err());
    assert_released(&pool, &server, 2).await;
    pool.shutdown().await;
}

#[tokio::test]
async fn dropping_a_server_stream_mid_flight_frees_its_slot() {
    let (pool, server) = pool_and_server("cancel-stream").await;
    let mut client = EchoClient::new(pool.checkout().await.unwrap());
    let request = StreamRequest {
        message: "tick".into(),
        count: 10_000,
        interval_ms: 10,
    };
    let mut stream = client.server_stream(request).await.unwrap().into_inner();
    for _ in 0..3 {
        stream.message().await.unwrap().unwrap();
    }
    assert_eq!(pool.status().in_flight, 1, "a live stream holds its slot");
    drop(stream);
    drop(client);
    assert_released(&pool, &server, 1).await;
    println!("scenario=cancel_server_stream ok=1 error=0 hung=0 recovery_ms=0");
    pool.shutdown().await;
}

#[tokio::test]
async fn dropping_a_bidi_stream_mid_flight_frees_its_slot() {
    let (pool, server) = pool_and_server("cancel-bidi").await;
    let mut client = EchoClient::new(pool.checkout().await.unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(4);
    let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
    let msg = |m: &str, delay_ms| EchoRequest {
        message: m.into(),
        delay_ms,
        ..Default::default()
    };
    tx.send(msg("1", 1)).await.unwrap();
    let mut inbound = client.bidi(outbound).await.unwrap().into_inner();
    assert_eq!(inbound.message().await.unwrap().unwrap().message, "1");
    assert_eq!(pool.status().in_flight, 1, "a live stream holds its slot");
    // The server now works on a slow message when the client gives up.
    tx.send(msg("2", 30_000)).await.unwrap();
    assert!(wait_until(|| server.stats().in_progress() == 1, Duration::from_secs(5)).await);
    drop(inbound);
    drop(client);
    // The pool's count falls as soon as the response stream is dropped, even while the
    // request side is still open.
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(5)).await,
        "the in-flight slot was not given back: {:?}",
        pool.status()
    );
    // HTTP/2 resets the stream (the server sees the cancel) once the request side is gone too.
    drop(tx);
    assert_released(&pool, &server, 1).await;
    println!("scenario=cancel_bidi_stream ok=1 error=0 hung=0 recovery_ms=0");
    pool.shutdown().await;
}
