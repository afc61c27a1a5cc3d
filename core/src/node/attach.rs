//! Which sessions each client connection may act for.
//!
//! A session id is no secret: `distlock status` shows it beside its
//! tokens. What proves a client opened a session is the nonce it opened
//! it with, which the replicated state keeps and no view, event or answer
//! shows. A connection speaks for the sessions it opened, and for those it
//! attached by presenting that nonce (`Attach`); every request that acts
//! on a session (close, acquire, release, cancel, keepalive) on any other
//! connection is refused with `NotAttached`, changing nothing. A client
//! that fails over attaches its session on the new connection first.
//!
//! Forwarded requests were checked by the server that forwarded them:
//! peers are trusted.

use super::{ConnId, Node, Origin};
use crate::locks::{ClientCommand, SessionId};
use crate::proto::{ProtoError, RequestBody, ResponseBody};

/// The session a request acts on, if it acts on one.
pub(super) fn acts_on(body: &RequestBody) -> Option<SessionId> {
    match body {
        RequestBody::Log(
            ClientCommand::CloseSession { session, .. }
            | ClientCommand::Acquire { session, .. }
            | ClientCommand::Release { session, .. }
            | ClientCommand::CancelWait { session, .. }
            | ClientCommand::Campaign { session, .. }
            | ClientCommand::Proclaim { session, .. },
        )
        | RequestBody::KeepAlive { session } => Some(*session),
        _ => None,
    }
}

impl Node {
    /// Whether connection `conn` may send `body`.
    pub(super) fn may_act(&self, conn: ConnId, body: &RequestBody) -> bool {
        acts_on(body).is_none_or(|session| {
            self.attached
                .get(&conn)
                .is_some_and(|sessions| sessions.contains(&session))
        })
    }

    /// Records that `conn` speaks for `session`.
    pub(super) fn attach(&mut self, conn: ConnId, session: SessionId) {
        self.attached.entry(conn).or_default().insert(session);
    }

    /// Answers an `Attach`: from this server's applied state, so that the
    /// requests the client sends right after it on this connection find
    /// the session attached.
    pub(super) fn serve_attach(&mut self, origin: Origin, session: SessionId, secret: u128) {
        let Origin::Local { conn, .. } = origin else {
            // Never forwarded: a peer asking is answered as not attached.
            self.answer(origin, Err(ProtoError::NotAttached));
            return;
        };
        let result = match self.raft.state_machine().opened_with(session, secret) {
            Some(true) => {
                self.attach(conn, session);
                Ok(ResponseBody::Attached { session })
            }
            Some(false) => Err(ProtoError::NotSessionOwner),
            // Opened at an index this server has not applied yet: it cannot
            // tell; the client tries again, here or elsewhere.
            None if session.0 > self.raft.applied_index().0 => Err(ProtoError::NotAttached),
            None => Err(ProtoError::UnknownSession),
        };
        self.answer(origin, result);
    }
}
