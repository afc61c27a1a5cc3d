//! The deterministic lock state machine that the Raft log replicates
//! (ARCHITECTURE.md §2-§4): sessions, locks with their holders, FIFO wait queues and
//! lock-delays, and per-session exactly-once answer tables.
//!
//! [`LockState::apply_into`] is a pure function of the state, the command
//! and the log index: no clock, no randomness, no IO. Time-based decisions
//! (session expiry, wait timeouts, the end of a lock-delay) are taken by the
//! leader's timers and arrive as commands; the [`Event`]s of each apply tell
//! the leader which timers to arm and disarm, and the read-only queries let a
//! new leader re-arm all of them (ARCHITECTURE.md §4, lease rule 4).
//!
//! Every client-visible failure is a [`LockError`] value inside a [`Reply`];
//! nothing a client sends can make `apply` panic.
//!
//! Choices the design leaves open:
//! - An acquire that queues gets no answer until it leaves the queue
//!   (granted, `TimedOut`, `Cancelled`, `SessionClosed`/`SessionExpired`);
//!   a retry meanwhile gets [`Outcome::Pending`].
//! - Refusals that depend only on the request and the limits (bad name,
//!   lock-delay, TTL, `Semaphore(0)`, too many unacknowledged answers) change
//!   nothing, not even the dedupe table. Refusals that depend on the state
//!   (`Busy`, `AlreadyHeld`, `ModeMismatch`, `TooManyWaiters`,
//!   `TooManyLocks`...) are remembered like any answer, so that a duplicate
//!   arriving after the state changed is answered the same, never applied.
//! - Ended sessions are remembered (up to `Limits::max_ended_sessions`), so
//!   their requests get `SessionExpired`/`SessionClosed` and a late retry of
//!   their open creates nothing; a retried close answers `Closed` again.
//! - `Wait::For(0)` is `Try`. Releases and closes never start a lock-delay;
//!   a second delay while one is in force replaces it, keeping the longer
//!   length (counted anew from the second).

mod apply;
mod command;
mod dedupe;
mod invariants;
mod limits;
mod listing;
mod lock;
mod meta;
mod query;
mod response;
mod session;
mod snapshot;
#[cfg(test)]
mod tests;

pub use apply::MAX_ELECTION_VALUE;
pub use command::{ClientCommand, Command, FencingToken, LockKind, Mode, Seq, SessionId, Wait};
pub use limits::Limits;
pub use listing::{LockPage, SessionPage};
pub use lock::LockDelay;
pub use meta::{
    MAX_META_HOST, MAX_META_LABEL_KEY, MAX_META_LABEL_VALUE, MAX_META_LABELS, MAX_META_NAME,
    MetaError, MetaField, SessionMeta,
};
pub use query::LeaderInfo;
pub use query::{Census, LockStatus, SessionInfo, TimedWait, WaiterInfo};
pub use response::{Applied, Event, LockError, Outcome, Reply, Response};

use crate::ids::LogIndex;
use crate::raft::{SnapshotError, StateMachine};
use apply::{AcquireRequest, Caller};
use lock::Lock;
use session::Sessions;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The replicated lock state: apply committed [`Command`]s in log order.
///
/// Session ids and fencing tokens are the log indexes of the entries that
/// opened or granted them, so they grow with the log:
///
/// ```
/// use distlock_core::ids::LogIndex;
/// use distlock_core::locks::{
///     Applied, ClientCommand, Command, Event, FencingToken, LockState, Mode, Seq, SessionId, Wait,
/// };
///
/// let mut state = LockState::default();
/// let mut out = Applied::default();
/// let open = ClientCommand::OpenSession { nonce: 7, ttl_ms: 10_000 };
/// state.apply_into(LogIndex(1), &Command::Client(open), &mut out);
/// let session = SessionId(1);
/// let acquire = ClientCommand::Acquire {
///     session, seq: Seq(1), ack: Seq(1), lock: "db".into(),
///     mode: Mode::Exclusive, wait: Wait::Try, lock_delay_ms: 0,
/// };
/// state.apply_into(LogIndex(2), &Command::Client(acquire), &mut out);
/// assert!(out.events.iter().any(|e| matches!(e, Event::Acquired { token, .. } if *token == FencingToken(2))));
/// assert!(state.check_token("db", FencingToken(2)));
/// assert_eq!(state.lock_status("db").map(|s| s.holders.len()), Some(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockState {
    limits: Limits,
    /// The index of the last applied command; every token and session id is
    /// at most this.
    last_applied: LogIndex,
    sessions: Sessions,
    /// Locks with holders, waiters or a delay, by name. Names are shared
    /// with the sessions' tables and the events, so they are allocated once
    /// per lock, not per use.
    locks: BTreeMap<Arc<str>, Lock>,
}

impl Default for LockState {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl LockState {
    /// An empty state enforcing `limits`.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            last_applied: LogIndex(0),
            sessions: Sessions::default(),
            locks: BTreeMap::new(),
        }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The index of the last applied command.
    #[must_use]
    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    /// Applies the committed `command` at `index`, appending its replies and
    /// events to `out` (which is not cleared, so one buffer can collect a
    /// whole batch of entries).
    ///
    /// Indexes must increase from call to call: tokens and session ids are
    /// indexes, and their uniqueness rests on it. Entries that are not lock
    /// commands (no-ops, membership) may leave gaps.
    pub fn apply_into(&mut self, index: LogIndex, command: &Command, out: &mut Applied) {
        debug_assert!(
            index > self.last_applied,
            "apply at {index} after {}",
            self.last_applied
        );
        self.last_applied = self.last_applied.max(index);
        match command {
            Command::Client(request) => self.apply_client(index, request, out),
            Command::ExpireSession { session } => self.end_session(index, *session, true, out),
            Command::WaitTimedOut {
                session,
                lock,
                acquire_seq,
            } => self.wait_timed_out(index, *session, lock, *acquire_seq, out),
            Command::LockDelayOver { lock, since } => {
                self.lock_delay_over(index, lock, *since, out);
            }
        }
        debug_assert_eq!(self.last_applied, index);
    }

    fn apply_client(&mut self, index: LogIndex, request: &ClientCommand, out: &mut Applied) {
        let caller = |session: &SessionId, seq: &Seq, ack: &Seq| Caller {
            session: *session,
            seq: *seq,
            ack: *ack,
        };
        match request {
            ClientCommand::OpenSession { nonce, ttl_ms } => {
                self.open_session(index, *nonce, *ttl_ms, None, out);
            }
            ClientCommand::OpenSessionWithMeta {
                nonce,
                ttl_ms,
                meta,
            } => self.open_session(index, *nonce, *ttl_ms, Some(meta), out),
            ClientCommand::Campaign {
                session,
                seq,
                ack,
                election,
                value,
                wait,
                lock_delay_ms,
            } => {
                let request = AcquireRequest {
                    lock: election,
                    mode: Mode::Exclusive,
                    wait: *wait,
                    lock_delay_ms: *lock_delay_ms,
                    value: Some(value),
                };
                self.acquire(index, caller(session, seq, ack), request, out);
            }
            ClientCommand::Proclaim {
                session,
                seq,
                ack,
                election,
                token,
                value,
            } => self.proclaim(caller(session, seq, ack), election, *token, value, out),
            ClientCommand::CloseSession { session, seq, ack } => {
                self.close_session(index, caller(session, seq, ack), out);
            }
            ClientCommand::Acquire {
                session,
                seq,
                ack,
                lock,
                mode,
                wait,
                lock_delay_ms,
            } => {
                let request = AcquireRequest {
                    lock,
                    mode: *mode,
                    wait: *wait,
                    lock_delay_ms: *lock_delay_ms,
                    value: None,
                };
                self.acquire(index, caller(session, seq, ack), request, out);
            }
            ClientCommand::Release {
                session,
                seq,
                ack,
                lock,
                token,
            } => self.release(index, caller(session, seq, ack), lock, *token, out),
            ClientCommand::CancelWait {
                session,
                seq,
                ack,
                lock,
            } => self.cancel_wait(index, caller(session, seq, ack), lock, out),
        }
    }
}

impl StateMachine for LockState {
    type Command = Command;
    type Output = Applied;

    fn apply(&mut self, index: LogIndex, command: &Command) -> Applied {
        let mut out = Applied::default();
        self.apply_into(index, command, &mut out);
        out
    }

    fn snapshot(&self) -> Vec<u8> {
        snapshot::encode(self)
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        *self = snapshot::decode(data)?;
        Ok(())
    }
}
