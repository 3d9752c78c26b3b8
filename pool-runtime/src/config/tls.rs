//! TLS settings: PEM files for the CA, the client identity (mTLS) and a domain override.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

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
        if let Some(path) = &self.ca_cert {
            read_certs(naming.name("endpoint.tls.ca_cert"), path)?;
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                read_certs(naming.name("endpoint.tls.client_cert"), cert)?;
                read_key(naming.name("endpoint.tls.client_key"), key)?;
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    field: naming.name("endpoint.tls.client_key"),
                    hint: format!(
                        "{} is set, and a client certificate needs its private key",
                        naming.name("endpoint.tls.client_cert")
                    ),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    field: naming.name("endpoint.tls.client_cert"),
                    hint: format!(
                        "{} is set, and a private key needs its certificate",
                        naming.name("endpoint.tls.client_key")
                    ),
                })
            }
            (None, None) => {}
        }
        if let Some(domain) = &self.domain {
            if domain.trim().is_empty() || domain.contains(['/', ' ', ':']) {
                return Err(ConfigError::invalid(
                    naming.name("endpoint.tls.domain"),
                    format!("{domain:?}"),
                    "must be a DNS name or IP address",
                ));
            }
        }
        Ok(())
    }

    /// The tonic TLS configuration (files are read again: they may have been rotated).
    pub(crate) fn to_tonic(&self) -> Result<ClientTlsConfig, ConfigError> {
        let naming = Naming::Toml;
        let mut tls = ClientTlsConfig::new();
        match &self.ca_cert {
            Some(path) => {
                let pem = read_certs(naming.name("endpoint.tls.ca_cert"), path)?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            None => tls = tls.with_enabled_roots(),
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            let cert = read_certs(naming.name("endpoint.tls.client_cert"), cert)?;
            let key = read_key(naming.name("endpoint.tls.client_key"), key)?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        Ok(tls)
    }
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
