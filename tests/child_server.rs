//! The child-process Echo server used by the fault matrix: start, freeze, thaw, kill, restart on
//! the same port, health toggling and graceful termination, checked with a plain tonic client.
use std::time::Duration;

use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::EchoRequest;
use grpc_pool_testkit::{wait_until_async, ChildOptions, ChildServer};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn lazy(uri: &str) -> Channel {
    Endpoint::from_shared(uri.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .connect_lazy()
}

fn req() -> EchoRequest {
    EchoRequest {
        message: "child".into(),
        ..Default::default()
    }
}

async fn serves(ch: &Channel) -> bool {
    EchoClient::new(ch.clone()).unary(req()).await.is_ok()
}

#[tokio::test]
async fn child_server_freezes_thaws_dies_and_restarts_on_its_port() {
    let opts = ChildOptions::new()
        .binary(env!("CARGO_BIN_EXE_echo-server"))
        .health(true);
    let mut server = ChildServer::spawn(0, opts).await.unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let ch = lazy(&server.uri());
    assert!(serves(&ch).await);

    server.freeze().unwrap();
    let frozen = tokio::time::timeout(
        Duration::from_millis(300),
        EchoClient::new(ch.clone()).unary(req()),
    )
    .await;
    assert!(frozen.is_err(), "a frozen server must not answer");
    let pending = tokio::spawn({
        let ch = ch.clone();
        async move { EchoClient::new(ch).unary(req()).await }
    });
    server.thaw().unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap()
        .is_ok());

    let mut health = HealthClient::new(ch.clone());
    let status = |r: Result<
        tonic::Response<tonic_health::pb::HealthCheckResponse>,
        tonic::Status,
    >| { r.map(|r| r.into_inner().status).unwrap_or(-1) };
    assert_eq!(
        status(health.check(HealthCheckRequest::default()).await),
        ServingStatus::Serving as i32
    );
    server.set_serving(false).unwrap();
    assert!(
        wait_until_async(
            || {
                let mut h = health.clone();
                async move {
                    status(h.check(HealthCheckRequest::default()).await)
                        == ServingStatus::NotServing as i32
                }
            },
            Duration::from_secs(5)
        )
        .await
    );
    server.set_serving(true).unwrap();

    server.kill().await.unwrap();
    assert!(!server.is_running());
    let dead = tokio::time::timeout(
        Duration::from_secs(5),
        EchoClient::new(ch.clone()).unary(req()),
    )
    .await;
    assert!(dead
        .expect("a call to a killed server must not hang")
        .is_err());

    server.restart().await.unwrap();
    assert_eq!(server.addr(), addr);
    assert!(wait_until_async(|| serves(&ch), Duration::from_secs(5)).await);

    server.terminate().await.unwrap();
    assert!(!server.is_running());
}

#[tokio::test]
async fn child_server_reports_a_busy_port() {
    let opts = ChildOptions::new().binary(env!("CARGO_BIN_EXE_echo-server"));
    let first = ChildServer::spawn(0, opts.clone()).await.unwrap();
    let started = tokio::time::timeout(
        Duration::from_secs(6),
        ChildServer::spawn(first.addr().port(), opts),
    )
    .await
    .expect("spawn on a busy port must not hang");
    assert!(started.is_err());
}
