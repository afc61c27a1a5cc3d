//! A connection that is plain or TLS: one type for the framing code.

use super::node_name;
use distlock_core::ids::NodeId;
use rustls_pki_types::{CertificateDer, ServerName};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream, plain or inside a TLS session.
#[derive(Debug)]
pub enum MaybeTls<S> {
    /// No TLS: the bytes go as they are.
    Plain(S),
    /// A TLS session over the stream (boxed: a session is large).
    Tls(Box<tokio_rustls::TlsStream<S>>),
}

impl<S> MaybeTls<S> {
    /// Whether the connection runs TLS.
    #[must_use]
    pub const fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// The certificate the other end presented and the handshake verified
    /// (its end-entity certificate), if any.
    #[must_use]
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(tls) => tls.get_ref().1.peer_certificates()?.first(),
        }
    }

    /// The identity of the other end's verified certificate
    /// ([`certificate_identity`]). `None` without TLS or without a
    /// certificate.
    #[must_use]
    pub fn peer_identity(&self) -> Option<String> {
        certificate_identity(self.peer_certificate()?)
    }

    /// Whether the other end's verified certificate names node `id`
    /// ([`certifies_node`]). Always false without TLS or a certificate.
    #[must_use]
    pub fn certifies_node(&self, id: NodeId) -> bool {
        self.peer_certificate()
            .is_some_and(|der| certifies_node(der, id))
    }
}

/// The identity a (verified) certificate gives its holder: its first DNS
/// subjectAltName, if it has one.
#[must_use]
pub fn certificate_identity(der: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    cert.valid_dns_names().next().map(str::to_owned)
}

/// Whether a (verified) certificate names node `id`: it carries the DNS
/// subjectAltName [`node_name`]`(id)`.
#[must_use]
pub fn certifies_node(der: &CertificateDer<'_>, id: NodeId) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(node_name(id)) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}
