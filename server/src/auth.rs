//! Authentication: the principals of an auth file (`--auth-file`), the
//! bearer tokens and certificate identities that prove them, the roles
//! that grant their rights, and the cluster secret peers present.
//!
//! Tokens are stored as SHA-256 digests (`sha256:HEX`). A token is a
//! high-entropy random string (`distlock auth new-token` draws 256 bits),
//! so a fast hash is enough: nobody can search 2^256 inputs, and a slow
//! password hash (argon2) would cost every `Hello` tens of milliseconds,
//! a denial of service of its own. Digests are compared with `subtle`, in
//! time that does not depend on where they differ, against every token
//! of every principal (no early exit).
//!
//! The file is read again whenever it changes ([`AuthHandle::watch`]), so
//! tokens rotate without a restart: add the new token beside the old one,
//! move the clients, then remove the old one. A file that no longer parses
//! is reported and the previous one kept.

use distlock_core::auth::Access;
use distlock_core::proto::{AuthToken, ProtoError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// The auth file, as written (TOML).
///
/// ```toml
/// # What servers present to each other (the same in every server's file).
/// peer_secret = "3b0d…"
///
/// [roles.ops]
/// admin = true
/// read = [""]          # every lock
///
/// [roles.billing]
/// lock = ["billing/"]  # lock names starting with billing/
/// read = ["billing/"]
///
/// [principals.billing-worker]
/// tokens = ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
/// roles = ["billing"]
///
/// [principals.alice]
/// certificate = "alice.ops.example.com"
/// roles = ["ops"]
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// The secret servers present in their peer `Hello`; `None`: peers
    /// are not authenticated by a secret (mutual TLS may still bind them).
    pub peer_secret: Option<String>,
    /// Roles by name.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleSpec>,
    /// Principals by name.
    #[serde(default)]
    pub principals: BTreeMap<String, PrincipalSpec>,
}

/// A role: rights on lock-name prefixes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Prefixes of the locks it may take (`""`: every lock).
    #[serde(default)]
    pub lock: Vec<String>,
    /// Prefixes of the locks it may read (status, check-token, watch).
    #[serde(default)]
    pub read: Vec<String>,
    /// Membership changes and snapshots.
    #[serde(default)]
    pub admin: bool,
}

/// A principal: how it proves itself, and its roles.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    /// Digests of its bearer tokens, `sha256:HEX` (several while one is
    /// rotated).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// The identity of its TLS client certificate, if it may use one.
    pub certificate: Option<String>,
    /// Its roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Why an auth file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// It cannot be read.
    #[error("cannot read the auth file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// It is not valid.
    #[error("invalid auth file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

type Digest32 = [u8; 32];

#[derive(Debug)]
struct Principal {
    name: Arc<str>,
    tokens: Vec<Digest32>,
    certificate: Option<String>,
    lock: Vec<String>,
    read: Vec<String>,
    admin: bool,
}

impl Principal {
    fn access(&self) -> Access {
        Access {
            principal: Arc::clone(&self.name),
            authenticated: true,
            lock: self.lock.clone(),
            read: self.read.clone(),
            admin: self.admin,
        }
    }
}

/// The principals of a parsed auth file, ready to check credentials.
#[derive(Debug)]
pub struct Authenticator {
    principals: Vec<Principal>,
    peer_secret: Option<Digest32>,
    peer_token: Option<AuthToken>,
}

/// The SHA-256 digest of a token.
#[must_use]
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `sha256:HEX` of a token, as the auth file stores it.
#[must_use]
pub fn token_hash_text(token: &str) -> String {
    let mut out = String::from("sha256:");
    for b in token_digest(token) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn parse_digest(text: &str) -> Option<Digest32> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Authenticator {
    /// Reads and checks an auth file.
    ///
    /// # Errors
    /// When it cannot be read, does not parse, names an unknown role or
    /// holds a token that is not `sha256:` and 64 hex digits.
    pub fn load(path: &Path) -> Result<Self, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthFileError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| AuthFileError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses the text of an auth file.
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: AuthFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        let mut principals = Vec::new();
        for (name, spec) in &file.principals {
            let mut p = Principal {
                name: Arc::from(name.as_str()),
                tokens: Vec::new(),
                certificate: spec.certificate.clone(),
                lock: Vec::new(),
                read: Vec::new(),
                admin: false,
            };
            for token in &spec.tokens {
                p.tokens.push(parse_digest(token).ok_or_else(|| {
                    format!(
                        "principal {name:?}: token {token:?} is not sha256: and 64 hex digits \
                         (store `distlock auth hash-token` of the token, not the token)"
                    )
                })?);
            }
            for role in &spec.roles {
                let r = file
                    .roles
                    .get(role)
                    .ok_or_else(|| format!("principal {name:?} has unknown role {role:?}"))?;
                p.lock.extend(r.lock.iter().cloned());
                p.read.extend(r.read.iter().cloned());
                p.admin |= r.admin;
            }
            p.lock.sort();
            p.lock.dedup();
            p.read.sort();
            p.read.dedup();
            principals.push(p);
        }
        if let Some(secret) = &file.peer_secret
            && secret.len() < 16
        {
            return Err("peer_secret must be at least 16 characters".to_owned());
        }
        Ok(Self {
            principals,
            peer_secret: file.peer_secret.as_deref().map(token_digest),
            peer_token: file.peer_secret.map(AuthToken::new),
        })
    }

    /// The principal a client's credentials prove: its bearer token, else
    /// its certificate identity.
    ///
    /// # Errors
    /// [`ProtoError::Unauthorized`] when neither proves a principal.
    pub fn authenticate(
        &self,
        token: Option<&AuthToken>,
        identity: Option<&str>,
    ) -> Result<Access, ProtoError> {
        if let Some(token) = token {
            let digest = token_digest(token.expose());
            let mut found: Option<&Principal> = None;
            for p in &self.principals {
                for stored in &p.tokens {
                    if bool::from(stored.ct_eq(&digest)) {
                        found = Some(p);
                    }
                }
            }
            return found.map(Principal::access).ok_or(ProtoError::Unauthorized);
        }
        if let Some(identity) = identity
            && let Some(p) = self
                .principals
                .iter()
                .find(|p| p.certificate.as_deref() == Some(identity))
        {
            return Ok(p.access());
        }
        Err(ProtoError::Unauthorized)
    }

    /// Whether a peer's `Hello` credential is the cluster's secret (true
    /// when the file sets none).
    #[must_use]
    pub fn admits_peer(&self, token: Option<&AuthToken>) -> bool {
        match (&self.peer_secret, token) {
            (None, _) => true,
            (Some(expected), Some(given)) => {
                bool::from(expected.ct_eq(&token_digest(given.expose())))
            }
            (Some(_), None) => false,
        }
    }

    /// The secret this server presents to its peers.
    #[must_use]
    pub fn peer_token(&self) -> Option<AuthToken> {
        self.peer_token.clone()
    }

    /// How many principals the file names.
    #[must_use]
    pub fn principal_count(&self) -> usize {
        self.principals.len()
    }
}

/// How clients are authenticated and what anonymous clients may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The auth file (`--auth-file`); `None`: authentication is off.
    pub file: Option<PathBuf>,
    /// With authentication off, let clients that are not on this host
    /// change the membership and take snapshots
    /// (`--auth-allow-remote-admin`). Off by default: without
    /// credentials, only a client connecting from a loopback address is
    /// an operator.
    pub allow_remote_admin: bool,
}

/// The authentication in force, shared by every connection task and
/// replaced when the file changes.
#[derive(Clone, Debug)]
pub struct AuthHandle {
    current: Arc<RwLock<Option<Arc<Authenticator>>>>,
    allow_remote_admin: bool,
}

impl AuthHandle {
    /// Loads the file `cfg` names, if any.
    ///
    /// # Errors
    /// As [`Authenticator::load`].
    pub fn new(cfg: &AuthConfig) -> Result<Self, AuthFileError> {
        let auth = match &cfg.file {
            Some(path) => Some(Arc::new(Authenticator::load(path)?)),
            None => None,
        };
        Ok(Self {
            current: Arc::new(RwLock::new(auth)),
            allow_remote_admin: cfg.allow_remote_admin,
        })
    }

    /// The authenticator in force (`None`: authentication is off).
    #[must_use]
    pub fn current(&self) -> Option<Arc<Authenticator>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    /// The access of a client connecting from `source` with these
    /// credentials.
    ///
    /// # Errors
    /// [`ProtoError::Unauthorized`] when authentication is on and the
    /// credentials prove no principal.
    pub fn access(
        &self,
        source: IpAddr,
        token: Option<&AuthToken>,
        identity: Option<&str>,
    ) -> Result<Access, ProtoError> {
        match self.current() {
            Some(auth) => auth.authenticate(token, identity),
            None => Ok(Access::anonymous(
                format!("anonymous@{source}"),
                self.allow_remote_admin || source.is_loopback(),
            )),
        }
    }

    /// Whether a peer's credential is accepted.
    #[must_use]
    pub fn admits_peer(&self, token: Option<&AuthToken>) -> bool {
        self.current().is_none_or(|a| a.admits_peer(token))
    }

    /// The secret to present to peers.
    #[must_use]
    pub fn peer_token(&self) -> Option<AuthToken> {
        self.current().and_then(|a| a.peer_token())
    }

    /// Reads `path` again whenever its modification time or length
    /// changes (checked every `period`), for ever; a file that no longer
    /// loads is reported and the previous one kept.
    pub async fn watch(self, path: PathBuf, period: Duration) {
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        };
        let mut seen = stamp(&path);
        loop {
            tokio::time::sleep(period).await;
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            seen = now;
            self.reload(&path);
        }
    }

    /// Reads `path` again now (on SIGHUP, or when it changed).
    pub fn reload(&self, path: &Path) {
        match Authenticator::load(path) {
            Ok(auth) => {
                tracing::info!(
                    principals = auth.principal_count(),
                    "auth file reloaded: {}",
                    path.display()
                );
                if let Ok(mut g) = self.current.write() {
                    *g = Some(Arc::new(auth));
                }
            }
            Err(e) => tracing::error!("{e}; keeping the previous auth file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlock_core::auth::Right;
    use distlock_core::proto::RequestBody;

    fn file() -> String {
        format!(
            r#"
peer_secret = "0123456789abcdef0123"
[roles.ops]
admin = true
read = [""]
[roles.billing]
lock = ["billing/"]
read = ["billing/"]
[principals.worker]
tokens = ["{}", "{}"]
roles = ["billing"]
[principals.alice]
certificate = "alice@ops"
roles = ["ops"]
"#,
            token_hash_text("old-token"),
            token_hash_text("new-token")
        )
    }

    #[test]
    fn tokens_and_certificates_prove_principals() {
        let auth = Authenticator::parse(&file()).expect("parses");
        let worker = auth
            .authenticate(Some(&AuthToken::new("new-token")), None)
            .expect("new token");
        assert_eq!(&*worker.principal, "worker");
        assert!(worker.authenticated);
        assert!(
            auth.authenticate(Some(&AuthToken::new("old-token")), None)
                .is_ok()
        );
        assert_eq!(
            auth.authenticate(Some(&AuthToken::new("wrong")), None),
            Err(ProtoError::Unauthorized)
        );
        assert_eq!(auth.authenticate(None, None), Err(ProtoError::Unauthorized));
        let alice = auth.authenticate(None, Some("alice@ops")).expect("cert");
        assert!(alice.admin);
        assert_eq!(
            worker.check(&RequestBody::LockStatus {
                lock: "payroll".to_owned()
            }),
            Err(ProtoError::Forbidden {
                right: Right::Read,
                lock: Some("payroll".to_owned())
            })
        );
        assert!(auth.admits_peer(Some(&AuthToken::new("0123456789abcdef0123"))));
        assert!(!auth.admits_peer(Some(&AuthToken::new("0123456789abcdef0124"))));
        assert!(!auth.admits_peer(None));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let plain = "[principals.x]\ntokens = [\"hunter2\"]\n";
        assert!(Authenticator::parse(plain).unwrap_err().contains("sha256"));
        let role = "[principals.x]\nroles = [\"nope\"]\n";
        assert!(
            Authenticator::parse(role)
                .unwrap_err()
                .contains("unknown role")
        );
        assert!(Authenticator::parse("peer_secret = \"short\"").is_err());
        assert!(Authenticator::parse("bogus = 1").is_err());
    }

    #[test]
    fn without_a_file_only_loopback_clients_administer() {
        let h = AuthHandle::new(&AuthConfig::default()).expect("no file");
        let local = h.access([127, 0, 0, 1].into(), None, None).expect("open");
        assert!(local.admin && !local.authenticated);
        let remote = h.access([10, 0, 0, 9].into(), None, None).expect("open");
        assert!(!remote.admin);
        assert_eq!(&*remote.principal, "anonymous@10.0.0.9");
    }

    #[test]
    fn token_hash_text_is_sha256_hex() {
        assert_eq!(
            token_hash_text("test"),
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
