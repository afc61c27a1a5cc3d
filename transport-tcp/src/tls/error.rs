//! Why a TLS configuration cannot be loaded or a TLS session opened.

use std::io;

/// A TLS configuration that cannot be used, or a TLS handshake that failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        /// Which file: certificate, key or CA.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A file holds no usable PEM object of the kind expected.
    #[error("the {what} file {path} holds no {expected}: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// The file.
        path: String,
        /// What it should hold.
        expected: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("invalid TLS settings: {0}")]
    Config(String),
    /// The TLS handshake failed (an untrusted certificate, a name that does
    /// not match, a server that does not speak TLS, ...).
    #[error("TLS handshake with {with} failed: {reason}")]
    Handshake {
        /// The other end.
        with: String,
        /// Why, with a hint at the fix when there is one.
        reason: String,
    },
    /// A name that cannot be a TLS server name.
    #[error("{0:?} cannot be a TLS server name")]
    ServerName(String),
}

impl TlsError {
    /// The handshake failure `e` with `with`, in words an operator can act
    /// on: an unknown issuer means the CA is missing (`--tls-ca`), a
    /// name mismatch means the certificate does not name the address
    /// dialled.
    pub(crate) fn handshake(with: &str, e: &io::Error) -> Self {
        let inner = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .cloned();
        let reason = match inner {
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
                "the server's certificate is not signed by a trusted CA (UnknownIssuer): \
                 pass --tls-ca with the CA that signed it"
                    .to_owned()
            }
            Some(rustls::Error::InvalidCertificate(c)) => format!(
                "the other end's certificate was refused: {c:?} \
                 (check it names the host dialled, and that it has not expired)"
            ),
            Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
                "the other end does not speak TLS (is TLS on for this port?)".to_owned()
            }
            Some(other) => other.to_string(),
            None if e.kind() == io::ErrorKind::UnexpectedEof => {
                "the connection closed during the TLS handshake (does the other end speak TLS, \
                 and does it want a client certificate, --tls-cert and --tls-key?)"
                    .to_owned()
            }
            None => e.to_string(),
        };
        Self::Handshake {
            with: with.to_owned(),
            reason,
        }
    }
}
