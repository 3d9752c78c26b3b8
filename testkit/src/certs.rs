//! Test certificates made at run time with `rcgen`, written as PEM files to a temporary
//! directory that lives as long as the [`TestCerts`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Common name of the test CA.
pub const CA_NAME: &str = "grpc-pool test CA";
/// Common name of the second, unrelated CA (for "wrong CA" tests).
pub const OTHER_CA_NAME: &str = "grpc-pool unrelated test CA";
/// Common name of the server certificate (SANs: `127.0.0.1`, `localhost`).
pub const SERVER_NAME: &str = "grpc-pool test server";
/// Common name of the client certificate.
pub const CLIENT_NAME: &str = "grpc-pool test client";
/// Common name of the expired server certificate.
pub const EXPIRED_SERVER_NAME: &str = "grpc-pool expired test server";
/// Common name of the client certificate issued by the unrelated CA.
pub const OTHER_CLIENT_NAME: &str = "grpc-pool client of the unrelated CA";

/// A certificate and its private key as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PKCS#8 PEM).
    pub key: PathBuf,
}

impl CertFiles {
    /// The certificate and key as a tonic [`Identity`].
    pub fn identity(&self) -> io::Result<Identity> {
        Ok(Identity::from_pem(
            fs::read(&self.cert)?,
            fs::read(&self.key)?,
        ))
    }
}

/// A CA, a server certificate, a client certificate, an expired server certificate and an
/// unrelated CA with its own client, all in one temporary directory.
///
/// Every certificate has its own CommonName (see the constants of this module) so TLS errors
/// name the one they are about.
#[derive(Debug)]
pub struct TestCerts {
    dir: tempfile::TempDir,
    /// The test CA (`ca.pem`, `ca.key`).
    pub ca: CertFiles,
    /// Server certificate signed by the CA, SANs `127.0.0.1` and `localhost`.
    pub server: CertFiles,
    /// Client certificate signed by the CA (for mTLS).
    pub client: CertFiles,
    /// Server certificate signed by the CA, valid 2000-01-01 .. 2001-01-01.
    pub expired_server: CertFiles,
    /// A CA that signed nothing the servers use.
    pub other_ca: CertFiles,
    /// Client certificate signed by the unrelated CA.
    pub other_client: CertFiles,
}

fn err(e: rcgen::Error) -> io::Error {
    io::Error::other(e)
}

fn named(params: &mut CertificateParams, cn: &str) {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "grpc-pool tests");
    params.distinguished_name = dn;
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    named(&mut params, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> io::Result<CertificateParams> {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .map_err(err)?;
    named(&mut params, cn);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    Ok(params)
}

impl TestCerts {
    /// Generates every certificate and writes them to a new temporary directory.
    pub fn generate() -> io::Result<TestCerts> {
        let dir = tempfile::Builder::new()
            .prefix("grpc-pool-certs-")
            .tempdir()?;
        let write = |name: &str, cert: &str, key: &KeyPair| -> io::Result<CertFiles> {
            let files = CertFiles {
                cert: dir.path().join(format!("{name}.pem")),
                key: dir.path().join(format!("{name}.key")),
            };
            fs::write(&files.cert, cert)?;
            fs::write(&files.key, key.serialize_pem())?;
            Ok(files)
        };

        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_p = ca_params(CA_NAME);
        let ca_cert = ca_p.self_signed(&ca_key).map_err(err)?;
        let ca = write("ca", &ca_cert.pem(), &ca_key)?;
        let issuer = Issuer::new(ca_p, ca_key);

        let sans = ["127.0.0.1", "localhost"];
        let server_key = KeyPair::generate().map_err(err)?;
        let server_cert = leaf_params(SERVER_NAME, &sans, ExtendedKeyUsagePurpose::ServerAuth)?
            .signed_by(&server_key, &issuer)
            .map_err(err)?;
        let server = write("server", &server_cert.pem(), &server_key)?;

        let client_key = KeyPair::generate().map_err(err)?;
        let client_cert = leaf_params(CLIENT_NAME, &[], ExtendedKeyUsagePurpose::ClientAuth)?
            .signed_by(&client_key, &issuer)
            .map_err(err)?;
        let client = write("client", &client_cert.pem(), &client_key)?;

        let expired_key = KeyPair::generate().map_err(err)?;
        let mut expired_params = leaf_params(
            EXPIRED_SERVER_NAME,
            &sans,
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        expired_params.not_before = date_time_ymd(2000, 1, 1);
        expired_params.not_after = date_time_ymd(2001, 1, 1);
        let expired_cert = expired_params
            .signed_by(&expired_key, &issuer)
            .map_err(err)?;
        let expired_server = write("expired-server", &expired_cert.pem(), &expired_key)?;

        let other_key = KeyPair::generate().map_err(err)?;
        let other_params = ca_params(OTHER_CA_NAME);
        let other_cert = other_params.self_signed(&other_key).map_err(err)?;
        let other_ca = write("other-ca", &other_cert.pem(), &other_key)?;
        let other_issuer = Issuer::new(other_params, other_key);

        let other_client_key = KeyPair::generate().map_err(err)?;
        let other_client_cert =
            leaf_params(OTHER_CLIENT_NAME, &[], ExtendedKeyUsagePurpose::ClientAuth)?
                .signed_by(&other_client_key, &other_issuer)
                .map_err(err)?;
        let other_client = write("other-client", &other_client_cert.pem(), &other_client_key)?;

        Ok(TestCerts {
            dir,
            ca,
            server,
            client,
            expired_server,
            other_ca,
            other_client,
        })
    }

    /// The directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Server TLS with the valid server certificate; client certificates not requested.
    pub fn server_tls(&self) -> io::Result<ServerTlsConfig> {
        Ok(ServerTlsConfig::new().identity(self.server.identity()?))
    }

    /// Server TLS that requires a client certificate signed by the test CA (mTLS).
    pub fn server_mtls(&self) -> io::Result<ServerTlsConfig> {
        Ok(self
            .server_tls()?
            .client_ca_root(Certificate::from_pem(fs::read(&self.ca.cert)?))
            .client_auth_optional(false))
    }

    /// Server TLS presenting the expired server certificate.
    pub fn expired_server_tls(&self) -> io::Result<ServerTlsConfig> {
        Ok(ServerTlsConfig::new().identity(self.expired_server.identity()?))
    }
}
