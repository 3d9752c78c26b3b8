//! The test server itself works: calls, stats, kill, restart on the same port.
use std::time::Duration;

use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::{EchoRequest, StreamRequest};
use grpc_pool_testkit::EchoServer;

#[tokio::test]
async fn echo_server_counts_calls_and_dies_when_killed() {
    let server = EchoServer::start().await.unwrap();
    let addr = server.addr();
    let mut client = EchoClient::connect(server.uri()).await.unwrap();
    let reply = client
        .unary(EchoRequest {
            message: "hi".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reply.get_ref().message, "hi");
    let mut stream = client
        .server_stream(StreamRequest {
            message: "s".into(),
            count: 3,
            interval_ms: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(m) = stream.message().await.unwrap() {
        assert_eq!(m.count, n);
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(server.stats().calls(), 2);
    assert_eq!(server.stats().connections().len(), 1);
    server.kill().await;
    let err = tokio::time::timeout(Duration::from_secs(5), client.unary(EchoRequest::default()))
        .await
        .expect("a call to a killed server must not hang");
    assert!(err.is_err());
    // Restart on the same port; the client's channel reconnects by itself.
    let server = EchoServer::builder().bind(addr).start().await.unwrap();
    assert!(
        grpc_pool_testkit::wait_until_async(
            || {
                let mut c = client.clone();
                async move { c.unary(EchoRequest::default()).await.is_ok() }
            },
            Duration::from_secs(5)
        )
        .await
    );
    server.shutdown().await;
}
