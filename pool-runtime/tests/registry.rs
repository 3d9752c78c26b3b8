//! The registry and named pools: one pool per name, reuse by endpoint.

mod support;

use grpc_pool::__private::{connect_pooled, PoolDefaults};
use grpc_pool::{registry, NamedPool, PoolConfig, PoolError};
use grpc_pool_testkit::EchoServer;
use support::*;

static USERS: NamedPool = NamedPool::new(
    "registry-test.users",
    PoolDefaults::new(None, |b| b.size(3)),
);

#[tokio::test]
async fn a_name_runs_one_pool_at_a_time() {
    let server = EchoServer::start().await.unwrap();
    let first = start(config(&server, 1).name("one-at-a-time")).await;
    let second =
        grpc_pool::Pool::start(config(&server, 1).name("one-at-a-time").build().unwrap()).await;
    match second {
        Err(PoolError::AlreadyRunning { pool, endpoints }) => {
            assert_eq!(pool, "one-at-a-time");
            assert!(endpoints.contains(&server.addr().port().to_string()));
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    first.shutdown().await;
    let again = start(config(&server, 1).name("one-at-a-time")).await;
    assert_eq!(again.name(), "one-at-a-time");
}

#[tokio::test]
async fn named_pool_applies_its_defaults_and_is_found_by_name() {
    let server = EchoServer::start().await.unwrap();
    let pool = USERS
        .start(
            PoolConfig::builder()
                .endpoint(&server.uri())
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(pool.name(), "registry-test.users");
    assert_eq!(pool.status().size, 3, "size from the defaults");
    let found = USERS.get().expect("running");
    assert_eq!(found.name(), pool.name());
    drop((pool, found));
    assert!(
        USERS.get().is_some(),
        "the registry holds a named pool until shutdown"
    );
    assert!(registry::names().contains(&"registry-test.users".to_owned()));
    assert!(registry::status_all()
        .iter()
        .any(|s| s.name == "registry-test.users"));
    assert!(matches!(
        USERS.connect(&server.uri()).await,
        Err(PoolError::AlreadyRunning { .. })
    ));
    USERS.shutdown().await;
    assert!(USERS.get().is_none());
}

#[tokio::test]
async fn connect_pooled_reuses_a_pool_with_the_same_endpoint_and_rejects_another() {
    let server = EchoServer::start().await.unwrap();
    let other = EchoServer::start().await.unwrap();
    let name = "registry-test.v1.Echo";
    let a = connect_pooled(None, name, &server.uri()).await.unwrap();
    let b = connect_pooled(None, name, &server.uri()).await.unwrap();
    assert_eq!(a.status().size, 5, "library default size");
    unary(&b, echo("x", 0)).await.unwrap();
    assert_eq!(a.status().calls, 1, "both handles share one pool");
    match connect_pooled(None, name, &other.uri()).await {
        Err(PoolError::EndpointMismatch {
            running, requested, ..
        }) => {
            assert_eq!(running, server.uri());
            assert_eq!(requested, other.uri());
        }
        other => panic!("expected EndpointMismatch, got {other:?}"),
    }
    a.shutdown().await;
}
