//! Selection: shared channels, least in flight.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::EchoServer;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_concurrent_calls_spread_across_all_channels() {
    let server = EchoServer::builder()
        .delay(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let pool = start(config(&server, 4)).await;
    assert!(
        wait_until(|| pool.status().ready == 4, SOON).await,
        "{}",
        pool.status()
    );

    let calls: Vec<_> = (0..64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { unary(&pool, echo(&i.to_string(), 0)).await })
        })
        .collect();
    let mut peers = HashSet::new();
    for call in calls {
        peers.insert(call.await.unwrap().expect("call succeeds").peer);
    }

    let conns = server.stats().connections();
    assert_eq!(peers.len(), 4, "calls used every channel: {conns:?}");
    assert!(
        conns.values().all(|c| c.calls >= 8),
        "each channel got a fair share: {conns:?}"
    );
    assert!(drained(&pool).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_holding_streams_gets_no_new_calls_while_others_idle() {
    let server = EchoServer::start().await.unwrap();
    let pool = start(config(&server, 4)).await;
    assert!(wait_until(|| pool.status().ready == 4, SOON).await);

    // A long server stream occupies one channel.
    let channel = pool.checkout().await.unwrap();
    let busy_slot = channel.slot();
    let mut stream = EchoClient::new(channel)
        .server_stream(stream_request(1000, 50))
        .await
        .unwrap()
        .into_inner();
    let stream_peer = stream.message().await.unwrap().unwrap().peer;

    for i in 0..40 {
        let reply = unary(&pool, echo(&i.to_string(), 0)).await.unwrap();
        assert_ne!(
            reply.peer, stream_peer,
            "call {i} was routed to the busy channel"
        );
    }
    let status = pool.status();
    assert_eq!(status.channels[busy_slot].calls, 1, "{status}");
    drop(stream);
    assert!(drained(&pool).await);
}
