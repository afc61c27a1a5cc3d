//! [`ProtoError`]: every way a request or a connection can fail, as the
//! client sees it, on the wire.

use crate::auth::Right;
use crate::ids::{LogIndex, NodeId};
use crate::locks::LockError;
use crate::raft::MembershipError;
use serde::{Deserialize, Serialize};

/// Why a request failed ([`super::Response::result`]) or why a connection
/// is being closed ([`super::ServerFrame::Error`], [`super::PeerFrame::Error`]).
///
/// Every variant says whether retrying can help: the connection-level ones
/// (`UnsupportedVersion` to `Malformed`) end the connection; `NotLeader`,
/// `NoLeader`, `ShuttingDown`, `Overloaded` and `Timeout` are worth
/// retrying (with the same session and seq, so the request is applied at
/// most once); `Lock` and `UnknownSession` are final answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProtoError {
    /// The peer speaks another protocol version. Connection-level.
    #[error("protocol version {client} is not supported: this server speaks version {server}")]
    UnsupportedVersion {
        /// The version the server speaks.
        server: u32,
        /// The version the client (or dialling peer) sent.
        client: u32,
    },
    /// The `Hello` named another cluster than this server's. Connection-level.
    #[error("this server belongs to another cluster")]
    WrongCluster,
    /// The `Hello` carried no credentials, or wrong ones. Connection-level.
    #[error("unauthorized: missing or wrong credentials")]
    Unauthorized,
    /// A frame other than `Hello` came first. Connection-level.
    #[error("the first frame of a connection must be Hello")]
    HelloRequired,
    /// A frame announced a length above the limit. Connection-level.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// A frame could not be decoded (or came out of turn, such as a second
    /// `Hello`). Connection-level.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// What the decoder (or the protocol check) found wrong.
        reason: String,
    },
    /// The request needs the leader and this server is not it (a server
    /// forwarding the request to a peer that is no longer the leader passes
    /// this on). Retry on `leader_hint` if given.
    #[error("this server is not the leader{}", hint(*.leader_hint))]
    NotLeader {
        /// The leader this server believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// No leader is known: a quorum of servers is unreachable or an election
    /// is under way. Retry later.
    #[error("no leader: no quorum of servers is reachable (or an election is under way)")]
    NoLeader,
    /// The lock state machine refused the request. Final.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The server is shutting down; retry on another one.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The server has too much work queued; retry later or elsewhere.
    #[error("the server is overloaded; retry later")]
    Overloaded,
    /// No answer came in time. A logged request may or may not have been
    /// applied: retrying with the same session and seq is safe and tells.
    #[error("the request timed out; its outcome is unknown (retry with the same seq)")]
    Timeout,
    /// A keepalive for a session that is not live (never opened, expired or
    /// closed). Final: the client must consider its session lost.
    #[error("unknown session: it expired, was closed or never existed")]
    UnknownSession,
    /// The membership change was refused (the cluster is unchanged).
    #[error("membership change refused: {0}")]
    Membership(MembershipError),
    /// This server follows `leader` but has no link to it, so it cannot
    /// forward the request: retry on another server at once.
    #[error("this server cannot reach the leader ({leader}); try another server")]
    LeaderUnreachable {
        /// The leader it follows.
        leader: NodeId,
    },
    /// The leader keeps no snapshot at `index` any more (it expired, a
    /// newer one replaced it, or leadership moved): asking for its chunks
    /// again cannot help; take a new snapshot.
    #[error("the snapshot at index {index} is no longer kept by the leader; take a new one")]
    SnapshotUnavailable {
        /// The snapshot asked for.
        index: LogIndex,
    },
    /// The request acts on a session this connection has not proven it
    /// speaks for (see `RequestBody::Attach`), or the server cannot check
    /// the proof yet (it has not applied the session's opening): attach
    /// again, on this server or another. Changes nothing.
    #[error(
        "this connection has not attached the session: send Attach with the session's secret first"
    )]
    NotAttached,
    /// An `Attach` whose secret is not the session's. Final.
    #[error("not the session's owner: the secret does not match")]
    NotSessionOwner,
    /// The connection's principal lacks the right the request needs (on
    /// `lock`, when the request names one). Final; changes nothing.
    #[error("forbidden: no {right} right{}", on_lock(.lock.as_deref()))]
    Forbidden {
        /// The right missing.
        right: Right,
        /// The lock it was needed on, if the request names one.
        lock: Option<String>,
    },
    /// The server holds as many client connections as it accepts (in all,
    /// or from this source address). Connection-level; retry later or on
    /// another server.
    #[error("too many connections (at most {max}); retry later")]
    TooManyConnections {
        /// The limit reached.
        max: u32,
    },
    /// The principal has as many live sessions on this server as it may
    /// open. Final until one of them ends.
    #[error("too many sessions for this principal (at most {max})")]
    TooManySessions {
        /// The limit reached.
        max: u32,
    },
    /// The connection watches as many locks as it may. Final until it
    /// unwatches one.
    #[error("too many watches on this connection (at most {max})")]
    TooManyWatches {
        /// The limit reached.
        max: u32,
    },
    /// The connection has as many unanswered requests as it may; retry
    /// once some are answered.
    #[error("too many requests in flight on this connection (at most {max})")]
    TooManyInFlight {
        /// The limit reached.
        max: u32,
    },
    /// The connection sends requests faster than it may; retry later.
    #[error("request rate above {per_second} per second; slow down")]
    RateLimited {
        /// The sustained rate allowed.
        per_second: u32,
    },
    /// A frame started arriving but did not complete within the deadline.
    /// Connection-level.
    #[error("a frame took longer than {secs} s to arrive")]
    FrameTimeout {
        /// The deadline, in seconds.
        secs: u32,
    },
}

fn on_lock(lock: Option<&str>) -> String {
    lock.map_or_else(String::new, |l| format!(" on lock {l:?}"))
}

impl ProtoError {
    /// Whether the server closes the connection after sending this error.
    #[must_use]
    pub const fn is_connection_level(&self) -> bool {
        matches!(
            self,
            Self::UnsupportedVersion { .. }
                | Self::WrongCluster
                | Self::Unauthorized
                | Self::HelloRequired
                | Self::FrameTooLarge { .. }
                | Self::Malformed { .. }
                | Self::TooManyConnections { .. }
                | Self::FrameTimeout { .. }
        )
    }

    /// Whether the same request may succeed if sent again (to another
    /// server, or later).
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::NotLeader { .. }
                | Self::NoLeader
                | Self::ShuttingDown
                | Self::Overloaded
                | Self::Timeout
                | Self::LeaderUnreachable { .. }
                | Self::NotAttached
                | Self::TooManyInFlight { .. }
                | Self::RateLimited { .. }
        )
    }
}

fn hint(leader: Option<NodeId>) -> String {
    leader.map_or_else(String::new, |id| format!(" (try the leader, {id})"))
}

#[cfg(test)]
mod tests {
    use super::super::samples::proto_errors;
    use super::*;
    use crate::locks::FencingToken;

    #[test]
    fn messages_are_readable() {
        assert_eq!(
            ProtoError::NotLeader {
                leader_hint: Some(NodeId(3))
            }
            .to_string(),
            "this server is not the leader (try the leader, n3)"
        );
        assert_eq!(
            ProtoError::NotLeader { leader_hint: None }.to_string(),
            "this server is not the leader"
        );
        assert_eq!(
            ProtoError::UnsupportedVersion {
                server: 1,
                client: 2
            }
            .to_string(),
            "protocol version 2 is not supported: this server speaks version 1"
        );
        assert_eq!(
            ProtoError::from(LockError::AlreadyHeld {
                token: FencingToken(9)
            })
            .to_string(),
            "lock already held with token 9"
        );
        for e in proto_errors() {
            let text = e.to_string();
            assert!(text.len() > 8, "{e:?} says {text:?}");
        }
    }

    #[test]
    fn classification() {
        for e in proto_errors() {
            assert!(
                !(e.is_connection_level() && e.is_retryable()),
                "{e:?} is both"
            );
        }
        assert!(ProtoError::HelloRequired.is_connection_level());
        assert!(ProtoError::NoLeader.is_retryable());
        assert!(!ProtoError::Lock(LockError::Busy { delayed: false }).is_retryable());
        assert!(!ProtoError::UnknownSession.is_retryable());
    }
}
