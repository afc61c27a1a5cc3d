//! A server's TLS settings: a certificate, key and CA for each listener
//! (client, WebSocket, peer), each defaulting to the shared one, loaded
//! into [`ServerTlsSet`] and reloaded together (on SIGHUP in `distlock
//! serve`).

use distlock_transport_tcp::tls::{PemSource, ServerTls, TlsError, TlsFiles, TlsRole};
use std::path::PathBuf;
use std::sync::Arc;

/// One listener's files, or the shared ones: `[tls]`, `[tls.client]`,
/// `[tls.ws]`, `[tls.peer]` in the configuration file, and the
/// `--tls-[LISTENER-]cert|key|ca` flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The certificate chain (PEM), the server's own certificate first.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// The CA (PEM) that peers' certificates, and clients' when they
    /// present one, must chain to.
    pub ca: Option<PathBuf>,
}

impl TlsPaths {
    /// Each path of `self`, else of `other`.
    #[must_use]
    pub fn or(&self, other: &Self) -> Self {
        Self {
            cert: self.cert.clone().or_else(|| other.cert.clone()),
            key: self.key.clone().or_else(|| other.key.clone()),
            ca: self.ca.clone().or_else(|| other.ca.clone()),
        }
    }

    fn is_empty(&self) -> bool {
        self.cert.is_none() && self.key.is_none() && self.ca.is_none()
    }
}

/// Every TLS setting of a server (`[tls]` in the configuration file).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The shared certificate, key and CA, used by every listener that
    /// names none of its own.
    #[serde(flatten)]
    pub shared: TlsPaths,
    /// The client port's own.
    pub client: Option<TlsPaths>,
    /// The WebSocket port's own.
    pub ws: Option<TlsPaths>,
    /// The peer port's own.
    pub peer: Option<TlsPaths>,
}

impl TlsSettings {
    /// Each setting of `self`, else of `other` (flags over the file).
    #[must_use]
    pub fn or(&self, other: &Self) -> Self {
        let each = |a: &Option<TlsPaths>, b: &Option<TlsPaths>| match (a, b) {
            (Some(a), Some(b)) => Some(a.or(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        Self {
            shared: self.shared.or(&other.shared),
            client: each(&self.client, &other.client),
            ws: each(&self.ws, &other.ws),
            peer: each(&self.peer, &other.peer),
        }
    }

    /// Loads the files of every listener that has TLS: one whose own or
    /// shared settings name a certificate and a key.
    ///
    /// # Errors
    /// A certificate without a key (or the reverse), a CA alone, and
    /// everything [`ServerTls::load`] refuses, each naming its listener.
    pub fn load(&self) -> Result<ServerTlsSet, TlsSettingsError> {
        let listener = |what: &'static str, own: &Option<TlsPaths>, shared: &TlsPaths, role| {
            let paths = own
                .as_ref()
                .map_or_else(|| shared.clone(), |p| p.or(shared));
            load_listener(what, &paths, role)
        };
        // A browser's WebSocket cannot pick a client certificate: asked for
        // one, it abandons the handshake. So the WebSocket port asks only
        // when it is given a CA of its own.
        let shared_but_ca = TlsPaths {
            ca: None,
            ..self.shared.clone()
        };
        Ok(ServerTlsSet {
            client: listener("client", &self.client, &self.shared, TlsRole::Clients)?,
            ws: listener("ws", &self.ws, &shared_but_ca, TlsRole::Clients)?,
            peer: listener("peer", &self.peer, &self.shared, TlsRole::Peers)?,
        })
    }
}

fn load_listener(
    listener: &'static str,
    paths: &TlsPaths,
    role: TlsRole,
) -> Result<Option<Arc<ServerTls>>, TlsSettingsError> {
    if paths.is_empty() {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&paths.cert, &paths.key) else {
        return Err(TlsSettingsError::Incomplete { listener });
    };
    let files = TlsFiles {
        cert: PemSource::File(cert.clone()),
        key: PemSource::File(key.clone()),
        ca: paths.ca.clone().map(PemSource::File),
    };
    ServerTls::load(files, role)
        .map(|t| Some(Arc::new(t)))
        .map_err(|source| TlsSettingsError::Load { listener, source })
}

/// TLS settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum TlsSettingsError {
    /// A listener names a certificate without a key, or the reverse, or a
    /// CA alone.
    #[error(
        "TLS for the {listener} port needs both a certificate and a key \
         (--tls-cert and --tls-key, or --tls-{listener}-cert and --tls-{listener}-key)"
    )]
    Incomplete {
        /// Which listener.
        listener: &'static str,
    },
    /// A listener's files cannot be loaded.
    #[error("TLS for the {listener} port: {source}")]
    Load {
        /// Which listener.
        listener: &'static str,
        /// Why.
        source: TlsError,
    },
}

/// The loaded TLS of each listener (`None`: that listener speaks plain
/// TCP). Cloning shares the same loaded settings, so a reload through any
/// clone reaches the listeners.
#[derive(Clone, Debug, Default)]
pub struct ServerTlsSet {
    /// The client port.
    pub client: Option<Arc<ServerTls>>,
    /// The WebSocket port (wss, and the dashboard over https).
    pub ws: Option<Arc<ServerTls>>,
    /// The peer port and the links this server dials (mutual TLS).
    pub peer: Option<Arc<ServerTls>>,
}

impl ServerTlsSet {
    /// Whether no listener has TLS.
    #[must_use]
    pub const fn is_off(&self) -> bool {
        self.client.is_none() && self.ws.is_none() && self.peer.is_none()
    }

    /// Reads every listener's files again; new handshakes use them,
    /// connections already open are untouched. A listener whose files fail
    /// keeps its settings; the first failure is returned after all were
    /// tried.
    ///
    /// # Errors
    /// The first listener whose files cannot be loaded.
    pub fn reload(&self) -> Result<(), TlsSettingsError> {
        let mut first = None;
        for (listener, tls) in [
            ("client", &self.client),
            ("ws", &self.ws),
            ("peer", &self.peer),
        ] {
            if let Some(tls) = tls
                && let Err(source) = tls.reload()
            {
                first.get_or_insert(TlsSettingsError::Load { listener, source });
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// One line for the start-up log: which listeners run TLS.
    #[must_use]
    pub fn summary(&self) -> String {
        if self.is_off() {
            return "TLS is off on every port: anyone who can reach a port can read and \
                    forge its traffic (see docs/SECURITY.md)"
                .to_owned();
        }
        let on = |t: &Option<Arc<ServerTls>>| if t.is_some() { "TLS" } else { "plain" };
        format!(
            "client port: {}, WebSocket port: {}, peer port: {}",
            on(&self.client),
            on(&self.ws),
            if self.peer.is_some() {
                "mutual TLS"
            } else {
                "plain"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_settings_default_to_the_shared_ones() {
        let s: TlsSettings = toml::from_str(
            "cert = \"a.pem\"\nkey = \"a.key\"\nca = \"ca.pem\"\n[peer]\nca = \"peers.pem\"\n",
        )
        .expect("parses");
        let flags = TlsSettings {
            shared: TlsPaths {
                cert: Some("b.pem".into()),
                ..TlsPaths::default()
            },
            ..TlsSettings::default()
        };
        let merged = flags.or(&s);
        assert_eq!(merged.shared.cert, Some("b.pem".into()));
        assert_eq!(merged.shared.key, Some("a.key".into()));
        assert_eq!(
            merged.peer.map(|p| p.or(&merged.shared).ca),
            Some(Some("peers.pem".into()))
        );
        assert!(toml::from_str::<TlsSettings>("certs = \"x\"\n").is_err());
    }

    #[test]
    fn a_certificate_without_a_key_is_refused_and_nothing_is_off() {
        let none = TlsSettings::default().load().expect("no TLS");
        assert!(none.is_off());
        assert!(none.summary().contains("TLS is off"));
        let half = TlsSettings {
            ws: Some(TlsPaths {
                cert: Some("c.pem".into()),
                ..TlsPaths::default()
            }),
            ..TlsSettings::default()
        };
        let e = half.load().expect_err("no key");
        assert!(e.to_string().contains("--tls-ws-key"), "{e}");
        let missing = TlsSettings {
            shared: TlsPaths {
                cert: Some("/nonexistent/c.pem".into()),
                key: Some("/nonexistent/k.pem".into()),
                ca: None,
            },
            ..TlsSettings::default()
        };
        let e = missing.load().expect_err("no file");
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
    }
}
