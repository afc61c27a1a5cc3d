//! A development CA (feature `dev-ca`): a CA and certificates it signs for
//! servers (naming `node-N`, `localhost`, the loopback addresses and any
//! host given) and for clients, for `distlock tls dev-ca`, tests and the
//! simulator. Not for production: production certificates come from the
//! organisation's own CA (docs/SECURITY.md).

use super::node_name;
use distlock_core::ids::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The subject of every development CA: an issuer rebuilt from the CA's
/// key ([`DevCa::from_key_pem`]) must name it exactly.
const CA_NAME: &str = "distlock development CA";

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the certificate: {0}")]
pub struct DevCaError(#[from] rcgen::Error);

/// A certificate and its private key, as PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A development CA: its certificate, and the key that signs.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate (what servers and clients trust: `--tls-ca`),
    /// when this CA was made here rather than rebuilt from its key.
    pub cert_pem: Option<String>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

fn ca_params() -> Result<CertificateParams, DevCaError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl DevCa {
    /// A new CA with a fresh key.
    ///
    /// # Errors
    /// [`DevCaError`].
    pub fn new() -> Result<(Self, String), DevCaError> {
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        let params = ca_params()?;
        let cert = params.self_signed(&key)?;
        Ok((
            Self {
                issuer: Issuer::new(params, key),
                cert_pem: Some(cert.pem()),
            },
            key_pem,
        ))
    }

    /// The CA whose key is `key_pem` (made by [`Self::new`]), to sign new
    /// certificates that the CA's certificate, already distributed, still
    /// verifies (certificate rotation).
    ///
    /// # Errors
    /// A key that cannot be read.
    pub fn from_key_pem(key_pem: &str) -> Result<Self, DevCaError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            issuer: Issuer::new(ca_params()?, key),
            cert_pem: None,
        })
    }

    /// A certificate for `names` (DNS names or IP addresses; the first is
    /// also the subject's common name), usable by servers and clients
    /// alike, with a fresh key.
    ///
    /// # Errors
    /// A name that is neither a DNS name nor an IP address.
    pub fn issue(&self, names: &[String]) -> Result<Issued, DevCaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server's certificate: it names `node-<id>` (what peers check),
    /// `localhost`, 127.0.0.1, ::1, and each of `hosts`.
    ///
    /// # Errors
    /// As [`Self::issue`].
    pub fn issue_node(&self, id: NodeId, hosts: &[String]) -> Result<Issued, DevCaError> {
        let mut names = vec![
            node_name(id),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        names.extend(
            hosts
                .iter()
                .filter(|h| !names.contains(h))
                .cloned()
                .collect::<Vec<_>>(),
        );
        self.issue(&names)
    }
}
