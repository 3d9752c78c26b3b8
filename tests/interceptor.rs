//! Per-pool interceptor: every RPC kind of a generated client and raw `PooledChannel` calls
//! carry the header it sets, and a refreshed token is seen by the next call.
mod support;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::EchoRequest;
use grpc_pool_testkit::EchoServer;
use support::echo::PooledEchoClient;
use support::echo::StreamRequest;
use support::{fast, req, start};

#[tokio::test]
async fn interceptor_header_reaches_every_rpc_kind_and_sees_a_refreshed_token() {
    let server = EchoServer::start().await.unwrap();
    server.stats().record_header("authorization");
    let token = Arc::new(RwLock::new(String::from("Bearer one")));
    let current = token.clone();
    let config = fast("interceptor-all-kinds", &server.uri(), 2)
        .interceptor(move |metadata| {
            let value = current
                .read()
                .map_err(|_| tonic::Status::internal("token lock poisoned"))?
                .parse()
                .map_err(|_| tonic::Status::unauthenticated("token is not a header value"))?;
            metadata.insert("authorization", value);
            Ok(())
        })
        .build()
        .unwrap();
    let pool = start(config).await;
    let client = PooledEchoClient::new(pool.clone());
    let call = Duration::from_secs(5);

    tokio::time::timeout(call, client.unary(req("u")))
        .await
        .unwrap()
        .unwrap();
    let mut stream = tokio::time::timeout(
        call,
        client.server_stream(StreamRequest {
            message: "s".into(),
            count: 2,
            interval_ms: 0,
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .into_inner();
    while tokio::time::timeout(call, stream.message())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    let outbound = tokio_stream::iter(vec![req("c1"), req("c2")]);
    tokio::time::timeout(call, client.client_stream(outbound))
        .await
        .unwrap()
        .unwrap();
    let outbound = tokio_stream::iter(vec![req("b1")]);
    let mut replies = tokio::time::timeout(call, client.bidi(outbound))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    while tokio::time::timeout(call, replies.message())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}

    // The token refreshes; the next call (a raw tonic client over a checked-out channel) sees it.
    *token.write().unwrap() = "Bearer two".into();
    let mut raw = EchoClient::new(pool.checkout().await.unwrap());
    tokio::time::timeout(call, raw.unary(EchoRequest::default()))
        .await
        .unwrap()
        .unwrap();

    let seen = server.stats().headers();
    // The pool's own health probes are requests of the pool too; keep the Echo calls.
    let echo: Vec<(String, String)> = seen
        .into_iter()
        .filter(|(method, _)| {
            ["Unary", "ServerStream", "ClientStream", "Bidi"].contains(&method.as_str())
        })
        .collect();
    let expected = [
        ("Unary", "Bearer one"),
        ("ServerStream", "Bearer one"),
        ("ClientStream", "Bearer one"),
        ("Bidi", "Bearer one"),
        ("Unary", "Bearer two"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(m, v)| (m.to_string(), v.to_string()))
        .collect();
    assert_eq!(echo, expected);
    pool.shutdown().await;
}

#[tokio::test]
async fn interceptor_error_fails_the_call_without_sending_it() {
    let server = EchoServer::start().await.unwrap();
    let config = fast("interceptor-refuses", &server.uri(), 1)
        .interceptor(|_| Err(tonic::Status::unauthenticated("no token yet")))
        .build()
        .unwrap();
    let pool = start(config).await;
    let before = server.stats().calls();
    let err = PooledEchoClient::new(pool.clone())
        .unary(req("x"))
        .await
        .expect_err("the interceptor refuses");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    assert_eq!(
        server.stats().calls(),
        before,
        "the call never reached the server"
    );
    assert_eq!(pool.status().in_flight, 0);
    pool.shutdown().await;
}
