//! TLS settings: PEM files for the CA, the client identity (mTLS) and a domain override.

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::error::ConfigError;

use super::load::Naming;

/// TLS settings (`[endpoint.tls]`). The default trusts the system (native) and webpki roots
/// and presents no client certificate. Certificate verification is always on.
///
/// `Debug` prints the certificate paths but never the key (not even its path).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) domain: Option<String>,
}

impl TlsConfig {
    /// System and webpki roots, no client identity.
    pub fn new() -> Self {
        Self::default()
    }
    /// Trust the CA certificate(s) in this PEM file (instead of the system and webpki roots).
    #[must_use]
    pub fn ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(path.into());
        self
    }
    /// Present the certificate (chain) in this PEM file (mTLS; needs [`client_key`](Self::client_key)).
    #[must_use]
    pub fn client_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(path.into());
        self
    }
    /// The private key (PEM) of the client certificate.
    #[must_use]
    pub fn client_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_key = Some(path.into());
        self
    }
    /// Verify the server as this name (and send it as SNI) instead of the endpoint's host.
    #[must_use]
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = Some(domain.to_owned());
        self
    }

    /// The CA file, if set.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }
    /// The client certificate file, if set.
    pub fn client_cert_path(&self) -> Option<&Path> {
        self.client_cert.as_deref()
    }
    /// The domain override, if set.
    pub fn domain_name(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Checks the files: readable, PEM, the right kind of item, certificate and key together.
    pub(crate) fn check(&self, naming: &Naming) -> Result<(), ConfigError> {
        self.check_at(naming, "endpoint.tls")
    }

    /// [`TlsConfig::check`] for the section at `section` (`discovery.etcd.tls`).
    pub(crate) fn check_at(&self, naming: &Naming, section: &str) -> Result<(), ConfigError> {
        let name = |key: &str| naming.name(&format!("{section}.{key}"));
        if let Some(path) = &self.ca_cert {
            read_certs(name("ca_cert"), path)?;
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                read_certs(name("client_cert"), cert)?;
                read_key(name("client_key"), key)?;
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    field: name("client_key"),
                    hint: format!(
                        "{} is set, and a client certificate needs its private key",
                        name("client_cert")
                    ),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    field: name("client_cert"),
                    hint: format!(
                        "{} is set, and a private key needs its certificate",
                        name("client_key")
                    ),
                })
            }
            (None, None) => {}
        }
        if let Some(domain) = &self.domain {
            if domain.trim().is_empty() || domain.contains(['/', ' ', ':']) {
                return Err(ConfigError::invalid(
                    name("domain"),
                    format!("{domain:?}"),
                    "must be a DNS name or IP address",
                ));
            }
        }
        Ok(())
    }

    /// The rustls client configuration (files are read again: they may have been rotated):
    /// TLS 1.2 and 1.3 with the ring provider, the roots, the client identity, and ALPN `h2`
    /// (gRPC runs over HTTP/2 only).
    pub(crate) fn to_rustls(&self) -> Result<ClientConfig, ConfigError> {
        let naming = Naming::Toml;
        let field = |name: &str| naming.name(name);
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::invalid(field("endpoint.tls"), "ring", e.to_string()))?;
        let mut roots = RootCertStore::empty();
        match &self.ca_cert {
            Some(path) => {
                let name = field("endpoint.tls.ca_cert");
                let pem = read_certs(name.clone(), path)?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| ConfigError::Pem {
                        field: name.clone(),
                        path: path.clone(),
                        reason: format!("is not valid PEM: {}", pem_reason(&e)),
                    })?;
                    roots.add(cert).map_err(|e| ConfigError::Pem {
                        field: name.clone(),
                        path: path.clone(),
                        reason: format!("holds a certificate rustls cannot use as a root: {e}"),
                    })?;
                }
            }
            None => add_default_roots(&mut roots),
        }
        if roots.is_empty() {
            return Err(ConfigError::Missing {
                field: field("endpoint.tls.ca_cert"),
                hint: "no trusted root certificates: the system has none (or the \
                       tls-native-roots and tls-webpki-roots features are off); name a CA file"
                    .to_owned(),
            });
        }
        let builder = builder.with_root_certificates(roots);
        let mut config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let cert_field = field("endpoint.tls.client_cert");
                let key_field = field("endpoint.tls.client_key");
                let certs = read_certs(cert_field.clone(), cert)?;
                let certs = CertificateDer::pem_slice_iter(&certs)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError::Pem {
                        field: cert_field,
                        path: cert.clone(),
                        reason: format!("is not valid PEM: {}", pem_reason(&e)),
                    })?;
                let pem = read_key(key_field.clone(), key)?;
                let private =
                    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ConfigError::Pem {
                        field: key_field.clone(),
                        path: key.clone(),
                        reason: format!("is not a valid PEM private key: {}", pem_reason(&e)),
                    })?;
                builder
                    .with_client_auth_cert(certs, private)
                    .map_err(|e| ConfigError::Pem {
                        field: key_field,
                        path: key.clone(),
                        reason: format!("does not go with the client certificate: {e}"),
                    })?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The roots trusted by default: the system's (feature `tls-native-roots`) and Mozilla's
/// through webpki-roots (feature `tls-webpki-roots`).
fn add_default_roots(roots: &mut RootCertStore) {
    #[cfg(feature = "tls-native-roots")]
    {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::debug!(errors = ?found.errors, "some system root certificates could not be loaded");
        }
        roots.add_parsable_certificates(found.certs);
    }
    #[cfg(feature = "tls-webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let _ = roots;
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field(
                "client_key",
                &self.client_key.as_ref().map(|_| "<redacted>"),
            )
            .field("domain", &self.domain)
            .finish()
    }
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Io {
        field: field.to_owned(),
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a PEM file holding at least one certificate; returns the file's bytes.
fn read_certs(field: String, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = read(&field, path)?;
    let pem_error = |reason: String| ConfigError::Pem {
        field: field.clone(),
        path: path.to_path_buf(),
        reason,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        cert.map_err(|e| pem_error(format!("is not valid PEM: {}", pem_reason(&e))))?;
        count += 1;
    }
    if count == 0 {
        return Err(pem_error("contains no PEM certificate".into()));
    }
    Ok(bytes)
}

/// Reads a PEM file holding a private key; returns the file's bytes (never logged).
fn read_key(field: String, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = read(&field, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| ConfigError::Pem {
        field,
        path: path.to_path_buf(),
        reason: match e {
            pem::Error::NoItemsFound => "contains no PEM private key".into(),
            other => format!("is not a valid PEM private key: {}", pem_reason(&other)),
        },
    })?;
    Ok(bytes)
}

/// The parser's reason, without echoing file contents.
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "bad base64".into(),
        pem::Error::Io(e) => e.to_string(),
        pem::Error::NoItemsFound => "no items found".into(),
        _ => "unreadable PEM".into(),
    }
}
