//! The invariants of the lock state.
//!
//! Each session and each lock has local invariants ([`Session::check`],
//! [`Lock::check`]); the whole state adds that sessions and locks agree
//! with each other (`LockState::check_invariants`, test builds only).
//! Restoring a snapshot checks the local ones and gets the agreement by
//! construction; the tests check everything after every step.

use super::LockState;
use super::command::{LockKind, Mode, SessionId};
use super::dedupe::{Seen, Slot};
use super::limits::Limits;
use super::lock::Lock;
use super::session::{Claim, Session};
use crate::ids::LogIndex;

/// A broken invariant, named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Invariant(pub(super) &'static str);

fn ensure(ok: bool, what: &'static str) -> Result<(), Invariant> {
    if ok { Ok(()) } else { Err(Invariant(what)) }
}

impl Session {
    /// What must hold of one live session on its own.
    pub(super) fn check(
        &self,
        id: SessionId,
        limits: &Limits,
        last_applied: LogIndex,
    ) -> Result<(), Invariant> {
        ensure(id.0 <= last_applied.0, "a session from the future")?;
        limits
            .check_ttl(self.ttl_ms)
            .map_err(|_| Invariant("a session ttl out of range"))?;
        ensure(
            self.lock_count() <= limits.max_locks_per_session as usize,
            "a session with too many locks",
        )?;
        let floor = self.dedupe.floor();
        let (mut slots, mut pending, mut previous) = (0, 0, None);
        for (seq, slot) in self.dedupe.slots() {
            ensure(seq >= floor, "a remembered answer below the floor")?;
            ensure(previous < Some(seq), "remembered answers out of order")?;
            previous = Some(seq);
            slots += 1;
            pending += usize::from(slot == Slot::Pending);
        }
        ensure(
            slots <= limits.max_unacked_per_session as usize,
            "too many remembered answers",
        )?;
        // Every wait at or above the floor has its own pending slot, and
        // every pending slot its wait.
        let mut waits: Vec<_> = self
            .claims
            .iter()
            .filter_map(|(_, claim)| match claim {
                Claim::Waiting(seq) if seq >= floor => Some(seq),
                _ => None,
            })
            .collect();
        waits.sort_unstable();
        ensure(
            waits.windows(2).all(|w| w[0] != w[1]),
            "two waits of one request",
        )?;
        ensure(waits.len() == pending, "a pending answer without a wait")?;
        ensure(
            waits
                .iter()
                .all(|seq| self.dedupe.seen(*seq) == Seen::Pending),
            "a wait without a pending answer",
        )
    }
}

impl Lock {
    /// What must hold of one lock on its own.
    pub(super) fn check(
        &self,
        name: &str,
        limits: &Limits,
        last_applied: LogIndex,
    ) -> Result<(), Invariant> {
        limits
            .check_name(name)
            .map_err(|_| Invariant("an invalid lock name"))?;
        ensure(!self.is_idle(), "an idle lock is kept")?;
        ensure(
            self.kind != LockKind::Semaphore(0),
            "a semaphore of no permits",
        )?;
        ensure(
            self.queue.len() <= limits.max_waiters_per_lock as usize,
            "too many waiters",
        )?;
        ensure(
            self.holders.windows(2).all(|w| w[0].0 < w[1].0),
            "holders out of order",
        )?;
        for (_, holder) in &self.holders {
            ensure(holder.mode.kind() == self.kind, "a holder of another kind")?;
            ensure(holder.token.0 <= last_applied.0, "a token from the future")?;
            ensure(
                holder.lock_delay_ms <= limits.max_lock_delay_ms,
                "a lock-delay too long",
            )?;
        }
        let exclusive = self.holders.iter().any(|(_, h)| h.mode == Mode::Exclusive);
        ensure(
            !exclusive || self.holders.len() == 1,
            "an exclusive holder is not alone",
        )?;
        if let LockKind::Semaphore(n) = self.kind {
            ensure(
                self.holders.len() <= n as usize,
                "more semaphore holders than permits",
            )?;
        }
        for waiter in &self.queue {
            ensure(waiter.mode.kind() == self.kind, "a waiter of another kind")?;
            ensure(self.holder(waiter.session).is_none(), "a holder also waits")?;
            ensure(
                waiter.lock_delay_ms <= limits.max_lock_delay_ms,
                "a lock-delay too long",
            )?;
        }
        if let Some(delay) = self.delay {
            ensure(
                delay.since.0 <= last_applied.0,
                "a lock-delay from the future",
            )?;
        }
        // Grants happen as soon as they can: nobody waits for nothing.
        let stuck = self
            .queue
            .front()
            .is_some_and(|head| self.delay.is_none() && self.fits(head.mode));
        ensure(!stuck, "the head of a queue could be granted")
    }
}

impl LockState {
    /// Checks every invariant of the state, local and shared.
    #[cfg(any(test, feature = "testkit"))]
    pub(super) fn check_invariants(&self) -> Result<(), Invariant> {
        self.check_sessions()?;
        self.check_locks()
    }

    /// Checks every invariant of the state, naming the first one broken
    /// (for harnesses outside this crate: the simulator, the fuzz targets).
    ///
    /// # Errors
    /// The name of the broken invariant.
    #[cfg(feature = "testkit")]
    pub fn broken_invariant(&self) -> Result<(), &'static str> {
        self.check_invariants().map_err(|Invariant(what)| what)
    }

    #[cfg(any(test, feature = "testkit"))]
    fn check_sessions(&self) -> Result<(), Invariant> {
        let limits = &self.limits;
        let sessions = &self.sessions;
        ensure(
            sessions.live.len() <= limits.max_sessions as usize,
            "more live sessions than allowed",
        )?;
        ensure(
            sessions.ended.len() <= limits.max_ended_sessions as usize,
            "more ended sessions than allowed",
        )?;
        let order: std::collections::BTreeSet<_> = sessions.ended_order.iter().collect();
        ensure(
            sessions.ended_order.len() == sessions.ended.len(),
            "ended sessions out of order",
        )?;
        ensure(
            order.len() == sessions.ended.len(),
            "ended sessions out of order",
        )?;
        ensure(
            order.iter().all(|id| sessions.ended.contains_key(id)),
            "ended sessions out of order",
        )?;
        ensure(
            sessions.nonces.len() == sessions.live.len() + sessions.ended.len(),
            "nonce index",
        )?;
        for (id, ended) in &sessions.ended {
            ensure(
                !sessions.live.contains_key(id),
                "a session both live and ended",
            )?;
            ensure(sessions.nonces.get(&ended.nonce) == Some(id), "nonce index")?;
        }
        for (id, session) in &sessions.live {
            session.check(*id, limits, self.last_applied)?;
            ensure(
                sessions.nonces.get(&session.nonce) == Some(id),
                "nonce index",
            )?;
            for (name, claim) in session.claims.iter() {
                let lock = self
                    .locks
                    .get(name)
                    .ok_or(Invariant("a claim on a missing lock"))?;
                let agrees = match claim {
                    Claim::Held(token) => {
                        lock.holder(*id).is_some_and(|holder| holder.token == token)
                    }
                    Claim::Waiting(seq) => {
                        lock.queue.iter().any(|w| w.session == *id && w.seq == seq)
                    }
                };
                ensure(agrees, "a session's claim is not in its lock")?;
            }
        }
        Ok(())
    }

    #[cfg(any(test, feature = "testkit"))]
    fn check_locks(&self) -> Result<(), Invariant> {
        let mut claims = 0;
        for (name, lock) in &self.locks {
            lock.check(name, &self.limits, self.last_applied)?;
            claims += lock.holders.len() + lock.queue.len();
            for (id, holder) in &lock.holders {
                let session = self
                    .sessions
                    .live
                    .get(id)
                    .ok_or(Invariant("a holder's session is not live"))?;
                ensure(
                    session.claims.get(name) == Some(Claim::Held(holder.token)),
                    "a holder unknown to its session",
                )?;
            }
            for waiter in &lock.queue {
                let session = self
                    .sessions
                    .live
                    .get(&waiter.session)
                    .ok_or(Invariant("a waiter's session is not live"))?;
                ensure(
                    session.claims.get(name) == Some(Claim::Waiting(waiter.seq)),
                    "a waiter unknown to its session",
                )?;
            }
        }
        let claimed: usize = self.sessions.live.values().map(Session::lock_count).sum();
        ensure(claimed == claims, "sessions and locks disagree")
    }
}
