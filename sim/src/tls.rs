//! TLS on every link of a simulated cluster: a development CA made at the
//! start of the run, a certificate per server naming `node-ID` and its
//! simulated address, and the CA for the clients. The runtime and the
//! client library then run their real TLS code over madsim's streams.

use crate::cluster::server_ip;
use distlock_client::{ClientTls, PemSource};
use distlock_core::ids::NodeId;
use distlock_server::tls::ServerTlsSet;
use distlock_transport_tcp::tls::dev_ca::{DevCa, DevCaError, Issued};
use distlock_transport_tcp::tls::{ServerTls, TlsError, TlsFiles, TlsRole};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The certificates of one simulated cluster.
#[derive(Debug)]
pub struct SimTls {
    ca_pem: String,
    nodes: BTreeMap<u64, Issued>,
}

/// Why the simulation's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimTlsError {
    /// A certificate could not be made.
    #[error(transparent)]
    Issue(#[from] DevCaError),
    /// rustls refused one.
    #[error(transparent)]
    Load(#[from] TlsError),
    /// A server id beyond those issued.
    #[error("no certificate for server {0}")]
    Unknown(u64),
}

impl SimTls {
    /// A CA and certificates for servers 1 to `max_id`.
    ///
    /// # Errors
    /// [`SimTlsError::Issue`].
    pub fn new(max_id: u64) -> Result<Self, SimTlsError> {
        let (ca, _key) = DevCa::new()?;
        let mut nodes = BTreeMap::new();
        for id in 1..=max_id {
            let issued = ca.issue_node(NodeId(id), &[server_ip(id).to_string()])?;
            nodes.insert(id, issued);
        }
        Ok(Self {
            ca_pem: ca.cert_pem.clone().unwrap_or_default(),
            nodes,
        })
    }

    /// Server `id`'s TLS on all three listeners.
    ///
    /// # Errors
    /// An id without a certificate, or one rustls refuses.
    pub fn server(&self, id: u64) -> Result<ServerTlsSet, SimTlsError> {
        let issued = self.nodes.get(&id).ok_or(SimTlsError::Unknown(id))?;
        let files = TlsFiles {
            cert: PemSource::Text(issued.cert_pem.clone()),
            key: PemSource::Text(issued.key_pem.clone()),
            ca: Some(PemSource::Text(self.ca_pem.clone())),
        };
        let load = |role| ServerTls::load(files.clone(), role).map(|t| Some(Arc::new(t)));
        Ok(ServerTlsSet {
            client: load(TlsRole::Clients)?,
            ws: load(TlsRole::Clients)?,
            peer: load(TlsRole::Peers)?,
        })
    }

    /// What clients trust: the CA.
    ///
    /// # Errors
    /// A CA rustls refuses.
    pub fn client(&self) -> Result<ClientTls, SimTlsError> {
        Ok(ClientTls::load(
            Some(&PemSource::Text(self.ca_pem.clone())),
            None,
            None,
        )?)
    }
}
