//! Membership changes asked for by an operator (`distlock members ...`),
//! and where members can be reached.
//!
//! The leader appends the change and answers once it has committed; a
//! follower forwards the request like any other. A leader that loses its
//! leadership before the change commits answers `NotLeader`: the change may
//! or may not take effect, and the operator's retry finds out (adding a
//! member twice is refused as `AlreadyMember`, which a retry treats as done).
//!
//! Addresses come from the configuration in force (the log carries them for
//! members added later) and, failing that, from this server's own
//! configuration file.

use super::{ConnId, Node, Origin};
use crate::ids::{LogIndex, NodeId, Term};
use crate::proto::{MemberInfo, ProtoError, ResponseBody, ServerFrame};
use crate::raft::{MembershipChange, MembershipError};

/// A change this leader appended and answers when it commits.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(super) struct PendingChange {
    index: LogIndex,
    term: Term,
    origin: Origin,
}

impl Node {
    pub(super) fn serve_membership(&mut self, origin: Origin, change: MembershipChange) {
        if !self.raft.is_leader() {
            self.forward(origin, crate::proto::RequestBody::ChangeMembership(change));
            return;
        }
        match self.raft.change_membership(change, self.now) {
            Ok(index) => self.pending_changes.push(PendingChange {
                index,
                term: self.raft.term(),
                origin,
            }),
            Err(MembershipError::NotLeader { leader }) => self.answer(
                origin,
                Err(ProtoError::NotLeader {
                    leader_hint: leader,
                }),
            ),
            Err(e) => self.answer(origin, Err(ProtoError::Membership(e))),
        }
    }

    /// Answers the changes that committed, and those this server can no
    /// longer see through (it lost the leadership of their term).
    pub(super) fn settle_membership_changes(&mut self) {
        if self.pending_changes.is_empty() {
            return;
        }
        let commit = self.raft.commit_index();
        let leading = self.raft.is_leader().then(|| self.raft.term());
        let pending = std::mem::take(&mut self.pending_changes);
        for change in pending {
            let ours = self.raft.term_at(change.index) == Some(change.term);
            if ours && commit >= change.index {
                let body = ResponseBody::MembershipChanged {
                    index: change.index,
                };
                self.answer(change.origin, Ok(body));
            } else if leading != Some(change.term) || !ours {
                let hint = self.raft.leader();
                self.answer(
                    change.origin,
                    Err(ProtoError::NotLeader { leader_hint: hint }),
                );
            } else {
                self.pending_changes.push(change);
            }
        }
    }

    /// Whether the configuration in force leaves this server out (it was
    /// removed); a server waiting to join knows no configuration yet.
    #[must_use]
    pub fn is_removed(&self) -> bool {
        let membership = self.raft.membership();
        !membership.is_empty() && !membership.contains(self.raft.id())
    }

    /// A fresh `Welcome` to every client when the configuration changed,
    /// so that clients connected for long learn of members added since
    /// (and fail over to them once the servers they knew are gone).
    pub(super) fn announce_membership(&mut self) {
        let index = self.raft.membership_index();
        if index == self.announced {
            return;
        }
        self.announced = index;
        let welcome = self.welcome();
        let conns: Vec<ConnId> = self.greeted.iter().copied().collect();
        for conn in conns {
            self.reply_frame(conn, welcome.clone());
        }
    }

    /// What a client hears first, and again when the members change.
    pub(super) fn welcome(&self) -> ServerFrame {
        ServerFrame::Welcome {
            node_id: self.raft.id(),
            leader_hint: self.raft.leader(),
            members: self.member_infos(),
        }
    }

    /// Every member of the configuration in force with its addresses; this
    /// server's configuration file when it knows no configuration yet (a
    /// server waiting to join).
    pub(super) fn member_infos(&self) -> Vec<MemberInfo> {
        let membership = self.raft.membership();
        if membership.is_empty() {
            return self.members.clone();
        }
        membership
            .members()
            .map(|id| self.member_info(id))
            .collect()
    }

    /// Where member `id` can be reached: as the configuration in force
    /// says, else as this server's configuration file says.
    pub(super) fn member_info(&self, id: NodeId) -> MemberInfo {
        let configured = self.members.iter().find(|m| m.id == id);
        let logged = self.raft.membership().addrs.get(&id);
        let client_addr = logged
            .map(|a| a.client.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| configured.map(|m| m.client_addr.clone()))
            .unwrap_or_default();
        let ws_addr = logged
            .and_then(|a| a.ws.clone())
            .or_else(|| configured.and_then(|m| m.ws_addr.clone()));
        MemberInfo {
            id,
            client_addr,
            ws_addr,
        }
    }
}
