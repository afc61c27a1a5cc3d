//! The TLS flags: a client's (`--tls`, `--tls-ca`, `--tls-cert`,
//! `--tls-key`, on every command that talks to a cluster) and a server's
//! (`serve --tls-[client-|ws-|peer-]cert|key|ca`).

use anyhow::Context;
use distlock_client::{ClientTls, PemSource};
use distlock_server::tls::{TlsPaths, TlsSettings};
use std::path::PathBuf;

/// How a client command reaches TLS servers.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ClientTlsArgs {
    /// Connect with TLS, trusting the platform's CA certificates (implied
    /// by --tls-ca).
    #[arg(long, env = "DISTLOCK_TLS", global = true)]
    tls: bool,
    /// Connect with TLS, trusting the CA certificates in this PEM file.
    #[arg(long, env = "DISTLOCK_TLS_CA", value_name = "FILE", global = true)]
    tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) to present, for servers that want one.
    #[arg(
        long,
        env = "DISTLOCK_TLS_CERT",
        value_name = "FILE",
        global = true,
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "DISTLOCK_TLS_KEY",
        value_name = "FILE",
        global = true,
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The client's TLS settings, if any flag asks for TLS.
    pub(crate) fn load(&self) -> anyhow::Result<Option<ClientTls>> {
        if !self.tls && self.tls_ca.is_none() && self.tls_cert.is_none() {
            return Ok(None);
        }
        let file = |p: &Option<PathBuf>| p.clone().map(PemSource::File);
        ClientTls::load(
            file(&self.tls_ca).as_ref(),
            file(&self.tls_cert).as_ref(),
            file(&self.tls_key).as_ref(),
        )
        .map(Some)
        .context("TLS settings")
    }
}

/// `distlock serve`'s TLS flags: the shared certificate, key and CA, and
/// each listener's own.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ServeTlsArgs {
    /// The certificate chain (PEM) of every listener that names none of
    /// its own: turns TLS on. Reloaded on SIGHUP.
    #[arg(long, env = "DISTLOCK_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "DISTLOCK_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) that peers' certificates (required: mutual TLS) and
    /// clients' certificates (when they present one) must chain to.
    #[arg(long, env = "DISTLOCK_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// The client port's own certificate [default: --tls-cert].
    #[arg(long, env = "DISTLOCK_TLS_CLIENT_CERT", value_name = "FILE")]
    tls_client_cert: Option<PathBuf>,
    /// The client port's own key [default: --tls-key].
    #[arg(long, env = "DISTLOCK_TLS_CLIENT_KEY", value_name = "FILE")]
    tls_client_key: Option<PathBuf>,
    /// The CA of the client port's client certificates [default: --tls-ca].
    #[arg(long, env = "DISTLOCK_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// The WebSocket port's own certificate (wss, dashboard over https)
    /// [default: --tls-cert].
    #[arg(long, env = "DISTLOCK_TLS_WS_CERT", value_name = "FILE")]
    tls_ws_cert: Option<PathBuf>,
    /// The WebSocket port's own key [default: --tls-key].
    #[arg(long, env = "DISTLOCK_TLS_WS_KEY", value_name = "FILE")]
    tls_ws_key: Option<PathBuf>,
    /// The CA of the WebSocket port's client certificates. Without it the
    /// port asks for none: a browser's WebSocket cannot choose one and
    /// abandons a handshake that asks [default: none, not --tls-ca].
    #[arg(long, env = "DISTLOCK_TLS_WS_CA", value_name = "FILE")]
    tls_ws_ca: Option<PathBuf>,
    /// The peer port's own certificate, which must name node-ID as a DNS
    /// subjectAltName [default: --tls-cert].
    #[arg(long, env = "DISTLOCK_TLS_PEER_CERT", value_name = "FILE")]
    tls_peer_cert: Option<PathBuf>,
    /// The peer port's own key [default: --tls-key].
    #[arg(long, env = "DISTLOCK_TLS_PEER_KEY", value_name = "FILE")]
    tls_peer_key: Option<PathBuf>,
    /// The CA of the peers' certificates [default: --tls-ca].
    #[arg(long, env = "DISTLOCK_TLS_PEER_CA", value_name = "FILE")]
    tls_peer_ca: Option<PathBuf>,
}

impl ServeTlsArgs {
    /// The flags as settings (each `None` where no flag was given), to lay
    /// over the configuration file's `[tls]`.
    pub(crate) fn settings(&self) -> TlsSettings {
        let paths = |cert: &Option<PathBuf>, key: &Option<PathBuf>, ca: &Option<PathBuf>| {
            let p = TlsPaths {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            };
            (p != TlsPaths::default()).then_some(p)
        };
        TlsSettings {
            shared: TlsPaths {
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                ca: self.tls_ca.clone(),
            },
            client: paths(
                &self.tls_client_cert,
                &self.tls_client_key,
                &self.tls_client_ca,
            ),
            ws: paths(&self.tls_ws_cert, &self.tls_ws_key, &self.tls_ws_ca),
            peer: paths(&self.tls_peer_cert, &self.tls_peer_key, &self.tls_peer_ca),
        }
    }
}
