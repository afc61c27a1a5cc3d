//! What a client sends to a server: [`ClientFrame`], carrying a `Hello`
//! and then [`Request`]s.

use super::{AuthToken, ClusterId};
use crate::ids::LogIndex;
use crate::locks::{ClientCommand, FencingToken, SessionId};
use crate::raft::MembershipChange;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A frame from a client to a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame of every connection; answered by
    /// [`super::ServerFrame::Welcome`] or by [`super::ServerFrame::Error`]
    /// and a close. Must stay variant 0 with `protocol_version` first (see
    /// [`super::peek_hello_version`]).
    Hello {
        /// [`super::PROTOCOL_VERSION`] of the client.
        protocol_version: u32,
        /// The cluster the client expects; `None` accepts any.
        cluster_id: Option<ClusterId>,
        /// Credentials, if the cluster requires them.
        auth: Option<AuthToken>,
    },
    /// A request; answered by one [`super::Response`] with the same id.
    Request(Request),
}

/// A client-chosen request number, echoed in the response so that a client
/// can keep many requests in flight on one connection.
///
/// Ids are per connection; a client must not reuse one while its request is
/// unanswered. They have nothing to do with [`Seq`](crate::locks::Seq), which numbers a
/// session's requests across connections for exactly-once delivery.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// One request of a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub id: RequestId,
    /// What is asked.
    pub body: RequestBody,
}

/// What a client can ask.
///
/// [`RequestBody::Log`] requests become log commands
/// ([`crate::locks::Command::Client`]) and are applied exactly once however
/// often they are retried. `KeepAlive` is answered by the leader
/// without the log. `CheckToken`, `LockStatus` and `ClusterStatus` are
/// linearizable reads. `Watch` and `Unwatch` concern the connection they
/// arrive on and are served by that server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// A request that goes through the log (open, close, acquire, release,
    /// cancel): applied exactly once however often it is retried. Answered
    /// [`super::ResponseBody::SessionOpened`] for an open and
    /// [`super::ResponseBody::Lock`] otherwise; a queued acquire is answered
    /// when it leaves the queue.
    Log(ClientCommand),
    /// Extends a session's lease. Not logged: the leader answers
    /// [`super::ResponseBody::KeepAliveAck`] once a heartbeat round that
    /// started after the keepalive arrived has reached a majority
    /// (ARCHITECTURE.md §4, lease rule 2). The client counts the lease from the time it
    /// sent the acknowledged keepalive.
    KeepAlive {
        /// The session to keep alive.
        session: SessionId,
    },
    /// Whether `token` is a current grant of `lock` (Chubby's
    /// CheckSequencer). Answered [`super::ResponseBody::TokenValid`].
    CheckToken {
        /// The lock's name.
        lock: String,
        /// The token to check.
        token: FencingToken,
    },
    /// A lock's holders and waiters. Answered
    /// [`super::ResponseBody::LockStatus`].
    LockStatus {
        /// The lock's name.
        lock: String,
    },
    /// The cluster's leader, term, commit index and members. Answered
    /// [`super::ResponseBody::ClusterStatus`].
    ClusterStatus,
    /// Streams the lock's events on this connection as
    /// [`super::ServerFrame::Watch`] frames, from the next applied entry on.
    /// Answered [`super::ResponseBody::Watching`].
    Watch {
        /// The lock's name.
        lock: String,
    },
    /// Stops a watch. Answered [`super::ResponseBody::Unwatched`].
    Unwatch {
        /// The lock's name.
        lock: String,
    },
    /// Adds a learner, promotes a caught-up learner or removes a server
    /// (an operator's request; forwarded to the leader). Answered
    /// [`super::ResponseBody::MembershipChanged`] once the new
    /// configuration has committed.
    ChangeMembership(MembershipChange),
    /// Takes a consistent snapshot of the lock state for a backup
    /// (`distlock snapshot save`; forwarded to the leader): the leader's
    /// state as applied at an index at or after a ReadIndex it confirmed.
    /// Answered [`super::ResponseBody::SnapshotChunk`] with its first
    /// chunk; the leader keeps the snapshot for a while so that the rest
    /// can be fetched with [`RequestBody::SnapshotChunk`].
    TakeSnapshot {
        /// The most bytes of snapshot the answer may carry (the leader
        /// sends at most [`super::SNAPSHOT_CHUNK_MAX`]); a JSON client asks
        /// for less, its frames being larger than the bytes they carry.
        max_len: u32,
    },
    /// The bytes of a snapshot taken by [`RequestBody::TakeSnapshot`] from
    /// `offset` on. Answered [`super::ResponseBody::SnapshotChunk`], or
    /// [`super::ProtoError::SnapshotUnavailable`] when the leader no longer
    /// keeps it (it expired, or leadership moved): then take a new one.
    SnapshotChunk {
        /// The snapshot's log index, as its first chunk gave it.
        index: LogIndex,
        /// The first byte wanted.
        offset: u64,
        /// As in [`RequestBody::TakeSnapshot`].
        max_len: u32,
    },
    /// Proves that this connection speaks for `session`: `secret` is the
    /// nonce of the `OpenSession` that created it, which only its opener
    /// knows. Requests that act on a session (close, acquire, release,
    /// cancel, keepalive) are refused with
    /// [`super::ProtoError::NotAttached`] on a connection that neither
    /// opened the session nor attached it. Answered
    /// [`super::ResponseBody::Attached`] by the server itself, from its
    /// applied state.
    Attach {
        /// The session.
        session: SessionId,
        /// The nonce it was opened with.
        secret: u128,
    },
    /// One page of the locks that have holders, waiters or a lock-delay,
    /// by name: those whose names start with `prefix` and sort after
    /// `after`. A linearizable read. Answered
    /// [`super::ResponseBody::Locks`]; paging on with its `next` never
    /// skips or repeats a lock that exists throughout.
    ListLocks {
        /// Only names starting with this (`""` for all).
        prefix: String,
        /// Only names after this one (the previous page's `next`).
        after: Option<String>,
        /// The most locks wanted: 0 asks for
        /// [`super::LIST_LIMIT_DEFAULT`], and at most
        /// [`super::LIST_LIMIT_MAX`] are sent.
        limit: u32,
    },
    /// One page of the live sessions, by id, with who opened them. A
    /// linearizable read. Answered [`super::ResponseBody::Sessions`].
    ListSessions {
        /// Only sessions after this one (the previous page's `next`).
        after: Option<SessionId>,
        /// As in [`RequestBody::ListLocks`].
        limit: u32,
    },
    /// Ends a live session as the expiry of its lease would (an operator's
    /// request; forwarded to the leader): its locks are lost, into
    /// lock-delay where their acquirers asked for one, and its waits are
    /// answered `SessionExpired`. Answered
    /// [`super::ResponseBody::Revoked`] once ended, or
    /// [`super::ProtoError::UnknownSession`] (changing nothing) if it is not
    /// live.
    RevokeSession {
        /// The session to end.
        session: SessionId,
    },
    /// An election's leader (the exclusive holder of its lock), its term
    /// of office (the grant's token) and the value it leads with. A
    /// linearizable read. Answered [`super::ResponseBody::Leader`]. To
    /// follow the leader, `Watch` the election and read again on each
    /// event (`Proclaimed` included).
    Leader {
        /// The election.
        election: String,
    },
}

#[cfg(test)]
mod tests {
    use super::super::samples::{client_frames, request_bodies, roundtrip, tag_of};
    use super::*;

    /// The variant's position, which is its tag on the wire. Exhaustive, so
    /// a new variant must be added here (and to the samples).
    fn client_frame_tag(frame: &ClientFrame) -> u32 {
        match frame {
            ClientFrame::Hello { .. } => 0,
            ClientFrame::Request(_) => 1,
        }
    }

    fn request_body_tag(body: &RequestBody) -> u32 {
        match body {
            RequestBody::Log(_) => 0,
            RequestBody::KeepAlive { .. } => 1,
            RequestBody::CheckToken { .. } => 2,
            RequestBody::LockStatus { .. } => 3,
            RequestBody::ClusterStatus => 4,
            RequestBody::Watch { .. } => 5,
            RequestBody::Unwatch { .. } => 6,
            RequestBody::ChangeMembership(_) => 7,
            RequestBody::TakeSnapshot { .. } => 8,
            RequestBody::SnapshotChunk { .. } => 9,
            RequestBody::Attach { .. } => 10,
            RequestBody::ListLocks { .. } => 11,
            RequestBody::ListSessions { .. } => 12,
            RequestBody::RevokeSession { .. } => 13,
            RequestBody::Leader { .. } => 14,
        }
    }

    #[test]
    fn every_client_frame_round_trips_with_its_pinned_tag() {
        let frames = client_frames();
        let mut seen = Vec::new();
        for frame in &frames {
            roundtrip(frame);
            assert_eq!(tag_of(frame), client_frame_tag(frame), "{frame:?}");
            seen.push(client_frame_tag(frame));
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [0, 1]);

        let mut seen = Vec::new();
        for body in request_bodies() {
            roundtrip(&body);
            assert_eq!(tag_of(&body), request_body_tag(&body), "{body:?}");
            seen.push(request_body_tag(&body));
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..=14).collect::<Vec<_>>());
    }

    #[test]
    fn wire_format_is_pinned() {
        let mut out = Vec::new();
        super::super::encode(
            &ClientFrame::Request(Request {
                id: RequestId(7),
                body: RequestBody::ClusterStatus,
            }),
            &mut out,
        )
        .expect("encodes");
        assert_eq!(out, [1, 7, 4]);
        out.clear();
        super::super::encode(
            &ClientFrame::Hello {
                protocol_version: 1,
                cluster_id: Some(ClusterId::new("ab")),
                auth: None,
            },
            &mut out,
        )
        .expect("encodes");
        assert_eq!(out, [0, 1, 1, 2, b'a', b'b', 0]);
    }
}
