//! The cluster's status as this server sees it (`ClusterStatus`).
//!
//! A local view, deliberately not a linearizable read: it answers at once
//! from this server's Raft state, also when no leader can be reached,
//! which is when an operator needs it most (which servers are up, who they
//! think leads, in which term, how far each has replicated). A follower's
//! answer may name a deposed leader or an old commit index; anything that
//! must be current (a lock's holders, a token) is read through the leader
//! with `LockStatus` or `CheckToken`.

use super::Node;
use crate::ids::{LogIndex, NodeId};
use crate::proto::{ClusterStatusView, MemberRole, MemberStatus};
use crate::raft::Role;
use std::collections::BTreeMap;

impl Node {
    pub(super) fn cluster_status(&self) -> ClusterStatusView {
        let status = self.raft.status();
        let matches: BTreeMap<NodeId, LogIndex> =
            status.peers.iter().map(|p| (p.id, p.match_index)).collect();
        let members = status
            .membership
            .members()
            .map(|id| {
                let info = self.member_info(id);
                let role = if status.leader == Some(id) {
                    MemberRole::Leader
                } else if status.membership.learners.contains(&id) {
                    MemberRole::Learner
                } else if id == status.id && status.role == Role::Candidate {
                    MemberRole::Candidate
                } else {
                    MemberRole::Follower
                };
                let match_index = if id == status.id {
                    Some(status.last_index)
                } else {
                    matches.get(&id).copied()
                };
                MemberStatus {
                    id,
                    client_addr: info.client_addr,
                    ws_addr: info.ws_addr,
                    role,
                    match_index: if status.role == Role::Leader {
                        match_index
                    } else {
                        None
                    },
                }
            })
            .collect();
        ClusterStatusView {
            leader: status.leader,
            term: status.term,
            commit_index: status.commit_index,
            members,
        }
    }
}
