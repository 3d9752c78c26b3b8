//! Retry policies (gRFC A6) against grpcio (gRPC C-core): the metadata names are the ones
//! C-core reads and writes (`grpc-previous-rpc-attempts`, `grpc-retry-pushback-ms`), and a
//! call whose response headers arrived before its error is committed, never retried.

use grpc_pool::{Pool, PoolConfig, Preset};
use python_interop_tests::pb::{EchoRequest, PooledEchoClient};
use python_interop_tests::{PyEchoServer, ServerOptions};
use tonic::Code;

const SERVICE_CONFIG: &str = r#"{
  "methodConfig": [{
    "name": [{"service": "grpcpool.test.v1.Echo", "method": "Unary"}],
    "timeout": "5s",
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.01s",
      "maxBackoff": "0.05s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}"#;

async fn pool(server: &PyEchoServer, name: &str) -> Pool {
    let config = PoolConfig::builder()
        .preset(Preset::Test)
        .endpoint(&server.uri())
        .name(name)
        .size(2)
        .service_config_json(SERVICE_CONFIG)
        .build()
        .expect("valid config");
    Pool::start(config).await.expect("pool starts")
}

fn failing(message: &str, fails: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        fail_code: Code::Unavailable as i32,
        fail_attempts: fails,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_sees_the_attempt_count_and_its_pushback_is_honoured() {
    const TEST: &str = "grpcio_sees_the_attempt_count_and_its_pushback_is_honoured";
    let Some(server) = PyEchoServer::start_or_skip(TEST, ServerOptions::default()).await else {
        return;
    };
    let client = PooledEchoClient::new(pool(&server, "python-retry").await);
    // Fails twice, then succeeds: the third attempt tells grpcio of the two before it.
    let reply = client
        .unary(failing("retried", 2))
        .await
        .expect("the third attempt succeeds")
        .into_inner();
    assert_eq!(
        reply.count, 2,
        "grpcio saw grpc-previous-rpc-attempts: {}",
        reply.count
    );

    // grpcio's trailer `grpc-retry-pushback-ms: -1` forbids the retry.
    let mut stop = failing("pushed back", 1);
    stop.pushback_ms = "-1".into();
    let status = client.unary(stop).await.expect_err("not retried");
    assert_eq!(status.code(), Code::Unavailable);
    // The same message again succeeds: grpcio saw it once, so one attempt was made.
    let again = client.unary(failing("pushed back", 1)).await;
    assert!(again.is_ok(), "{again:?}");
}

/// `Lookup` is marked idempotent in echo.proto and retried by the default policy compiled in
/// by grpc-pool-build (the pool has no service config): grpcio sees the attempt count, and a
/// call whose response headers arrived is committed the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protos_idempotent_method_is_retried_by_default_and_committed_at_headers() {
    const TEST: &str =
        "the_protos_idempotent_method_is_retried_by_default_and_committed_at_headers";
    let Some(server) = PyEchoServer::start_or_skip(TEST, ServerOptions::default()).await else {
        return;
    };
    let config = PoolConfig::builder()
        .preset(Preset::Test)
        .endpoint(&server.uri())
        .name("python-idempotent")
        .size(2)
        .build()
        .expect("valid config");
    let client = PooledEchoClient::new(Pool::start(config).await.expect("pool starts"));
    // The headers-then-fail call first: before any call used the default, nothing in the
    // pool looked for commits.
    let status = client
        .lookup(failing("headers-then-fail", 1))
        .await
        .expect_err("a committed call is not retried");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let reply = client
        .lookup(failing("idempotent", 2))
        .await
        .expect("the third attempt succeeds")
        .into_inner();
    assert_eq!(reply.count, 2, "grpcio saw grpc-previous-rpc-attempts");
    // Unary is not marked idempotent: no default policy.
    let status = client
        .unary(failing("not idempotent", 1))
        .await
        .expect_err("not retried");
    assert_eq!(status.code(), Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_committed_once_grpcio_sent_response_headers() {
    const TEST: &str = "a_call_is_committed_once_grpcio_sent_response_headers";
    let Some(server) = PyEchoServer::start_or_skip(TEST, ServerOptions::default()).await else {
        return;
    };
    let client = PooledEchoClient::new(pool(&server, "python-commit").await);
    // Trailers-Only error: not committed, retried, and the second attempt succeeds.
    client
        .unary(failing("trailers-only", 1))
        .await
        .expect("retried after a Trailers-Only error");
    // Headers, then the error: committed, so the error comes back though a retry would succeed.
    let status = client
        .unary(failing("headers-then-fail", 1))
        .await
        .expect_err("a committed call is not retried");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    client
        .unary(failing("headers-then-fail", 1))
        .await
        .expect("grpcio saw the message once: the next call succeeds");
}
