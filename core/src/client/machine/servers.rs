//! Which server the session talks to: following a follower's leader hint,
//! leaving a server that is shutting down or knows no leader, and the
//! round-robin over the members that `Welcome`s named.

use super::{ClientSession, Conn};
use crate::client::ClientEvent;
use crate::ids::NodeId;
use crate::proto::{MemberInfo, ProtoError, ResponseBody};
use crate::time::Instant;

impl ClientSession {
    /// Moves to the leader a follower named in its `Welcome`, at once: a
    /// follower would forward every request to the leader and answer only
    /// once the commit reaches it, two extra hops per request. Requests
    /// already sent are re-sent there with the same seq, so they still
    /// apply once. A hint is followed once per connection chain: if the
    /// server reached by following one names yet another leader, the client
    /// stays (the follower forwards correctly either way).
    pub(super) fn follow_leader_hint(&mut self, node_id: NodeId, leader_hint: Option<NodeId>) {
        let Some(leader) = leader_hint.filter(|&l| l != node_id) else {
            return;
        };
        if self.followed_hint || !self.config.follow_leader {
            return;
        }
        // A leader whose address is not known yet (it has not published
        // it) cannot be dialled: the follower forwards meanwhile.
        let Some(target) = self
            .members
            .iter()
            .find(|m| m.id == leader && (!m.client_addr.is_empty() || m.ws_addr.is_some()))
            .cloned()
        else {
            return;
        };
        self.followed_hint = true;
        self.forget_connection();
        self.conn = Conn::Connecting;
        self.events
            .push_back(ClientEvent::Reconnect { to: Some(target) });
    }

    /// Drops what belonged to the current connection: requests in flight
    /// and queued frames. Operations stay and are re-sent, with the same
    /// seqs, on the next connection.
    pub(super) fn forget_connection(&mut self) {
        self.leaderless_since = None;
        self.in_flight.clear();
        self.frames.clear();
        for op in self.ops.values_mut() {
            op.rid = None;
            op.deadline = None;
            op.retry_at = None;
        }
    }

    /// Takes in the members a `Welcome` from `node_id` named.
    ///
    /// Only a leader's list is taken as the whole truth: it is the newest
    /// configuration there is while that leader leads. Any other server
    /// may lag behind changes, or have been removed and know only the
    /// configuration that removed it; replacing the list with such a
    /// server's would let two stale servers send the client back and forth
    /// between themselves for ever, never reaching the members added since.
    /// So their members are added to the list, which otherwise keeps its
    /// order, and the round robin over it reaches every server heard of.
    pub(super) fn learn_members(
        &mut self,
        node_id: NodeId,
        leader_hint: Option<NodeId>,
        members: Vec<MemberInfo>,
    ) {
        if members.is_empty() {
            return;
        }
        let current = self.members.get(self.next_member).map(|m| m.id);
        if leader_hint == Some(node_id) {
            self.members
                .retain(|m| members.iter().any(|n| n.id == m.id));
        }
        for member in members {
            match self.members.iter_mut().find(|m| m.id == member.id) {
                Some(known) => {
                    // A server that has not learned a member's published
                    // address yet says nothing about it: keep what is known.
                    let MemberInfo {
                        client_addr,
                        ws_addr,
                        ..
                    } = member;
                    if !client_addr.is_empty() {
                        known.client_addr = client_addr;
                    }
                    if ws_addr.is_some() {
                        known.ws_addr = ws_addr;
                    }
                }
                None => self.members.push(member),
            }
        }
        // Fail over to the server after this one first; if this one is no
        // member, or a leader hint brought the client here, keep the place
        // the round robin had reached, so that a stale hint cannot send the
        // client back and forth between two servers.
        let here = self.members.iter().position(|m| m.id == node_id);
        let next = match here.filter(|_| !self.followed_hint) {
            Some(p) => p + 1,
            None => current
                .and_then(|id| self.members.iter().position(|m| m.id == id))
                .unwrap_or(self.next_member),
        };
        self.next_member = next % self.members.len();
    }

    pub(super) fn next_target(&mut self) -> Option<MemberInfo> {
        if self.members.is_empty() {
            return None;
        }
        let i = self.next_member % self.members.len();
        self.next_member = (i + 1) % self.members.len();
        self.members.get(i).cloned()
    }

    /// Whether to leave the connected server: it is shutting down, or it
    /// has answered for [`super::Config::leaderless_patience`] that it
    /// knows no leader.
    pub(super) fn server_cannot_serve(
        &mut self,
        result: &Result<ResponseBody, ProtoError>,
        now: Instant,
    ) -> bool {
        match result {
            // The server cannot reach its leader: another may.
            // Or it cannot yet tell that this client speaks for its
            // session: another server (or this one, later) can.
            Err(
                ProtoError::ShuttingDown
                | ProtoError::LeaderUnreachable { .. }
                | ProtoError::NotAttached,
            ) => true,
            Err(ProtoError::NoLeader | ProtoError::NotLeader { leader_hint: None }) => {
                let since = *self.leaderless_since.get_or_insert(now);
                now.saturating_since(since) >= self.config.leaderless_patience
            }
            _ => {
                self.leaderless_since = None;
                false
            }
        }
    }
}
