//! Read-only views of the lock state for the leader: token checks, lock
//! status, and everything a new leader needs to re-arm its timers (ARCHITECTURE.md
//! §4, lease rule 4: every session, timed wait and lock-delay gets its full length
//! again).

use super::LockState;
use super::command::{ClientCommand, FencingToken, LockKind, Mode, Seq, SessionId};
use super::lock::LockDelay;
use super::meta::SessionMeta;
use super::response::LockError;
use super::session::Claim;
use std::sync::Arc;

/// A lock's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockStatus {
    /// The kind of lock it is used as.
    pub kind: LockKind,
    /// The mode it is held in; `None` if nobody holds it.
    pub mode: Option<Mode>,
    /// Its holders with their grants' tokens, by session id.
    pub holders: Vec<(SessionId, FencingToken)>,
    /// Its queue, first in line first.
    pub waiters: Vec<WaiterInfo>,
    /// Its lock-delay, if one is in force.
    pub delay: Option<LockDelay>,
}

/// A queued acquire, as shown by [`LockStatus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaiterInfo {
    /// The waiting session.
    pub session: SessionId,
    /// The mode it asked for.
    pub mode: Mode,
    /// The acquire's sequence number.
    pub seq: Seq,
    /// Its timeout; `None` waits forever.
    pub timeout_ms: Option<u64>,
}

/// An election's leader: the exclusive holder of its lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leading session.
    pub session: SessionId,
    /// Its grant's token: its term of office.
    pub token: FencingToken,
    /// The value it leads with; `None` if it holds the lock by a plain
    /// acquire.
    pub value: Option<Arc<str>>,
}

/// A live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its lease length.
    pub ttl_ms: u64,
    /// How many locks it holds.
    pub held: usize,
    /// How many locks it waits for.
    pub waiting: usize,
}

/// A queued acquire with a finite timeout: the leader proposes
/// `WaitTimedOut { session, lock, acquire_seq: seq }` once it runs out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedWait {
    /// The waiting session.
    pub session: SessionId,
    /// The lock.
    pub lock: Arc<str>,
    /// The acquire's sequence number.
    pub seq: Seq,
    /// Its full timeout.
    pub timeout_ms: u64,
}

impl LockState {
    /// Whether `token` is a current grant of `lock` (Chubby's `CheckSequencer`).
    #[must_use]
    pub fn check_token(&self, lock: &str, token: FencingToken) -> bool {
        self.locks
            .get(lock)
            .is_some_and(|lock| lock.holders.iter().any(|(_, holder)| holder.token == token))
    }

    /// A lock's holders, waiters and delay; `None` if it is free and has
    /// no waiters or delay.
    #[must_use]
    pub fn lock_status(&self, lock: &str) -> Option<LockStatus> {
        let lock = self.locks.get(lock)?;
        Some(LockStatus {
            kind: lock.kind,
            mode: lock.held_mode(),
            holders: lock
                .holders
                .iter()
                .map(|(id, holder)| (*id, holder.token))
                .collect(),
            waiters: lock
                .queue
                .iter()
                .map(|w| WaiterInfo {
                    session: w.session,
                    mode: w.mode,
                    seq: w.seq,
                    timeout_ms: w.timeout_ms,
                })
                .collect(),
            delay: lock.delay,
        })
    }

    /// The leader of election `name`: its lock's exclusive holder; `None`
    /// when nobody holds it exclusively.
    #[must_use]
    pub fn leader(&self, name: &str) -> Option<LeaderInfo> {
        let lock = self.locks.get(name)?;
        match lock.holders.as_slice() {
            [(session, holder)] if holder.mode == Mode::Exclusive => Some(LeaderInfo {
                session: *session,
                token: holder.token,
                value: holder.value.clone(),
            }),
            _ => None,
        }
    }

    /// Checks what a request's own fields can say about it (name length,
    /// TTL, lock-delay, semaphore size), before it is proposed or
    /// forwarded: a request that the state machine would refuse for them
    /// must not enter every server's log (a near-1 MiB name would, and
    /// make the `Append` carrying it larger than a peer frame may be).
    /// The apply-time checks stay: replicas still refuse alike.
    ///
    /// # Errors
    /// The refusal apply would give.
    pub fn precheck(&self, command: &ClientCommand) -> Result<(), LockError> {
        match command {
            ClientCommand::OpenSession { ttl_ms, .. } => self.limits.check_ttl(*ttl_ms),
            ClientCommand::OpenSessionWithMeta { ttl_ms, meta, .. } => meta
                .check_lock()
                .and_then(|()| self.limits.check_ttl(*ttl_ms)),
            ClientCommand::Acquire {
                lock,
                mode,
                lock_delay_ms,
                ..
            } => self.limits.check_acquire(lock, *mode, *lock_delay_ms),
            ClientCommand::Release { lock, .. } | ClientCommand::CancelWait { lock, .. } => {
                self.limits.check_name(lock)
            }
            ClientCommand::CloseSession { .. } => Ok(()),
            ClientCommand::Campaign {
                election,
                value,
                lock_delay_ms,
                ..
            } => self
                .limits
                .check_acquire(election, Mode::Exclusive, *lock_delay_ms)
                .and_then(|()| super::apply::check_value(value)),
            ClientCommand::Proclaim {
                election, value, ..
            } => self
                .limits
                .check_name(election)
                .and_then(|()| super::apply::check_value(value)),
        }
    }

    /// Whether `secret` is the nonce that opened live session `id`
    /// (compared without an early exit); `None` if the session is unknown
    /// or ended. Only the client that opened a session knows its nonce:
    /// no view, event or answer shows it.
    #[must_use]
    pub fn opened_with(&self, id: SessionId, secret: u128) -> Option<bool> {
        let session = self.sessions.live.get(&id)?;
        Some((session.nonce ^ secret) == 0)
    }

    /// A live session; `None` if it is unknown or ended.
    #[must_use]
    pub fn session(&self, id: SessionId) -> Option<SessionInfo> {
        let session = self.sessions.live.get(&id)?;
        let held = session
            .claims
            .iter()
            .filter(|(_, claim)| matches!(claim, Claim::Held(_)))
            .count();
        Some(SessionInfo {
            ttl_ms: session.ttl_ms,
            held,
            waiting: session.lock_count() - held,
        })
    }

    /// Who opened live session `id`, if its client said; `None` if it did
    /// not, or the session is unknown or ended.
    #[must_use]
    pub fn session_meta(&self, id: SessionId) -> Option<&SessionMeta> {
        self.sessions.live.get(&id)?.meta.as_deref()
    }

    /// Every live session with its TTL, by id.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, u64)> + '_ {
        self.sessions
            .live
            .iter()
            .map(|(id, session)| (*id, session.ttl_ms))
    }

    /// Every queued acquire with a finite timeout, by lock name then queue
    /// position.
    pub fn timed_waits(&self) -> impl Iterator<Item = TimedWait> + '_ {
        self.locks.iter().flat_map(|(name, lock)| {
            lock.queue.iter().filter_map(move |w| {
                let timeout_ms = w.timeout_ms?;
                Some(TimedWait {
                    session: w.session,
                    lock: Arc::clone(name),
                    seq: w.seq,
                    timeout_ms,
                })
            })
        })
    }

    /// Every lock-delay in force, by lock name.
    pub fn lock_delays(&self) -> impl Iterator<Item = (&Arc<str>, LockDelay)> + '_ {
        self.locks
            .iter()
            .filter_map(|(name, lock)| Some((name, lock.delay?)))
    }

    /// How many sessions are live.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.live.len()
    }

    /// The lock table's sizes for metrics, counted without allocating
    /// (one pass over the locks: the runtime asks when it is scraped, not
    /// per request).
    #[must_use]
    pub fn census(&self) -> Census {
        let mut c = Census {
            sessions: self.sessions.live.len() as u64,
            ..Census::default()
        };
        for lock in self.locks.values() {
            for (_, holder) in &lock.holders {
                match holder.mode {
                    Mode::Exclusive => c.exclusive += 1,
                    Mode::Shared => c.shared += 1,
                    Mode::Semaphore(_) => c.semaphore += 1,
                }
            }
            c.waiters += lock.queue.len() as u64;
            c.delayed += u64::from(lock.delay.is_some());
        }
        c
    }

    /// How many locks have holders, waiters or a delay.
    #[must_use]
    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    /// Every lock with holders, waiters or a delay, by name, with its
    /// status (for backups and their inspection).
    pub fn locks(&self) -> impl Iterator<Item = (&Arc<str>, LockStatus)> + '_ {
        self.locks
            .keys()
            .filter_map(|name| Some((name, self.lock_status(name)?)))
    }

    /// The highest fencing token of any current grant; `None` when no lock
    /// is held. Every token ever issued is at most [`Self::last_applied`]
    /// (tokens are log indexes), so a cluster whose log continues after
    /// that index only ever issues higher ones.
    #[must_use]
    pub fn max_token(&self) -> Option<FencingToken> {
        self.locks
            .values()
            .flat_map(|lock| lock.holders.iter().map(|(_, holder)| holder.token))
            .max()
    }
}

/// The sizes of the lock table ([`LockState::census`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Live sessions.
    pub sessions: u64,
    /// Exclusive grants held.
    pub exclusive: u64,
    /// Shared grants held.
    pub shared: u64,
    /// Semaphore permits held.
    pub semaphore: u64,
    /// Queued acquires.
    pub waiters: u64,
    /// Locks in lock-delay.
    pub delayed: u64,
}
