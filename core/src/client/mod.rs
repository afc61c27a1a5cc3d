//! The client's session logic, sans-IO (ARCHITECTURE.md §4, lease rule 5): a
//! [`ClientSession`] opens a session, keeps it alive every `ttl / 3`, counts
//! its lease on the local clock from the *send* time of the last acknowledged
//! keepalive, numbers logged requests `(session, seq, ack)` for exactly-once
//! delivery, retries with the same seq, and fails over between servers.
//!
//! Like [`crate::raft::Raft`], it does no IO and reads no clock: the driver
//! feeds it frames ([`ClientSession::handle_frame`]), timer expiries
//! ([`ClientSession::handle_timeout`]) and connection changes
//! ([`ClientSession::connected`], [`ClientSession::connection_lost`]), and
//! drains [`ClientSession::poll_frame`], [`ClientSession::poll_event`] and
//! [`ClientSession::poll_timeout`] after each input.
//!
//! A session machine may also watch locks ([`ClientSession::watch`]): the
//! watches are asked again on every new connection and their events come
//! out as [`ClientEvent::Watch`], without repeats across a failover.
//! Several machines may share one connection if the driver keeps their
//! request ids apart; [`ClientSession::is_connected`] tells it when one of
//! them has given the connection up.

mod machine;
#[cfg(test)]
mod tests;

pub use machine::{ClientSession, lease_length};

use crate::locks::{Outcome, SessionId};
use crate::proto::{AuthToken, ClusterId, LockEvent, MemberInfo, ProtoError};
use crate::time::Duration;

/// Settings of a [`ClientSession`].
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a request may stay unanswered before the connection is
    /// considered broken and the client fails over (default 1 s). Acquires
    /// that wait use their wait duration plus [`Config::wait_slack`]
    /// instead, and acquires that wait for ever have no client-side timeout.
    pub request_timeout: Duration,
    /// Added to a timed wait's duration to get its request timeout
    /// (default 1 s).
    pub wait_slack: Duration,
    /// The largest clock drift rate assumed, in parts per million (default
    /// 10 000, that is 1 %): the lease counts `ttl × (1 − 2·max_drift)`.
    pub max_drift_ppm: u32,
    /// The first backoff before reconnecting or retrying (default 100 ms).
    pub backoff_min: Duration,
    /// The longest backoff; backoffs double up to it (default 1 s).
    pub backoff_max: Duration,
    /// The cluster expected, sent in every `Hello`.
    pub cluster_id: Option<ClusterId>,
    /// Credentials, sent in every `Hello`.
    pub auth: Option<AuthToken>,
    /// Move to the leader when a follower's `Welcome` names one (default
    /// true): a follower forwards every request and answers only once the
    /// commit reaches it, two extra network hops per request. Off, the
    /// client stays on whichever server it reached.
    pub follow_leader: bool,
    /// How long the connected server may keep answering that it knows no
    /// leader before the client moves to another server (default 1 s): a
    /// server cut off from the majority, or removed from the cluster,
    /// cannot serve, while the others may. A server shutting down is left
    /// at once.
    pub leaderless_patience: Duration,
    /// Who opens the session, sent with the open so that operators see it
    /// (`distlock locks`, `sessions`, `status NAME`); `None` (the default)
    /// opens an anonymous session. Checked by
    /// [`crate::locks::SessionMeta::check`] at the server.
    pub session_meta: Option<crate::locks::SessionMeta>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(1),
            wait_slack: Duration::from_secs(1),
            max_drift_ppm: 10_000,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            session_meta: None,
            cluster_id: None,
            auth: None,
            follow_leader: true,
            leaderless_patience: Duration::from_secs(1),
        }
    }
}

/// The handle of one operation started on a [`ClientSession`]; its answer
/// comes back as a [`ClientEvent`] naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// Something the driver must learn or do, drained with
/// [`ClientSession::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The answer to [`ClientSession::open_session`].
    SessionOpened {
        /// The operation.
        op: OpId,
        /// The session, or why none was opened.
        result: Result<SessionId, ClientError>,
    },
    /// The answer to an acquire, release, cancel-wait or close.
    Completed {
        /// The operation.
        op: OpId,
        /// What the cluster answered.
        result: Result<Outcome, ClientError>,
    },
    /// The answer to [`ClientSession::check_token`] or
    /// [`ClientSession::lock_status`].
    Read {
        /// The operation.
        op: OpId,
        /// What the cluster answered.
        result: Result<crate::proto::ResponseBody, ClientError>,
    },
    /// Drop the current connection (if any), connect to `to` (or, when no
    /// member list is known yet, to the next configured address) and call
    /// [`ClientSession::connected`] or, on failure,
    /// [`ClientSession::connection_lost`].
    Reconnect {
        /// The member to try, round-robin over the last `Welcome`'s list.
        to: Option<MemberInfo>,
    },
    /// The session is lost: emitted once, and final. Every outstanding and
    /// later operation fails with [`ClientError::SessionLost`].
    SessionLost {
        /// Why.
        reason: LostReason,
    },
    /// News of a lock watched with [`ClientSession::watch`].
    Watch {
        /// The lock.
        lock: String,
        /// What happened.
        update: WatchUpdate,
    },
}

/// What a watch reports ([`ClientEvent::Watch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchUpdate {
    /// An event of the lock, in log order. An event already reported
    /// before a failover is not reported again.
    Event(LockEvent),
    /// The watch was asked again on a new connection (after a failover or
    /// a move to the leader). Events applied between the last one reported
    /// and the new server's current position may be missing: read the
    /// lock's status to learn where it stands now.
    Resumed,
}

/// Why a session was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The local lease ran out before a keepalive was acknowledged.
    LeaseExpired,
    /// The cluster said the session no longer exists.
    Rejected(ProtoError),
}

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No session is open (none was opened yet, or it is still opening).
    #[error("no session is open")]
    NoSession,
    /// A session is already open or being opened on this client.
    #[error("a session is already open or being opened")]
    SessionExists,
    /// The session is lost; nothing more can be done with it.
    #[error("the session is lost")]
    SessionLost,
    /// The session was closed by this client.
    #[error("the session is closed")]
    Closed,
    /// The cluster answered with a final error.
    #[error(transparent)]
    Server(#[from] ProtoError),
    /// The cluster answered with a body that does not fit the request.
    #[error("the server answered with an unexpected response")]
    UnexpectedAnswer,
}
