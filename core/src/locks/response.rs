//! What applying a command produces: answers to client requests (protocol
//! values, errors included) and events for watches and the leader's timers.

use super::command::{FencingToken, LockKind, Mode, Seq, SessionId};
use crate::ids::LogIndex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A successful answer to a client request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The lock is held with this token.
    Granted {
        /// The fencing token of the grant.
        token: FencingToken,
    },
    /// The lock was released.
    Released,
    /// The wait was withdrawn (the answer to `CancelWait` itself; the
    /// cancelled acquire is answered [`LockError::Cancelled`]).
    WaitCancelled,
    /// The session is closed (also the answer to a retried close).
    Closed,
    /// Not an answer yet: this request is queued and will be answered by a
    /// later entry. Sent to a retry of a still-waiting acquire.
    Pending,
    /// The election's leader now proclaims the new value.
    Proclaimed,
}

/// Why a request failed. Every failure is an answer, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LockError {
    /// The session does not exist (never did, or ended too long ago to be
    /// remembered).
    #[error("no such session")]
    SessionNotFound,
    /// The session's lease ran out.
    #[error("session expired")]
    SessionExpired,
    /// The session was closed.
    #[error("session closed")]
    SessionClosed,
    /// The request's sequence number was acknowledged before: its answer has
    /// been forgotten.
    #[error("sequence number below the acknowledged floor {floor}")]
    StaleSequence {
        /// The lowest sequence number still remembered.
        floor: Seq,
    },
    /// The session keeps too many unacknowledged answers; acknowledge some.
    #[error("too many unacknowledged requests (max {max})")]
    TooManyUnacknowledged {
        /// The limit.
        max: u32,
    },
    /// The lock name is empty or too long.
    #[error("lock name must be 1 to {max} bytes, got {len}")]
    InvalidName {
        /// The name's length in bytes.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The session TTL is out of range.
    #[error("session ttl must be {min_ms} to {max_ms} ms, got {ttl_ms}")]
    InvalidTtl {
        /// The requested TTL.
        ttl_ms: u64,
        /// The shortest allowed.
        min_ms: u64,
        /// The longest allowed.
        max_ms: u64,
    },
    /// The lock-delay is too long.
    #[error("lock-delay must be at most {max_ms} ms, got {delay_ms}")]
    InvalidLockDelay {
        /// The requested delay.
        delay_ms: u64,
        /// The limit.
        max_ms: u64,
    },
    /// `Semaphore(0)` can never be granted.
    #[error("a semaphore needs at least one permit")]
    InvalidSemaphore,
    /// The cluster has as many sessions as it allows.
    #[error("too many sessions (max {max})")]
    TooManySessions {
        /// The limit.
        max: u32,
    },
    /// The session holds and waits for as many locks as it may.
    #[error("too many locks held or waited for by the session (max {max})")]
    TooManyLocks {
        /// The limit.
        max: u32,
    },
    /// The lock's queue is full.
    #[error("too many waiters on the lock (max {max})")]
    TooManyWaiters {
        /// The limit.
        max: u32,
    },
    /// `Try` on a lock that cannot be granted now.
    #[error("lock is busy")]
    Busy {
        /// The lock is in lock-delay after a holder's session expired.
        delayed: bool,
    },
    /// The session already holds the lock.
    #[error("lock already held with token {token}")]
    AlreadyHeld {
        /// The token of the existing grant.
        token: FencingToken,
    },
    /// The session already waits for the lock.
    #[error("already waiting for the lock")]
    AlreadyWaiting,
    /// The lock is in use with another kind of mode (reader-writer versus
    /// semaphore).
    #[error("lock is in use as {kind:?}")]
    ModeMismatch {
        /// The lock's current kind.
        kind: LockKind,
    },
    /// The lock is a semaphore with another number of permits.
    #[error("lock is a semaphore of {n} permits")]
    SemaphoreMismatch {
        /// Its number of permits.
        n: u32,
    },
    /// The session does not hold the lock with that token.
    #[error("not the holder of the lock with that token")]
    NotHolder,
    /// The session does not wait for the lock.
    #[error("not waiting for the lock")]
    NotWaiting,
    /// The wait ran out before the lock could be granted.
    #[error("timed out waiting for the lock")]
    TimedOut,
    /// The wait was withdrawn by `CancelWait`.
    #[error("wait cancelled")]
    Cancelled,
    /// A session's name or metadata is too large or ill-formed. Changes
    /// nothing.
    #[error("invalid session metadata: {0}")]
    InvalidSessionMeta(super::meta::MetaError),
    /// An election's value is too long. Changes nothing.
    #[error("election value must be at most {max} bytes, got {len}")]
    InvalidValue {
        /// The value's length in bytes.
        len: u64,
        /// The limit.
        max: u32,
    },
}

/// The answer to one client request.
pub type Response = Result<Outcome, LockError>;

/// An answer to deliver to the client that sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The answer to request `seq` of `session`.
    To {
        /// The requesting session.
        session: SessionId,
        /// The request answered.
        seq: Seq,
        /// The answer.
        response: Response,
    },
    /// The answer to `OpenSession`, keyed by its nonce as there was no
    /// session to address it to.
    SessionOpened {
        /// The request's nonce.
        nonce: u128,
        /// The session, or why none was opened.
        result: Result<SessionId, LockError>,
    },
}

/// Something that happened, in apply order, for watches and for the
/// leader's timers (which arm and disarm on these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A session was opened: arm its expiry timer.
    SessionOpened {
        /// The new session.
        session: SessionId,
        /// Its lease length.
        ttl_ms: u64,
    },
    /// A session ended: disarm its expiry timer.
    SessionEnded {
        /// The ended session.
        session: SessionId,
        /// Whether it expired (rather than being closed).
        expired: bool,
    },
    /// A lock was granted.
    Acquired {
        /// The lock.
        lock: Arc<str>,
        /// The new holder.
        session: SessionId,
        /// The grant's token.
        token: FencingToken,
        /// How it is held.
        mode: Mode,
    },
    /// A holder gave the lock back (release or session close).
    Released {
        /// The lock.
        lock: Arc<str>,
        /// The former holder.
        session: SessionId,
        /// The token of the ended grant.
        token: FencingToken,
    },
    /// A holder lost the lock because its session expired.
    Expired {
        /// The lock.
        lock: Arc<str>,
        /// The former holder.
        session: SessionId,
        /// The token of the ended grant.
        token: FencingToken,
    },
    /// An acquire was queued: arm its timeout if it has one.
    WaitStarted {
        /// The waiting session.
        session: SessionId,
        /// The lock.
        lock: Arc<str>,
        /// The queued acquire's sequence number.
        acquire_seq: Seq,
        /// When to propose `WaitTimedOut`; `None` waits forever.
        timeout_ms: Option<u64>,
    },
    /// A queued acquire left the queue (granted, timed out, cancelled or its
    /// session ended): disarm its timeout.
    WaitEnded {
        /// The waiting session.
        session: SessionId,
        /// The lock.
        lock: Arc<str>,
        /// The acquire's sequence number.
        acquire_seq: Seq,
    },
    /// A lock entered lock-delay: propose `LockDelayOver { lock, since }`
    /// after `delay_ms`.
    LockDelayStarted {
        /// The lock.
        lock: Arc<str>,
        /// The index that started it (to quote in `LockDelayOver`).
        since: LogIndex,
        /// Its length.
        delay_ms: u64,
    },
    /// A lock-delay is over.
    LockDelayEnded {
        /// The lock.
        lock: Arc<str>,
    },
    /// An election's leader proclaimed a new value.
    Proclaimed {
        /// The election's lock.
        lock: Arc<str>,
        /// The leader.
        session: SessionId,
        /// Its grant's token (its term of office).
        token: FencingToken,
    },
}

/// Everything applying one or more commands produced, in apply order.
///
/// [`super::LockState::apply_into`] appends to it, so a driver can reuse one
/// value across many entries and keep the hot path free of allocations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Answers to deliver to clients.
    pub replies: Vec<Reply>,
    /// Events for watches and timers.
    pub events: Vec<Event>,
}

impl Applied {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.replies.clear();
        self.events.clear();
    }

    /// Whether nothing was produced.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.events.is_empty()
    }

    pub(super) fn reply(&mut self, session: SessionId, seq: Seq, response: Response) {
        self.replies.push(Reply::To {
            session,
            seq,
            response,
        });
    }
}
