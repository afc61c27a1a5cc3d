//! The leader's lease timers (ARCHITECTURE.md §4): session deadlines, wait timeouts
//! and lock-delays, all on the leader's monotonic clock. When they run out
//! the leader proposes `ExpireSession`, `WaitTimedOut` or `LockDelayOver`;
//! the state machine decides nothing by time itself.
//!
//! Only a leader keeps them. A new leader sets every one to its full length
//! from its election (rule 4), so after a failover leases only get longer;
//! keepalives confirmed by a quorum round extend a session to
//! `arrival + ttl` (rule 2).

use super::deadlines::Deadlines;
use crate::ids::LogIndex;
use crate::locks::{Command, Event, LockState, Seq, SessionId};
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A wait with a timeout: (session, lock, the acquire's seq).
type WaitKey = (SessionId, Arc<str>, Seq);

#[derive(Debug, Default)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(crate) struct LeaseTimers {
    sessions: Deadlines<SessionId>,
    /// Sessions whose expiry this leader has proposed: they are doomed (the
    /// entry commits, or this leader loses its term and its timers), so no
    /// keepalive may extend them any more.
    expiring: BTreeSet<SessionId>,
    waits: Deadlines<WaitKey>,
    /// A lock has at most one delay in force; `delay_since` names it.
    delays: Deadlines<Arc<str>>,
    delay_since: BTreeMap<Arc<str>, LogIndex>,
}

/// How long to wait before proposing an expiry again when the first
/// proposal has not been applied (it may have been lost with a leader).
const REPROPOSE_AFTER: Duration = Duration::from_millis(500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl LeaseTimers {
    /// Arms every timer at its full length from `now` (ARCHITECTURE.md §4, lease rules
    /// 4 and 6: a new leader, or a restarted cluster, extends every lease).
    pub(crate) fn reset(&mut self, now: Instant, state: &LockState) {
        self.clear();
        for (session, ttl_ms) in state.sessions() {
            self.sessions.arm(session, now + ms(ttl_ms));
        }
        for w in state.timed_waits() {
            self.waits
                .arm((w.session, w.lock, w.seq), now + ms(w.timeout_ms));
        }
        for (lock, delay) in state.lock_delays() {
            self.start_delay(lock, delay.since, now + ms(delay.delay_ms));
        }
        debug_assert!(self.expiring.is_empty());
        debug_assert_eq!(self.sessions.len(), state.sessions().count());
    }

    pub(crate) fn clear(&mut self) {
        self.sessions.clear();
        self.expiring.clear();
        self.waits.clear();
        self.delays.clear();
        self.delay_since.clear();
    }

    fn start_delay(&mut self, lock: &Arc<str>, since: LogIndex, until: Instant) {
        self.delays.arm(Arc::clone(lock), until);
        self.delay_since.insert(Arc::clone(lock), since);
        debug_assert_eq!(self.delays.len(), self.delay_since.len());
    }

    /// Follows the applied entries: new sessions, waits and delays start
    /// their timers; ended ones stop them.
    pub(crate) fn on_event(&mut self, now: Instant, event: &Event) {
        match event {
            Event::SessionOpened { session, ttl_ms } => {
                self.sessions.arm(*session, now + ms(*ttl_ms))
            }
            Event::SessionEnded { session, .. } => {
                self.sessions.disarm(session);
                self.expiring.remove(session);
            }
            Event::WaitStarted {
                session,
                lock,
                acquire_seq,
                timeout_ms: Some(t),
            } => {
                self.waits
                    .arm((*session, Arc::clone(lock), *acquire_seq), now + ms(*t));
            }
            Event::WaitEnded {
                session,
                lock,
                acquire_seq,
            } => {
                self.waits
                    .disarm(&(*session, Arc::clone(lock), *acquire_seq));
            }
            Event::LockDelayStarted {
                lock,
                since,
                delay_ms,
            } => {
                self.start_delay(lock, *since, now + ms(*delay_ms));
            }
            Event::LockDelayEnded { lock } => {
                self.delays.disarm(lock);
                self.delay_since.remove(lock);
                debug_assert_eq!(self.delays.len(), self.delay_since.len());
            }
            _ => {}
        }
    }

    /// A keepalive that arrived at `arrival` was confirmed by a quorum
    /// round: the session lives at least until `arrival + ttl`, unless its
    /// expiry is already proposed. Returns whether the lease was extended;
    /// when it was not, the keepalive must be answered as expired, never
    /// acknowledged (the session ends when that entry applies, and its
    /// locks go to others).
    #[must_use]
    pub(crate) fn keepalive(&mut self, session: SessionId, arrival: Instant, ttl_ms: u64) -> bool {
        if self.expiring.contains(&session) {
            return false;
        }
        self.sessions.extend(&session, arrival + ms(ttl_ms));
        debug_assert!(
            self.sessions
                .deadline(&session)
                .is_none_or(|d| d >= arrival + ms(ttl_ms)),
            "a confirmed keepalive left the lease short"
        );
        true
    }

    /// The commands for every timer that ran out; each is re-armed a little
    /// later in case its proposal is lost.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Command> {
        let mut commands = Vec::new();
        for session in self.sessions.due(now) {
            self.sessions.arm(session, now + REPROPOSE_AFTER);
            self.expiring.insert(session);
            commands.push(Command::ExpireSession { session });
        }
        debug_assert!(
            self.sessions.next().is_none_or(|t| t > now),
            "a due session left due"
        );
        for (session, lock, seq) in self.waits.due(now) {
            self.waits
                .arm((session, Arc::clone(&lock), seq), now + REPROPOSE_AFTER);
            commands.push(Command::WaitTimedOut {
                session,
                lock: lock.to_string(),
                acquire_seq: seq,
            });
        }
        for lock in self.delays.due(now) {
            self.delays.arm(Arc::clone(&lock), now + REPROPOSE_AFTER);
            if let Some(&since) = self.delay_since.get(&lock) {
                commands.push(Command::LockDelayOver {
                    lock: lock.to_string(),
                    since,
                });
            }
        }
        commands
    }

    /// The next time a timer runs out.
    pub(crate) fn next(&self) -> Option<Instant> {
        [self.sessions.next(), self.waits.next(), self.delays.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A session's deadline, and whether this leader proposed its expiry
    /// (transcripts print both).
    #[cfg(test)]
    pub(crate) fn session_deadline(&self, session: SessionId) -> Option<(Instant, bool)> {
        let until = self.sessions.deadline(&session)?;
        Some((until, self.expiring.contains(&session)))
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }
}
