//! The fault proxy and the test certificates do what the fault matrix relies on.
use std::time::Duration;

use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::EchoRequest;
use grpc_pool_testkit::{wait_until, EchoServer, FaultMode, FaultProxy, TestCerts};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

fn req(msg: &str) -> EchoRequest {
    EchoRequest {
        message: msg.into(),
        ..Default::default()
    }
}

async fn channel(uri: String) -> Channel {
    Endpoint::from_shared(uri)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn proxy_passes_holds_delays_and_resets() {
    let server = EchoServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let mut client = EchoClient::new(channel(proxy.uri()).await);
    assert_eq!(client.unary(req("a")).await.unwrap().get_ref().message, "a");
    assert_eq!(proxy.connections_accepted(), 1);
    assert_eq!(proxy.connections_active(), 1);

    // Blackhole: the connection stays open, the call does not complete...
    proxy.set_mode(FaultMode::Blackhole);
    let mut held = client.clone();
    let call = tokio::spawn(async move { held.unary(req("held")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!call.is_finished(), "a blackholed call must not complete");
    assert_eq!(proxy.connections_active(), 1);
    // ... and completes once traffic flows again (the held bytes are delivered).
    proxy.set_mode(FaultMode::PassThrough);
    let reply = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.get_ref().message, "held");

    proxy.set_mode(FaultMode::Latency(Duration::from_millis(30)));
    let started = std::time::Instant::now();
    client.unary(req("slow")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30));
    proxy.set_mode(FaultMode::PassThrough);

    // Reset: open connections are cut, new ones refused.
    proxy.set_mode(FaultMode::Reset);
    assert!(wait_until(|| proxy.connections_active() == 0, Duration::from_secs(5)).await);
    assert_eq!(proxy.connections_reset(), 1);
    let err = tokio::time::timeout(Duration::from_secs(5), client.unary(req("x")))
        .await
        .unwrap();
    assert!(err.is_err());
    let refused = tokio::net::TcpStream::connect(proxy.addr()).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    // Back to pass-through: the same listening port accepts again; tonic reconnects.
    proxy.set_mode(FaultMode::PassThrough);
    let mut ok = false;
    for _ in 0..200 {
        if client.unary(req("again")).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "proxy must accept again after Reset");
    assert!(proxy.connections_accepted() >= 2);

    // cut_connections resets open connections but keeps accepting.
    let before = proxy.connections_reset();
    proxy.cut_connections();
    assert!(
        wait_until(
            || proxy.connections_reset() > before,
            Duration::from_secs(5)
        )
        .await
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn blackhole_holds_new_connections_too() {
    let server = EchoServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    proxy.set_mode(FaultMode::Blackhole);
    // TCP connects (the proxy accepts) but nothing comes back.
    let endpoint = Endpoint::from_shared(proxy.uri()).unwrap();
    let call = async move {
        EchoClient::new(endpoint.connect().await?)
            .unary(req("x"))
            .await
            .map_err(Into::into)
    };
    let r: Result<Result<_, Box<dyn std::error::Error + Send + Sync>>, _> =
        tokio::time::timeout(Duration::from_millis(300), call).await;
    assert!(r.is_err(), "a call through a blackhole must not complete");
    assert!(proxy.connections_accepted() >= 1);
    assert_eq!(server.stats().calls(), 0);
}

fn tls_endpoint(uri: String, ca: &std::path::Path) -> Endpoint {
    let ca = Certificate::from_pem(std::fs::read(ca).unwrap());
    Endpoint::from_shared(uri)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("localhost"),
        )
        .unwrap()
}

#[tokio::test]
async fn test_certs_serve_tls_and_mtls() {
    let certs = TestCerts::generate().unwrap();
    for f in [
        &certs.ca,
        &certs.server,
        &certs.client,
        &certs.expired_server,
        &certs.other_ca,
    ] {
        assert!(f.cert.is_file() && f.key.is_file());
        assert!(std::fs::read_to_string(&f.cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }

    let tls = EchoServer::builder()
        .tls(certs.server_tls().unwrap())
        .start()
        .await
        .unwrap();
    let uri = format!("https://{}", tls.addr());
    let ch = tls_endpoint(uri.clone(), &certs.ca.cert)
        .connect()
        .await
        .unwrap();
    EchoClient::new(ch).unary(req("tls")).await.unwrap();
    // The unrelated CA does not verify the server.
    assert!(tls_endpoint(uri, &certs.other_ca.cert)
        .connect()
        .await
        .is_err());

    let mtls = EchoServer::builder()
        .tls(certs.server_mtls().unwrap())
        .start()
        .await
        .unwrap();
    let uri = format!("https://{}", mtls.addr());
    let with_id = tls_endpoint(uri.clone(), &certs.ca.cert);
    let with_id = with_id
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(
                    std::fs::read(&certs.ca.cert).unwrap(),
                ))
                .domain_name("localhost")
                .identity(certs.client.identity().unwrap()),
        )
        .unwrap();
    EchoClient::new(with_id.connect().await.unwrap())
        .unary(req("mtls"))
        .await
        .unwrap();
    // Without a client certificate the server refuses (during the handshake or the first call).
    let without = tls_endpoint(uri, &certs.ca.cert).connect().await;
    if let Ok(ch) = without {
        assert!(EchoClient::new(ch).unary(req("no id")).await.is_err());
    }

    let expired = EchoServer::builder()
        .tls(certs.expired_server_tls().unwrap())
        .start()
        .await
        .unwrap();
    let uri = format!("https://{}", expired.addr());
    assert!(tls_endpoint(uri, &certs.ca.cert).connect().await.is_err());
}
