//! Sessions: the live ones with what each holds, waits for and has
//! answered, and a bounded memory of ended ones (so late requests get a
//! precise error and a retried open is not applied twice).

use super::command::{FencingToken, Seq, SessionId};
use super::dedupe::{Dedupe, Seen};
use super::meta::SessionMeta;
use super::response::{LockError, Response};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// A session's part in one lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// It holds the lock with this token.
    Held(FencingToken),
    /// It waits for the lock with the acquire of this seq.
    Waiting(Seq),
}

/// The locks a session holds or waits for, sorted by name.
///
/// Derived from the lock table, so not in snapshots; kept so that ending a
/// session does not scan every lock, and so that `AlreadyHeld` needs no
/// scan of a queue. A sorted `Vec`: sessions usually claim a few locks
/// (inserting into one that claims the maximum moves at most
/// `Limits::max_locks_per_session` entries), and a million sessions must
/// stay small in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Claims(Vec<(Arc<str>, Claim)>);

impl Claims {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|(claimed, _)| (**claimed).cmp(name))
    }

    pub(super) fn get(&self, name: &str) -> Option<Claim> {
        self.find(name).ok().map(|at| self.0[at].1)
    }

    /// Sets the session's claim on `name`, replacing any.
    pub(super) fn set(&mut self, name: &Arc<str>, claim: Claim) {
        match self.find(name) {
            Ok(at) => self.0[at].1 = claim,
            Err(at) => self.0.insert(at, (Arc::clone(name), claim)),
        }
    }

    /// Removes the claim on `name`, if any, with the shared name.
    pub(super) fn remove(&mut self, name: &str) -> Option<(Arc<str>, Claim)> {
        let at = self.find(name).ok()?;
        Some(self.0.remove(at))
    }

    /// Claims already sorted by name, with no name twice.
    pub(super) fn from_sorted(claims: Vec<(Arc<str>, Claim)>) -> Self {
        Self(claims)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, Claim)> + '_ {
        self.0.iter().map(|(name, claim)| (name, *claim))
    }

    pub(super) fn into_vec(self) -> Vec<(Arc<str>, Claim)> {
        self.0
    }
}

/// A live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Session {
    /// Lease length, for the leader's expiry timer.
    pub(super) ttl_ms: u64,
    /// The nonce of the `OpenSession` that created it.
    pub(super) nonce: u128,
    /// Exactly-once answers.
    pub(super) dedupe: Dedupe,
    /// Who opened it, if its client said (boxed: most of a million
    /// sessions' memory should not be room for metadata they lack).
    pub(super) meta: Option<Box<SessionMeta>>,
    /// The locks it holds and waits for.
    #[serde(skip)]
    pub(super) claims: Claims,
}

impl Session {
    pub(super) fn new(nonce: u128, ttl_ms: u64, meta: Option<Box<SessionMeta>>) -> Self {
        Self {
            ttl_ms,
            nonce,
            dedupe: Dedupe::default(),
            meta,
            claims: Claims::default(),
        }
    }

    /// Locks held and waited for: what `Limits::max_locks_per_session` bounds.
    pub(super) fn lock_count(&self) -> usize {
        self.claims.len()
    }
}

/// What is remembered of an ended session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Ended {
    /// Its open nonce, so a late retry of the open is not applied again.
    pub(super) nonce: u128,
    /// Expired rather than closed.
    pub(super) expired: bool,
}

impl Ended {
    pub(super) fn error(self) -> LockError {
        if self.expired {
            LockError::SessionExpired
        } else {
            LockError::SessionClosed
        }
    }
}

/// A request's fate once its session and sequence number were looked at.
pub(super) enum Admission<'a> {
    /// Apply it on this session.
    Apply(&'a mut Session),
    /// Already answered with this (a retry, or a session that is not live).
    Answered(Response),
}

/// Every session the state machine knows of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Sessions {
    pub(super) live: BTreeMap<SessionId, Session>,
    pub(super) ended: BTreeMap<SessionId, Ended>,
    /// `ended`'s keys in the order the sessions ended, oldest first: the
    /// order in which they are forgotten.
    pub(super) ended_order: VecDeque<SessionId>,
    /// Nonce of every live or remembered session.
    pub(super) nonces: BTreeMap<u128, SessionId>,
}

impl Sessions {
    /// Looks a client request up: a session that is not live, a stale or a
    /// retried request is answered at once; anything else is to be applied.
    /// A retry still acknowledges (its `ack` may have moved on since the
    /// first attempt).
    pub(super) fn admit(&mut self, id: SessionId, seq: Seq, ack: Seq) -> Admission<'_> {
        let Some(session) = self.live.get_mut(&id) else {
            // Not `self.not_live`: `self.live` stays borrowed on the other path.
            let error = self
                .ended
                .get(&id)
                .map_or(LockError::SessionNotFound, |ended| ended.error());
            return Admission::Answered(Err(error));
        };
        let answer = match session.dedupe.seen(seq) {
            Seen::New => return Admission::Apply(session),
            Seen::Stale(floor) => {
                return Admission::Answered(Err(LockError::StaleSequence { floor }));
            }
            Seen::Pending => Ok(super::Outcome::Pending),
            Seen::Done(response) => response,
        };
        session.dedupe.trim(session.dedupe.floor_after(seq, ack));
        Admission::Answered(answer)
    }

    /// Why a session that is not live cannot be used.
    pub(super) fn not_live(&self, id: SessionId) -> LockError {
        self.ended
            .get(&id)
            .map_or(LockError::SessionNotFound, |ended| ended.error())
    }

    pub(super) fn by_nonce(&self, nonce: u128) -> Option<Result<SessionId, LockError>> {
        let id = *self.nonces.get(&nonce)?;
        Some(if self.live.contains_key(&id) {
            Ok(id)
        } else {
            Err(self.not_live(id))
        })
    }

    pub(super) fn open(
        &mut self,
        id: SessionId,
        nonce: u128,
        ttl_ms: u64,
        meta: Option<Box<SessionMeta>>,
    ) {
        self.live.insert(id, Session::new(nonce, ttl_ms, meta));
        self.nonces.insert(nonce, id);
    }

    /// Removes a live session and remembers it ended, forgetting the oldest
    /// ended sessions beyond `max_ended`.
    pub(super) fn end(&mut self, id: SessionId, expired: bool, max_ended: u32) -> Option<Session> {
        let session = self.live.remove(&id)?;
        self.ended.insert(
            id,
            Ended {
                nonce: session.nonce,
                expired,
            },
        );
        self.ended_order.push_back(id);
        while self.ended_order.len() > max_ended as usize {
            let Some(old) = self.ended_order.pop_front() else {
                break;
            };
            if let Some(ended) = self.ended.remove(&old) {
                self.nonces.remove(&ended.nonce);
            }
        }
        Some(session)
    }
}
