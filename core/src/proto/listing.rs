//! The answers to the listing requests (`ListLocks`, `ListSessions`): one
//! page of locks or sessions with who holds, waits and opened what, and
//! the cursor of the next page.
//!
//! Printed as JSON by `distlock locks --json` and `distlock sessions
//! --json` and sent as is over WebSocket, so their field names are part of
//! the protocol.

use crate::ids::LogIndex;
use crate::locks::{
    FencingToken, LockDelay, LockKind, LockPage, LockState, LockStatus, Mode, SessionId,
    SessionMeta, SessionPage,
};
use serde::{Deserialize, Serialize};

/// The most entries one listing page holds; a larger `limit` is served as
/// this one.
pub const LIST_LIMIT_MAX: u32 = 1_000;

/// The page size a `limit` of 0 asks for.
pub const LIST_LIMIT_DEFAULT: u32 = 100;

/// The page size served for a requested `limit`.
#[must_use]
pub fn page_size(limit: u32) -> usize {
    let limit = if limit == 0 {
        LIST_LIMIT_DEFAULT
    } else {
        limit
    };
    limit.min(LIST_LIMIT_MAX) as usize
}

/// One page of locks, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockListView {
    /// The applied log index the page reflects (a ReadIndex read).
    pub index: LogIndex,
    /// The locks with holders, waiters or a lock-delay, by name.
    pub locks: Vec<LockEntryView>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A lock in a [`LockListView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntryView {
    /// Its name.
    pub name: String,
    /// Reader-writer or a semaphore.
    pub kind: LockKind,
    /// How it is held; `None` if nobody holds it.
    pub mode: Option<Mode>,
    /// Its holders, by session id.
    pub holders: Vec<HolderEntryView>,
    /// Its queue, first in line first.
    pub waiters: Vec<WaiterEntryView>,
    /// The lock-delay in force, if any.
    pub delay: Option<LockDelay>,
}

/// A holder in a [`LockEntryView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderEntryView {
    /// The holding session.
    pub session: SessionId,
    /// Its grant's fencing token.
    pub token: FencingToken,
    /// The log index of the entry that granted it (tokens are these
    /// indexes, so it equals `token`; given apart for readers that compare
    /// it with `index` or a commit index).
    pub since: LogIndex,
    /// Who opened the session, if its client said.
    pub owner: Option<SessionMeta>,
}

/// A waiter in a [`LockEntryView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiterEntryView {
    /// The waiting session.
    pub session: SessionId,
    /// The mode it asked for.
    pub mode: Mode,
    /// How long it may wait in all, in milliseconds; `None` for ever.
    pub timeout_ms: Option<u64>,
    /// Who opened the session, if its client said.
    pub owner: Option<SessionMeta>,
}

/// One page of live sessions, by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListView {
    /// The applied log index the page reflects (a ReadIndex read).
    pub index: LogIndex,
    /// The sessions, by id.
    pub sessions: Vec<SessionEntryView>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<SessionId>,
}

/// A session in a [`SessionListView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntryView {
    /// Its id (the log index that opened it).
    pub session: SessionId,
    /// Its lease length.
    pub ttl_ms: u64,
    /// How many locks it holds.
    pub held: u32,
    /// How many locks it waits for.
    pub waiting: u32,
    /// Who opened it, if its client said.
    pub owner: Option<SessionMeta>,
}

impl LockEntryView {
    /// The view of lock `name` with status `status`, naming owners from
    /// `state`.
    #[must_use]
    pub fn new(state: &LockState, name: &str, status: LockStatus) -> Self {
        let owner = |id| state.session_meta(id).cloned();
        Self {
            name: name.to_owned(),
            kind: status.kind,
            mode: status.mode,
            holders: status
                .holders
                .into_iter()
                .map(|(session, token)| HolderEntryView {
                    session,
                    token,
                    since: LogIndex(token.0),
                    owner: owner(session),
                })
                .collect(),
            waiters: status
                .waiters
                .into_iter()
                .map(|w| WaiterEntryView {
                    session: w.session,
                    mode: w.mode,
                    timeout_ms: w.timeout_ms,
                    owner: owner(w.session),
                })
                .collect(),
            delay: status.delay,
        }
    }
}

impl LockListView {
    /// The view of `page`, read from `state`.
    #[must_use]
    pub fn new(state: &LockState, page: LockPage) -> Self {
        Self {
            index: state.last_applied(),
            locks: page
                .locks
                .into_iter()
                .map(|(name, status)| LockEntryView::new(state, &name, status))
                .collect(),
            next: page.next.map(|name| name.to_string()),
        }
    }
}

impl SessionListView {
    /// The view of `page`, read from `state`.
    #[must_use]
    pub fn new(state: &LockState, page: SessionPage) -> Self {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            index: state.last_applied(),
            sessions: page
                .sessions
                .into_iter()
                .map(|(session, info)| SessionEntryView {
                    session,
                    ttl_ms: info.ttl_ms,
                    held: count(info.held),
                    waiting: count(info.waiting),
                    owner: state.session_meta(session).cloned(),
                })
                .collect(),
            next: page.next,
        }
    }
}

/// An election's leader, as `Leader` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderView {
    /// The leading session.
    pub session: SessionId,
    /// Its grant's fencing token: its term of office (a later leader's is
    /// higher).
    pub token: FencingToken,
    /// The value it leads with; `None` when the lock is held by a plain
    /// acquire rather than a campaign.
    pub value: Option<String>,
    /// Who opened the leading session, if its client said.
    pub owner: Option<SessionMeta>,
}

impl LeaderView {
    /// The leader of election `name` in `state`, if any.
    #[must_use]
    pub fn of(state: &LockState, name: &str) -> Option<Self> {
        let leader = state.leader(name)?;
        Some(Self {
            session: leader.session,
            token: leader.token,
            value: leader.value.map(|v| v.to_string()),
            owner: state.session_meta(leader.session).cloned(),
        })
    }
}
