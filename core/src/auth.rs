//! Who may ask what: the rights a client connection holds ([`Access`]),
//! the right each request needs ([`required`]), and the binding of a
//! session to the principal that opened it ([`bind_secret`]).
//!
//! The server authenticates a connection at its `Hello` (a bearer token
//! or a client certificate) and hands the node the connection's
//! [`Access`]; the node checks every request against it before serving,
//! proposing or forwarding it, and refuses with
//! [`ProtoError::Forbidden`]. Rights are granted on lock-name prefixes:
//! `lock` (open sessions, acquire, release, cancel), `read` (check-token,
//! lock status, watch) and `admin` (membership changes, snapshots).
//! Forwarded requests were checked by the server their client reached:
//! peers are trusted.

use crate::locks::ClientCommand;
use crate::proto::{ProtoError, RequestBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// A kind of right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Right {
    /// Open sessions and take, release and cancel locks.
    Lock,
    /// Check tokens, read a lock's status, watch a lock.
    Read,
    /// Change the membership, take snapshots (backups).
    Admin,
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lock => "lock",
            Self::Read => "read",
            Self::Admin => "admin",
        })
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// Nothing beyond an accepted `Hello`.
    Nothing,
    /// `right` on some prefix (the request names no lock: opening a
    /// session, keeping it alive, closing it, attaching it).
    Any(Right),
    /// `right` on a prefix of this lock's name.
    On(Right, &'a str),
    /// The admin right.
    Admin,
}

/// The right `body` needs. Exhaustive on purpose: a new request kind
/// does not compile until it is given one.
#[must_use]
pub const fn required(body: &RequestBody) -> Need<'_> {
    match body {
        RequestBody::Log(command) => match command {
            ClientCommand::OpenSession { .. }
            | ClientCommand::OpenSessionWithMeta { .. }
            | ClientCommand::CloseSession { .. } => Need::Any(Right::Lock),
            ClientCommand::Acquire { lock, .. }
            | ClientCommand::Release { lock, .. }
            | ClientCommand::CancelWait { lock, .. } => Need::On(Right::Lock, lock.as_str()),
            // An election is a lock: campaigning and proclaiming need the
            // lock right on its name.
            ClientCommand::Campaign { election, .. } | ClientCommand::Proclaim { election, .. } => {
                Need::On(Right::Lock, election.as_str())
            }
        },
        RequestBody::KeepAlive { .. } | RequestBody::Attach { .. } => Need::Any(Right::Lock),
        RequestBody::CheckToken { lock, .. }
        | RequestBody::LockStatus { lock }
        | RequestBody::Watch { lock } => Need::On(Right::Read, lock.as_str()),
        // Listing names under a prefix needs the read right on all of it.
        RequestBody::ListLocks { prefix, .. } => Need::On(Right::Read, prefix.as_str()),
        RequestBody::Leader { election } => Need::On(Right::Read, election.as_str()),
        // Status is what every client needs to find the leader; stopping a
        // watch only ever narrows what a connection receives.
        RequestBody::ClusterStatus | RequestBody::Unwatch { .. } => Need::Nothing,
        // Sessions belong to every principal: only an operator sees them
        // all or ends one.
        RequestBody::ListSessions { .. }
        | RequestBody::RevokeSession { .. }
        | RequestBody::ChangeMembership(_)
        | RequestBody::TakeSnapshot { .. }
        | RequestBody::SnapshotChunk { .. } => Need::Admin,
    }
}

/// The rights of one client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Who the client is: a principal's name when authentication is on,
    /// `anonymous@ADDRESS` otherwise (limits count per principal).
    pub principal: Arc<str>,
    /// Whether the principal was authenticated: then the sessions it opens
    /// are bound to it ([`bind_secret`]).
    pub authenticated: bool,
    /// Name prefixes on which the client may lock (`""`: every name).
    pub lock: Vec<String>,
    /// Name prefixes the client may read.
    pub read: Vec<String>,
    /// Whether the client may change the membership and take snapshots.
    pub admin: bool,
}

impl Access {
    /// Every right on every name, for `principal` (authentication off);
    /// `admin` as the server's policy decides.
    #[must_use]
    pub fn anonymous(principal: impl Into<Arc<str>>, admin: bool) -> Self {
        Self {
            principal: principal.into(),
            authenticated: false,
            lock: vec![String::new()],
            read: vec![String::new()],
            admin,
        }
    }

    fn prefixes(&self, right: Right) -> &[String] {
        match right {
            Right::Lock => &self.lock,
            Right::Read => &self.read,
            Right::Admin => &[],
        }
    }

    /// Whether the connection may send `body`.
    ///
    /// # Errors
    /// [`ProtoError::Forbidden`] naming the right (and lock) missing.
    pub fn check(&self, body: &RequestBody) -> Result<(), ProtoError> {
        let allowed = match required(body) {
            Need::Nothing => true,
            Need::Admin => self.admin,
            Need::Any(right) => !self.prefixes(right).is_empty(),
            Need::On(right, name) => self.prefixes(right).iter().any(|p| name.starts_with(p)),
        };
        if allowed {
            return Ok(());
        }
        let (right, lock) = match required(body) {
            Need::Nothing | Need::Admin => (Right::Admin, None),
            Need::Any(right) => (right, None),
            Need::On(right, name) => (right, Some(name.to_owned())),
        };
        Err(ProtoError::Forbidden { right, lock })
    }
}

/// The secret a session opened by `principal` with `nonce` is stored
/// with, so that only that principal can attach it: another principal
/// who learns the nonce still cannot produce the stored value. A
/// truncated SHA-256 of a length-prefixed principal name and the nonce.
#[must_use]
pub fn bind_secret(principal: &str, nonce: u128) -> u128 {
    let mut h = Sha256::new();
    h.update(b"distlock-session-owner\0");
    h.update((principal.len() as u64).to_be_bytes());
    h.update(principal.as_bytes());
    h.update(nonce.to_be_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::{FencingToken, SessionId};
    use crate::proto::RequestBody;

    fn reader_of(prefix: &str) -> Access {
        Access {
            principal: Arc::from("r"),
            authenticated: true,
            lock: Vec::new(),
            read: vec![prefix.to_owned()],
            admin: false,
        }
    }

    #[test]
    fn rights_apply_to_prefixes() {
        let a = reader_of("app/");
        let status = |lock: &str| RequestBody::LockStatus {
            lock: lock.to_owned(),
        };
        assert_eq!(a.check(&status("app/x")), Ok(()));
        assert_eq!(
            a.check(&status("other")),
            Err(ProtoError::Forbidden {
                right: Right::Read,
                lock: Some("other".to_owned())
            })
        );
        assert!(
            a.check(&RequestBody::CheckToken {
                lock: "app/x".to_owned(),
                token: FencingToken(1)
            })
            .is_ok()
        );
        assert_eq!(
            a.check(&RequestBody::KeepAlive {
                session: SessionId(1)
            }),
            Err(ProtoError::Forbidden {
                right: Right::Lock,
                lock: None
            })
        );
        assert_eq!(
            a.check(&RequestBody::TakeSnapshot { max_len: 1 }),
            Err(ProtoError::Forbidden {
                right: Right::Admin,
                lock: None
            })
        );
        assert!(a.check(&RequestBody::ClusterStatus).is_ok());
        assert!(Access::anonymous("x", true).check(&status("any")).is_ok());
    }

    #[test]
    fn bound_secrets_differ_per_principal() {
        assert_ne!(bind_secret("a", 7), bind_secret("b", 7));
        assert_eq!(bind_secret("a", 7), bind_secret("a", 7));
        assert_ne!(bind_secret("a", 7), bind_secret("a", 8));
        // The length prefix keeps ("ab", n) and ("a", n') apart.
        assert_ne!(bind_secret("ab", 0), bind_secret("a", 0));
    }
}
