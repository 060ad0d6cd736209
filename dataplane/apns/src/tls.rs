//! The rustls client configuration: Mozilla roots plus any extra CA, ALPN `h2` only, the
//! `ring` provider. Certificates are verified against the APNs host name, end to end
//! through any proxy tunnel.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to add a trusted root: {0}")]
    Root(#[source] rustls::Error),
    #[error("failed to set up TLS: {0}")]
    Setup(#[source] rustls::Error),
}

/// A client config for APNs: TLS 1.2+, `h2` via ALPN.
pub fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TlsError> {
    with_alpn(extra_roots, &[b"h2"])
}

/// A client config for an `https://` proxy: the same roots, HTTP/1.1 (CONNECT) via ALPN.
pub fn proxy_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TlsError> {
    with_alpn(extra_roots, &[b"http/1.1"])
}

/// A client config for the other push vendors' direct clients: the same roots and
/// provider, `h2` preferred and HTTP/1.1 accepted via ALPN (not every vendor speaks h2).
pub fn direct_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TlsError> {
    with_alpn(extra_roots, &[b"h2", b"http/1.1"])
}

fn with_alpn(
    extra_roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(TlsError::Root)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
