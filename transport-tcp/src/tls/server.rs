//! A listener's TLS: its certificate, key and CA, reloadable in place.

use super::{MaybeTls, PemSource, TlsError, node_name, provider};
use distlock_core::ids::NodeId;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};

/// What a listener's TLS is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRole {
    /// The client or WebSocket port: a client certificate is optional and,
    /// when presented, must chain to the CA (if one is configured).
    Clients,
    /// The peer port: every peer must present a certificate that chains to
    /// the CA, and this server presents its own when it dials a peer.
    Peers,
}

/// The certificate, key and CA of one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PemSource,
    /// Its private key.
    pub key: PemSource,
    /// The CA that client (or peer) certificates must chain to; required
    /// for [`TlsRole::Peers`].
    pub ca: Option<PemSource>,
}

/// What one load of the files gives.
struct Loaded {
    acceptor: tokio_rustls::TlsAcceptor,
    /// Dials peers, presenting this server's certificate ([`TlsRole::Peers`]).
    connector: Option<tokio_rustls::TlsConnector>,
}

/// One listener's TLS settings, loaded, and reloaded on demand: a reload
/// that fails keeps the settings in force.
pub struct ServerTls {
    files: TlsFiles,
    role: TlsRole,
    loaded: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads `files` for a listener of `role`.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, a key that does not match the
    /// certificate, or a peer listener without a CA.
    pub fn load(files: TlsFiles, role: TlsRole) -> Result<Self, TlsError> {
        let loaded = load(&files, role)?;
        Ok(Self {
            files,
            role,
            loaded: RwLock::new(Arc::new(loaded)),
        })
    }

    /// Reads the files again: new handshakes use what they hold now;
    /// sessions already open keep theirs.
    ///
    /// # Errors
    /// As [`Self::load`]; the settings in force stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(load(&self.files, self.role)?);
        match self.loaded.write() {
            Ok(mut slot) => *slot = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// The files this listener loads.
    #[must_use]
    pub const fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn current(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(l) => Arc::clone(&l),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Runs the server side of a TLS handshake on an accepted stream.
    ///
    /// # Errors
    /// [`TlsError::Handshake`].
    pub async fn accept<S>(&self, stream: S) -> Result<MaybeTls<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = self.current().acceptor.clone();
        match acceptor.accept(stream).await {
            Ok(tls) => Ok(MaybeTls::Tls(Box::new(tokio_rustls::TlsStream::Server(
                tls,
            )))),
            Err(e) => Err(TlsError::handshake("a client", &e)),
        }
    }

    /// Runs the client side of a TLS handshake to peer `id` on a dialled
    /// stream, presenting this server's certificate: the peer's must chain
    /// to the CA and name `node-<id>`.
    ///
    /// # Errors
    /// [`TlsError::Handshake`]; [`TlsError::Config`] when this is not a
    /// peer listener's TLS.
    pub async fn connect_peer<S>(&self, stream: S, id: NodeId) -> Result<MaybeTls<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(connector) = self.current().connector.clone() else {
            return Err(TlsError::Config(
                "only the peer listener's TLS dials peers".to_owned(),
            ));
        };
        let name = node_name(id);
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName(name.clone()))?;
        match connector.connect(server_name, stream).await {
            Ok(tls) => Ok(MaybeTls::Tls(Box::new(tokio_rustls::TlsStream::Client(
                tls,
            )))),
            Err(e) => Err(TlsError::handshake(&name, &e)),
        }
    }
}

fn load(files: &TlsFiles, role: TlsRole) -> Result<Loaded, TlsError> {
    let certs = files.cert.certificates("certificate")?;
    let key = files.key.private_key()?;
    let roots = files.ca.as_ref().map(PemSource::roots).transpose()?;
    let config_err = |e: rustls::Error| TlsError::Config(e.to_string());
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?;
    let server = match (&roots, role) {
        (None, TlsRole::Peers) => {
            return Err(TlsError::Config(
                "the peer port needs a CA (--tls-peer-ca or --tls-ca): peers authenticate each other"
                    .to_owned(),
            ));
        }
        (None, TlsRole::Clients) => builder.with_no_client_auth(),
        (Some(roots), _) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider());
            let verifier = if role == TlsRole::Clients {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?,
            )
        }
    }
    .with_single_cert(certs.clone(), key.clone_key())
    .map_err(config_err)?;
    let connector = match (roots, role) {
        (Some(roots), TlsRole::Peers) => {
            let client = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(config_err)?
                .with_root_certificates(roots)
                .with_client_auth_cert(certs, key)
                .map_err(config_err)?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(client)))
        }
        _ => None,
    };
    Ok(Loaded {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        connector,
    })
}
