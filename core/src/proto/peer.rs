//! What servers send each other: [`PeerFrame`], carrying Raft's messages
//! and client requests forwarded to the leader.
//!
//! Forwarding (PROTOCOL.md §8: any server accepts any request): a server whose
//! client asks for something only the leader can do sends
//! [`PeerFrame::Forward`] to the leader, with a [`ForwardId`] it chose and
//! remembers together with the client's connection and [`RequestId`]. The
//! leader handles the request as if a client of its own had sent it and,
//! once it has the answer, sends [`PeerFrame::ForwardReply`] with the same
//! id to `origin`; the origin turns it into a [`super::Response`] with the
//! client's request id. A leader that has lost leadership answers
//! [`ProtoError::NotLeader`], which the origin may retry on the new leader
//! (safe: logged requests are deduplicated by session and seq). A lost
//! peer connection loses its forwards: the origin answers them
//! [`ProtoError::Timeout`] or retries them.
//!
//! [`RequestId`]: super::RequestId

use super::client::RequestBody;
use super::error::ProtoError;
use super::server::ResponseBody;
use super::{AuthToken, ClusterId};
use crate::ids::{LogIndex, NodeId};
use crate::locks::Command;
use crate::raft::Message;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A Raft message of the lock service's log.
pub type PeerMessage = Message<Command>;

/// A frame between two servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// The first frame on a peer connection, from the dialling server. The
    /// accepting server checks the version, cluster and credentials, and on
    /// failure answers [`PeerFrame::Error`] and closes. Must stay variant 0
    /// with `protocol_version` first (see [`super::peek_hello_version`]).
    Hello {
        /// [`super::PROTOCOL_VERSION`] of the dialler.
        protocol_version: u32,
        /// The dialler's cluster; a server refuses peers of other clusters.
        cluster_id: ClusterId,
        /// The dialler's node id.
        from: NodeId,
        /// The cluster's shared secret, if it has one: without it, anyone
        /// who can reach a peer port could speak Raft to the cluster.
        auth: Option<AuthToken>,
    },
    /// A Raft message.
    Raft(PeerMessage),
    /// A client request forwarded to the leader.
    Forward {
        /// The server the client is connected to, where the answer goes.
        origin: NodeId,
        /// The request.
        request: ForwardedRequest,
    },
    /// The leader's answer to a [`PeerFrame::Forward`], sent to its origin.
    ForwardReply {
        /// The id of the forwarded request.
        id: ForwardId,
        /// The answer, as the client will see it.
        result: Result<ResponseBody, ProtoError>,
    },
    /// Why the connection is being refused or closed (for the dialler's
    /// log); the sender closes the connection after it.
    Error(ProtoError),
    /// The configuration the sender follows, sent when a link opens and
    /// whenever it changes. A server that missed configuration changes
    /// does not know the members added since; a peer it already trusts
    /// vouches for them with this frame, so that their links are admitted
    /// and it can catch up. Never passed to Raft.
    Members {
        /// The log index of the sender's configuration.
        index: LogIndex,
        /// Its voters and learners, each with its peer address.
        members: Vec<(NodeId, String)>,
    },
}

/// Names a forwarded request, chosen by the origin server and unique among
/// its unanswered forwards, including those of its earlier starts: the
/// leader's answer names the server and this id only, and may arrive after
/// the server restarted (a counter from a point drawn afresh at each start
/// will do; one from 1 will not).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ForwardId(pub u64);

impl fmt::Display for ForwardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "f{}", self.0)
    }
}

/// A client request on its way to the leader.
///
/// `Watch` and `Unwatch` are never forwarded: they concern the client's own
/// connection, and every server applies the log and can serve them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedRequest {
    /// Echoed in the [`PeerFrame::ForwardReply`].
    pub id: ForwardId,
    /// The client's request.
    pub body: RequestBody,
}

#[cfg(test)]
mod tests {
    use super::super::samples::{peer_frames, roundtrip, tag_of};
    use super::*;
    use crate::raft::MessageBody;

    fn peer_frame_tag(frame: &PeerFrame) -> u32 {
        match frame {
            PeerFrame::Hello { .. } => 0,
            PeerFrame::Raft(_) => 1,
            PeerFrame::Forward { .. } => 2,
            PeerFrame::ForwardReply { .. } => 3,
            PeerFrame::Error(_) => 4,
            PeerFrame::Members { .. } => 5,
        }
    }

    fn raft_body_tag(body: &MessageBody<Command>) -> u32 {
        match body {
            MessageBody::PreVote { .. } => 0,
            MessageBody::PreVoteResponse { .. } => 1,
            MessageBody::Vote { .. } => 2,
            MessageBody::VoteResponse { .. } => 3,
            MessageBody::Append { .. } => 4,
            MessageBody::AppendResponse { .. } => 5,
            MessageBody::Heartbeat { .. } => 6,
            MessageBody::HeartbeatResponse { .. } => 7,
            MessageBody::InstallSnapshot { .. } => 8,
            MessageBody::InstallSnapshotResponse { .. } => 9,
            MessageBody::TimeoutNow => 10,
        }
    }

    #[test]
    fn every_peer_frame_round_trips_with_its_pinned_tag() {
        let mut seen = Vec::new();
        let mut raft_seen = Vec::new();
        for frame in peer_frames() {
            roundtrip(&frame);
            assert_eq!(tag_of(&frame), peer_frame_tag(&frame), "{frame:?}");
            seen.push(peer_frame_tag(&frame));
            if let PeerFrame::Raft(msg) = &frame {
                raft_seen.push(raft_body_tag(&msg.body));
            }
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
        // Every kind of Raft message crosses the peer link intact.
        raft_seen.sort_unstable();
        raft_seen.dedup();
        assert_eq!(raft_seen, (0..=10).collect::<Vec<_>>());
    }
}
