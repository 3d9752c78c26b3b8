//! Health checks against a server whose authentication covers every method, health included:
//! probes carry the pool's interceptor, and a health service the pool may not use does not
//! take the server out of rotation.
mod support;

use std::time::Duration;

use grpc_pool::Pool;
use grpc_pool_testkit::{wait_until, EchoServer};
use support::{fast, req};

async fn server() -> EchoServer {
    EchoServer::builder()
        .health(true)
        .require_token("s3cret")
        .start()
        .await
        .unwrap()
}

/// A pool with health checks every 100 ms, with or without the token.
async fn pool(name: &str, server: &EchoServer, token: bool) -> Pool {
    let mut config = fast(name, &server.uri(), 2)
        .health_check(true)
        .ping_interval(Some(Duration::from_millis(100)));
    if token {
        config = config.interceptor(|metadata| {
            metadata.insert("authorization", "Bearer s3cret".parse().unwrap());
            Ok(())
        });
    }
    support::start(config.build().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_carry_the_token_and_calls_are_served() {
    support::init_tracing();
    let server = server().await;
    let pool = pool("auth-health-token", &server, true).await;
    assert!(wait_until(|| pool.status().ready == 2, Duration::from_secs(3)).await);
    // Several rounds of health checks later, still in rotation.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for i in 0..20 {
        let reply = tokio::time::timeout(
            Duration::from_secs(3),
            support::unary(&pool, req(format!("{i}"))),
        )
        .await
        .expect("call hung");
        assert!(reply.is_ok(), "{reply:?}\n{}", pool.status());
    }
    let status = pool.status();
    assert_eq!((status.ready, status.unhealthy), (2, 0), "{status}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_calls_get_unauthenticated_not_unavailable() {
    support::init_tracing();
    let server = server().await;
    let pool = pool("auth-health-none", &server, false).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let reply = tokio::time::timeout(Duration::from_secs(3), support::unary(&pool, req("x")))
        .await
        .expect("call hung");
    let status = reply.expect_err("the server requires a token");
    assert_eq!(
        status.code(),
        tonic::Code::Unauthenticated,
        "{status:?}\n{}",
        pool.status()
    );
    pool.shutdown().await;
}
