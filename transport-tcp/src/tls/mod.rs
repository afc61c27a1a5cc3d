//! TLS for every link (PROTOCOL.md §2.3), with rustls and its `ring`
//! provider: the frames of §2.1 run inside a TLS session when a listener
//! has a certificate, and as plain bytes otherwise.
//!
//! - [`MaybeTls`]: a stream that is plain or TLS, so the framing and
//!   handshake code is the same for both; it tells the identity of a
//!   verified client certificate ([`MaybeTls::peer_identity`]).
//! - [`ServerTls`]: a listener's certificate, key and CA, loaded from PEM
//!   files (or PEM text), and reloaded in place ([`ServerTls::reload`]):
//!   connections already open keep their session, new handshakes use the
//!   new files. For the peer listener it also dials peers (mutual TLS).
//! - [`ClientTls`]: what a client trusts (a CA file, or the platform's
//!   trust store) and the certificate it presents, if any.
//! - `dev_ca` (feature `dev-ca`): a development CA and the certificates
//!   it signs.
//! - [`node_name`]: the name a peer's certificate must carry to be
//!   node N (`node-N`), checked against the id its `Hello` claims
//!   ([`MaybeTls::certifies_node`]).

mod client;
#[cfg(feature = "dev-ca")]
pub mod dev_ca;
mod error;
mod pem;
mod server;
mod stream;

pub use client::ClientTls;
pub use error::TlsError;
pub use pem::PemSource;
pub use server::{ServerTls, TlsFiles, TlsRole};
pub use stream::{MaybeTls, certificate_identity, certifies_node};

use distlock_core::ids::NodeId;

/// The DNS name a peer's certificate carries (as a subjectAltName) to
/// prove it is node `id`: `node-<id>`. A dialling server verifies the
/// accepting one against this name, and an accepting server refuses a
/// peer whose `Hello` claims an id its certificate does not name.
#[must_use]
pub fn node_name(id: NodeId) -> String {
    format!("node-{}", id.0)
}

/// The crypto provider every TLS configuration uses: rustls' `ring`
/// provider, which builds with a C compiler alone.
///
/// rustls marks ring's provider deprecated because it has no post-quantum
/// key exchange; aws-lc-rs has one but needs a much heavier native build.
#[allow(deprecated)]
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
