//! The commands the log carries for the lock state machine, and the small
//! value types they are made of (session ids, sequence numbers, fencing
//! tokens, lock modes).
//!
//! These are wire values: they are postcard-encoded inside log entries, so
//! changing a variant's shape changes the log format.

use super::meta::SessionMeta;
use crate::ids::LogIndex;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A client session: the log index of the `OpenSession` entry that created it.
///
/// Being a log index makes ids unique forever across the cluster's life, so
/// an id is never reused for a different client.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct SessionId(pub u64);

/// A client request's number within its session (for exactly-once
/// delivery, Raft thesis §6.3).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Seq(pub u64);

/// A grant's fencing token: the log index of the entry whose application
/// granted the lock, so tokens strictly increase across the whole cluster.
///
/// ```
/// use distlock_core::locks::FencingToken;
///
/// let old = FencingToken(17);
/// let new = FencingToken(42);
/// // A resource accepts a write only with a token at least the highest seen.
/// assert!(new > old);
/// assert_eq!(new.to_string(), "42");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FencingToken(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "q{}", self.0)
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FencingToken {
    /// The token of a grant made by applying the entry at `index`.
    #[must_use]
    pub const fn at(index: LogIndex) -> Self {
        Self(index.0)
    }
}

/// How a session wants to hold a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// The only holder.
    Exclusive,
    /// One of any number of readers; excludes an exclusive holder.
    Shared,
    /// One of at most `n` holders; `n` is fixed by the first acquirer.
    Semaphore(u32),
}

/// Which family of modes a lock is used with. A lock's kind is fixed while
/// it has holders or waiters; requests of another kind are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockKind {
    /// A reader-writer lock: [`Mode::Exclusive`] and [`Mode::Shared`].
    ReadWrite,
    /// A counting semaphore of this many permits.
    Semaphore(u32),
}

impl Mode {
    /// The kind of lock this mode belongs to.
    #[must_use]
    pub const fn kind(self) -> LockKind {
        match self {
            Self::Exclusive | Self::Shared => LockKind::ReadWrite,
            Self::Semaphore(n) => LockKind::Semaphore(n),
        }
    }
}

/// How long an acquire may wait for a busy lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Wait {
    /// Answer at once: granted or `Busy`.
    Try,
    /// Queue for at most this many milliseconds (`For(0)` behaves as `Try`).
    For(u64),
    /// Queue until granted, cancelled, or the session ends.
    Forever,
}

impl Wait {
    /// Whether a request that cannot be granted at once is queued.
    #[must_use]
    pub(super) const fn queues(self) -> bool {
        !matches!(self, Self::Try | Self::For(0))
    }

    /// How long a queued request may wait; `None` for ever.
    #[must_use]
    pub(super) const fn timeout_ms(self) -> Option<u64> {
        match self {
            Self::For(ms) => Some(ms),
            Self::Try | Self::Forever => None,
        }
    }
}

/// A command for the lock state machine (ARCHITECTURE.md §3.1, minus Raft's own).
///
/// Client requests ([`ClientCommand`]) carry `(session, seq, ack)`: `ack` is
/// the client's lowest unanswered sequence number, so every answer below it
/// may be forgotten. The timer commands (`ExpireSession`, `WaitTimedOut`,
/// `LockDelayOver`) are proposed only by the leader and are no-ops when they
/// are stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A client's request, applied exactly once however often it is retried.
    Client(ClientCommand),
    /// The leader's timer ended the session's lease: its locks are lost
    /// (entering lock-delay where asked) and its waits answered
    /// `SessionExpired`.
    ExpireSession {
        /// The session whose lease ran out.
        session: SessionId,
    },
    /// The leader's timer: a queued acquire's wait ran out.
    WaitTimedOut {
        /// The waiting session.
        session: SessionId,
        /// The lock waited on.
        lock: String,
        /// The `seq` of the acquire that queued (so a newer wait of the same
        /// session on the same lock is not cut short).
        acquire_seq: Seq,
    },
    /// The leader's timer: a lock-delay is over.
    LockDelayOver {
        /// The delayed lock.
        lock: String,
        /// The index at which the delay started (so a stale timer cannot end
        /// a newer delay).
        since: LogIndex,
    },
}

/// The commands a client may ask for. The wire protocol carries them as they
/// are (`proto::RequestBody::Log`); the log wraps them in [`Command::Client`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientCommand {
    /// Opens a session; the id is the index of this entry. A retry with the
    /// same nonce answers the same session.
    OpenSession {
        /// Random, chosen by the client, identifies retries.
        nonce: u128,
        /// The session's lease length.
        ttl_ms: u64,
    },
    /// Ends a session: its locks are released (no lock-delay) and its waits
    /// are answered `SessionClosed`.
    CloseSession {
        /// The session to close.
        session: SessionId,
        /// This request's number.
        seq: Seq,
        /// The client's lowest unanswered sequence number.
        ack: Seq,
    },
    /// Asks for a lock.
    Acquire {
        /// The requesting session.
        session: SessionId,
        /// This request's number.
        seq: Seq,
        /// The client's lowest unanswered sequence number.
        ack: Seq,
        /// The lock's name (1 to `Limits::max_name_len` bytes of UTF-8).
        lock: String,
        /// How to hold it.
        mode: Mode,
        /// Whether and how long to wait if it is busy.
        wait: Wait,
        /// How long the lock stays unavailable if this session expires while
        /// holding it.
        lock_delay_ms: u64,
    },
    /// Gives a lock back.
    Release {
        /// The holding session.
        session: SessionId,
        /// This request's number.
        seq: Seq,
        /// The client's lowest unanswered sequence number.
        ack: Seq,
        /// The lock's name.
        lock: String,
        /// The token of the grant being released.
        token: FencingToken,
    },
    /// Withdraws a queued acquire.
    CancelWait {
        /// The waiting session.
        session: SessionId,
        /// This request's number.
        seq: Seq,
        /// The client's lowest unanswered sequence number.
        ack: Seq,
        /// The lock waited on.
        lock: String,
    },
    /// Opens a session, as [`ClientCommand::OpenSession`], that carries
    /// who opened it (checked by [`SessionMeta::check`]).
    OpenSessionWithMeta {
        /// As in `OpenSession`.
        nonce: u128,
        /// As in `OpenSession`.
        ttl_ms: u64,
        /// Its name, host, process id and labels.
        meta: SessionMeta,
    },
    /// Campaigns in an election: an exclusive acquire of the election's
    /// lock carrying the value to lead with. Granted when this session
    /// becomes the leader; the grant's token identifies its term of office.
    /// Resigning is a `Release`.
    Campaign {
        /// The campaigning session.
        session: SessionId,
        /// This request's number.
        seq: Seq,
        /// The client's lowest unanswered sequence number.
        ack: Seq,
        /// The election (a lock name).
        election: String,
        /// The value to lead with (at most 4,096 bytes).
        value: String,
        /// Whether and how long to wait to be elected.
        wait: Wait,
        /// As in `Acquire`: how long nobody may lead after this leader's
        /// session expires.
        lock_delay_ms: u64,
    },
    /// The election's leader, with the term of office `token`, replaces
    /// its value.
    Proclaim {
        /// The leading session.
        session: SessionId,
        /// This request's number.
        seq: Seq,
        /// The client's lowest unanswered sequence number.
        ack: Seq,
        /// The election.
        election: String,
        /// The leader's token.
        token: FencingToken,
        /// The new value (at most 4,096 bytes).
        value: String,
    },
}
