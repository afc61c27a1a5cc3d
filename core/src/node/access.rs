//! Who each client connection is, what it may ask ([`crate::auth`]), and
//! the per-principal and per-connection limits the node enforces: live
//! sessions per principal (counted on this server: the sessions its own
//! clients opened) and watches per connection.
//!
//! When the principal was authenticated, the nonce of every session it
//! opens is replaced, before it is proposed, by one bound to the
//! principal ([`bind_secret`]); an `Attach` is checked the same way. So a
//! session belongs to the principal that opened it, on every server and
//! across failovers, with nothing new in the log's format.

use super::{ConnId, Node, Origin};
use crate::auth::{Access, bind_secret};
use crate::locks::{ClientCommand, SessionId};
use crate::proto::{ProtoError, RequestBody};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Limits on what one client may hold on one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Live sessions one principal may have opened through this server.
    pub sessions_per_principal: u32,
    /// Locks one connection may watch at once.
    pub watches_per_connection: u32,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            sessions_per_principal: 1024,
            watches_per_connection: 256,
        }
    }
}

/// The node's record of its clients' identities and holdings.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(super) struct Clients {
    pub(super) limits: ClientLimits,
    access: BTreeMap<ConnId, Access>,
    /// The sessions opened through this server, by principal.
    owned: BTreeMap<Arc<str>, BTreeSet<SessionId>>,
    owner_of: BTreeMap<SessionId, Arc<str>>,
    watches: BTreeMap<ConnId, BTreeSet<Arc<str>>>,
}

/// A connection no one described: every right (a driver that does not
/// authenticate, such as the core's own tests).
fn default_access() -> Access {
    Access::anonymous("anonymous", true)
}

impl Node {
    /// Sets who connection `conn` is and what it may ask. A connection
    /// that is never described has every right.
    pub fn set_access(&mut self, conn: ConnId, access: Access) {
        self.clients.access.insert(conn, access);
    }

    /// Sets the limits on sessions per principal and watches per
    /// connection.
    pub const fn set_client_limits(&mut self, limits: ClientLimits) {
        self.clients.limits = limits;
    }

    /// The access of `conn`.
    fn access_of(&self, conn: ConnId) -> Access {
        self.clients
            .access
            .get(&conn)
            .cloned()
            .unwrap_or_else(default_access)
    }

    /// Checks a request of `conn` against its rights and limits, and binds
    /// an authenticated principal's session secrets to it. The request to
    /// serve, or the refusal.
    pub(super) fn admit(
        &self,
        conn: ConnId,
        mut body: RequestBody,
    ) -> Result<RequestBody, ProtoError> {
        let access = self.clients.access.get(&conn);
        if let Some(access) = access {
            access.check(&body)?;
        }
        let principal = access.map(|a| (a.authenticated, Arc::clone(&a.principal)));
        match &mut body {
            RequestBody::Log(ClientCommand::OpenSession { nonce, .. }) => {
                let principal = principal.map_or_else(|| Arc::from("anonymous"), |(_, p)| p);
                self.check_session_quota(&principal, *nonce)?;
                if access.is_some_and(|a| a.authenticated) {
                    *nonce = bind_secret(&principal, *nonce);
                }
            }
            RequestBody::Attach { secret, .. } => {
                if let Some((true, principal)) = principal {
                    *secret = bind_secret(&principal, *secret);
                }
            }
            RequestBody::Watch { lock } => {
                let max = self.clients.limits.watches_per_connection;
                let held = self.clients.watches.get(&conn);
                let count = held.map_or(0, BTreeSet::len);
                let already = held.is_some_and(|w| w.contains(lock.as_str()));
                if !already && count >= max as usize {
                    return Err(ProtoError::TooManyWatches { max });
                }
            }
            _ => {}
        }
        Ok(body)
    }

    /// Refuses a new session when `principal` already has its share live
    /// or opening on this server.
    fn check_session_quota(&self, principal: &Arc<str>, nonce: u128) -> Result<(), ProtoError> {
        let max = self.clients.limits.sessions_per_principal;
        let state = self.raft.state_machine();
        let live = self.clients.owned.get(principal).map_or(0, |set| {
            set.iter()
                .filter(|id| state.session(**id).is_some())
                .count()
        });
        let opening = self
            .opening
            .iter()
            .filter(|(n, origins)| {
                **n != nonce
                    && origins.iter().any(|o| match o {
                        Origin::Local { conn, .. } => self.access_of(*conn).principal == *principal,
                        Origin::Remote { .. } => false,
                    })
            })
            .count();
        if live + opening >= max as usize {
            return Err(ProtoError::TooManySessions { max });
        }
        Ok(())
    }

    /// Records that `conn`'s principal opened `session`.
    pub(super) fn record_owner(&mut self, conn: ConnId, session: SessionId) {
        let principal = self.access_of(conn).principal;
        self.clients
            .owned
            .entry(Arc::clone(&principal))
            .or_default()
            .insert(session);
        self.clients.owner_of.insert(session, principal);
    }

    /// Forgets the owner of an ended session.
    pub(super) fn forget_owner(&mut self, session: SessionId) {
        if let Some(principal) = self.clients.owner_of.remove(&session)
            && let Some(set) = self.clients.owned.get_mut(&principal)
        {
            set.remove(&session);
            if set.is_empty() {
                self.clients.owned.remove(&principal);
            }
        }
    }

    /// Records a watch of `conn` (`true`) or its end.
    pub(super) fn record_watch(&mut self, conn: ConnId, lock: &str, on: bool) {
        let set = self.clients.watches.entry(conn).or_default();
        if on {
            set.insert(Arc::from(lock));
        } else {
            set.remove(lock);
        }
        if set.is_empty() {
            self.clients.watches.remove(&conn);
        }
    }

    /// Forgets a closed connection.
    pub(super) fn forget_connection(&mut self, conn: ConnId) {
        self.clients.access.remove(&conn);
        self.clients.watches.remove(&conn);
    }
}
