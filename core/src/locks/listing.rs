//! Paged listings of the lock table and of the live sessions, for
//! operators and dashboards: a page is a range of one ordered table, and
//! its cursor is the last key it showed, so paging through a table that
//! changes meanwhile never skips or repeats an entry that exists
//! throughout.

use super::LockState;
use super::command::SessionId;
use super::query::{LockStatus, SessionInfo};
use std::ops::Bound;
use std::sync::Arc;

/// One page of locks, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockPage {
    /// The locks of the page with their status, by name.
    pub locks: Vec<(Arc<str>, LockStatus)>,
    /// The name to list after for the next page; `None` when no lock after
    /// this page matches.
    pub next: Option<Arc<str>>,
}

/// One page of live sessions, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPage {
    /// The sessions of the page, by id.
    pub sessions: Vec<(SessionId, SessionInfo)>,
    /// The id to list after for the next page; `None` when no session
    /// follows.
    pub next: Option<SessionId>,
}

impl LockState {
    /// Up to `limit` locks (at least one) whose names start with `prefix`
    /// and sort after `after` (every matching lock when `None`), by name.
    /// Only locks with holders, waiters or a lock-delay exist.
    #[must_use]
    pub fn list_locks(&self, prefix: &str, after: Option<&str>, limit: usize) -> LockPage {
        let limit = limit.max(1);
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .locks
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix));
        let locks: Vec<_> = matching
            .by_ref()
            .take(limit)
            .filter_map(|(name, _)| Some((Arc::clone(name), self.lock_status(name)?)))
            .collect();
        let next = match matching.next() {
            Some(_) => locks.last().map(|(name, _)| Arc::clone(name)),
            None => None,
        };
        LockPage { locks, next }
    }

    /// Up to `limit` live sessions (at least one) with ids above `after`,
    /// by id.
    #[must_use]
    pub fn list_sessions(&self, after: Option<SessionId>, limit: usize) -> SessionPage {
        let limit = limit.max(1);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut ids = self
            .sessions
            .live
            .range((start, Bound::Unbounded))
            .map(|(id, _)| *id);
        let sessions: Vec<_> = ids
            .by_ref()
            .take(limit)
            .filter_map(|id| Some((id, self.session(id)?)))
            .collect();
        let next = match ids.next() {
            Some(_) => sessions.last().map(|(id, _)| *id),
            None => None,
        };
        SessionPage { sessions, next }
    }
}
