//! TLS in the binary (issue 16): rustls with the ring provider, so a small lab serves HTTPS
//! without a reverse proxy.
//!
//! - [`load_pem`]: the certificate chain and private key from PEM files (`aliquot serve
//!   --tls-cert FILE --tls-key FILE`); every error names the file.
//! - [`self_signed`]: a certificate made at startup for the names given (`aliquot serve
//!   --tls-self-signed`, for the demo and trials); its PEM is returned so that a client can
//!   be told to trust it.
//!
//! TLS 1.2 and 1.3 only, rustls' safe default cipher suites; HTTP/1.1 is offered by ALPN.
//! When TLS is on, the listener ([`crate::conn`]) completes the handshake within the header
//! timeout, marks each request as having come over TLS (the web session cookie is then
//! `Secure`), and adds `Strict-Transport-Security` ([`HSTS`]) to every response.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The HSTS header sent with every response over TLS: one year, this host only (a lab's
/// server often shares its domain with hosts that are not HTTPS-only).
pub const HSTS: &str = "max-age=31536000";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the TLS certificate {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("reading the TLS private key {path}: {message}")]
    Key { path: String, message: String },
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(String),
    #[error("making a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// A rustls server configuration from a PEM certificate chain (leaf first) and a PEM private
/// key (PKCS #8, PKCS #1 or SEC1).
pub fn load_pem(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |message: String| TlsError::Certificate {
        path: cert.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    config(chain, key)
}

/// A self-signed certificate for `names` (DNS names or IP addresses) and the server
/// configuration using it. Returns the certificate as PEM (for the client to trust).
pub fn self_signed(names: &[String]) -> Result<(Arc<ServerConfig>, String), TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let pem = made.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = config(vec![made.cert.der().clone()], key)?;
    Ok((config, pem))
}

fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
