//! A client's TLS: whom it trusts, and the certificate it presents.

use super::{MaybeTls, PemSource, TlsError, provider};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// A client's TLS settings: it verifies every server's certificate against
/// the CA given (else the platform's trust store) and the host it dials,
/// and presents a certificate of its own if given one.
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Loads the settings: `ca` to trust (`None`: the platform's trust
    /// store), and a client certificate with its key, both or neither.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, a certificate without its key
    /// (or the reverse), or no trusted CA at all.
    pub fn load(
        ca: Option<&PemSource>,
        cert: Option<&PemSource>,
        key: Option<&PemSource>,
    ) -> Result<Self, TlsError> {
        let roots = match ca {
            Some(ca) => ca.roots()?,
            None => platform_roots()?,
        };
        let config_err = |e: rustls::Error| TlsError::Config(e.to_string());
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_root_certificates(roots);
        let config = match (cert, key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(cert.certificates("certificate")?, key.private_key()?)
                .map_err(config_err)?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Config(
                    "--tls-cert and --tls-key go together".to_owned(),
                ));
            }
        };
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Runs the client side of a TLS handshake with `host` (a DNS name or
    /// an IP address, which the server's certificate must name).
    ///
    /// # Errors
    /// [`TlsError::ServerName`], [`TlsError::Handshake`].
    pub async fn connect<S>(&self, stream: S, host: &str) -> Result<MaybeTls<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // An IPv6 literal comes bracketed from HOST:PORT.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|_| TlsError::ServerName(host.to_owned()))?;
        match self.connector.connect(name, stream).await {
            Ok(tls) => Ok(MaybeTls::Tls(Box::new(tokio_rustls::TlsStream::Client(
                tls,
            )))),
            Err(e) => Err(TlsError::handshake(host, &e)),
        }
    }
}

/// The platform's trust store (the system's CA certificates).
fn platform_roots() -> Result<rustls::RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::Config(format!(
            "no CA certificate in the platform's trust store{}: pass --tls-ca",
            found
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )));
    }
    Ok(roots)
}
