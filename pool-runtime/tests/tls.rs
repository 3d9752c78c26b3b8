//! TLS: custom CA, mTLS, and a wrong CA failing with `Connect` instead of hanging.

mod support;

use std::time::Duration;

use grpc_pool::{Pool, PoolConfig, PoolError, Preset, RetryConfig, TlsConfig};
use grpc_pool_testkit::{EchoServer, TestCerts};
use support::*;

fn tls_config(server: &EchoServer, tls: TlsConfig) -> PoolConfig {
    PoolConfig::builder()
        .endpoint(&format!("https://127.0.0.1:{}", server.addr().port()))
        .preset(Preset::Test)
        .size(2)
        .tls(tls)
        .retry(RetryConfig::new(
            2,
            Duration::from_millis(10),
            Duration::from_millis(20),
        ))
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_with_a_custom_ca_and_client_certificate_serves_calls() {
    let certs = TestCerts::generate().unwrap();
    let server = EchoServer::builder()
        .health(true)
        .tls(certs.server_mtls().unwrap())
        .start()
        .await
        .unwrap();
    let tls = TlsConfig::new()
        .ca_cert(&certs.ca.cert)
        .client_cert(&certs.client.cert)
        .client_key(&certs.client.key)
        .domain("localhost");
    let pool = Pool::start(tls_config(&server, tls))
        .await
        .expect("mTLS pool starts");
    unary(&pool, echo("secure", 0)).await.unwrap();
}

#[tokio::test]
async fn tls_with_the_wrong_ca_fails_start_with_connect_naming_the_cause() {
    let certs = TestCerts::generate().unwrap();
    let server = EchoServer::builder()
        .tls(certs.server_tls().unwrap())
        .start()
        .await
        .unwrap();
    let tls = TlsConfig::new()
        .ca_cert(&certs.other_ca.cert)
        .domain("localhost");
    let started = tokio::time::timeout(
        Duration::from_secs(5),
        Pool::start(tls_config(&server, tls)),
    )
    .await
    .expect("fails quickly, no hang");
    match started {
        Err(PoolError::Connect { source, .. }) => {
            let cause = source.message().to_lowercase();
            assert!(
                cause.contains("certificate") || cause.contains("issuer"),
                "{cause}"
            );
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}
