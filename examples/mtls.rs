//! Mutual TLS: a CA, a server certificate and a client certificate made at run time with
//! `rcgen` and written as PEM files to a temporary directory; a server that requires a client
//! certificate signed by that CA; a pool wired to it through `TlsConfig` (CA, client
//! certificate and key, the name to verify). A pool without a client certificate is refused.
//!
//! ```text
//! cargo run --example mtls
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use grpc_pool::{Pool, PoolConfig, RetryConfig, TlsConfig};
use grpc_pool_testkit::EchoServer;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// `grpcpool.test.v1` (testkit/proto/echo.proto): messages and the generated `PooledEchoClient`.
#[allow(missing_docs)] // echo.proto's messages carry no doc comments
pub mod echo {
    grpc_pool::include_proto!("grpcpool.test.v1");
}

use echo::{EchoRequest, PooledEchoClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Certificates, as PEM files in a temporary directory (removed when `dir` drops).
    let dir = tempfile::tempdir()?;
    let pem = make_certificates(dir.path())?;
    println!("certificates written to {}", dir.path().display());

    // 2. A TLS server that requires a client certificate signed by our CA.
    let server_tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            std::fs::read(&pem.server_cert)?,
            std::fs::read(&pem.server_key)?,
        ))
        .client_ca_root(Certificate::from_pem(std::fs::read(&pem.ca_cert)?));
    let server = EchoServer::builder().tls(server_tls).start().await?;
    let endpoint = format!("https://{}", server.addr());
    println!("mTLS server listening on {endpoint}");

    // 3. The pool: trust our CA, present the client certificate, verify the name `localhost`.
    let tls = TlsConfig::new()
        .ca_cert(&pem.ca_cert)
        .client_cert(&pem.client_cert)
        .client_key(&pem.client_key)
        .domain("localhost");
    let config = PoolConfig::builder()
        .name("mtls-echo")
        .endpoint(&endpoint)
        .size(2)
        .tls(tls)
        .build()?;
    let pool = Pool::start(config).await?;
    println!("pool `{}` started over mTLS", pool.name());

    // 4. A few calls through the generated client, then the status and a clean shutdown.
    let client = PooledEchoClient::new(pool.clone());
    for i in 0..5 {
        let message = format!("secret {i}");
        let reply = client
            .unary(EchoRequest {
                message,
                ..Default::default()
            })
            .await?
            .into_inner();
        println!(
            "  reply {:?} (client seen as {})",
            reply.message, reply.peer
        );
    }
    println!("\n{}", pool.status());
    pool.shutdown().await;

    // 5. The same server refuses a pool that trusts the CA but has no client certificate.
    let anonymous = PoolConfig::builder()
        .name("mtls-anonymous")
        .endpoint(&endpoint)
        .size(1)
        .tls(TlsConfig::new().ca_cert(&pem.ca_cert).domain("localhost"))
        .retry(RetryConfig::new(
            1,
            Duration::from_millis(50),
            Duration::from_millis(50),
        ))
        .build()?;
    match Pool::start(anonymous).await {
        Ok(pool) => {
            pool.shutdown().await;
            return Err("the server accepted a client without a certificate".into());
        }
        Err(err) => {
            // The error names the pool and the endpoint; its source, the TLS alert.
            println!("without a client certificate: {err}");
            let mut cause = std::error::Error::source(&err);
            while let Some(source) = cause {
                println!("  caused by: {source}");
                cause = source.source();
            }
        }
    }

    server.shutdown().await;
    println!("shut down cleanly");
    Ok(())
}

/// Where [`make_certificates`] wrote each PEM file.
struct PemFiles {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A self-signed CA, a server certificate for `localhost` / `127.0.0.1` and a client
/// certificate, both signed by the CA, written to `dir`.
fn make_certificates(dir: &Path) -> Result<PemFiles, Box<dyn std::error::Error>> {
    let write = |name: &str, pem: String| -> std::io::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, pem)?;
        Ok(path)
    };

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "grpc-pool example CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::default();
    client
        .distinguished_name
        .push(DnType::CommonName, "grpc-pool example client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer)?;

    Ok(PemFiles {
        ca_cert: write("ca.pem", ca_cert.pem())?,
        server_cert: write("server.pem", server_cert.pem())?,
        server_key: write("server.key", server_key.serialize_pem())?,
        client_cert: write("client.pem", client_cert.pem())?,
        client_key: write("client.key", client_key.serialize_pem())?,
    })
}
