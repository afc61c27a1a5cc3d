//! One lock: its holders, its FIFO queue of waiting acquires and its
//! lock-delay, and the rule deciding who may be granted next.
//!
//! Granting is strictly FIFO: a request is granted only when nobody queues
//! ahead of it, so a shared request behind a waiting exclusive one waits
//! (no writer starvation), and a lock in lock-delay grants nobody, not even
//! requests that would fit beside the holders left.
//!
//! Exclusive and shared requests are two modes of one reader-writer lock: a
//! request that conflicts with the current holders (exclusive against
//! readers, or anything against a writer) is simply busy, and waits like any
//! other. A semaphore is another kind of lock; asking for a lock in a mode
//! of the other kind, or for a semaphore of another size, is a mistake of
//! the caller and is refused (`ModeMismatch`, `SemaphoreMismatch`) rather
//! than queued, since it could never be granted beside the current users.

use super::command::{FencingToken, LockKind, Mode, Seq, SessionId};
use super::response::LockError;
use crate::ids::LogIndex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// A lock-delay in force: the lock grants nobody until `LockDelayOver`
/// quoting `since` is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockDelay {
    /// The index of the entry that started it.
    pub since: LogIndex,
    /// Its length, for the leader's timer.
    pub delay_ms: u64,
}

/// A current grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Holder {
    pub(super) token: FencingToken,
    pub(super) mode: Mode,
    /// The lock-delay to start if the holder's session expires.
    pub(super) lock_delay_ms: u64,
    /// An election's value: what its leader (this holder) proclaims.
    pub(super) value: Option<Arc<str>>,
}

/// A queued acquire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Waiter {
    pub(super) session: SessionId,
    /// The acquire's seq, which its eventual answer is addressed to.
    pub(super) seq: Seq,
    pub(super) mode: Mode,
    pub(super) lock_delay_ms: u64,
    /// Kept so a new leader can re-arm the timeout (ARCHITECTURE.md §4, lease rule 4).
    pub(super) timeout_ms: Option<u64>,
    /// The value a campaign asks to lead with.
    pub(super) value: Option<Arc<str>>,
}

impl Holder {
    /// A grant as version 1 snapshots wrote it (no value).
    pub(super) fn from_v1(token: FencingToken, mode: Mode, lock_delay_ms: u64) -> Self {
        Self {
            token,
            mode,
            lock_delay_ms,
            value: None,
        }
    }
}

/// A lock with holders, waiters or a delay (idle locks are not stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Lock {
    /// Binding only while there are holders or waiters.
    pub(super) kind: LockKind,
    /// Sorted by session. A sorted `Vec`: most locks have one holder, and a
    /// million locks must stay small in memory.
    pub(super) holders: Vec<(SessionId, Holder)>,
    pub(super) queue: VecDeque<Waiter>,
    pub(super) delay: Option<LockDelay>,
}

impl Lock {
    pub(super) fn new(kind: LockKind) -> Self {
        Self {
            kind,
            holders: Vec::new(),
            queue: VecDeque::new(),
            delay: None,
        }
    }

    /// Nothing holds, waits for or delays it: it can be forgotten.
    pub(super) fn is_idle(&self) -> bool {
        self.holders.is_empty() && self.queue.is_empty() && self.delay.is_none()
    }

    /// Whether a request of `mode` may use this lock at all; the kind is
    /// free again once the last holder and waiter are gone.
    pub(super) fn check_kind(&self, mode: Mode) -> Result<(), LockError> {
        let wanted = mode.kind();
        if self.kind == wanted || (self.holders.is_empty() && self.queue.is_empty()) {
            return Ok(());
        }
        Err(match (self.kind, wanted) {
            (LockKind::Semaphore(n), LockKind::Semaphore(_)) => LockError::SemaphoreMismatch { n },
            (kind, _) => LockError::ModeMismatch { kind },
        })
    }

    /// Whether `mode` fits beside the current holders (ignoring the queue
    /// and the delay).
    pub(super) fn fits(&self, mode: Mode) -> bool {
        match mode {
            Mode::Exclusive => self.holders.is_empty(),
            // An exclusive holder is always the only one.
            Mode::Shared => self
                .holders
                .first()
                .is_none_or(|(_, h)| h.mode != Mode::Exclusive),
            Mode::Semaphore(n) => self.holders.len() < n as usize,
        }
    }

    /// Whether a new request of `mode` is granted at once.
    pub(super) fn grants_now(&self, mode: Mode) -> bool {
        self.delay.is_none() && self.queue.is_empty() && self.fits(mode)
    }

    fn find(&self, session: SessionId) -> Result<usize, usize> {
        self.holders.binary_search_by_key(&session, |(id, _)| *id)
    }

    /// `session`'s grant, if it holds the lock.
    pub(super) fn holder(&self, session: SessionId) -> Option<&Holder> {
        self.find(session).ok().map(|at| &self.holders[at].1)
    }

    /// Adds a holder; the caller checked [`Self::check_kind`] and that it fits.
    pub(super) fn grant(&mut self, session: SessionId, holder: Holder) {
        // Tokens are the indexes of the entries that grant them, and indexes
        // only grow: a grant's token is at least every current holder's (it
        // equals those granted by the same entry).
        debug_assert!(
            self.holders.iter().all(|(_, h)| h.token <= holder.token),
            "a token below one already granted on this lock"
        );
        if self.holders.is_empty() && self.queue.is_empty() {
            self.kind = holder.mode.kind();
        }
        match self.find(session) {
            Ok(at) => self.holders[at].1 = holder,
            Err(at) => self.holders.insert(at, (session, holder)),
        }
        self.debug_check_holders();
    }

    /// Asserts that the holders fit together (debug builds only): an
    /// exclusive holder is alone, a semaphore of `n` has at most `n`, and
    /// every holder holds in the lock's one mode.
    fn debug_check_holders(&self) {
        let Some((_, first)) = self.holders.first() else {
            return;
        };
        debug_assert_eq!(
            first.mode.kind(),
            self.kind,
            "held in a mode of another kind"
        );
        debug_assert!(
            self.holders.iter().all(|(_, h)| h.mode == first.mode),
            "holders in different modes"
        );
        match first.mode {
            Mode::Exclusive => debug_assert_eq!(self.holders.len(), 1, "two exclusive holders"),
            Mode::Semaphore(n) => debug_assert!(
                self.holders.len() <= n as usize,
                "a semaphore of {n} with {} holders",
                self.holders.len()
            ),
            Mode::Shared => {}
        }
        debug_assert!(
            self.holders.windows(2).all(|w| w[0].0 < w[1].0),
            "holders unsorted or repeated"
        );
    }

    /// Removes `session`'s grant.
    pub(super) fn remove_holder(&mut self, session: SessionId) -> Option<Holder> {
        let at = self.find(session).ok()?;
        let gone = self.holders.remove(at).1;
        debug_assert!(self.holder(session).is_none());
        Some(gone)
    }

    /// Queues a request; the caller checked [`Self::check_kind`].
    pub(super) fn enqueue(&mut self, waiter: Waiter) {
        if self.holders.is_empty() && self.queue.is_empty() {
            self.kind = waiter.mode.kind();
        }
        debug_assert!(
            self.queue.iter().all(|w| w.session != waiter.session),
            "a session queued twice on one lock"
        );
        self.queue.push_back(waiter);
    }

    /// Takes the head of the queue if it may be granted now.
    pub(super) fn pop_grantable(&mut self) -> Option<Waiter> {
        let head = self.queue.front()?;
        if self.delay.is_some() || !self.fits(head.mode) {
            return None;
        }
        self.queue.pop_front()
    }

    /// Removes `session`'s queued request.
    pub(super) fn remove_waiter(&mut self, session: SessionId) -> Option<Waiter> {
        let at = self.queue.iter().position(|w| w.session == session)?;
        self.queue.remove(at)
    }

    /// Starts a lock-delay at `since`. A delay already in force is replaced,
    /// lasting the longer of the two lengths from now: the leader does not
    /// know how much of the old one is left, and longer is the safe side.
    pub(super) fn start_delay(&mut self, since: LogIndex, delay_ms: u64) -> LockDelay {
        let delay_ms = self
            .delay
            .map_or(delay_ms, |old| old.delay_ms.max(delay_ms));
        debug_assert!(
            self.delay.is_none_or(|old| old.since <= since),
            "a delay restarted in the past"
        );
        let delay = LockDelay { since, delay_ms };
        self.delay = Some(delay);
        delay
    }

    /// Ends the delay started at `since`; a stale timer (for a delay that was
    /// replaced) ends nothing.
    pub(super) fn end_delay(&mut self, since: LogIndex) -> bool {
        if self.delay.is_some_and(|d| d.since == since) {
            self.delay = None;
            true
        } else {
            false
        }
    }

    /// The mode the lock is held in, if held.
    pub(super) fn held_mode(&self) -> Option<Mode> {
        self.holders.first().map(|(_, h)| h.mode)
    }
}
