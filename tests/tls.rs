//! TLS and mTLS with certificates made at test time (`rcgen`): a custom CA works, mTLS works,
//! and every misconfiguration fails quickly with an error that names the cause (no hang).
//! Verification is always on; there is no "accept any certificate" path.
mod support;

use std::time::Duration;

use grpc_pool::{Pool, PoolConfig, PoolConfigBuilder, PoolError, RetryConfig, TlsConfig};
use grpc_pool_testkit::{EchoServer, EchoServerBuilder, TestCerts};
use support::{chain, req, unary};

/// A bound on every start and call here: far above any handshake, so reaching it means a hang.
const GUARD: Duration = Duration::from_secs(5);

fn config(name: &str, uri: &str, tls: Option<TlsConfig>) -> PoolConfig {
    let mut b = PoolConfig::builder()
        .name(name)
        .endpoint(uri)
        .size(2)
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(2))
        .checkout_timeout(Duration::from_millis(500))
        .retry(RetryConfig::new(
            2,
            Duration::from_millis(20),
            Duration::from_millis(50),
        ));
    if let Some(tls) = tls {
        b = b.tls(tls);
    }
    b.build().unwrap()
}

fn https(server: &EchoServer) -> String {
    format!("https://{}", server.addr())
}

/// Starts the pool and makes one call: the error of whichever fails first (as text with its
/// causes), or `None` if both succeed. Panics if either hangs.
async fn start_and_call(config: PoolConfig) -> Result<Pool, String> {
    let pool = match tokio::time::timeout(GUARD, Pool::start(config))
        .await
        .expect("Pool::start hung")
    {
        Ok(pool) => pool,
        Err(e) => return Err(format!("start: {}", chain(&e))),
    };
    match tokio::time::timeout(GUARD, unary(&pool, req("tls")))
        .await
        .expect("call hung")
    {
        Ok(reply) => {
            assert_eq!(reply.message, "tls");
            Ok(pool)
        }
        Err(status) => {
            let msg = format!("call: {}", chain(&status));
            pool.shutdown().await;
            Err(msg)
        }
    }
}

/// Pool::start of pool `name` must fail with `PoolError::Connect` naming the pool; returns the
/// error with its causes.
async fn connect_error(name: &str, uri: &str, tls: Option<TlsConfig>) -> String {
    let started = tokio::time::timeout(GUARD, Pool::start(config(name, uri, tls)))
        .await
        .expect("Pool::start hung");
    let err = match started {
        Ok(pool) => {
            pool.shutdown().await;
            panic!("Pool::start of {name} must fail");
        }
        Err(err) => err,
    };
    let text = chain(&err);
    assert!(
        matches!(err, PoolError::Connect { .. }),
        "expected PoolError::Connect, got {err:?}"
    );
    assert!(
        text.contains(name),
        "the error must name the pool {name}: {text}"
    );
    text
}

fn ca(certs: &TestCerts) -> TlsConfig {
    TlsConfig::default().ca_cert(&certs.ca.cert)
}

/// A TLS echo server with the test CA's server certificate and `builder`'s other settings.
async fn tls_server(certs: &TestCerts, builder: EchoServerBuilder) -> EchoServer {
    builder
        .tls(certs.server_tls().unwrap())
        .start()
        .await
        .unwrap()
}

/// `size` channels over TLS to `server`, trusting the test CA.
fn tls_pool(name: &str, server: &EchoServer, certs: &TestCerts, size: usize) -> PoolConfigBuilder {
    PoolConfig::builder()
        .name(name)
        .endpoint(&https(server))
        .size(size)
        .tls(ca(certs))
}

/// Starts a pool that must start, bounded by [`GUARD`].
async fn started(config: PoolConfig) -> Pool {
    tokio::time::timeout(GUARD, Pool::start(config))
        .await
        .expect("start hung")
        .unwrap()
}

#[tokio::test]
async fn tls_with_a_custom_ca_serves_calls() {
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(&certs, EchoServer::builder()).await;
    // The certificate's SANs hold 127.0.0.1 and localhost: both names verify.
    let pool = start_and_call(config("tls-custom-ca", &https(&server), Some(ca(&certs))))
        .await
        .unwrap();
    pool.shutdown().await;
    let by_name = ca(&certs).domain("localhost");
    let pool = start_and_call(config(
        "tls-custom-ca-domain",
        &https(&server),
        Some(by_name),
    ))
    .await
    .unwrap();
    pool.shutdown().await;
    assert_eq!(server.stats().completed(), 2);
}

#[tokio::test]
async fn mtls_with_a_client_certificate_serves_calls() {
    let certs = TestCerts::generate().unwrap();
    let server = EchoServer::builder()
        .tls(certs.server_mtls().unwrap())
        .start()
        .await
        .unwrap();
    let tls = ca(&certs)
        .client_cert(&certs.client.cert)
        .client_key(&certs.client.key);
    let pool = start_and_call(config("tls-mtls", &https(&server), Some(tls)))
        .await
        .unwrap();
    pool.shutdown().await;
}

#[tokio::test]
async fn wrong_ca_fails_with_a_connect_error_naming_the_cause() {
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(&certs, EchoServer::builder()).await;
    let tls = TlsConfig::default().ca_cert(&certs.other_ca.cert);
    let text = connect_error("tls-wrong-ca", &https(&server), Some(tls)).await;
    println!("wrong CA: {text}");
    let lower = text.to_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("issuer"),
        "cause not named: {text}"
    );
}

#[tokio::test]
async fn default_tls_verifies_against_public_roots_and_rejects_a_private_ca() {
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(&certs, EchoServer::builder()).await;
    // No CA given: the default roots do not know the test CA, so verification fails.
    let text = connect_error(
        "tls-default-roots",
        &https(&server),
        Some(TlsConfig::default()),
    )
    .await;
    println!("default roots: {text}");
    assert!(
        text.to_lowercase().contains("certificate") || text.to_lowercase().contains("issuer"),
        "{text}"
    );
}

#[tokio::test]
async fn mtls_server_without_a_client_certificate_fails() {
    let certs = TestCerts::generate().unwrap();
    let server = EchoServer::builder()
        .tls(certs.server_mtls().unwrap())
        .start()
        .await
        .unwrap();
    // TLS 1.3 finishes the client's handshake before the server checks the client; the
    // start probe (a first HTTP/2 round trip) sees the server's alert.
    let text = connect_error("tls-no-client-cert", &https(&server), Some(ca(&certs))).await;
    println!("no client cert: {text}");
    assert!(
        text.contains("CertificateRequired"),
        "cause not named: {text}"
    );
    assert_eq!(server.stats().calls(), 0);
}

#[tokio::test]
async fn client_certificate_from_another_ca_fails() {
    let certs = TestCerts::generate().unwrap();
    let server = EchoServer::builder()
        .tls(certs.server_mtls().unwrap())
        .start()
        .await
        .unwrap();
    let tls = ca(&certs)
        .client_cert(&certs.other_client.cert)
        .client_key(&certs.other_client.key);
    let text = connect_error("tls-foreign-client", &https(&server), Some(tls)).await;
    println!("foreign client cert: {text}");
    assert!(text.contains("UnknownCA"), "cause not named: {text}");
    assert_eq!(server.stats().calls(), 0);
}

#[tokio::test]
async fn expired_server_certificate_fails() {
    let certs = TestCerts::generate().unwrap();
    let server = EchoServer::builder()
        .tls(certs.expired_server_tls().unwrap())
        .start()
        .await
        .unwrap();
    let text = connect_error("tls-expired", &https(&server), Some(ca(&certs))).await;
    println!("expired: {text}");
    assert!(
        text.to_lowercase().contains("expired"),
        "cause not named: {text}"
    );
}

#[tokio::test]
async fn plaintext_pool_to_a_tls_server_fails_clearly() {
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(&certs, EchoServer::builder()).await;
    let uri = format!("http://{}", server.addr());
    let text = connect_error("tls-plain-to-tls", &uri, None).await;
    println!("plaintext to TLS: {text}");
    assert_eq!(server.stats().calls(), 0);
}

#[tokio::test]
async fn tls_pool_to_a_plaintext_server_fails_clearly() {
    let certs = TestCerts::generate().unwrap();
    let server = EchoServer::start().await.unwrap();
    let uri = format!("https://{}", server.addr());
    let text = connect_error("tls-tls-to-plain", &uri, Some(ca(&certs))).await;
    println!("TLS to plaintext: {text}");
    assert!(
        text.contains("InvalidContentType"),
        "cause not named: {text}"
    );
    assert_eq!(server.stats().calls(), 0);
}

#[tokio::test]
async fn missing_or_garbage_pem_files_are_errors_not_panics() {
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(&certs, EchoServer::builder()).await;
    let missing = certs.dir().join("no-such-ca.pem");
    let garbage = certs.dir().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    for (case, path) in [("tls-missing-ca", &missing), ("tls-garbage-ca", &garbage)] {
        let tls = TlsConfig::default().ca_cert(path);
        let built = PoolConfig::builder()
            .name(case)
            .endpoint(&https(&server))
            .tls(tls)
            .build();
        let text = match built {
            Err(e) => e.to_string(),
            Ok(config) => {
                let started = tokio::time::timeout(GUARD, Pool::start(config))
                    .await
                    .expect("start hung");
                match started {
                    Err(e) => chain(&e),
                    Ok(_) => panic!("{case}: a bad CA file must fail"),
                }
            }
        };
        println!("{case}: {text}");
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            text.contains(&file),
            "the error must name the file {file}: {text}"
        );
    }
}

/// There is no switch that turns verification off: the runtime's sources never build a
/// verifier that accepts any certificate.
#[test]
fn runtime_has_no_accept_any_certificate_path() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pool-runtime/src");
    let mut files = vec![src];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_some_and(|e| e == "rs") {
            scanned += 1;
            let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
            for needle in [
                "dangerous",
                "servercertverifier",
                "accept_invalid",
                "insecure",
                "no_verify",
            ] {
                assert!(
                    !text.contains(needle),
                    "{} mentions `{needle}`",
                    path.display()
                );
            }
        }
    }
    assert!(scanned > 0);
}

/// Short-lived TLS connections under a stream of calls: a call that races a GOAWAY (checked
/// out just before the frame arrived) is refused by the connection going away; such a call
/// was never sent, and a server-streaming call is retried on the replacement like a unary
/// call: none fails while a long stream holds the old connection open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_refused_after_a_goaway_over_tls_are_retried() {
    use support::echo::PooledEchoClient;
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(
        &certs,
        EchoServer::builder().max_connection_age(Duration::from_millis(300)),
    )
    .await;
    // One channel: every call meets the connection that is going away.
    let config = tls_pool("tls-goaway-streams", &server, &certs, 1)
        .connect_timeout(Duration::from_millis(500))
        .checkout_timeout(Duration::from_secs(2))
        .retry(RetryConfig::new(
            2,
            Duration::from_millis(20),
            Duration::from_millis(50),
        ))
        .build()
        .unwrap();
    let pool = started(config).await;
    let client = PooledEchoClient::new(pool.clone());
    // 1.5 s of messages: holds the first connection open past its GOAWAY at ~300 ms.
    let long = support::spawn_server_stream(&pool, 30, 50);
    let (mut ok, mut failed) = (0, Vec::new());
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        let call = async {
            let mut s = client
                .server_stream(support::stream_req(2, 0))
                .await?
                .into_inner();
            while s.message().await?.is_some() {}
            Ok::<_, tonic::Status>(())
        };
        match tokio::time::timeout(GUARD, call)
            .await
            .expect("stream hung")
        {
            Ok(()) => ok += 1,
            Err(status) => failed.push(chain(&status)),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let long = long.await.unwrap();
    let status = pool.status();
    assert_eq!(long.map_err(|e| e.to_string()), Ok(30));
    assert!(status.reconnects >= 2, "no GOAWAY\n{status}");
    assert!(ok > 20, "{ok} streams");
    assert!(failed.is_empty(), "streams failed: {failed:?}");
    pool.shutdown().await;
}

/// The frame scanner reads the decrypted frames of a TLS connection: a GOAWAY on a
/// connection that a long stream keeps open, with no other call to bounce off it, makes the
/// slot replace the connection at once (about 300 ms in, when the server ages it out), not
/// when the long stream ends 3 s in and the server closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_over_tls_is_noticed_while_a_long_stream_holds_the_connection() {
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(
        &certs,
        EchoServer::builder().max_connection_age(Duration::from_millis(300)),
    )
    .await;
    let config = tls_pool("tls-goaway-noticed", &server, &certs, 1)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let pool = started(config).await;
    let long = support::spawn_server_stream(&pool, 60, 50);
    let started = tokio::time::Instant::now();
    let noticed = grpc_pool_testkit::wait_until(
        || pool.status().reconnects >= 1,
        Duration::from_millis(1500),
    )
    .await;
    let after = started.elapsed();
    let status = pool.status();
    grpc_pool_testkit::report(format!(
        "scenario=tls_goaway_noticed_under_a_long_stream noticed={noticed} after_ms={} failures={}",
        after.as_millis(),
        status.failures
    ));
    assert!(noticed, "the GOAWAY over TLS was not noticed\n{status}");
    assert_eq!(status.failures, 0, "no call may be refused by it\n{status}");
    let long = long.await.unwrap();
    assert_eq!(long.map_err(|e| e.to_string()), Ok(60));
    pool.shutdown().await;
}

/// The server's `SETTINGS_MAX_CONCURRENT_STREAMS`, read through TLS, caps each connection:
/// with room for one call per connection, a third call waits in the pool's line for the
/// first connection to free up (instead of queueing inside a full connection), and the
/// server never has to refuse a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_stream_limit_caps_each_tls_connection() {
    use support::echo::PooledEchoClient;
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(
        &certs,
        EchoServer::builder()
            .max_concurrent_streams(1)
            .delay(Duration::from_millis(400)),
    )
    .await;
    let config = tls_pool("tls-stream-limit", &server, &certs, 2)
        .connect_timeout(Duration::from_secs(2))
        .checkout_timeout(Duration::from_secs(4))
        .ping_interval(None)
        .build()
        .unwrap();
    let pool = started(config).await;
    let limits: Vec<_> = pool
        .status()
        .channels
        .iter()
        .map(|c| c.stream_limit)
        .collect();
    assert_eq!(limits, [Some(1), Some(1)], "SETTINGS not read over TLS");
    let client = PooledEchoClient::new(pool.clone());
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.unary(req(format!("call {i}"))).await })
        })
        .collect();
    // While the first two run (400 ms each), no connection takes a second call.
    let started = tokio::time::Instant::now();
    let mut most = 0;
    while started.elapsed() < Duration::from_millis(300) {
        let status = pool.status();
        most = most.max(
            status
                .channels
                .iter()
                .map(|c| c.in_flight)
                .max()
                .unwrap_or(0),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for call in calls {
        let reply = tokio::time::timeout(GUARD, call).await.expect("call hung");
        reply.unwrap().expect("call ok");
    }
    let status = pool.status();
    assert_eq!(
        most, 1,
        "a connection took a call past the server's limit\n{status}"
    );
    assert_eq!(status.refused_streams, 0, "{status}");
    assert_eq!(status.failures, 0, "{status}");
    assert_eq!(server.stats().max_concurrent_per_connection(), 1);
    pool.shutdown().await;
}

/// With a TLS domain override the server is addressed as that name (`:authority`), as grpc-go
/// and gRPC C-core do: the name it is verified as is the name it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_domain_override_is_the_authority() {
    let certs = TestCerts::generate().unwrap();
    let server = tls_server(&certs, EchoServer::builder()).await;
    let pool = start_and_call(config(
        "tls-authority",
        &https(&server),
        Some(ca(&certs).domain("localhost")),
    ))
    .await
    .expect("TLS verified as localhost");
    server
        .stats()
        .record_header(grpc_pool_testkit::AUTHORITY_HEADER);
    unary(&pool, req("who")).await.unwrap();
    let seen: Vec<String> = server
        .stats()
        .headers()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(seen, ["localhost"]);
    pool.shutdown().await;
}
