//! Certificates, keys and CAs as PEM, from files or from text.

use super::TlsError;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;

/// Where one PEM object (a certificate chain, a key or a CA bundle) comes
/// from. Files are read again on every reload; text never changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    /// A PEM file.
    File(PathBuf),
    /// PEM text (tests and the simulator, which have no files).
    Text(String),
}

impl PemSource {
    fn read(&self, what: &'static str) -> Result<Vec<u8>, TlsError> {
        match self {
            Self::File(path) => std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.display().to_string(),
                source,
            }),
            Self::Text(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Text(_) => "(inline PEM)".to_owned(),
        }
    }

    fn bad(&self, what: &'static str, expected: &'static str, reason: impl ToString) -> TlsError {
        TlsError::Pem {
            what,
            path: self.describe(),
            expected,
            reason: reason.to_string(),
        }
    }

    /// Every certificate in the source, in order (a chain: the end entity
    /// first).
    pub(crate) fn certificates(
        &self,
        what: &'static str,
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bytes = self.read(what)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.bad(what, "PEM certificate", e))?;
        if certs.is_empty() {
            return Err(self.bad(what, "PEM certificate", "no CERTIFICATE block"));
        }
        Ok(certs)
    }

    /// The private key in the source (PKCS#8, PKCS#1 or SEC1).
    pub(crate) fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let bytes = self.read("key")?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| self.bad("key", "PEM private key", e))
    }

    /// A trust store of every certificate in the source.
    pub(crate) fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certificates("CA")? {
            roots
                .add(cert)
                .map_err(|e| self.bad("CA", "CA certificate", e))?;
        }
        Ok(roots)
    }
}
