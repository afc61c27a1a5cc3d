//! A server publishes its own addresses through the log.
//!
//! Every server knows its own advertised peer, client and WebSocket
//! addresses; no server is told the others'. So that clients can fail over
//! to any member without an operator repeating every address on every
//! server, each member, once it knows a leader, asks it to commit a
//! [`MembershipChange::SetAddrs`] carrying its own addresses whenever the
//! configuration in force says something else (as etcd members publish
//! their client URLs). The configuration then carries every member's
//! addresses to every server, which hands them to its clients in `Welcome`.
//!
//! The request is fire-and-forget: it is retried every election timeout
//! until the configuration shows the addresses, so a lost message, a leader
//! change or a change already in progress only delays it.

use super::{Node, NodeAction};
use crate::proto::{ForwardedRequest, PeerFrame, RequestBody};
use crate::raft::MembershipChange;

impl Node {
    /// Whether the configuration in force lacks this server's advertised
    /// addresses (and this server is a member that could publish them).
    pub(super) fn addrs_unpublished(&self) -> bool {
        let Some(own) = &self.advertise else {
            return false;
        };
        let id = self.raft.id();
        let membership = self.raft.membership();
        !self.draining && membership.contains(id) && membership.addrs.get(&id) != Some(own)
    }

    /// Asks the leader to publish this server's addresses, if they are
    /// missing and the last try is an election timeout old. Says whether
    /// it appended to the log here (this server leads), which leaves Raft
    /// actions to drain.
    pub(super) fn publish_addrs(&mut self) -> bool {
        // Runs after every input: once the configuration in force is known
        // to carry the addresses, one comparison of indexes is all it costs.
        let index = self.raft.membership_index();
        if self.addrs_checked == Some(index) {
            // Back at a configuration already found to carry them (a
            // truncated change undone): nothing to retry.
            self.publish_at = None;
            return false;
        }
        if !self.addrs_unpublished() {
            self.addrs_checked = Some(index);
            self.publish_at = None;
            return false;
        }
        if self.publish_at.is_some_and(|at| self.now < at) {
            return false;
        }
        let (Some(own), Some(leader)) = (self.advertise.clone(), self.raft.leader()) else {
            return false;
        };
        self.publish_at = Some(self.now + self.raft.config().election_timeout);
        let id = self.raft.id();
        let change = MembershipChange::SetAddrs(id, own);
        if leader == id {
            // Refused while another change or this term's first entry is
            // committing: the retry comes with the timer.
            return self.raft.change_membership(change, self.now).is_ok();
        }
        let request = ForwardedRequest {
            // No `Forwarded` entry: the leader's answer is dropped, and the
            // configuration itself says whether it worked.
            id: self.new_forward_id(),
            body: RequestBody::ChangeMembership(change),
        };
        self.actions.push_back(NodeAction::Send {
            to: leader,
            frame: PeerFrame::Forward {
                origin: id,
                request,
            },
        });
        false
    }

    /// When [`Self::publish_addrs`] must try again, if it has tried and
    /// must (it clears the deadline once the addresses are in force).
    /// Before a first try (no leader known yet) there is no deadline:
    /// learning of a leader is an input, after which it tries.
    pub(super) fn publish_deadline(&self) -> Option<crate::time::Instant> {
        self.publish_at
    }
}
