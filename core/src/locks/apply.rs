//! The command handlers: what applying each command does to sessions and
//! locks, and the FIFO hand-off that grants waiters whenever a lock frees up.
//!
//! Order of checks for a client request: session liveness, then the dedupe
//! table (retries are answered from it, untouched), then checks that depend
//! only on the request and the limits (refused with no state change at
//! all), then the request is applied and its answer remembered, including
//! refusals that depend on the state (`Busy`, `TooManyWaiters`...), so that
//! a duplicate arriving later gets the same answer and is never applied.

use super::LockState;
use super::command::{FencingToken, Mode, Seq, SessionId, Wait};
use super::limits::Limits;
use super::lock::{Holder, Lock, Waiter};
use super::meta::SessionMeta;
use super::response::{Applied, Event, LockError, Outcome, Reply, Response};
use super::session::{Admission, Claim, Session, Sessions};
use crate::ids::LogIndex;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Bound;
use std::sync::Arc;

/// Who sent a client request.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caller {
    pub(super) session: SessionId,
    pub(super) seq: Seq,
    pub(super) ack: Seq,
}

/// The lock-specific part of an `Acquire`.
#[derive(Clone, Copy, Debug)]
pub(super) struct AcquireRequest<'a> {
    pub(super) lock: &'a str,
    pub(super) mode: Mode,
    pub(super) wait: Wait,
    pub(super) lock_delay_ms: u64,
    /// A campaign's value (an election is an exclusive lock with one).
    pub(super) value: Option<&'a str>,
}

impl LockState {
    pub(super) fn open_session(
        &mut self,
        index: LogIndex,
        nonce: u128,
        ttl_ms: u64,
        meta: Option<&SessionMeta>,
        out: &mut Applied,
    ) {
        let result = match self.sessions.by_nonce(nonce) {
            Some(known) => known,
            None => meta
                .map_or(Ok(()), SessionMeta::check_lock)
                .and_then(|()| self.limits.check_ttl(ttl_ms))
                .and_then(|()| self.limits.check_sessions(self.sessions.live.len()))
                .map(|()| {
                    let session = SessionId(index.0);
                    let meta = meta.map(|m| Box::new(m.clone()));
                    self.sessions.open(session, nonce, ttl_ms, meta);
                    out.events.push(Event::SessionOpened { session, ttl_ms });
                    session
                }),
        };
        out.replies.push(Reply::SessionOpened { nonce, result });
    }

    pub(super) fn close_session(&mut self, index: LogIndex, caller: Caller, out: &mut Applied) {
        match self.sessions.admit(caller.session, caller.seq, caller.ack) {
            // A retried close whose answer was lost.
            Admission::Answered(Err(LockError::SessionClosed)) => {
                out.reply(caller.session, caller.seq, Ok(Outcome::Closed));
            }
            Admission::Answered(response) => out.reply(caller.session, caller.seq, response),
            Admission::Apply(_) => {
                out.reply(caller.session, caller.seq, Ok(Outcome::Closed));
                self.end_session(index, caller.session, false, out);
            }
        }
    }

    /// Ends a live session (no-op otherwise): its waits are answered, its
    /// locks freed (into lock-delay where asked, if it expired) and handed to
    /// their next waiters.
    pub(super) fn end_session(
        &mut self,
        index: LogIndex,
        id: SessionId,
        expired: bool,
        out: &mut Applied,
    ) {
        let Some(session) = self
            .sessions
            .end(id, expired, self.limits.max_ended_sessions)
        else {
            return;
        };
        let lost = if expired {
            LockError::SessionExpired
        } else {
            LockError::SessionClosed
        };
        // By lock name: the order must not depend on how the claims arose,
        // as a restored replica rebuilds them in name order.
        for (name, claim) in session.claims.into_vec() {
            match claim {
                Claim::Waiting(acquire_seq) => {
                    out.reply(id, acquire_seq, Err(lost));
                    self.remove_wait(index, id, &name, acquire_seq, out);
                }
                Claim::Held(token) => self.update_lock(&name, index, out, |lock, out| {
                    let Some(holder) = lock.remove_holder(id) else {
                        return;
                    };
                    let lock_name = Arc::clone(&name);
                    if !expired {
                        out.events.push(Event::Released {
                            lock: lock_name,
                            session: id,
                            token,
                        });
                        return;
                    }
                    out.events.push(Event::Expired {
                        lock: lock_name,
                        session: id,
                        token,
                    });
                    if holder.lock_delay_ms > 0 {
                        let delay = lock.start_delay(index, holder.lock_delay_ms);
                        let lock = Arc::clone(&name);
                        out.events.push(Event::LockDelayStarted {
                            lock,
                            since: delay.since,
                            delay_ms: delay.delay_ms,
                        });
                    }
                }),
            }
        }
        out.events.push(Event::SessionEnded {
            session: id,
            expired,
        });
    }

    pub(super) fn acquire(
        &mut self,
        index: LogIndex,
        caller: Caller,
        request: AcquireRequest<'_>,
        out: &mut Applied,
    ) {
        let Some(session) = admit(&mut self.sessions, caller, out) else {
            return;
        };
        let floor = session.dedupe.floor_after(caller.seq, caller.ack);
        let valid = self
            .limits
            .check_acquire(request.lock, request.mode, request.lock_delay_ms)
            .and_then(|()| request.value.map_or(Ok(()), check_value))
            .and_then(|()| self.limits.check_unacked(session.dedupe.kept_above(floor)));
        if let Err(error) = valid {
            out.reply(caller.session, caller.seq, Err(error));
            return;
        }
        session.dedupe.trim(floor);
        match decide_acquire(
            &self.limits,
            &mut self.locks,
            session,
            caller,
            request,
            index,
            out,
        ) {
            Ok(Outcome::Pending) => session.dedupe.pend(caller.seq),
            response => answer(session, caller.session, caller.seq, response, out),
        }
    }

    pub(super) fn release(
        &mut self,
        index: LogIndex,
        caller: Caller,
        name: &str,
        token: FencingToken,
        out: &mut Applied,
    ) {
        let Some(session) = admit_and_trim(&mut self.sessions, &self.limits, caller, out) else {
            return;
        };
        if session.claims.get(name) != Some(Claim::Held(token)) {
            answer(
                session,
                caller.session,
                caller.seq,
                Err(LockError::NotHolder),
                out,
            );
            return;
        }
        let Some((name, _)) = session.claims.remove(name) else {
            return;
        };
        answer(
            session,
            caller.session,
            caller.seq,
            Ok(Outcome::Released),
            out,
        );
        self.update_lock(&name, index, out, |lock, out| {
            if lock.remove_holder(caller.session).is_some() {
                out.events.push(Event::Released {
                    lock: Arc::clone(&name),
                    session: caller.session,
                    token,
                });
            }
        });
    }

    /// An election's leader (the holder of `name` with `token`) proclaims
    /// a new value.
    pub(super) fn proclaim(
        &mut self,
        caller: Caller,
        name: &str,
        token: FencingToken,
        value: &str,
        out: &mut Applied,
    ) {
        let Some(session) = admit(&mut self.sessions, caller, out) else {
            return;
        };
        let floor = session.dedupe.floor_after(caller.seq, caller.ack);
        let valid = self
            .limits
            .check_name(name)
            .and_then(|()| check_value(value))
            .and_then(|()| self.limits.check_unacked(session.dedupe.kept_above(floor)));
        if let Err(error) = valid {
            out.reply(caller.session, caller.seq, Err(error));
            return;
        }
        session.dedupe.trim(floor);
        let holder = (session.claims.get(name) == Some(Claim::Held(token)))
            .then(|| lock_mut(&mut self.locks, name))
            .flatten()
            .and_then(|(shared, lock)| {
                let at = lock
                    .holders
                    .iter()
                    .position(|(id, h)| *id == caller.session && h.token == token)?;
                Some((Arc::clone(shared), lock, at))
            });
        let Some((shared, lock, at)) = holder else {
            answer(
                session,
                caller.session,
                caller.seq,
                Err(LockError::NotHolder),
                out,
            );
            return;
        };
        lock.holders[at].1.value = Some(Arc::from(value));
        answer(
            session,
            caller.session,
            caller.seq,
            Ok(Outcome::Proclaimed),
            out,
        );
        out.events.push(Event::Proclaimed {
            lock: shared,
            session: caller.session,
            token,
        });
    }

    pub(super) fn cancel_wait(
        &mut self,
        index: LogIndex,
        caller: Caller,
        name: &str,
        out: &mut Applied,
    ) {
        let Some(session) = admit_and_trim(&mut self.sessions, &self.limits, caller, out) else {
            return;
        };
        let Some(Claim::Waiting(acquire_seq)) = session.claims.get(name) else {
            answer(
                session,
                caller.session,
                caller.seq,
                Err(LockError::NotWaiting),
                out,
            );
            return;
        };
        let Some((name, _)) = session.claims.remove(name) else {
            return;
        };
        answer(
            session,
            caller.session,
            acquire_seq,
            Err(LockError::Cancelled),
            out,
        );
        answer(
            session,
            caller.session,
            caller.seq,
            Ok(Outcome::WaitCancelled),
            out,
        );
        self.remove_wait(index, caller.session, &name, acquire_seq, out);
    }

    pub(super) fn wait_timed_out(
        &mut self,
        index: LogIndex,
        id: SessionId,
        name: &str,
        acquire_seq: Seq,
        out: &mut Applied,
    ) {
        let Some(session) = self.sessions.live.get_mut(&id) else {
            return;
        };
        if session.claims.get(name) != Some(Claim::Waiting(acquire_seq)) {
            return; // granted, cancelled, or a newer wait: the timer is stale
        }
        let Some((name, _)) = session.claims.remove(name) else {
            return;
        };
        answer(session, id, acquire_seq, Err(LockError::TimedOut), out);
        self.remove_wait(index, id, &name, acquire_seq, out);
    }

    pub(super) fn lock_delay_over(
        &mut self,
        index: LogIndex,
        name: &str,
        since: LogIndex,
        out: &mut Applied,
    ) {
        let Some((name, lock)) = self.locks.get_key_value(name) else {
            return;
        };
        if lock.delay.is_none_or(|delay| delay.since != since) {
            return; // a stale timer must not end a newer delay
        }
        let name = Arc::clone(name);
        self.update_lock(&name, index, out, |lock, out| {
            if lock.end_delay(since) {
                out.events.push(Event::LockDelayEnded {
                    lock: Arc::clone(&name),
                });
            }
        });
    }

    /// Takes a wait (already removed from its session) out of its lock's queue.
    fn remove_wait(
        &mut self,
        index: LogIndex,
        id: SessionId,
        name: &Arc<str>,
        acquire_seq: Seq,
        out: &mut Applied,
    ) {
        self.update_lock(name, index, out, |lock, out| {
            if lock.remove_waiter(id).is_some() {
                out.events.push(Event::WaitEnded {
                    session: id,
                    lock: Arc::clone(name),
                    acquire_seq,
                });
            }
        });
    }

    /// Changes a lock, then grants whoever the change let through, then
    /// forgets the lock if it became idle.
    fn update_lock(
        &mut self,
        name: &Arc<str>,
        index: LogIndex,
        out: &mut Applied,
        change: impl FnOnce(&mut Lock, &mut Applied),
    ) {
        let Entry::Occupied(mut entry) = self.locks.entry(Arc::clone(name)) else {
            return;
        };
        let lock = entry.get_mut();
        change(lock, out);
        grant_waiters(name, lock, &mut self.sessions, index, out);
        if lock.is_idle() {
            entry.remove();
        }
    }
}

/// Answers a request on a live session from its dedupe table if it is a
/// retry; otherwise hands the session over to apply it.
fn admit<'a>(
    sessions: &'a mut Sessions,
    caller: Caller,
    out: &mut Applied,
) -> Option<&'a mut Session> {
    match sessions.admit(caller.session, caller.seq, caller.ack) {
        Admission::Apply(session) => Some(session),
        Admission::Answered(response) => {
            out.reply(caller.session, caller.seq, response);
            None
        }
    }
}

/// [`admit`], then the acknowledgement: for requests with no other checks.
fn admit_and_trim<'a>(
    sessions: &'a mut Sessions,
    limits: &Limits,
    caller: Caller,
    out: &mut Applied,
) -> Option<&'a mut Session> {
    let session = admit(sessions, caller, out)?;
    let floor = session.dedupe.floor_after(caller.seq, caller.ack);
    let kept = session.dedupe.kept_above(floor);
    if let Err(error) = limits.check_unacked(kept) {
        out.reply(caller.session, caller.seq, Err(error));
        return None;
    }
    session.dedupe.trim(floor);
    Some(session)
}

/// Remembers and sends the answer to request `seq` of `session`.
fn answer(session: &mut Session, id: SessionId, seq: Seq, response: Response, out: &mut Applied) {
    session.dedupe.answer(seq, response);
    out.reply(id, seq, response);
}

/// Applies an admitted acquire. `Ok(Outcome::Pending)` means it was queued.
fn decide_acquire(
    limits: &Limits,
    locks: &mut BTreeMap<Arc<str>, Lock>,
    session: &mut Session,
    caller: Caller,
    request: AcquireRequest<'_>,
    index: LogIndex,
    out: &mut Applied,
) -> Response {
    match session.claims.get(request.lock) {
        Some(Claim::Held(token)) => return Err(LockError::AlreadyHeld { token }),
        Some(Claim::Waiting(_)) => return Err(LockError::AlreadyWaiting),
        None => {}
    }
    let token = FencingToken::at(index);
    let holder = Holder {
        token,
        mode: request.mode,
        lock_delay_ms: request.lock_delay_ms,
        value: request.value.map(Arc::from),
    };
    let granted = |name: &Arc<str>, session: &mut Session, out: &mut Applied| {
        session.claims.set(name, Claim::Held(token));
        let lock = Arc::clone(name);
        out.events.push(Event::Acquired {
            lock,
            session: caller.session,
            token,
            mode: request.mode,
        });
        Ok(Outcome::Granted { token })
    };
    let Some((name, lock)) = lock_mut(locks, request.lock) else {
        // Free: no entry is kept for idle locks.
        limits.check_session_locks(session.lock_count())?;
        let name: Arc<str> = Arc::from(request.lock);
        let mut lock = Lock::new(request.mode.kind());
        lock.grant(caller.session, holder);
        locks.insert(Arc::clone(&name), lock);
        return granted(&name, session, out);
    };
    lock.check_kind(request.mode)?;
    if lock.grants_now(request.mode) {
        limits.check_session_locks(session.lock_count())?;
        lock.grant(caller.session, holder);
        return granted(name, session, out);
    }
    if !request.wait.queues() {
        return Err(LockError::Busy {
            delayed: lock.delay.is_some(),
        });
    }
    let timeout_ms = request.wait.timeout_ms();
    limits.check_waiters(lock.queue.len())?;
    limits.check_session_locks(session.lock_count())?;
    lock.enqueue(Waiter {
        session: caller.session,
        seq: caller.seq,
        mode: request.mode,
        lock_delay_ms: request.lock_delay_ms,
        timeout_ms,
        value: request.value.map(Arc::from),
    });
    session.claims.set(name, Claim::Waiting(caller.seq));
    out.events.push(Event::WaitStarted {
        session: caller.session,
        lock: Arc::clone(name),
        acquire_seq: caller.seq,
        timeout_ms,
    });
    Ok(Outcome::Pending)
}

/// The entry of a lock by name, with its shared name.
fn lock_mut<'a>(
    locks: &'a mut BTreeMap<Arc<str>, Lock>,
    name: &str,
) -> Option<(&'a Arc<str>, &'a mut Lock)> {
    locks
        .range_mut::<str, _>((Bound::Included(name), Bound::Included(name)))
        .next()
}

/// Grants the head of the queue for as long as it fits; every grant's token
/// is the index of the entry being applied.
fn grant_waiters(
    name: &Arc<str>,
    lock: &mut Lock,
    sessions: &mut Sessions,
    index: LogIndex,
    out: &mut Applied,
) {
    let token = FencingToken::at(index);
    while let Some(waiter) = lock.pop_grantable() {
        let Waiter {
            session: id,
            seq,
            mode,
            lock_delay_ms,
            value,
            ..
        } = waiter;
        lock.grant(
            id,
            Holder {
                token,
                mode,
                lock_delay_ms,
                value,
            },
        );
        let response = Ok(Outcome::Granted { token });
        // Waiters' sessions are live: ending a session removes its waits.
        if let Some(session) = sessions.live.get_mut(&id) {
            session.claims.set(name, Claim::Held(token));
            session.dedupe.answer(seq, response);
        }
        out.events.push(Event::WaitEnded {
            session: id,
            lock: Arc::clone(name),
            acquire_seq: seq,
        });
        out.events.push(Event::Acquired {
            lock: Arc::clone(name),
            session: id,
            token,
            mode,
        });
        out.reply(id, seq, response);
    }
}

/// Checks an election's value against [`MAX_ELECTION_VALUE`].
pub(super) fn check_value(value: &str) -> Result<(), LockError> {
    if value.len() > MAX_ELECTION_VALUE as usize {
        return Err(LockError::InvalidValue {
            len: value.len() as u64,
            max: MAX_ELECTION_VALUE,
        });
    }
    Ok(())
}

/// The longest election value, in bytes.
pub const MAX_ELECTION_VALUE: u32 = 4_096;
